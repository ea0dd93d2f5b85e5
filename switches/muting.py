"""``muted()``: receivers off inside one block, in this thread or task only."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from contextvars import Token
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction

from switches.names import resolve_names
from switches.state import muted_names, muted_reasons

F = TypeVar("F", bound=Callable[..., Any])


class muted:
    """Mute switchable receivers, by name, for a block or a function call.

    ::

        with muted("profiles.receivers.send_welcome_email"):
            import_users()

        @muted("profiles.receivers.send_welcome_email")
        def test_import(): ...

        with muted("profiles.receivers.send_welcome_email", reason="CRM import"):
            import_users()  # their welcome mails: suppressed, "... muted: CRM import"

    Only the current thread or asyncio task (and tasks it starts) is affected:
    the state is a contextvar. Blocks nest, and leaving one, also by an
    exception, restores what was muted before it. Names are checked on entry
    with :func:`switches.names.resolve_names`, so a typo raises
    :class:`~switches.names.ReceiverNameError` instead of muting nothing.
    The database switches are neither read nor changed.

    ``reason`` says what muted them; a receiver's ``when_off`` handler gets it
    (:class:`switches.state.SwitchInfo`), e.g. to record why no welcome mail is
    sent. A block without one keeps the reason of an outer block muting the
    same name.
    """

    def __init__(self, *names: str, reason: str = "") -> None:
        if not names:
            raise TypeError("muted() needs at least one receiver name.")
        self.names = names
        self.reason = reason
        self._tokens: list[tuple[Token[frozenset[str]], Token[Mapping[str, str]]]] = []

    def __enter__(self) -> None:
        names = resolve_names(self.names)
        reasons = dict(muted_reasons.get())
        for name in names:
            if self.reason or name not in reasons:
                reasons[name] = self.reason
        self._tokens.append(
            (
                muted_names.set(muted_names.get() | frozenset(names)),
                muted_reasons.set(MappingProxyType(reasons)),
            )
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        names_token, reasons_token = self._tokens.pop()
        muted_reasons.reset(reasons_token)
        muted_names.reset(names_token)

    def __call__(self, func: F) -> F:
        names = self.names
        reason = self.reason
        # A fresh context manager per call, so concurrent calls share no tokens.
        if iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_inner(*args: Any, **kwargs: Any) -> Any:
                with muted(*names, reason=reason):
                    return await func(*args, **kwargs)

            return cast(F, async_inner)

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with muted(*names, reason=reason):
                return func(*args, **kwargs)

        return cast(F, inner)
