"""Which tables an SQL statement writes, and how: read from its text, without a parser.

Enough of SQL to find the targets of the statements Django and people write:
leading comments, ``WITH`` (including a data-modifying CTE, whose targets
count too), ``INSERT [OR …|IGNORE] INTO``, ``REPLACE INTO``, ``UPDATE``
(MySQL's multi-table form by the tables its ``SET`` assigns), ``DELETE
[FROM]`` (MySQL's ``DELETE t FROM …`` and ``DELETE FROM t USING …``, aliases
resolved), ``MERGE`` (by the actions of its ``WHEN`` clauses) and
``TRUNCATE``, each table name bare, quoted (``"…"``, ``\u0060…\u0060``, ``[…]``)
or schema-qualified, and several statements separated by ``;``. An upsert
(``ON CONFLICT DO UPDATE``, ``ON DUPLICATE KEY UPDATE``, ``REPLACE``) is an
insert here: it writes rows a ``save()`` would have signalled either way.
Anything else (SELECT, SELECT … FOR UPDATE, DDL, SAVEPOINT) writes no rows.

Words inside string literals, quoted names and comments never count: the
reader steps over them as the database's lexer would (``''`` doubled,
``E'…'`` and, for MySQL, backslash escapes, ``$tag$…$tag$``, ``--``, ``/* */``
and MySQL's ``#``). What it does not see: writes made by functions, triggers,
rules or ``TRUNCATE … CASCADE`` on other tables, and ``EXPLAIN ANALYZE``.
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
    # Whether the statement's row count includes this table's rows: not for a data-modifying
    # CTE (the count is the main statement's) nor for TRUNCATE (drivers say 0 or -1).
    counted: bool = True


@dataclass(frozen=True)
class Statement:
    """What one SQL text writes, and what its row count means."""

    targets: tuple[Target, ...]
    # A RETURNING clause: sqlite3 counts such a statement's rows only as they are fetched.
    returning: bool = False
    # INSERT … ON CONFLICT DO UPDATE / ON DUPLICATE KEY UPDATE, REPLACE, INSERT OR REPLACE:
    # MySQL counts an updated or replaced row twice.
    upsert: bool = False
    # The rows of an INSERT … VALUES list with RETURNING, when it writes each (no IGNORE, no
    # DO NOTHING): what sqlite3 cannot count until they are fetched. None otherwise.
    values_rows: int | None = None
    # The first word, lower-cased ("with" for a statement that starts with a CTE).
    verb: str = ""


NOTHING = Statement(())

# Dialects: the connection's vendor. MySQL escapes with backslashes in strings and has # comments.
MYSQL = "mysql"

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
# What can change the lexer's state inside parentheses; everything else is skipped at C speed.
_PAREN_STOPS = re.compile(r"""['"`()$]|--|/\*|#""")
_PAREN_STOPS_STANDARD = re.compile(r"""['"`()$]|--|/\*""")
# Words that may only matter after the target: without any of them, the rest is not read.
_LATE_WORDS = re.compile(r"returning|conflict|duplicate|;", re.IGNORECASE)

_INSERT_MODIFIERS = {"low_priority", "delayed", "high_priority", "ignore"}
_UPDATE_MODIFIERS = {"low_priority", "ignore", "only"}
_DELETE_MODIFIERS = {"low_priority", "quick", "ignore"}
_VERBS = {"insert", "replace", "update", "delete", "merge", "truncate", "select", "values", "with"}
# Words that end a table reference's alias position (and so are no alias).
_NOT_ALIAS = {
    "as",
    "on",
    "using",
    "join",
    "inner",
    "cross",
    "left",
    "right",
    "full",
    "natural",
    "outer",
    "straight_join",
    "lateral",
    "set",
    "where",
    "from",
    "order",
    "limit",
    "returning",
    "partition",
    "use",
    "force",
    "ignore",
    "when",
    "window",
    "group",
    "having",
}
_JOIN_WORDS = {"join", "straight_join"}
# Words after which a SET list, a FROM or a USING list has ended.
_CLAUSE_END = {"where", "order", "limit", "returning", "from", "group", "having", "window"}

_caches: dict[str, dict[str, Statement]] = {}
_CACHE_SIZE = 4096


def clear_cache() -> None:
    """Forget every text read: the detector calls it when the last audit ends."""
    _caches.clear()


def written_tables(sql: str, *, dialect: str = "") -> tuple[Target, ...]:
    """The tables ``sql`` writes rows of, in the order it names them; ``()`` for none."""
    return parse(sql, dialect=dialect).targets


def parse(sql: str, *, dialect: str = "") -> Statement:
    """What ``sql`` writes; cached by text. ``dialect`` is a connection's vendor."""
    cache = _caches.get(dialect)
    if cache is None:
        cache = _caches[dialect] = {}
    else:
        found = cache.get(sql)
        if found is not None:
            return found
    statement = _Reader(sql, dialect).statements()
    if len(cache) >= _CACHE_SIZE:
        cache.clear()  # Django's IN (%s, …) lists make many texts; a bound, not an LRU
    cache[sql] = statement
    return statement


class _Reader:
    """A cursor over the text: words, names and punctuation at the top level, groups skipped."""

    def __init__(self, sql: str, dialect: str) -> None:
        self.sql = sql
        self.at = 0
        self.dialect = dialect
        self.mysql = dialect == MYSQL
        self.paren_stops = _PAREN_STOPS if self.mysql else _PAREN_STOPS_STANDARD
        self.upsert_verb = False  # REPLACE, INSERT OR REPLACE
        self.skips_rows = False  # INSERT IGNORE, INSERT OR IGNORE, ON CONFLICT DO NOTHING
        self.values_at = -1  # where an INSERT's column list or VALUES starts
        self.first_verb = ""

    # -- lexing --

    def skip_space(self) -> None:
        sql, at = self.sql, self.at
        while at < len(sql):
            char = sql[at]
            if char.isspace():
                at = _SPACE.match(sql, at).end()  # type: ignore[union-attr]
            elif sql.startswith("--", at) or (char == "#" and self.mysql):
                end = sql.find("\n", at)
                at = len(sql) if end < 0 else end + 1
            elif sql.startswith("/*", at):
                end = sql.find("*/", at + 2)
                at = len(sql) if end < 0 else end + 2
            else:
                break
        self.at = at

    def skip_quoted(self, at: int) -> int:
        """The end of the string, quoted name or dollar-quoted text that starts at ``at``."""
        sql = self.sql
        quote = sql[at]
        if quote == "$":
            match = _DOLLAR_TAG.match(sql, at)
            if match is None:  # $1, a parameter
                return at + 1
            end = sql.find(match[0], match.end())
            return len(sql) if end < 0 else end + len(match[0])
        # E'…' (PostgreSQL) and every MySQL string take backslash escapes.
        escapes = quote != "`" and (
            self.mysql or (quote == "'" and at > 0 and sql[at - 1] in "eE" and _word_ends(sql, at))
        )
        at += 1
        while True:
            end = sql.find(quote, at)
            if end < 0:
                return len(sql)
            if escapes:
                backslashes = 0
                while end - 1 - backslashes >= at and sql[end - 1 - backslashes] == "\\":
                    backslashes += 1
                if backslashes % 2:
                    at = end + 1
                    continue
            if sql.startswith(quote, end + 1):  # doubled: part of the text
                at = end + 2
                continue
            return end + 1

    def skip_group(self) -> str:
        """The text inside the parentheses that start here, consumed (strings respected)."""
        sql, depth, start = self.sql, 0, self.at + 1
        at = self.at
        while (match := self.paren_stops.search(sql, at)) is not None:
            at, token = match.start(), match[0]
            if token == "(":
                depth += 1
                at += 1
            elif token == ")":
                depth -= 1
                at += 1
                if depth == 0:
                    self.at = at
                    return sql[start : at - 1]
            elif token in ("--", "#"):
                end = sql.find("\n", at)
                at = len(sql) if end < 0 else end + 1
            elif token == "/*":
                end = sql.find("*/", at + 2)
                at = len(sql) if end < 0 else end + 2
            else:
                at = self.skip_quoted(at)
        self.at = len(sql)
        return sql[start:]

    def token(self) -> str | None:
        """The next top-level token, consumed: a lower-cased word, a name, a mark, or "(…)".

        A group in parentheses is one token, "()"; None at the end of the text.
        """
        self.skip_space()
        sql, at = self.sql, self.at
        if at >= len(sql):
            return None
        char = sql[at]
        if match := _WORD.match(sql, at):
            self.at = match.end()
            return match[0].lower()
        if char == "(":
            self.skip_group()
            return "()"
        if char in "'\"`$":
            self.at = self.skip_quoted(at)
            return sql[at : self.at]
        self.at = at + 1
        return char

    def peek(self) -> str | None:
        at = self.at
        token = self.token()
        self.at = at
        return token

    def accept(self, *words: str) -> bool:
        if self.peek() in words:
            self.token()
            return True
        return False

    def name(self) -> str | None:
        """A table name, possibly schema-qualified and quoted: its last part, unquoted.

        ``t.*`` (MySQL's multi-table DELETE) is the name ``t``.
        """
        parts = self.qualified()
        return parts[-1] if parts else None

    def qualified(self) -> list[str]:
        """The parts of a dotted name, each unquoted; ``[]`` when no name starts here."""
        parts: list[str] = []
        while True:
            self.skip_space()
            sql, at = self.sql, self.at
            if at >= len(sql):
                break
            char = sql[at]
            if char in '"`':
                self.at = self.skip_quoted(at)
                parts.append(_unquote(sql[at : self.at]))
            elif char == "[":
                end = sql.find("]", at)
                self.at = len(sql) if end < 0 else end + 1
                parts.append(sql[at + 1 : self.at - 1])
            elif match := _WORD.match(sql, at):
                self.at = match.end()
                parts.append(match[0])
            else:
                break
            self.skip_space()
            if not self.sql.startswith(".", self.at):
                break
            self.at += 1
            self.skip_space()
            if self.sql.startswith("*", self.at):
                self.at += 1
                break
        return parts

    def names(self) -> list[str]:
        """A comma-separated list of names."""
        found = []
        while (table := self.name()) is not None:
            found.append(table)
            if not self.accept(","):
                break
        return found

    def skip_to(self, stops: set[str]) -> str | None:
        """Consume top-level tokens up to one in ``stops``, which is left; None at the end."""
        while (token := self.peek()) is not None:
            if token in stops:
                return token
            self.token()
        return None

    # -- statements --

    def statements(self) -> Statement:
        found = [self.statement()]
        while self.sql.find(";", self.at) >= 0 and self.skip_to({";"}) is not None:
            self.token()  # ;
            found.append(self.statement())
        written = [statement for statement in found if statement.targets]
        if not written:
            return NOTHING
        if len(found) == 1:
            return found[0]
        return Statement(
            targets=tuple(target for statement in written for target in statement.targets),
            returning=any(statement.returning for statement in written),
            upsert=any(statement.upsert for statement in written),
            verb=found[0].verb,
        )

    def statement(self) -> Statement:
        self.upsert_verb = self.skips_rows = False
        self.values_at = -1
        if self.peek() in (";", None):
            return NOTHING  # an empty statement: the ";" that ends it is the next one's start
        verb = self.token()
        self.first_verb = verb or ""
        targets: list[Target] = []
        if verb == "with":
            targets = self.with_clause()
            verb = self.token()
        if verb in ("insert", "replace"):
            targets += self.insert(verb)
        elif verb == "update":
            targets += self.update()
        elif verb == "delete":
            targets += self.delete()
        elif verb == "merge":
            targets += self.merge()
        elif verb == "truncate":
            targets += self.truncate()
        if not targets:
            return NOTHING
        return self.rest(tuple(targets), upsert=self.upsert_verb)

    def rest(self, targets: tuple[Target, ...], *, upsert: bool) -> Statement:
        """Read what follows the target up to the statement's end, for RETURNING and upserts."""
        returning = False
        if not _LATE_WORDS.search(self.sql, self.at):
            return Statement(targets, upsert=upsert, verb=self.first_verb)
        while (token := self.peek()) not in (None, ";"):
            self.token()
            if token == "returning":
                returning = True
            elif token == "duplicate":  # ON DUPLICATE KEY UPDATE
                upsert = True
            elif token == "conflict" and self.skip_to({"do", ";"}) == "do":
                self.token()
                upsert |= self.peek() == "update"
                self.skips_rows |= self.peek() == "nothing"
            elif token == "where" and upsert:
                self.skips_rows = True  # DO UPDATE … WHERE: a row may be neither
        values_rows = None
        if returning and self.values_at >= 0 and not self.skips_rows:
            values_rows = _Reader(self.sql[self.values_at :], self.dialect).values_rows()
        return Statement(
            targets,
            returning=returning,
            upsert=upsert,
            values_rows=values_rows,
            verb=self.first_verb,
        )

    def values_rows(self) -> int | None:
        """The rows of the ``[(columns)] VALUES (…), (…)`` that starts here; None for a query."""
        if self.peek() == "()":
            self.token()
        if self.accept("default"):
            return 1 if self.accept("values") else None
        if not self.accept("values"):
            return None
        rows = 0
        while self.token() == "()":
            rows += 1
            if not self.accept(","):
                break
        return rows or None

    def with_clause(self) -> list[Target]:
        targets: list[Target] = []
        self.accept("recursive")
        while self.name() is not None:
            if self.peek() == "()":
                self.token()  # the CTE's column list
            self.accept("as")
            self.accept("not")
            self.accept("materialized")
            self.skip_space()
            if not self.sql.startswith("(", self.at):
                return targets
            body = self.skip_group()
            # The statement's row count is the main statement's, not the CTE's.
            for target in _Reader(body, self.dialect).statements().targets:
                targets.append(Target(target.table, target.write, counted=False))
            # PostgreSQL's SEARCH and CYCLE clauses follow the body.
            if self.skip_to({",", *_VERBS}) != ",":
                return targets
            self.token()
        return targets

    def insert(self, verb: str) -> list[Target]:
        self.upsert_verb = verb == "replace"
        if verb == "insert" and self.accept("or"):  # SQLite: INSERT OR REPLACE / IGNORE / …
            resolution = self.token()
            self.upsert_verb = resolution == "replace"
            self.skips_rows = resolution == "ignore"
        while self.peek() in _INSERT_MODIFIERS:
            self.skips_rows |= self.token() == "ignore"
        self.accept("into")
        table = self.name()
        self.values_at = self.at
        return [Target(table, Write.INSERT)] if table else []

    def update(self) -> list[Target]:
        if self.accept("or"):  # SQLite: UPDATE OR IGNORE / …
            self.token()
        while self.peek() in _UPDATE_MODIFIERS:
            self.token()
        references = self.references({"set"})
        if not references:
            return []
        if len(references) == 1 or not self.accept("set"):
            return [Target(references[0][0], Write.UPDATE)]
        # MySQL's multi-table UPDATE writes the tables its SET assigns to.
        by_alias = {alias.lower(): table for table, alias in references}
        written: dict[str, None] = {}
        while True:
            parts = self.qualified()
            if len(parts) >= 2:
                qualifier = parts[-2]
                written.setdefault(by_alias.get(qualifier.lower(), qualifier))
            elif parts:
                # An unqualified column: MySQL finds its table by its columns, which the
                # text does not say; the first table is the likely one.
                written.setdefault(references[0][0])
            stop = self.skip_to({",", *_CLAUSE_END, ";"})
            if stop != ",":
                break
            self.token()
        return [Target(table, Write.UPDATE) for table in written]

    def references(self, stops: set[str]) -> list[tuple[str, str]]:
        """``(table, alias)`` of each table in a FROM-like list, up to a word of ``stops``.

        A derived table (a subquery) names no table and is left out.
        """
        found: list[tuple[str, str]] = []
        ends = {",", *_JOIN_WORDS, *stops, *_CLAUSE_END, ";"}
        while True:
            self.skip_space()
            if self.sql.startswith("(", self.at):
                self.skip_group()
                table = None
            else:
                table = self.name()
                self.accept("*")  # PostgreSQL: a table and its descendants
            if table is not None and table.lower() not in ends:
                alias = table
                self.accept("as")
                following = self.peek()
                if (
                    following is not None
                    and following not in _NOT_ALIAS
                    and following not in ends
                    and following[0] not in "(,;.="
                ):
                    alias = self.name() or table
                found.append((table, alias))
            stop = self.skip_to(ends)
            if stop in (",", *_JOIN_WORDS):
                self.token()
                continue
            return found

    def delete(self) -> list[Target]:
        while self.peek() in _DELETE_MODIFIERS:
            self.token()
        if self.accept("from"):
            self.accept_only()
            named = self.names()
            if not named:
                return []
            if len(named) == 1 and self.peek() != "using":
                return [Target(named[0], Write.DELETE)]
            if self.accept("using"):
                # DELETE FROM t USING … (PostgreSQL: t is a table; MySQL: it may be an alias).
                return self.resolved(named, self.references(set()))
            return [Target(table, Write.DELETE) for table in named]
        # MySQL's multi-table form, DELETE t1[, t2] FROM …: the tables (or aliases) before FROM.
        named = self.names()
        if not self.accept("from"):
            return []
        return self.resolved(named, self.references(set()))

    def accept_only(self) -> None:
        """PostgreSQL's ``ONLY`` before a table name (not a table that is called ``only``)."""
        at = self.at
        if self.token() != "only":
            self.at = at
            return
        following = self.peek()
        if following is None or following in _CLAUSE_END or following in (";", ",", "using"):
            self.at = at  # DELETE FROM only WHERE …: the table's name

    @staticmethod
    def resolved(named: list[str], references: list[tuple[str, str]]) -> list[Target]:
        by_alias = {alias.lower(): table for table, alias in references}
        return [Target(by_alias.get(name.lower(), name), Write.DELETE) for name in named]

    def merge(self) -> list[Target]:
        self.accept("into")
        table = self.name()
        if table is None:
            return []
        writes: dict[Write, None] = {}
        while self.skip_to({"then", ";"}) == "then":
            self.token()
            action = self.token()
            if action in ("insert", "update", "delete"):
                writes.setdefault(Write(action))
        return [Target(table, write) for write in Write if write in writes]

    def truncate(self) -> list[Target]:
        self.accept("table")
        targets = []
        while True:
            self.accept("only")
            table = self.name()
            if table is None:
                break
            targets.append(Target(table, Write.DELETE, counted=False))
            self.accept("*")
            if not self.accept(","):
                break
        return targets


def _unquote(quoted: str) -> str:
    quote = quoted[0]
    inner = quoted[1:-1] if len(quoted) > 1 and quoted.endswith(quote) else quoted[1:]
    return inner.replace(quote * 2, quote)


def _word_ends(sql: str, quote_at: int) -> bool:
    """Whether the letter before the quote at ``quote_at`` is a word of its own (E'…', not xE')."""
    return quote_at < 2 or not (sql[quote_at - 2].isalnum() or sql[quote_at - 2] in "_$")
