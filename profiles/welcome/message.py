"""The welcome message, its deterministic Message-ID, and where mail goes.

The Message-ID is a function of the user alone, so a message sent twice (a
sender killed between the server's acceptance and the record's update)
carries the same ID both times: a duplicate is detectable downstream.

:class:`WelcomeRenderer` is the same message for Django's SMTP backend without
building it per user: the bytes Django's backend would send, rendered by that
backend once for a placeholder user (and again each second, for the Date
header), with each user's address, Message-ID and username put in their
places. Only where that is exactly what Django would send: plain ASCII values
that stay literal (no encoding, no folding, the same transfer encoding); any
other user gets Django's own rendering.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

import django
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend


def message_id(user_pk: object) -> str:
    """``<welcome.HASH@DOMAIN>``: the same for one user every time, and no pk in clear."""
    key = f"{get_user_model()._meta.label_lower}:{user_pk}".encode()
    digest = hashlib.sha256(key).hexdigest()[:32]
    return f"<welcome.{digest}@{_domain()}>"


def recipient(user: AbstractBaseUser) -> str:
    """The user's address (the model's EMAIL_FIELD), or '' when it has none."""
    return str(getattr(user, user.get_email_field_name(), "") or "")


def welcome_message(user: AbstractBaseUser) -> EmailMessage:
    """The message to send with ``mail_connection().send_messages([...])``."""
    return _welcome(f"{user.get_username()}", recipient(user), message_id(user.pk))


def _welcome(username: str, address: str, identifier: str) -> EmailMessage:
    return EmailMessage(
        subject="Welcome!",
        body=f"Hello {username}, your account is ready.",
        to=[address],
        headers={"Message-ID": identifier},
    )


def mail_connection() -> BaseEmailBackend:
    """A new connection of the default mailer: ``mailers.default`` from Django 6.1
    (``get_connection()`` is deprecated there), ``get_connection()`` before."""
    if django.VERSION >= (6, 1):
        from django.core.mail import mailers  # type: ignore[attr-defined,unused-ignore]

        backend: BaseEmailBackend = mailers.default
        return backend
    return get_connection()


def mail_destination() -> str:
    """Where mail goes, for a command's summary: a directory, a server, or a backend."""
    backend = mail_connection()
    file_path = getattr(backend, "file_path", None)
    if file_path:
        return f"files in {file_path}"
    host = getattr(backend, "host", None)
    if host:
        return f"SMTP {host}:{getattr(backend, 'port', 25)}"
    return type(backend).__module__ + "." + type(backend).__name__


def _domain() -> str:
    return _domain_of(settings.DEFAULT_FROM_EMAIL)


@functools.lru_cache(maxsize=8)
def _domain_of(from_email: str) -> str:
    """The domain of an address (parsed once per value: this runs once per mail)."""
    _, address = parseaddr(from_email)
    return address.rpartition("@")[2] or "localhost"


# -- the welcome message as Django's SMTP backend sends it, without building it per user --

# Where a value stays literal in every Django version's rendering: a header or
# body line no longer than this is neither folded nor (for the body) sent in
# another transfer encoding (the email package's max_line_length).
LINE_LIMIT = 78
# An address every version passes through unchanged (envelope and To header):
# a dot-atom local part and domain of letters, digits, '_', '+' and '-' (an
# ASCII domain's labels of 1 to 63 characters). Anything else goes to Django.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*"
)
_PLAIN_TEXT = re.compile(r"[\x20-\x7e]*")  # printable ASCII: no CR, LF, tab or other control


@dataclass(frozen=True)
class Rendered:
    """One welcome mail as the SMTP backend sends it: ``sendmail(sender, [to], data)``."""

    sender: str
    to: str
    data: bytes


@dataclass(frozen=True)
class _Placeholder:
    username: str
    address: str
    identifier: str


# Two placeholders of different lengths: a template read from the first must render
# the second exactly as Django does, or it is not used.
_PLACEHOLDERS = (
    _Placeholder("placeholder-user-h5q7", "placeholder.h5q7@placeholder-h5q7.invalid", ""),
    _Placeholder("u", "b@c.d", ""),
)


class _Recorder:
    """Stands in for the backend's smtplib connection while the backend renders a
    placeholder: it keeps what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str], bytes]] = []

    def sendmail(self, sender: str, recipients: list[str], data: bytes) -> dict[str, Any]:
        self.sent.append((sender, list(recipients), data))
        return {}


@dataclass(frozen=True)
class _Template:
    """Django's bytes for a placeholder, cut at its three values."""

    sender: str
    parts: tuple[bytes, ...]  # text, value, text, value, text, value, text
    order: tuple[str, ...]  # which value goes in each gap: "username", "address", "identifier"
    longest: dict[str, int]  # the longest value that keeps its line within LINE_LIMIT

    def fill(self, values: dict[str, str]) -> bytes:
        chunks = [self.parts[0]]
        for name, text in zip(self.order, self.parts[1:], strict=True):
            chunks += (values[name].encode("ascii"), text)
        return b"".join(chunks)


class WelcomeRenderer:
    """The welcome mail of a user as Django's SMTP backend would send it, for one
    thread's sender (not thread-safe: one per thread).

    :meth:`render` gives the bytes, the envelope sender and recipient, or None
    when the user is not one the template renders exactly (then send
    :func:`welcome_message` through the backend). The template is Django's own
    rendering, through the backend at hand, of a placeholder user; remade each
    second, so that the Date header is the one Django would write.
    """

    def __init__(self) -> None:
        self._template: _Template | None = None
        self._second: int | None = None
        self._usable = True

    @staticmethod
    def applies_to(mailer: BaseEmailBackend) -> bool:
        """Only Django's own SMTP backend (not a subclass), raising its errors."""
        return type(mailer) is SmtpBackend and not mailer.fail_silently

    def render(
        self, user: AbstractBaseUser, mailer: BaseEmailBackend, *, identifier: str | None = None
    ) -> Rendered | None:
        """``user``'s mail through ``mailer`` (see :meth:`applies_to`), or None: Django's.
        ``identifier``: the user's :func:`message_id`, when the caller has it."""
        values = {
            "username": f"{user.get_username()}",
            "address": recipient(user),
            "identifier": message_id(user.pk) if identifier is None else identifier,
        }
        if not (
            _PLAIN_ADDRESS.fullmatch(values["address"])
            and _PLAIN_TEXT.fullmatch(values["username"])
            and _PLAIN_TEXT.fullmatch(values["identifier"])
        ):
            return None
        template = self._current(mailer)
        if template is None or any(
            len(value) > template.longest[name] for name, value in values.items()
        ):
            return None
        return Rendered(sender=template.sender, to=values["address"], data=template.fill(values))

    def _current(self, mailer: BaseEmailBackend) -> _Template | None:
        second = int(time.time())
        if self._usable and second != self._second:
            self._second = second
            self._template = _template(mailer)
            self._usable = self._template is not None
        return self._template if self._usable else None


def _template(mailer: BaseEmailBackend) -> _Template | None:
    """The template, or None when Django's rendering does not keep a placeholder's
    values literal (it is then never used by this renderer)."""
    for _ in range(3):  # again if the clock's second turned between the two renderings
        first, second = (_placeholder(p) for p in _PLACEHOLDERS)
        (sender, to, data), (sender_b, to_b, data_b) = (
            _rendered(mailer, p) for p in (first, second)
        )
        template = _cut(sender, data, first)
        if template is None or (to, to_b) != ([first.address], [second.address]):
            return None
        if sender_b != sender or _date(data_b) != _date(data):
            continue
        filled = template.fill(
            {
                "username": second.username,
                "address": second.address,
                "identifier": second.identifier,
            }
        )
        return template if filled == data_b else None
    return None


def _placeholder(placeholder: _Placeholder) -> _Placeholder:
    identifier = message_id(f"placeholder:{placeholder.username}")
    return _Placeholder(placeholder.username, placeholder.address, identifier)


def _rendered(mailer: BaseEmailBackend, placeholder: _Placeholder) -> tuple[str, list[str], bytes]:
    """What ``mailer`` sends for the placeholder user (its connection swapped out)."""
    assert isinstance(mailer, SmtpBackend)
    recorder, live = _Recorder(), mailer.connection
    # A backend with a connection sends over it, and neither opens nor closes one.
    mailer.connection = recorder  # type: ignore[assignment]
    try:
        mailer.send_messages(
            [_welcome(placeholder.username, placeholder.address, placeholder.identifier)]
        )
    finally:
        mailer.connection = live
    ((sender, recipients, data),) = recorder.sent
    return sender, recipients, data


def _cut(sender: str, data: bytes, placeholder: _Placeholder) -> _Template | None:
    """``data`` cut where each placeholder value stands (each once, on a line of its own
    within LINE_LIMIT), with how long each value may be."""
    found: list[tuple[int, str, bytes]] = []
    longest: dict[str, int] = {}
    for name in ("username", "address", "identifier"):
        value = getattr(placeholder, name).encode("ascii")
        at = data.find(value)
        if at < 0 or data.find(value, at + 1) >= 0:
            return None
        line_start = data.rfind(b"\n", 0, at) + 1
        line_end = data.find(b"\r\n", at)
        if line_end < 0:
            line_end = len(data)
        rest = line_end - line_start - len(value)
        longest[name] = LINE_LIMIT - rest
        if longest[name] < len(value):
            return None
        found.append((at, name, value))
    found.sort()
    parts, order, offset = [], [], 0
    for at, name, value in found:
        if at < offset:
            return None  # overlapping values
        parts.append(data[offset:at])
        order.append(name)
        offset = at + len(value)
    parts.append(data[offset:])
    return _Template(sender=sender, parts=tuple(parts), order=tuple(order), longest=longest)


def _date(data: bytes) -> bytes:
    header = data.split(b"\r\n\r\n", 1)[0]
    return b"".join(line for line in header.split(b"\r\n") if line.lower().startswith(b"date:"))
