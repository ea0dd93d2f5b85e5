"""python -m bench.switch_cost: what a receiver switch adds to each signal send.

One receiver that does nothing, on a signal of its own, sent with the keyword
arguments of ``post_save``. Timed side by side, in one run:

- plain: the receiver connected as is (the reference);
- switch on: the same receiver made ``@switchable``, switch on;
- switch off: switched off in the database (the receiver is not called);
- muted: ``muted()`` around the sends;
- no cache: switch on, read from the database at every send
  (``RECEIVER_SWITCHES_REFRESH_SECONDS = 0``), which is what per-dispatch
  lookups cost; fewer sends, as it is slow.

The switch state lives in a throwaway in-memory SQLite database (DATABASE_URL
is not touched); with the cache, the database is read once per refresh period,
so the medians are the in-process cost. Prints, for each variant, the median
time per send and the median over the repetitions of its difference to plain
in the same repetition.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any


def bench_receiver(sender: Any, **kwargs: Any) -> None:
    return None


def _per_send_ns(send: Callable[[], Any], sends: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(sends):
        send()
    return (time.perf_counter_ns() - started) / sends


def run(*, sends: int, repeat: int) -> dict[str, list[float]]:
    """Nanoseconds per send, one sample per repetition, for each variant.

    Django must not be set up yet. The variants take turns within each
    repetition, so a machine that slows down or speeds up affects them alike.
    """
    import django

    django.setup()

    from django.conf import settings
    from django.db import connection
    from django.dispatch import Signal

    from switches import state
    from switches.introspection import dotted_name
    from switches.models import ReceiverSwitch
    from switches.muting import muted
    from switches.services import receiver_switches_off, receiver_switches_on
    from switches.wrapping import switchable

    with connection.schema_editor() as editor:
        editor.create_model(ReceiverSwitch)

    switched = switchable(bench_receiver)
    name = dotted_name(switched)
    plain_signal, switch_signal = Signal(), Signal()
    plain_signal.connect(bench_receiver)
    switch_signal.connect(switched)
    kwargs = {"instance": None, "created": True, "raw": False, "using": "default"}

    def plain() -> Any:
        return plain_signal.send(sender=None, **kwargs)

    def switch() -> Any:
        return switch_signal.send(sender=None, **kwargs)

    samples: dict[str, list[float]] = {
        "plain": [],
        "switch on": [],
        "switch off": [],
        "muted": [],
        "no cache": [],
    }
    for _ in range(repeat):
        samples["plain"].append(_per_send_ns(plain, sends))
        samples["switch on"].append(_per_send_ns(switch, sends))
        receiver_switches_off(names=[name], reason="bench", by="bench", until=None, using="default")
        samples["switch off"].append(_per_send_ns(switch, sends))
        receiver_switches_on(names=[name], using="default")
        with muted(name):
            samples["muted"].append(_per_send_ns(switch, sends))
        refresh = settings.RECEIVER_SWITCHES_REFRESH_SECONDS
        settings.RECEIVER_SWITCHES_REFRESH_SECONDS = 0
        samples["no cache"].append(_per_send_ns(switch, max(sends // 100, 10)))
        settings.RECEIVER_SWITCHES_REFRESH_SECONDS = refresh
        state.forget()
    return samples


def render(samples: dict[str, list[float]], *, sends: int, repeat: int) -> str:
    """Median per send, and the median of each repetition's difference to plain."""
    import django

    plain = samples["plain"]
    lines = [
        f"receiver switch cost per signal send: medians of {repeat} repetitions of "
        f"{sends} sends (Python {sys.version.split()[0]}, Django {django.get_version()})",
        f"{'variant':<12}{'ns/send':>12}{'added ns':>12}",
    ]
    for variant, values in samples.items():
        added = ""
        if variant != "plain":
            added = f"{statistics.median(v - p for v, p in zip(values, plain, strict=True)):+.0f}"
        lines.append(f"{variant:<12}{statistics.median(values):>12.0f}{added:>12}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.switch_cost", description=__doc__)
    parser.add_argument("--sends", type=int, default=50_000, help="sends per repetition")
    parser.add_argument("--repeat", type=int, default=9, help="repetitions per variant")
    args = parser.parse_args(argv)
    if args.sends < 1 or args.repeat < 1:
        parser.error("--sends and --repeat must be positive")
    # A throwaway database for the switch table: never the one DATABASE_URL names.
    os.environ["DATABASE_URL"] = "sqlite://:memory:"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cliproject.settings")
    samples = run(sends=args.sends, repeat=args.repeat)
    sys.stdout.write(render(samples, sends=args.sends, repeat=args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
