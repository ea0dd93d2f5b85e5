"""Receiver names as a person types them: checked, with the closest known names when wrong.

Also which receivers are this project's own (:func:`project_packages`), for
the checks that look only at those.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable
from pathlib import Path

from django.apps import apps
from django.conf import settings

from dbtools.errors import UsageError
from switches.introspection import connected_receivers
from switches.wrapping import switchable_names


class ReceiverNameError(UsageError, LookupError):
    """Names that are not switchable receivers; the message lists the closest known names."""

    def __init__(self, *, unknown: dict[str, list[str]], not_switchable: list[str]) -> None:
        self.unknown = unknown
        self.not_switchable = not_switchable
        problems = []
        for name, closest in unknown.items():
            hint = f" (closest: {', '.join(closest)})" if closest else ""
            problems.append(f"unknown receiver {name!r}{hint}")
        for name in not_switchable:
            problems.append(
                f"{name!r} is connected but not switchable (name it in the "
                "RECEIVER_SWITCHES_EXTRA setting to make it switchable)"
            )
        super().__init__("; ".join(problems) + "; 'manage.py receivers list' shows every receiver.")


def resolve_names(names: Iterable[str], *, also: Collection[str] = ()) -> list[str]:
    """Check that each name is a switchable receiver; return them, duplicates dropped.

    ``also`` admits further names (the switch command passes the switches
    stored for receivers that no longer exist, so they can be switched back on).
    Raises :class:`ReceiverNameError`, naming the closest known receivers, when
    a name is unknown or is a receiver that is not switchable.
    """
    wanted = list(dict.fromkeys(names))
    known = switchable_names() | frozenset(also)
    unknown: dict[str, list[str]] = {}
    not_switchable: list[str] = []
    connected: set[str] | None = None
    for name in wanted:
        if name in known:
            continue
        if connected is None:
            connected = {c.name for c in connected_receivers()}
        if name in connected:
            not_switchable.append(name)
        else:
            unknown[name] = closest_names(name, known | connected)
    if unknown or not_switchable:
        raise ReceiverNameError(unknown=unknown, not_switchable=not_switchable)
    return wanted


def closest_names(name: str, candidates: Collection[str], limit: int = 3) -> list[str]:
    """Known names ``name`` was probably meant as: same last part first, then spelling."""
    last = name.rsplit(".", 1)[-1]
    same_last = sorted(c for c in candidates if c.rsplit(".", 1)[-1] == last)
    similar = difflib.get_close_matches(name, list(candidates), n=limit, cutoff=0.6)
    if "." not in name:  # a bare function name: compare it with the last parts
        by_last = {c.rsplit(".", 1)[-1]: c for c in sorted(candidates)}
        similar += [by_last[m] for m in difflib.get_close_matches(name, list(by_last), n=limit)]
    return list(dict.fromkeys([*same_last, *similar]))[:limit]


def project_packages() -> set[str]:
    """Top-level packages of this project's own code, not of what is installed in a venv.

    The packages in the project directory (``BASE_DIR``: the apps, ``tests``)
    and the installed apps that live below it outside any site-packages.
    """
    base = Path(getattr(settings, "BASE_DIR", "/nonexistent")).resolve()
    packages = {init.parent.name for init in base.glob("*/__init__.py")}
    for config in apps.get_app_configs():
        path = Path(config.path).resolve()
        if path.is_relative_to(base) and not {"site-packages", "dist-packages"} & set(path.parts):
            packages.add(top_level_package(config.name))
    return packages


def top_level_package(name: str) -> str:
    """``profiles`` for ``profiles.receivers.create_profile``."""
    return name.split(".", 1)[0]
