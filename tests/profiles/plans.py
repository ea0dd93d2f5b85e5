"""What one statement reads, by the database's own accounting."""

from __future__ import annotations

from typing import Any


def rows_read(cursor: Any, sql: str, params: list[Any], *, table: str) -> int:
    """Rows of ``table`` the statement reads (MariaDB/MySQL: rows it reads in all).

    PostgreSQL: from ``EXPLAIN ANALYZE``, with whatever statistics the tables
    have now. MariaDB/MySQL: the session's ``Handler_read%`` counters, around a
    run of the statement. Not for SQLite, which has no such accounting: read
    its ``EXPLAIN QUERY PLAN`` instead.
    """
    if cursor.db.vendor == "postgresql":
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        [[plan]] = cursor.fetchone()
        nodes, read = [plan["Plan"]], 0
        while nodes:
            node = nodes.pop()
            nodes.extend(node.get("Plans", []))
            if node.get("Relation Name") == table:
                rows = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
                read += rows * node["Actual Loops"]
        return read
    counters = "SHOW SESSION STATUS WHERE Variable_name LIKE 'Handler_read%%'"
    cursor.execute(counters)
    before = {name: int(value) for name, value in cursor.fetchall()}
    cursor.execute(sql, params)
    cursor.execute(counters)
    return sum(int(value) - before[name] for name, value in cursor.fetchall())
