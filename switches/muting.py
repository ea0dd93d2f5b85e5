"""``muted()``: receivers off inside one block, in this thread or task only."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import Token
from types import TracebackType
from typing import Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction

from switches.names import resolve_names
from switches.state import muted_names

F = TypeVar("F", bound=Callable[..., Any])


class muted:
    """Mute switchable receivers, by name, for a block or a function call.

    ::

        with muted("profiles.receivers.send_welcome_email"):
            import_users()

        @muted("profiles.receivers.send_welcome_email")
        def test_import(): ...

    Only the current thread or asyncio task (and tasks it starts) is affected:
    the state is a contextvar. Blocks nest, and leaving one, also by an
    exception, restores what was muted before it. Names are checked on entry
    with :func:`switches.names.resolve_names`, so a typo raises
    :class:`~switches.names.ReceiverNameError` instead of muting nothing.
    The database switches are neither read nor changed.
    """

    def __init__(self, *names: str) -> None:
        if not names:
            raise TypeError("muted() needs at least one receiver name.")
        self.names = names
        self._tokens: list[Token[frozenset[str]]] = []

    def __enter__(self) -> None:
        names = resolve_names(self.names)
        self._tokens.append(muted_names.set(muted_names.get() | frozenset(names)))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        muted_names.reset(self._tokens.pop())

    def __call__(self, func: F) -> F:
        names = self.names
        # A fresh context manager per call, so concurrent calls share no tokens.
        if iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_inner(*args: Any, **kwargs: Any) -> Any:
                with muted(*names):
                    return await func(*args, **kwargs)

            return cast(F, async_inner)

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with muted(*names):
                return func(*args, **kwargs)

        return cast(F, inner)
