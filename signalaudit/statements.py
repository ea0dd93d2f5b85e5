"""Which tables an SQL statement writes, and how: read from its text, without a parser.

Enough of SQL to find the targets of the statements Django and people write:
leading comments, ``WITH`` (including a data-modifying CTE, whose targets
count too), ``INSERT [OR …|IGNORE] INTO``, ``REPLACE INTO``, ``UPDATE``,
``DELETE [FROM]`` (MySQL's ``DELETE t FROM t …`` as well), ``MERGE INTO`` and
``TRUNCATE``, each table name bare, quoted (``"…"``, ``\u0060…\u0060``,
``[…]``) or schema-qualified. An upsert (``ON CONFLICT DO UPDATE``, ``ON
DUPLICATE KEY UPDATE``) is an insert here: it writes rows a ``save()`` would
have signalled either way. Anything else (SELECT, DDL, SAVEPOINT) writes no
rows and gives ``()``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Write(str, Enum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Target:
    """One table a statement writes: its name as the statement spells it, unquoted, last part."""

    table: str
    write: Write


_SPACE_OR_COMMENT = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|#[^\n]*(?:\n|$))*", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_NAME_PART = re.compile(r'"(?:[^"]|"")+"|`(?:[^`]|``)+`|\[[^\]]+\]|[A-Za-z_][A-Za-z0-9_$]*')

# Words between the verb and the table that name no table.
_INSERT_MODIFIERS = {"low_priority", "delayed", "high_priority", "ignore"}
_UPDATE_MODIFIERS = {"low_priority", "ignore", "only"}
_DELETE_MODIFIERS = {"low_priority", "quick", "ignore"}

_cache: dict[str, tuple[Target, ...]] = {}
_CACHE_SIZE = 4096


def written_tables(sql: str) -> tuple[Target, ...]:
    """The tables ``sql`` writes rows of, in the order it names them; ``()`` for none."""
    try:
        return _cache[sql]
    except KeyError:
        pass
    targets = tuple(_Reader(sql).statement())
    if len(_cache) >= _CACHE_SIZE:
        _cache.clear()  # Django's IN (%s, …) lists make many texts; a bound, not an LRU
    _cache[sql] = targets
    return targets


class _Reader:
    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.at = 0

    def skip_space(self) -> None:
        match = _SPACE_OR_COMMENT.match(self.sql, self.at)
        if match:
            self.at = match.end()

    def word(self) -> str | None:
        """The next keyword, lower-cased, consumed; None (nothing consumed) when not a word."""
        self.skip_space()
        match = _WORD.match(self.sql, self.at)
        if not match:
            return None
        self.at = match.end()
        return match[0].lower()

    def peek_word(self) -> str | None:
        at = self.at
        word = self.word()
        self.at = at
        return word

    def name(self) -> str | None:
        """A table name, possibly schema-qualified and quoted: its last part, unquoted."""
        self.skip_space()
        last = None
        while match := _NAME_PART.match(self.sql, self.at):
            last = match[0]
            self.at = match.end()
            if self.sql.startswith(".", self.at):
                self.at += 1
                continue
            break
        if last is None:
            return None
        if last[0] in '"`[':
            return last[1:-1].replace('""', '"').replace("``", "`")
        return last

    def parenthesised(self) -> str:
        """The text inside the parentheses that start here (strings and quotes respected)."""
        self.skip_space()
        if not self.sql.startswith("(", self.at):
            return ""
        depth, start, at, sql = 0, self.at + 1, self.at, self.sql
        while at < len(sql):
            char = sql[at]
            if char in "'\"`":
                end = sql.find(char, at + 1)
                at = len(sql) if end < 0 else end + 1
                continue
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    self.at = at + 1
                    return sql[start:at]
            at += 1
        self.at = len(sql)
        return sql[start:]

    def statement(self) -> list[Target]:
        verb = self.word()
        if verb == "with":
            return self.with_clause()
        if verb in ("insert", "replace"):
            return self.insert(verb)
        if verb == "update":
            return self.one(Write.UPDATE, _UPDATE_MODIFIERS)
        if verb == "delete":
            return self.delete()
        if verb == "merge":
            self.word()  # INTO
            table = self.name()
            # A MERGE may insert, update and delete: each as its own write of the table.
            return [Target(table, w) for w in Write] if table else []
        if verb == "truncate":
            return self.truncate()
        return []

    def with_clause(self) -> list[Target]:
        targets: list[Target] = []
        if self.peek_word() == "recursive":
            self.word()
        while True:
            if self.name() is None:
                return targets
            self.skip_space()
            if self.sql.startswith("(", self.at):
                self.parenthesised()  # the CTE's column list
            self.word()  # AS
            while self.peek_word() in ("not", "materialized"):
                self.word()
            body = self.parenthesised()
            targets += _Reader(body).statement()
            self.skip_space()
            if self.sql.startswith(",", self.at):
                self.at += 1
                continue
            return targets + self.statement()

    def insert(self, verb: str) -> list[Target]:
        word = self.peek_word()
        if verb == "insert" and word == "or":  # SQLite: INSERT OR REPLACE / IGNORE / …
            self.word()
            self.word()
            word = self.peek_word()
        while word in _INSERT_MODIFIERS:
            self.word()
            word = self.peek_word()
        if word == "into":
            self.word()
        table = self.name()
        return [Target(table, Write.INSERT)] if table else []

    def one(self, write: Write, modifiers: set[str]) -> list[Target]:
        while self.peek_word() in modifiers:
            self.word()
        table = self.name()
        return [Target(table, write)] if table else []

    def delete(self) -> list[Target]:
        while self.peek_word() in _DELETE_MODIFIERS:
            self.word()
        if self.peek_word() == "from":
            self.word()
            return self.one(Write.DELETE, {"only"})
        # MySQL's multi-table form, DELETE t1[, t2] FROM …: the tables before FROM.
        targets = []
        while (table := self.name()) is not None and table.lower() != "from":
            targets.append(Target(table, Write.DELETE))
            self.skip_space()
            if not self.sql.startswith(",", self.at):
                break
            self.at += 1
        return targets

    def truncate(self) -> list[Target]:
        targets = []
        while self.peek_word() in ("table", "only"):
            self.word()
        while (table := self.name()) is not None:
            targets.append(Target(table, Write.DELETE))
            self.skip_space()
            if not self.sql.startswith(",", self.at):
                break
            self.at += 1
        return targets
