"""Connection URLs and profiles: ``%smtp_connect smtp://...``, ``--profile NAME``, and where passwords come from."""

from __future__ import annotations

import typing

import pytest
from IPython.core.error import UsageError

from smtp_nb.notebook.profiles import PROFILES_FILE, ProfileError, load_profile, parse_url
from tests.notebook.conftest import run, shown

PASSWORD = "hunter2-correct-horse"


def test_urls_give_host_port_tls_mode_user_and_options():
    target = parse_url("smtp://ada@smtp.example.com:587?starttls=true&timeout=12&local_hostname=laptop")
    assert target.user == "ada" and target.where == "smtp.example.com:587"
    assert target.options == {
        "hostname": "smtp.example.com",
        "port": 587,
        "start_tls": True,
        "timeout": 12.0,
        "local_hostname": "laptop",
    }
    assert parse_url("smtps://ada@mail.example.com:465").options == {
        "hostname": "mail.example.com",
        "port": 465,
        "use_tls": True,
    }
    assert parse_url("smtp://relay.example.com?starttls=no&verify=no").options == {
        "hostname": "relay.example.com",
        "start_tls": False,
        "validate_certs": False,
    }


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://x.example", "starts with smtp:// "),
        ("smtp://ada@x.example:port", "port is not a number"),
        ("smtp://x.example?colour=blue", "unknown option 'colour'"),
        ("smtp://x.example?starttls=perhaps", "is not yes/no"),
        ("smtps://x.example?starttls=true", "starttls does not apply"),
        ("smtp://x.example?password=abc", "say where it comes from instead"),
    ],
)
def test_bad_urls_say_what_to_change(url, problem):
    with pytest.raises(ProfileError, match=problem):
        parse_url(url)


def test_a_password_in_a_url_is_refused_without_repeating_it(ip):
    with shown() as captured, pytest.raises(UsageError) as raised:
        ip.run_cell(f"%smtp_connect smtp://ada:{PASSWORD}@smtp.example.com:587")
    assert "the URL holds a password" in str(raised.value)
    assert PASSWORD not in str(raised.value) + captured.stdout + captured.stderr


def test_connect_with_a_url_to_a_starttls_server(ip, starttls_server, session, monkeypatch):
    monkeypatch.setenv("SMTP_NB_TEST_PASSWORD", "demo-password")
    report, _ = run(
        ip,
        f"%smtp_connect smtp://demo@localhost:{starttls_server.port}?starttls=true&cafile={starttls_server.ca_path} "
        "--password-env SMTP_NB_TEST_PASSWORD",
    )
    assert report.capabilities.user == "demo" and report.capabilities.tls.verified
    assert session.get().client.start_tls is True


def _write(folder, text: str):
    path = folder / PROFILES_FILE
    path.write_text(text)
    return path


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """The notebook's folder (the kernel's working directory) and the user's config folder, both empty."""
    notebook, config = tmp_path / "notebook", tmp_path / "config"
    notebook.mkdir()
    (config / "smtp_nb").mkdir(parents=True)
    monkeypatch.chdir(notebook)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return notebook, config / "smtp_nb"


def test_profile_from_the_notebooks_folder_first_then_the_config_folder(folders, starttls_server, ip, session):
    notebook, config = folders
    port, ca = starttls_server.port, starttls_server.ca_path
    _write(config, f'[work]\nhost = "localhost"\nport = {port}\ntls = "starttls"\n[work.options]\ncafile = "{ca}"\n')
    report, _ = run(ip, "%smtp_connect --profile work")
    assert report.capabilities.tls.verified and session.get().profile == "work"
    run(ip, "%smtp_quit")
    _write(notebook, '[work]\nhost = "localhost"\nport = 1\n')  # the notebook's folder wins
    assert load_profile("work").options == {"hostname": "localhost", "port": 1}
    assert load_profile("work").source == notebook / PROFILES_FILE


def test_connections_show_the_profile_of_each(folders, server, ip, monkeypatch):
    notebook, _ = folders
    _write(notebook, f'[local]\nurl = "smtp://127.0.0.1:{server.port}?starttls=false"\n')
    run(ip, "%smtp_connect --profile local")
    run(ip, f"%smtp_connect 127.0.0.1:{server.port} --name direct")
    table, _ = run(ip, "%smtp_connections")
    lines = repr(table).splitlines()
    assert lines[0].split()[:3] == ["name", "server", "profile"]
    assert lines[1].split()[:3] == ["default", f"127.0.0.1:{server.port}", "local"]
    assert lines[2].split()[:3] == ["direct", f"127.0.0.1:{server.port}", "open"]
    assert '<td style="text-align:left">local</td>' in table._repr_html_()


def test_a_password_in_the_profiles_file_is_refused(folders, ip):
    notebook, _ = folders
    _write(notebook, f'[other]\nhost = "x.example"\npassword = "{PASSWORD}"\n[work]\nhost = "smtp.example.com"\n')
    with shown() as captured, pytest.raises(UsageError) as raised:
        ip.run_cell("%smtp_connect --profile work")
    message = str(raised.value)
    assert "profile 'other' holds 'password'; a password never goes in the profiles file" in message
    assert 'password_from = "env:VAR"' in message
    assert PASSWORD not in message + captured.stdout + captured.stderr


def test_missing_file_and_profile_say_where_they_looked(folders, ip):
    notebook, _ = folders
    with pytest.raises(UsageError, match=f"no profiles file: looked for {notebook / PROFILES_FILE} and"):
        ip.run_cell("%smtp_connect --profile work")
    _write(notebook, '[home]\nhost = "x.example"\n')
    with pytest.raises(UsageError, match=r"has no profile 'work' \(its profiles: home\)"):
        ip.run_cell("%smtp_connect --profile work")
    _write(notebook, '[work]\nhost = "x.example"\ntls = "maybe"\n')
    with pytest.raises(UsageError, match="profile 'work': tls = 'maybe' is not a TLS mode"):
        ip.run_cell("%smtp_connect --profile work")


def test_bad_values_in_a_profile_are_one_line_and_not_repeated(folders, ip):
    # Found by a review: a raw ValueError repeating the value, and an AttributeError.
    notebook, _ = folders
    _write(notebook, '[work]\nhost = "x.example"\nport = "hunter2"\n')
    with pytest.raises(UsageError, match=r"profile 'work': port must be a number \(port = 587\)") as raised:
        ip.run_cell("%smtp_connect --profile work")
    assert "hunter2" not in str(raised.value)
    _write(notebook, '[work]\nhost = "x.example"\noptions = [{a = 1}]\n')
    with pytest.raises(UsageError, match=r"profile 'work': options must be a table \[work\.options\]"):
        ip.run_cell("%smtp_connect --profile work")


def _auth_profile(folder, server, source: str) -> None:
    _write(
        folder,
        f'[secure]\nhost = "localhost"\nport = {server.port}\ntls = "starttls"\nuser = "demo"\n'
        f'password_from = "{source}"\n[secure.options]\ncafile = "{server.ca_path}"\n',
    )


def test_password_from_an_environment_variable(folders, starttls_server, ip, monkeypatch):
    _auth_profile(folders[0], starttls_server, "env:SMTP_NB_PROFILE_PASSWORD")
    with pytest.raises(UsageError, match="the environment variable SMTP_NB_PROFILE_PASSWORD is not set"):
        ip.run_cell("%smtp_connect --profile secure")
    monkeypatch.setenv("SMTP_NB_PROFILE_PASSWORD", "demo-password")
    report, _ = run(ip, "%smtp_connect --profile secure")
    assert report.capabilities.user == "demo"


def test_password_from_a_prompt(folders, starttls_server, ip, monkeypatch):
    _auth_profile(folders[0], starttls_server, "prompt")
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or "demo-password")
    report, captured = run(ip, "%smtp_connect --profile secure")
    assert prompts == [f"SMTP password for demo at localhost:{starttls_server.port}: "]
    assert report.capabilities.user == "demo" and "demo-password" not in captured.stdout + repr(report)


def test_a_prompt_where_the_frontend_takes_no_input_is_one_line(folders, starttls_server, ip, monkeypatch):
    from IPython.core.error import StdinNotImplementedError

    def no_stdin(prompt):  # what ipykernel's getpass does under nbclient, papermill or nbval
        raise StdinNotImplementedError("getpass was called, but this frontend does not support input requests.")

    _auth_profile(folders[0], starttls_server, "prompt")
    monkeypatch.setattr("getpass.getpass", no_stdin)
    for line in ("%smtp_connect --profile secure", f"%smtp_connect localhost:{starttls_server.port} --user demo "
                 "--prompt-password"):  # fmt: skip
        with pytest.raises(UsageError, match=r"this frontend cannot ask for a password .*--password-env VAR"):
            ip.run_cell(line)


def test_password_from_the_keyring(folders, starttls_server, ip):
    import keyring  # the test extra installs it: no skip
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):  # a real keyring backend, kept in memory (the machine has no keyring service)
        priority = 1
        stored: typing.ClassVar[dict[tuple[str, str], str]] = {}

        def get_password(self, service, username):
            return self.stored.get((service, username))

        def set_password(self, service, username, password):
            self.stored[service, username] = password

        def delete_password(self, service, username):
            self.stored.pop((service, username), None)

    previous = keyring.get_keyring()
    keyring.set_keyring(Memory())
    try:
        _auth_profile(folders[0], starttls_server, "keyring")
        service = f"smtp://localhost:{starttls_server.port}"
        with pytest.raises(UsageError, match=f"keyring has no password for demo at service '{service}'"):
            ip.run_cell("%smtp_connect --profile secure")
        keyring.set_password(service, "demo", "demo-password")
        report, _ = run(ip, "%smtp_connect --profile secure")
        assert report.capabilities.user == "demo"
    finally:
        keyring.set_keyring(previous)


def test_options_on_the_line_override_the_profile(folders, server, ip, session):
    _write(folders[0], '[p]\nhost = "127.0.0.1"\nport = 1\n[p.options]\nlocal_hostname = "from.profile"\n')
    run(ip, f"%smtp_connect --profile p --port {server.port} --local-hostname from.line")
    assert session.get().where == f"127.0.0.1:{server.port}"
    assert session.get().client.local_hostname == "from.line"
    with pytest.raises(UsageError, match="give a host \\(or URL\\) or --profile, not both"):
        ip.run_cell("%smtp_connect x.example --profile p")


def test_a_url_user_without_a_password_source_names_the_url_not_an_option(ip):
    """The user typed a URL, not --user: the error speaks of what they typed."""
    with pytest.raises(UsageError, match=r"the URL's user 'ada' needs a password: add --password-env VAR"):
        ip.run_cell("%smtp_connect smtp://ada@smtp.example.com:587")
    with pytest.raises(UsageError, match=r"--user 'ada' needs a password"):
        ip.run_cell("%smtp_connect smtp.example.com:587 --user ada")
