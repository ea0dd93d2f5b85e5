"""The matrix as an aligned text table, Markdown, or the JSON object: all from one MatrixResult."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

from signalmatrix.recording import SIGNALS, Event
from signalmatrix.services import MatrixResult, OperationResult

# Not "-" and "x": these read as symbols in a table.
DASH = "–"  # noqa: RUF001
TIMES = "×"  # noqa: RUF001

COLUMNS = ("operation", *SIGNALS, "profile created", "notes")

LEGEND = (
    ("✓", "a receiver got the signal"),
    ("argument values", "it got it with these (raw and update_fields only when set)"),
    ("✗", "not sent, although a receiver listened"),
    (
        DASH,
        "no receiver listened (the 'no delete receiver' rows; m2m_changed when the user "
        "model has no groups), or no user was created",
    ),
    (f"{TIMES}N", "sent N times, once per object"),
    ("Profile ...", "sent for another model than the row's"),
    ("n/a", "the backend or the user model cannot run it (the notes say why)"),
)


def cells(result: MatrixResult, op: OperationResult) -> list[str]:
    """One row of the table, without the operation's name."""
    if not op.ran:
        note = f"not supported: {op.unsupported}" if op.unsupported else f"failed: {op.error}"
        return [*(["n/a"] * len(SIGNALS)), "n/a", note]
    signal_cells = [_signal_cell(result, op, name) for name in SIGNALS]
    return [*signal_cells, _profile_cell(op), _notes(op)]


def grouped(events: tuple[Event, ...], signal: str) -> list[tuple[Event, int]]:
    """The events of ``signal``, alike ones counted together, in the order first seen."""
    counts: dict[Event, int] = {}
    for event in events:
        if event.signal == signal:
            counts[event] = counts.get(event, 0) + 1
    return list(counts.items())


def _signal_cell(result: MatrixResult, op: OperationResult, signal: str) -> str:
    if signal not in op.listened:
        return DASH
    groups = grouped(op.events, signal)
    if not groups:
        return "✗"
    own = result.m2m_sender if signal == "m2m_changed" else op.model
    groups.sort(key=lambda group: group[0].sender != own)  # the row's own model first
    parts = []
    for event, count in groups:
        text = _arguments_text(event)
        if event.sender != own:
            text = f"{event.sender.rsplit('.', 1)[-1]} {text}"
        parts.append(f"{text} {TIMES}{count}" if count > 1 else text)
    return ", ".join(parts)


def _arguments_text(event: Event) -> str:
    if event.signal == "m2m_changed":
        return str(event.argument("action"))
    parts = []
    if event.signal == "post_save":
        parts.append(f"created={event.argument('created')}")
    if event.argument("raw"):
        parts.append("raw=True")
    update_fields = event.argument("update_fields")
    if update_fields is not None:
        parts.append(f"update_fields=[{', '.join(update_fields)}]")
    return " ".join(parts) or "✓"


def _profile_cell(op: OperationResult) -> str:
    created = op.profile_created
    if created is None:
        return DASH
    if created:
        return "✓"
    if op.profiles_created <= 0:
        return "✗"
    return f"{op.profiles_created} of {op.users_created}"


def _notes(op: OperationResult) -> str:
    notes = []
    if op.fast_deleted:
        notes.append(f"fast delete of {_names(op.fast_deleted)}: rows deleted, never loaded")
    if op.delete_listened_by_others:
        others = _names(op.delete_listened_by_others)
        notes.append(f"yet a delete receiver of the project listens for {others}")
    return "; ".join(notes)


def _names(labels: tuple[str, ...]) -> str:
    return ", ".join(label.rsplit(".", 1)[-1] for label in labels)


def _label(op: OperationResult, *, markdown: bool) -> str:
    code = f"`{op.code}`" if markdown else op.code
    return f"{code} ({op.variant})" if op.variant else code


def _receivers_line(result: MatrixResult, *, markdown: bool) -> str:
    if not result.receivers:
        return "No receiver is connected to these models."
    quote = "`" if markdown else ""
    items = [
        f"{quote}{r.name}{quote} ({r.signal}, {r.sender or 'any sender'}): {_state(r.state)}"
        for r in result.receivers
    ]
    return "Receivers of these models: " + "; ".join(items) + "."


def _state(state: str) -> str:
    return {"off": "switched off", "muted": "muted in this process"}.get(state, state)


def _summary(result: MatrixResult) -> str:
    ran = sum(op.ran for op in result.operations)
    text = f"Ran {ran} operation(s) in a transaction that was rolled back"
    unsupported = sum(op.unsupported is not None for op in result.operations)
    if unsupported:
        text += f"; {unsupported} not supported by this backend or user model"
    if result.failed:
        text += f"; {len(result.failed)} failed"
    return text + ": no row was changed."


def _heading(result: MatrixResult, *, markdown: bool) -> str:
    if markdown:
        database, model = f"`{result.database}`", f"`{result.user_model}`"
    else:
        database, model = repr(result.database), result.user_model
    return (
        f"{result.backend}, database {database}, Django {result.django_version}, "
        f"user model {model}."
    )


def render_text(result: MatrixResult, *, verbosity: int = 1) -> Iterator[str]:
    """The lines of the text output: heading, aligned table, legend, receivers, summary."""
    rows = [list(COLUMNS)]
    rows += [[_label(op, markdown=False), *cells(result, op)] for op in result.operations]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    yield f"Signal matrix: {_heading(result, markdown=False)}"
    yield ""
    for index, row in enumerate(rows):
        yield "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        if index == 0:
            yield "  ".join("-" * width for width in widths)
    yield ""
    yield from textwrap.wrap("; ".join(f"{k}: {v}" for k, v in LEGEND) + ".", width=100)
    yield _receivers_line(result, markdown=False)
    if result.not_rolled_back:
        yield f"Not rolled back: {result.not_rolled_back}"
    if verbosity >= 2:
        yield ""
        yield from _details(result)
    yield _summary(result)


def _details(result: MatrixResult) -> Iterator[str]:
    for op in result.operations:
        yield f"{_label(op, markdown=False)}:"
        if not op.ran:
            yield f"  {op.unsupported or op.error}"
        for event in op.events:
            arguments = ", ".join(f"{name}={value!r}" for name, value in event.arguments)
            yield f"  {event.signal} from {event.sender}: {arguments}"
        if op.ran:
            yield f"  users created: {op.users_created}, profiles created: {op.profiles_created}"


def render_markdown(result: MatrixResult) -> str:
    lines = [
        f"Measured by `manage.py signal_matrix --format markdown` on "
        f"{_heading(result, markdown=True)}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for op in result.operations:
        row = [_label(op, markdown=True), *cells(result, op)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    lines += ["", *(f"- {key}: {meaning}" for key, meaning in LEGEND)]
    lines += ["", _receivers_line(result, markdown=True)]
    if result.not_rolled_back:
        lines += ["", f"Not rolled back: {result.not_rolled_back}"]
    return "\n".join(lines)


def matrix_json(result: MatrixResult) -> dict[str, Any]:
    """The JSON object, for ``write_json`` (commands/render.py) to write as every command's."""
    return {
        "database": result.database,
        "vendor": result.vendor,
        "backend": result.backend,
        "django": result.django_version,
        "user_model": result.user_model,
        "receivers": [
            {"name": r.name, "signal": r.signal, "sender": r.sender, "state": r.state}
            for r in result.receivers
        ],
        "operations": [_operation_json(op) for op in result.operations],
        "not_rolled_back": result.not_rolled_back,
    }


def _operation_json(op: OperationResult) -> dict[str, Any]:
    signals: dict[str, list[dict[str, Any]] | None] = {}
    for name in SIGNALS:
        if name not in op.listened or not op.ran:
            signals[name] = None  # nobody listened: not measured
            continue
        signals[name] = [
            {"sender": event.sender, "count": count, **_json_arguments(event)}
            for event, count in grouped(op.events, name)
        ]
    return {
        "key": op.key,
        "operation": op.code,
        "variant": op.variant,
        "model": op.model,
        "unsupported": op.unsupported,
        "error": op.error,
        "signals": signals,
        "users_created": op.users_created,
        "profiles_created": op.profiles_created,
        "profile_created": op.profile_created,
        "fast_deleted": list(op.fast_deleted),
        "delete_listened_by_others": list(op.delete_listened_by_others),
    }


def _json_arguments(event: Event) -> dict[str, Any]:
    return {
        name: list(value) if isinstance(value, tuple) else value for name, value in event.arguments
    }
