"""Where ``%smtp_connect`` goes: ``smtp://`` and ``smtps://`` URLs, and named profiles from a TOML file.

A profile holds host, port, TLS mode, user and connect options, and says where the password comes
from (an environment variable, a prompt, the system keyring); never the password itself.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "PROFILES_FILE",
    "ProfileError",
    "Target",
    "find_profiles_file",
    "load_profile",
    "parse_url",
    "read_password",
]

#: The profiles file's name, looked for in the notebook's folder, then in the user's config folder.
PROFILES_FILE = "smtp_nb-profiles.toml"

#: ``?name=value`` options of a URL (and keys of a profile's ``[NAME.options]``): the client option each sets.
_OPTIONS: dict[str, tuple[str, Callable[[str], Any]]] = {}
_TLS_MODES = ("starttls", "tls", "none", "auto")
#: Keys of a profile, besides ``options``.
_PROFILE_KEYS = {"url", "host", "port", "tls", "user", "password_from"}
_SECRET_KEYS = {"password", "pass", "passwd", "pwd", "secret", "token"}


class ProfileError(ValueError):
    """A URL or profile that cannot be used; the message says what to change (and never shows a password)."""


def _flag(value: str) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ProfileError(f"{value!r} is not yes/no (use true or false)")


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ProfileError(f"{value!r} is not a number of seconds") from None


_OPTIONS.update(
    {
        "starttls": ("start_tls", _flag),
        "timeout": ("timeout", _number),
        "local_hostname": ("local_hostname", str),
        "cafile": ("cert_bundle", str),
        "cert_bundle": ("cert_bundle", str),
        "verify": ("validate_certs", _flag),
        "validate_certs": ("validate_certs", _flag),
        "allow_plaintext_auth": ("allow_plaintext_auth", _flag),
    }
)


@dataclasses.dataclass
class Target:
    """A server to connect to: ``options`` for ``smtp_nb.SMTP`` (no credentials), the user, where the password is."""

    options: dict[str, Any]
    user: str | None = None
    #: ``env:VAR``, ``prompt``, ``keyring`` or ``keyring:SERVICE``; None: no password (or the magic's own options).
    password_from: str | None = None
    #: The profile's name, or None for a URL or HOST:PORT.
    profile: str | None = None
    #: The file the profile came from.
    source: pathlib.Path | None = None

    @property
    def where(self) -> str:
        host = self.options.get("hostname", "?")
        port = self.options.get("port")
        return f"{host}:{port}" if port else str(host)


def _tls_options(mode: str, *, scheme_default: str) -> dict[str, Any]:
    mode = (mode or scheme_default).lower()
    if mode not in _TLS_MODES:
        raise ProfileError(f"tls = {mode!r} is not a TLS mode: use one of {', '.join(_TLS_MODES)}")
    return {
        "starttls": {"start_tls": True, "use_tls": False},
        "tls": {"use_tls": True},
        "none": {"start_tls": False, "use_tls": False},
        "auto": {},
    }[mode]


def _option(name: str, value: Any) -> tuple[str, Any]:
    key = name.replace("-", "_").lower()
    if key in _SECRET_KEYS:
        raise ProfileError(
            f"{name} cannot be given here (a password stays out of notebooks and files): "
            'say where it comes from instead, with password_from = "env:VAR", "prompt" or "keyring"'
        )
    if key not in _OPTIONS:
        raise ProfileError(f"unknown option {name!r}: the options are {', '.join(sorted(_OPTIONS))}")
    option, convert = _OPTIONS[key]
    return option, value if isinstance(value, (bool, int, float)) and convert is not str else convert(value)


def parse_url(url: str) -> Target:
    """``smtp://user@host:587?starttls=true`` or ``smtps://user@host:465``: a ``Target``.

    ``smtp://`` uses STARTTLS when offered (``?starttls=true`` requires it, ``false`` never upgrades);
    ``smtps://`` speaks TLS from the first byte. A password in the URL is refused, without repeating it.
    """
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ProfileError("a URL starts with smtp:// (STARTTLS when offered) or smtps:// (TLS from the first byte)")
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    userinfo, at, _ = authority.rpartition("@")
    if at and ":" in userinfo:
        raise ProfileError(
            "the URL holds a password (user:password@): it would stay in the notebook. Give only the user "
            "(smtp://user@host) and --password-env VAR or --prompt-password, or a profile with password_from"
        )
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ProfileError("the URL's port is not a number (write smtp://host:587)") from None
    if not parts.hostname:
        raise ProfileError("the URL names no host (write smtp://user@smtp.example.com:587)")
    options: dict[str, Any] = {"hostname": parts.hostname}
    if port:
        options["port"] = port
    options.update(_tls_options("tls" if scheme == "smtps" else "auto", scheme_default="auto"))
    for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        option, converted = _option(name, value)
        options[option] = converted
        if option == "start_tls" and scheme == "smtps":
            raise ProfileError("smtps:// is TLS from the first byte: starttls does not apply (use smtp:// for it)")
    user = urllib.parse.unquote(parts.username) if parts.username else None
    return Target(options, user=user)


def profile_folders(notebook_folder: str | os.PathLike[str] | None = None) -> list[pathlib.Path]:
    """Where the profiles file is looked for, in order: the notebook's folder, then the user's config folder."""
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return [pathlib.Path(notebook_folder or os.getcwd()), pathlib.Path(config) / "smtp_nb"]


def find_profiles_file(notebook_folder: str | os.PathLike[str] | None = None) -> pathlib.Path | None:
    """The first profiles file found in ``profile_folders()``, or None."""
    for folder in profile_folders(notebook_folder):
        path = folder / PROFILES_FILE
        if path.is_file():
            return path
    return None


def load_profile(name: str, notebook_folder: str | os.PathLike[str] | None = None) -> Target:
    """The profile ``name`` (a TOML table ``[name]``) of the first profiles file found."""
    path = find_profiles_file(notebook_folder)
    if path is None:
        looked = " and ".join(str(folder / PROFILES_FILE) for folder in profile_folders(notebook_folder))
        raise ProfileError(f"no profiles file: looked for {looked} (see the README's 'Connection profiles')")
    try:
        with path.open("rb") as file:
            profiles = tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path} is not valid TOML: {exc}") from None
    for profile, table in profiles.items():  # a password anywhere in the file is refused, whichever profile is used
        if isinstance(table, Mapping):
            options = table.get("options", {})
            if not isinstance(options, Mapping):
                raise ProfileError(f"{path}: profile {profile!r}: options must be a table [{profile}.options]")
            secrets = sorted(_SECRET_KEYS & {str(k).lower() for k in [*table, *options]})
            if secrets:
                raise ProfileError(
                    f"{path}: profile {profile!r} holds {secrets[0]!r}; a password never goes in the profiles "
                    'file: remove it and name where it comes from, with password_from = "env:VAR", "prompt" or '
                    '"keyring"'
                )
    table = profiles.get(name)
    if not isinstance(table, Mapping):
        known = ", ".join(k for k, v in profiles.items() if isinstance(v, Mapping)) or "none"
        raise ProfileError(f"{path} has no profile {name!r} (its profiles: {known})")
    return _target(name, table, path)


def _target(name: str, table: Mapping[str, Any], path: pathlib.Path) -> Target:
    unknown = sorted(set(table) - _PROFILE_KEYS - {"options"})
    if unknown:
        raise ProfileError(
            f"{path}: profile {name!r} has unknown keys {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(_PROFILE_KEYS))} and a table [{name}.options]"
        )
    try:
        if "url" in table:
            target = parse_url(str(table["url"]))
        elif "host" in table:
            target = Target({"hostname": str(table["host"])})
        else:
            raise ProfileError("it needs host (or url)")
        if "port" in table:
            port = table["port"]
            if isinstance(port, bool) or (not isinstance(port, int) and not str(port).isdigit()):
                raise ProfileError("port must be a number (port = 587)")  # the value is not repeated: a password?
            target.options["port"] = int(port)
        if "tls" in table:
            target.options.pop("start_tls", None)
            target.options.pop("use_tls", None)
            target.options.update(_tls_options(str(table["tls"]), scheme_default="auto"))
        for option, value in dict(table.get("options", {})).items():
            key, converted = _option(option, value)
            target.options[key] = converted
        if "user" in table:
            target.user = str(table["user"])
        target.password_from = table.get("password_from")
        if target.password_from is not None:
            _check_source(str(target.password_from))
    except ProfileError as exc:
        raise ProfileError(f"{path}: profile {name!r}: {exc}") from None
    target.profile, target.source = name, path
    return target


def _check_source(source: str) -> None:
    kind = source.split(":", 1)[0]
    if kind not in ("env", "prompt", "keyring") or (kind == "env" and not source[4:]):
        raise ProfileError('password_from is "env:VAR", "prompt", "keyring" or "keyring:SERVICE"')


def read_password(target: Target, prompt: Callable[[str], str]) -> str:
    """The password from the profile's ``password_from``; ``prompt`` asks for it when that says ``prompt``."""
    source = str(target.password_from)
    _check_source(source)
    kind, _, detail = source.partition(":")
    if kind == "env":
        value = os.environ.get(detail)
        if value is None:
            raise ProfileError(f"profile {target.profile!r}: the environment variable {detail} is not set")
        return value
    if kind == "prompt":
        return prompt(f"SMTP password for {target.user} at {target.where}: ")
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise ProfileError(
            f"profile {target.profile!r} reads its password from the system keyring, which needs the keyring "
            "package: pip install 'smtp_nb[keyring]'"
        ) from None
    service = detail or f"smtp://{target.where}"
    try:
        value = keyring.get_password(service, str(target.user))
    except keyring.errors.KeyringError as exc:
        raise ProfileError(f"profile {target.profile!r}: the system keyring cannot be read ({exc})") from None
    if value is None:
        raise ProfileError(
            f"profile {target.profile!r}: the keyring has no password for {target.user} at service {service!r}; "
            f"store one with: keyring set {service} {target.user}"
        )
    return str(value)
