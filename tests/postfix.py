"""A private Postfix for tests and benchmarks: its own config folder, loopback ports, countable mailboxes.

Started with ``postfix -c DIR start`` and stopped with ``stop``: never the system's service. Mail for
``example.com`` lands in one Maildir under ``DIR/mail`` (or is discarded, for throughput runs); every
other destination is an error transport, so nothing can leave the machine. See shared notes on
running a private Postfix for the facts this is built on.
"""

from __future__ import annotations

import collections
import contextlib
import email.parser
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

# the services a private instance needs; no chroot (the queue is a temporary folder with no /etc inside)
_MASTER = """\
{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
virtual   unix  - n n -  - virtual
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

_MAIN = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = postfix.smtp-nb.test
mydomain = smtp-nb.test
myorigin = $mydomain
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtputf8_enable = yes
message_size_limit = 10240000
virtual_mailbox_domains = example.com
virtual_mailbox_base = {dir}/mail
virtual_mailbox_maps = static:example.com/inbox/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_transport = {transport}
default_transport = error:a test Postfix delivers nothing outside
relay_transport = error:a test Postfix delivers nothing outside
local_transport = error:a test Postfix delivers nothing outside
smtpd_client_connection_rate_limit = 0
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
"""


def available() -> bool:
    return os.path.exists(POSTFIX) and os.geteuid() == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postfix:
    """A running private instance: ``port`` takes SMTP on 127.0.0.1."""

    dir: pathlib.Path
    port: int

    def _run(self, *args: str) -> str:
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr or done.stdout}")
        return done.stdout

    def queue_empty(self) -> bool:
        queue = self.dir / "queue"
        return not any(
            files for part in ("maildrop", "incoming", "active", "deferred") for _, _, files in os.walk(queue / part)
        )

    def wait_queue_empty(self, timeout: float = 60) -> None:
        """Until every accepted message is delivered (or discarded); the queue is a folder to watch."""
        deadline = time.monotonic() + timeout
        while not self.queue_empty():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Postfix queue in {self.dir} not empty after {timeout} s:\n{self.log()[-2000:]}")
            time.sleep(0.05)

    def deliveries(self) -> collections.Counter[str]:
        """How many copies each ``...@example.com`` recipient got (one Maildir; each copy names its recipient)."""
        inbox = self.dir / "mail" / "example.com" / "inbox" / "new"
        counts: collections.Counter[str] = collections.Counter()
        for path in inbox.iterdir() if inbox.is_dir() else ():
            with path.open("rb") as f:
                counts[email.parser.BytesHeaderParser().parse(f)["Delivered-To"]] += 1
        return counts

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        subprocess.run([POSTFIX, "-c", str(self.dir), "stop"], capture_output=True, check=False)


def _wait_greeting(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"220"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Postfix did not greet on 127.0.0.1:{port} within {timeout} s")
        time.sleep(0.05)


@contextlib.contextmanager
def running(*, discard: bool = False) -> Iterator[Postfix]:
    """Start a private Postfix on a free loopback port; ``discard``: accept and drop every message."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="smtp_nb-postfix-"))
    folder.chmod(0o755)  # Postfix's daemons run as postfix and nobody and must reach their folders
    port = _free_port()
    (folder / "main.cf").write_text(_MAIN.format(dir=folder, transport="discard:" if discard else "virtual"))
    (folder / "master.cf").write_text(_MASTER.format(port=f"127.0.0.1:{port}"))
    (folder / "queue").mkdir(mode=0o755)
    (folder / "data").mkdir(mode=0o700)
    shutil.chown(folder / "data", "postfix", "postfix")
    (folder / "mail").mkdir()
    shutil.chown(folder / "mail", "nobody", "nogroup")
    instance = Postfix(folder, port)
    try:
        instance._run(POSTFIX, "-c", str(folder), "check")
        instance._run(POSTFIX, "-c", str(folder), "start")
        _wait_greeting(port, timeout=30)
        yield instance
    finally:
        instance.stop()
        if not os.environ.get("KEEP_POSTFIX"):
            shutil.rmtree(folder, ignore_errors=True)
