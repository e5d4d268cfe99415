"""Shared test machinery: async tests on a strict event loop, and real servers on free loopback ports."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from smtp_nb import SMTP
from smtp_nb.server import InboxHandler, LocalServer


def run_strict(coro: Any, timeout: float = 60) -> Any:
    """Run ``coro`` on a fresh debug-mode loop; fail on anything asyncio complains about.

    "Future exception was never retrieved", "Task was destroyed but it is
    pending", "Task exception was never retrieved" and any other exception
    handed to the loop's handler fail the test.
    """
    problems: list[str] = []
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 10  # debug mode's slow-callback warnings are noise on shared machines

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        problems.append(str(context.get("message")) + (f": {context['exception']!r}" if "exception" in context else ""))

    loop.set_exception_handler(handler)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            gc.collect()
            loop.run_until_complete(asyncio.sleep(0))
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            gc.collect()
        if problems:
            pytest.fail("asyncio reported work left behind:\n" + "\n".join(problems))


class _AsyncioComplaints(logging.Handler):
    """asyncio's own error reports, from any loop in any thread (asyncio.run, the session loop, servers)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(autouse=True)
def no_asyncio_complaints() -> Iterator[None]:
    """Fail a test if any event loop reported a lost exception, a destroyed pending task, and the like.

    A young-generation collection after each test brings out what the test
    dropped (a full one per test cost more than the tests themselves); the
    session ends with a full collection and the same check.
    """
    handler = _AsyncioComplaints()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield
        gc.collect(1)
    finally:
        logger.removeHandler(handler)
    if handler.messages:
        pytest.fail("asyncio reported work left behind:\n" + "\n".join(handler.messages))


@pytest.fixture(autouse=True, scope="session")
def no_asyncio_complaints_at_the_end() -> Iterator[None]:
    handler = _AsyncioComplaints()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    yield
    gc.collect()
    logger.removeHandler(handler)
    if handler.messages:
        pytest.fail("asyncio reported work left behind by some test:\n" + "\n".join(handler.messages))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        run_strict(pyfuncitem.obj(**kwargs))
        return True
    return None


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A plain aiosmtpd server (PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN)."""
    with LocalServer() as srv:
        yield srv


@pytest.fixture
def auth_server() -> Iterator[LocalServer]:
    """An aiosmtpd server offering PLAIN, LOGIN, CRAM-MD5 and XOAUTH2 on loopback (user demo)."""
    with LocalServer(auth=True) as srv:
        yield srv


@pytest.fixture
def starttls_server() -> Iterator[LocalServer]:
    """STARTTLS with a certificate from a CA made for this test; AUTH only after TLS."""
    with LocalServer(starttls=True, auth=True) as srv:
        yield srv


@pytest.fixture
def tls_server() -> Iterator[LocalServer]:
    """TLS from the first byte (like port 465), with AUTH."""
    with LocalServer(tls=True, auth=True) as srv:
        yield srv


class NoPipeliningHandler(InboxHandler):
    async def handle_EHLO(
        self, smtp: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        responses = await super().handle_EHLO(smtp, session, envelope, hostname, responses)
        return [r for r in responses if "PIPELINING" not in r]


@pytest.fixture
def plain_server() -> Iterator[LocalServer]:
    """A server that does not offer PIPELINING: one command per round trip."""
    with LocalServer(handler_class=NoPipeliningHandler) as srv:
        yield srv


@pytest.fixture(params=["pipelining", "no-pipelining"])
def any_server(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """Runs the test against a server with and one without PIPELINING."""
    handler = InboxHandler if request.param == "pipelining" else NoPipeliningHandler
    with LocalServer(handler_class=handler) as srv:
        yield srv


def client_for(srv: LocalServer, **options: Any) -> SMTP:
    return SMTP(**{**srv.client_options(), "timeout": 10, **options})


class RuleHandler(InboxHandler):
    """The inbox, plus refusals the test sets in ``server.rules``.

    ``rules["MAIL"][address]`` / ``rules["RCPT"][address]`` is the reply that
    refuses that address; ``rules["DATA"]`` replaces the reply after the data
    (a dict refuses only messages containing one of its keys);
    ``rules["without"]`` lists EHLO keywords to hide; ``rules["GREYLIST"]`` is a
    set of addresses whose first RCPT gets a 451.
    """

    async def handle_EHLO(
        self, smtp: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        responses = await super().handle_EHLO(smtp, session, envelope, hostname, responses)
        hidden = tuple(k.upper() for k in self.server.rules.get("without", ()))
        kept = [r for r in responses[1:] if not r[4:].upper().startswith(hidden)]
        kept[-1] = "250 " + kept[-1][4:]
        return responses[:1] + kept[:-1] + kept[-1:]

    async def handle_MAIL(self, smtp: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        refusal = self.server.rules.get("MAIL", {}).get(address)
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, smtp: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        refusal = self.server.rules.get("RCPT", {}).get(address)
        if refusal:
            return refusal
        greylist = self.server.rules.get("GREYLIST", set())
        if address in greylist:  # the first try of each listed address is deferred
            greylist.discard(address)
            return "451 4.7.1 greylisted, try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        refusal = self.server.rules.get("DATA")
        if isinstance(refusal, dict):  # {text in the message: reply}
            content = envelope.original_content or b""
            refusal = next((reply for text, reply in refusal.items() if text.encode() in content), None)
        if refusal:
            return refusal
        return await super().handle_DATA(smtp, session, envelope)

    async def handle_RSET(self, smtp: Any, session: Any, envelope: Any) -> str:
        self.server.rsets = getattr(self.server, "rsets", 0) + 1
        return "250 OK"


@pytest.fixture
def rule_server() -> Iterator[LocalServer]:
    """A real aiosmtpd server whose refusals the test sets: ``rule_server.rules[...] = ...``."""
    with LocalServer(handler_class=RuleHandler) as srv:
        srv.rules = {}  # type: ignore[attr-defined]
        srv.rsets = 0  # type: ignore[attr-defined]
        yield srv


@pytest.fixture(params=["pipelining", "no-pipelining"])
def rules_any(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """``rule_server``, once with PIPELINING and once without."""
    with LocalServer(handler_class=RuleHandler) as srv:
        srv.rules = {"without": ["PIPELINING"]} if request.param == "no-pipelining" else {}  # type: ignore[attr-defined]
        srv.rsets = 0  # type: ignore[attr-defined]
        yield srv


_passed = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _passed
    if report.when == "call" and report.passed:
        _passed += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run where nothing passed (all skipped, or nothing collected) is a failure, not green."""
    if exitstatus == 0 and _passed == 0:
        session.exitstatus = 1
