"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1 and a free port.

It keeps every message it accepts (its Message-ID and recipients), so a test
asserts what was sent, and sent twice, against the server rather than against
the records. It can answer chosen recipients with an error (transient 451 or
permanent 550, at RCPT or after DATA), and hold its reply to a message until the
test lets it go: a sender then waits mid-batch, and a test kills it there,
staged by waiting for the sink to have the message, never by sleeping. It can
refuse the sender (MAIL FROM), ask for a login (``smtp_sink(login=...)``), and run
a test's action before it replies to a chosen message (:meth:`SmtpSink.before_reply`:
a test clock moved on is a reply that took that long, with no sleeping).

Like a real MTA it commits a message when its data is complete, before the reply
(RFC 1047's window): a sender killed while waiting for the reply has the message
delivered anyway, and sends it again once its lease runs out.

In-process code mails through it under :meth:`SmtpSink.settings` (Django 5.2's
EMAIL_* settings, 6.1's MAILERS); a child ``manage.py`` under
:meth:`SmtpSink.environment` (cliproject/settings.py reads EMAIL_HOST/EMAIL_PORT).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from typing import Any

import django
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from django.test import override_settings

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


@dataclass(frozen=True)
class Received:
    message_id: str
    recipients: tuple[str, ...]
    session: tuple[str, int]  # the client's address and port: one per mail connection


class SmtpSink:
    """What the server received, and how it is to answer; thread-safe (the server
    runs in a thread of its own)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._data_replies: dict[str, list[str | None]] = {}
        self._rcpt_replies: dict[str, str] = {}
        self._hold_at: int | None = None
        self._sender_reply: str | None = None
        self._before_reply: dict[int, Callable[[], None]] = {}
        self.login: tuple[str, str] | None = None  # set by smtp_sink(login=...)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._released = asyncio.Event()

    # -- what it received --

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def count(self) -> int:
        with self._lock:
            return len(self._received)

    def message_ids(self) -> Counter[str]:
        """How many times each Message-ID arrived."""
        return Counter(r.message_id for r in self.received)

    def sessions(self) -> int:
        """How many mail connections delivered messages."""
        return len({r.session for r in self.received})

    def duplicates(self) -> dict[str, int]:
        return {mid: n for mid, n in self.message_ids().items() if n > 1}

    # -- how it answers --

    def reply_after_data(self, address: str, *replies: str | None) -> None:
        """Answer the next messages to ``address`` with ``replies`` in turn (e.g. "451 4.3.0
        busy"; None accepts); once they are used up, accept."""
        with self._lock:
            self._data_replies[address] = list(replies)

    def refuse_recipient(self, address: str, reply: str = "550 5.1.1 no such user") -> None:
        """Refuse ``address`` at RCPT TO, every time."""
        with self._lock:
            self._rcpt_replies[address] = reply

    def refuse_sender(self, reply: str = "553 5.7.1 sender address rejected") -> None:
        """Refuse every sender at MAIL FROM (a server that does not take our address)."""
        with self._lock:
            self._sender_reply = reply

    def before_reply(self, n: int, action: Callable[[], None]) -> None:
        """Run ``action`` (in the server's thread) once the ``n``-th message (counting all
        received) is in, before the server replies to it: the sender is waiting then."""
        with self._lock:
            self._before_reply[n] = action

    def hold_at(self, n: int) -> None:
        """Take the ``n``-th message (counting all received) and hold its reply, and every
        later one's, until :meth:`release`."""
        with self._lock:
            self._hold_at = n

    def release(self) -> None:
        """Let held replies go, and stop holding."""
        with self._lock:
            self._hold_at = None
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._released.set)

    def settings(self, *, username: str = "", password: str = "") -> override_settings:
        """In-process settings that mail through this server (logging in as ``username``
        with ``password`` when both are given)."""
        options: dict[str, Any] = {"host": "127.0.0.1", "port": self.port, "timeout": 10}
        if username and password:
            options.update(username=username, password=password)
        if django.VERSION >= (6, 1):
            return override_settings(
                MAILERS={"default": {"BACKEND": SMTP_BACKEND, "OPTIONS": options}}
            )
        return override_settings(
            EMAIL_BACKEND=SMTP_BACKEND,
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=self.port,
            EMAIL_TIMEOUT=10,
            EMAIL_HOST_USER=username,
            EMAIL_HOST_PASSWORD=password,
        )

    def environment(self) -> dict[str, str]:
        """A child ``manage.py``'s environment that mails through this server."""
        return {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(self.port), "EMAIL_TIMEOUT": "10"}

    # -- the handler's side (aiosmtpd calls these in the server's thread) --

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        with self._lock:
            refusal = self._sender_reply
        if refusal is not None:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        """aiosmtpd's authenticator: the one login of ``smtp_sink(login=...)``."""
        ok = (
            self.login is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == self.login
        )
        return AuthResult(success=ok, handled=False)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self._lock:
            refusal = self._rcpt_replies.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        headers = BytesHeaderParser().parsebytes(envelope.original_content or envelope.content)
        recipients = tuple(envelope.rcpt_tos)
        with self._lock:
            reply = self._next_reply(recipients)
            if reply is not None:
                return reply
            self._received.append(
                Received(str(headers.get("Message-ID", "")), recipients, tuple(session.peer))
            )
            hold = self._hold_at is not None and len(self._received) >= self._hold_at
            if hold:
                self._loop = asyncio.get_running_loop()
                self._released.clear()
            action = self._before_reply.pop(len(self._received), None)
        if action is not None:
            action()
        if hold:
            await self._released.wait()
        return "250 2.0.0 accepted"

    def _next_reply(self, recipients: tuple[str, ...]) -> str | None:
        for address in recipients:
            replies = self._data_replies.get(address)
            if replies:
                return replies.pop(0)
        return None


@contextmanager
def smtp_sink(*, login: tuple[str, str] | None = None) -> Iterator[SmtpSink]:
    """An SMTP server on 127.0.0.1 and a free port, for the block; held replies are let
    go before it stops. ``login``: it offers AUTH (over plain text: a test server) and
    takes only this username and password."""
    sink = SmtpSink(free_port())
    auth: dict[str, Any] = {}
    if login is not None:
        sink.login = login
        auth = {"authenticator": sink.authenticate, "auth_require_tls": False}
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port, **auth)
    controller.start()
    try:
        yield sink
    finally:
        sink.release()
        controller.stop()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (now): connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def refusing_settings() -> override_settings:
    """In-process settings that mail to a port that refuses connections."""
    return SmtpSink(free_port()).settings()


def refusing_environment() -> dict[str, str]:
    """A child's environment that mails to a port that refuses connections."""
    return SmtpSink(free_port()).environment()
