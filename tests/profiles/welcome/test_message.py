"""The welcome message as Django's SMTP backend sends it (WelcomeRenderer): byte for byte
Django's own rendering where it applies, and Django's rendering itself everywhere else.

Django's rendering here is the backend's own ``send_messages`` over a stand-in for its
smtplib connection that keeps what it was given (and, checked once, the same bytes
as the message's ``as_bytes`` on this Django version).
"""

from __future__ import annotations

import email.policy
from typing import Any

import django
import pytest
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.test import override_settings

from profiles.welcome import message as module
from profiles.welcome.message import (
    WelcomeRenderer,
    mail_connection,
    message_id,
    welcome_message,
)
from tests.helpers.smtp import refusing_settings
from tests.helpers.users import new_user, user_model


class Keeper:
    """A stand-in for the backend's smtplib connection: keeps what is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str], bytes]] = []

    def sendmail(self, sender: str, recipients: list[str], data: bytes) -> dict[str, Any]:
        self.sent.append((sender, list(recipients), data))
        return {}


@pytest.fixture
def mailer():
    with refusing_settings():  # Django's SMTP backend; nothing here connects
        backend = mail_connection()
        assert type(backend) is SmtpBackend
        backend.connection = Keeper()  # "open": send_messages sends over it
        yield backend
        backend.connection = None


def django_sends(mailer: Any, user: Any) -> tuple[str, list[str], bytes]:
    """What Django's backend sends for ``user``."""
    keeper: Keeper = mailer.connection
    mailer.send_messages([welcome_message(user)])
    return keeper.sent.pop()


def user(username: str, address: str) -> Any:
    model = user_model()
    values = {model.get_email_field_name(): address}
    if model.get_email_field_name() != model.USERNAME_FIELD:
        values[model.USERNAME_FIELD] = username
    made = new_user(1, **values)
    made.pk = made.pk or 12345
    return made


def without_date(data: bytes) -> tuple[bytes, list[bytes]]:
    header, _, body = data.partition(b"\r\n\r\n")
    lines = header.split(b"\r\n")
    dates = [line for line in lines if line.lower().startswith(b"date:")]
    kept = b"\r\n".join(line for line in lines if not line.lower().startswith(b"date:"))
    return kept + b"\r\n\r\n" + body, dates


def assert_exact(renderer: WelcomeRenderer, mailer: Any, someone: Any) -> None:
    rendered = renderer.render(someone, mailer)
    assert rendered is not None, someone.get_username()
    sender, recipients, data = django_sends(mailer, someone)
    assert (rendered.sender, [rendered.to]) == (sender, recipients)
    ours, our_dates = without_date(rendered.data)
    theirs, their_dates = without_date(data)
    assert ours == theirs
    assert len(our_dates) == len(their_dates) == 1
    if renderer._second is not None and their_dates == our_dates:  # the same second
        assert rendered.data == data


def test_the_reference_is_the_message_django_renders(mailer):
    someone = user("alice", "alice@example.org")
    _, _, data = django_sends(mailer, someone)
    built = welcome_message(someone)
    if django.VERSION >= (6, 0):  # message() takes a policy, and returns the modern class
        expected = built.message(policy=email.policy.SMTP).as_bytes()  # type: ignore[call-arg,unused-ignore]
    else:
        expected = built.message().as_bytes(linesep="\r\n")
    assert without_date(data)[0] == without_date(expected)[0]


PLAIN_ADDRESSES = [
    "a@b.c",
    "alice@example.org",
    "Alice.Smith+tag@Mail.Example.COM",
    "under_score-dash@sub-domain.example.co.uk",
    "x1.y2.z3@a1-b2.example",
    "n" * 30 + "@" + "d" * 63 + ".org",  # 97: a line too long; see the fallback below
]


@pytest.mark.any_user_model
@pytest.mark.parametrize(
    "username",
    [
        "u",
        "alice",
        "Alice Smith",
        "with.dots_and-dashes",
        "o'brien",
        "=?utf-8?q?not-encoded?=",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        " leading and trailing ",
        "x" * 48,  # the longest that keeps the body line within 78
    ],
)
def test_the_fast_bytes_are_djangos_for_plain_users(mailer, username):
    renderer = WelcomeRenderer()
    for address in PLAIN_ADDRESSES[:-1]:
        assert_exact(renderer, mailer, user(username, address))


def test_the_longest_plain_address_is_exact(mailer):
    # "To: " and 74 characters: 78, the longest line that is not folded.
    address = "l" * 40 + "@" + "d" * 29 + ".org"
    assert len(address) == 74
    assert_exact(WelcomeRenderer(), mailer, user("alice", address))


@pytest.mark.parametrize(
    ("username", "address"),
    [
        ("Jürgen", "juergen@example.org"),  # 8bit body
        ("alice", "jürgen@example.org"),  # non-ASCII local part
        ("alice", "alice@exämple.org"),  # an IDN domain: punycode on the wire
        ("x" * 49, "alice@example.org"),  # the body line over 78
        ("alice", "l" * 41 + "@" + "d" * 29 + ".org"),  # the To line over 78
        ("alice", PLAIN_ADDRESSES[-1]),
        ("line\nbreak", "alice@example.org"),
        ("carriage\rreturn", "alice@example.org"),
        ("tab\there", "alice@example.org"),
        ("alice", "Alice <alice@example.org>"),  # a display name
        ("alice", '"quoted local"@example.org'),
        ("alice", "o'brien@example.org"),  # atext Django may quote: not in the plain class
        ("alice", ".leading@example.org"),
        ("alice", "double..dot@example.org"),
        ("alice", "trailing.@example.org"),
        ("alice", "alice@example..org"),
        ("alice", "alice@" + "d" * 64 + ".org"),  # a label over 63
        ("alice", "no-domain"),
    ],
)
def test_anything_else_falls_back_to_django(mailer, username, address):
    assert WelcomeRenderer().render(user(username, address), mailer) is None


def test_only_djangos_own_smtp_backend_raising_its_errors_gets_the_fast_path(mailer):
    assert WelcomeRenderer.applies_to(mailer)
    assert not WelcomeRenderer.applies_to(LocmemBackend())

    class Subclass(SmtpBackend):
        pass

    with refusing_settings():
        # Not constructed: Django 6.1 makes a backend only for a MAILERS alias.
        subclassed = Subclass.__new__(Subclass)
        subclassed.fail_silently = False
        assert not WelcomeRenderer.applies_to(subclassed)
        quiet = mail_connection()
    quiet.fail_silently = True
    assert not WelcomeRenderer.applies_to(quiet)


def test_a_template_django_does_not_render_literally_is_never_used(mailer, monkeypatch):
    real = module._welcome

    def shouting(username: str, address: str, identifier: str) -> Any:
        return real(username.upper(), address, identifier)  # not a literal substitution

    monkeypatch.setattr(module, "_welcome", shouting)
    renderer = WelcomeRenderer()
    assert renderer.render(user("alice", "alice@example.org"), mailer) is None
    assert renderer.render(user("bob", "bob@example.org"), mailer) is None
    assert renderer._usable is False


def test_the_template_is_made_again_each_second_for_the_date(mailer, monkeypatch):
    made: list[int] = []
    real = module._template

    def counting(backend: Any) -> Any:
        made.append(1)
        return real(backend)

    class Clock:
        now = 1_700_000_000.25

        def time(self) -> float:
            return float(self.now)

    clock = Clock()
    monkeypatch.setattr(module, "_template", counting)
    monkeypatch.setattr(module, "time", clock)
    renderer = WelcomeRenderer()
    someone = user("alice", "alice@example.org")
    for _ in range(3):
        assert renderer.render(someone, mailer) is not None
    assert len(made) == 1
    clock.now += 1
    assert renderer.render(someone, mailer) is not None
    assert len(made) == 2


@override_settings(DEFAULT_FROM_EMAIL="Welcome Team <team@example.net>")
def test_the_sender_and_message_id_follow_the_settings(mailer):
    someone = user("alice", "alice@example.org")
    rendered = WelcomeRenderer().render(someone, mailer)
    assert rendered is not None
    assert b"From: Welcome Team <team@example.net>\r\n" in rendered.data
    assert message_id(someone.pk).endswith("@example.net>")
    assert_exact(WelcomeRenderer(), mailer, someone)
