"""signalaudit.statements: the tables a statement writes, read from its text alone."""

from __future__ import annotations

import pytest

from signalaudit.statements import MYSQL, Target, Write, clear_cache, parse, written_tables

INSERT, UPDATE, DELETE = Write.INSERT, Write.UPDATE, Write.DELETE


def targets(sql: str, dialect: str = "") -> list[tuple[str, Write]]:
    return [(target.table, target.write) for target in written_tables(sql, dialect=dialect)]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # Leading comments, of either kind, several of them.
        ("/* audit */ INSERT INTO x (a) VALUES (1)", [("x", INSERT)]),
        ("-- audit\nINSERT INTO x (a) VALUES (1)", [("x", INSERT)]),
        ("/* a */ -- b\n  /* c */\tdelete from x", [("x", DELETE)]),
        ("/* INSERT INTO y */ UPDATE x SET a = 1", [("x", UPDATE)]),
        # Quoted and schema-qualified names: the last part, unquoted.
        ('INSERT INTO "auth_user" VALUES (1)', [("auth_user", INSERT)]),
        ('INSERT INTO "public"."auth_user" VALUES (1)', [("auth_user", INSERT)]),
        ("INSERT INTO `db`.`auth_user` VALUES (1)", [("auth_user", INSERT)]),
        ("INSERT INTO [main].[auth_user] VALUES (1)", [("auth_user", INSERT)]),
        ('INSERT INTO main . "auth_user" VALUES (1)', [("auth_user", INSERT)]),
        ('DELETE FROM "odd""name"', [('odd"name', DELETE)]),
        ("UPDATE `odd``name` SET a = 1", [("odd`name", UPDATE)]),
        ('INSERT INTO "with space" DEFAULT VALUES', [("with space", INSERT)]),
        # The forms of INSERT, and upserts.
        ("insert into x values(1)", [("x", INSERT)]),
        ("INSERT x VALUES (1)", [("x", INSERT)]),
        ("INSERT INTO x(a) SELECT a FROM y", [("x", INSERT)]),
        ("INSERT OR REPLACE INTO x VALUES (1)", [("x", INSERT)]),
        ("INSERT OR IGNORE INTO x VALUES (1)", [("x", INSERT)]),
        ("INSERT IGNORE INTO x VALUES (1)", [("x", INSERT)]),
        ("INSERT LOW_PRIORITY IGNORE INTO x VALUES (1)", [("x", INSERT)]),
        ("REPLACE INTO x VALUES (1)", [("x", INSERT)]),
        ("REPLACE LOW_PRIORITY INTO x VALUES (1)", [("x", INSERT)]),
        ("INSERT INTO x VALUES (1) ON CONFLICT (a) DO UPDATE SET a = 2", [("x", INSERT)]),
        ("INSERT INTO x VALUES (1) ON CONFLICT DO NOTHING", [("x", INSERT)]),
        ("INSERT INTO x VALUES (1) ON DUPLICATE KEY UPDATE a = VALUES(a)", [("x", INSERT)]),
        # UPDATE, DELETE and their modifiers.
        ("UPDATE x SET a = 1 WHERE b = 2", [("x", UPDATE)]),
        ("UPDATE ONLY public.x SET a = 1", [("x", UPDATE)]),
        ("UPDATE x AS t SET a = 1", [("x", UPDATE)]),
        ("UPDATE OR IGNORE x SET a = 1", [("x", UPDATE)]),
        ("UPDATE LOW_PRIORITY IGNORE x SET a = 1", [("x", UPDATE)]),
        ("UPDATE x SET a = y.a FROM y WHERE x.id = y.id", [("x", UPDATE)]),
        ("DELETE FROM x WHERE a = 1", [("x", DELETE)]),
        ("DELETE LOW_PRIORITY QUICK IGNORE FROM x", [("x", DELETE)]),
        ("DELETE FROM x USING y WHERE x.id = y.id", [("x", DELETE)]),
        ("DELETE FROM x AS t USING y WHERE t.id = y.id", [("x", DELETE)]),
        # MySQL's multi-table DELETE, by table or by alias.
        ("DELETE x FROM x JOIN y ON x.id = y.id", [("x", DELETE)]),
        ("DELETE `x` FROM `x` INNER JOIN `y` ON (`x`.`id` = `y`.`id`)", [("x", DELETE)]),
        ("DELETE x, y FROM x JOIN y ON x.id = y.id", [("x", DELETE), ("y", DELETE)]),
        (
            "DELETE u FROM auth_user AS u JOIN profiles_profile p ON p.user_id = u.id",
            [("auth_user", DELETE)],
        ),
        (
            "DELETE u.*, p FROM auth_user u INNER JOIN profiles_profile AS p ON p.user_id = u.id",
            [("auth_user", DELETE), ("profiles_profile", DELETE)],
        ),
        (
            "DELETE FROM u, p USING auth_user AS u JOIN profiles_profile p ON p.user_id = u.id",
            [("auth_user", DELETE), ("profiles_profile", DELETE)],
        ),
        # MySQL's multi-table UPDATE writes the tables its SET assigns.
        ("UPDATE x, y SET y.a = 1 WHERE x.id = y.id", [("y", UPDATE)]),
        (
            "UPDATE auth_user u JOIN profiles_profile p ON p.user_id = u.id SET p.bio = 'x'",
            [("profiles_profile", UPDATE)],
        ),
        (
            "UPDATE auth_user u JOIN profiles_profile p ON p.user_id = u.id "
            "SET p.bio = 'x', u.first_name = 'y'",
            [("profiles_profile", UPDATE), ("auth_user", UPDATE)],
        ),
        # MERGE writes what its WHEN clauses do.
        ("MERGE INTO x USING y ON x.id = y.id WHEN MATCHED THEN DELETE", [("x", DELETE)]),
        (
            "MERGE INTO x t USING y s ON t.id = s.id "
            "WHEN MATCHED THEN UPDATE SET a = CASE WHEN s.a > 1 THEN 2 END "
            "WHEN NOT MATCHED THEN INSERT (a) VALUES (s.a)",
            [("x", INSERT), ("x", UPDATE)],
        ),
        ("MERGE x USING y ON 1 = 1 WHEN MATCHED THEN DO NOTHING", []),
        # TRUNCATE removes rows.
        ("TRUNCATE x", [("x", DELETE)]),
        ("TRUNCATE TABLE x", [("x", DELETE)]),
        ("TRUNCATE ONLY x, y RESTART IDENTITY CASCADE", [("x", DELETE), ("y", DELETE)]),
        # CTEs: the main statement's target, and a data-modifying CTE's (PostgreSQL).
        ("WITH a AS (SELECT 1) INSERT INTO x SELECT * FROM a", [("x", INSERT)]),
        ("WITH RECURSIVE a AS (SELECT 1) DELETE FROM x", [("x", DELETE)]),
        (
            "WITH a(c) AS (SELECT 1), b AS MATERIALIZED (SELECT 2) UPDATE x SET c = 1",
            [("x", UPDATE)],
        ),
        (
            "WITH gone AS (DELETE FROM y RETURNING *) INSERT INTO x SELECT * FROM gone",
            [("y", DELETE), ("x", INSERT)],
        ),
        (
            "WITH a AS NOT MATERIALIZED (UPDATE y SET a = 1 RETURNING *) SELECT * FROM a",
            [("y", UPDATE)],
        ),
        ('WITH "a b" AS (SELECT 1) INSERT INTO x SELECT 1', [("x", INSERT)]),
        # What is in a CTE's string, comment or quoted name never closes it.
        ("WITH a AS (SELECT ')') INSERT INTO x SELECT 1", [("x", INSERT)]),
        ("WITH a AS (SELECT 'it''s )') INSERT INTO x SELECT 1", [("x", INSERT)]),
        ("WITH a AS (SELECT E'it\\'s )') INSERT INTO x SELECT 1", [("x", INSERT)]),
        ("WITH a AS (SELECT 'C:\\') INSERT INTO x SELECT 1", [("x", INSERT)]),
        ("WITH a AS (SELECT 1 /* ) */) INSERT INTO x SELECT 1", [("x", INSERT)]),
        ("WITH a AS (SELECT 1 -- )\n) INSERT INTO x SELECT 1", [("x", INSERT)]),
        ("WITH a AS (SELECT $$ ) $$) INSERT INTO x SELECT 1", [("x", INSERT)]),
        ("WITH a AS (SELECT $t$ ) $t$) INSERT INTO x SELECT 1", [("x", INSERT)]),
        ('WITH a AS (SELECT 1 AS ")") INSERT INTO x SELECT 1', [("x", INSERT)]),
        # Several statements in one text.
        ("SELECT 1; INSERT INTO x VALUES (1)", [("x", INSERT)]),
        ("SELECT 'a;'; DELETE FROM y", [("y", DELETE)]),
        ("INSERT INTO x VALUES (1); UPDATE y SET a = 1;", [("x", INSERT), ("y", UPDATE)]),
    ],
)
def test_the_targets_of_a_write(sql, expected):
    assert targets(sql) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM x FOR UPDATE",
        "SELECT * FROM x FOR UPDATE SKIP LOCKED",
        "SELECT 'INSERT INTO x'",
        "SELECT 'a'; SELECT 'DELETE FROM x'",
        "SELECT * FROM x WHERE a = 'UPDATE x SET a = 1'",
        "/* INSERT INTO x */ SELECT 1",
        "-- DELETE FROM x\nSELECT 1",
        "SAVEPOINT s1",
        'RELEASE SAVEPOINT "s1"',
        "ROLLBACK TO SAVEPOINT s1",
        "BEGIN",
        "COMMIT",
        "CREATE TABLE x (a int)",
        "ALTER TABLE x ADD COLUMN a int",
        "DROP TABLE x",
        "CREATE INDEX i ON x (a)",
        "WITH a AS (SELECT 1) SELECT * FROM a",
        "VALUES (1)",
        "(SELECT 1)",
        "SET search_path TO public",
        "PRAGMA foreign_keys = ON",
        "",
        "   ",
    ],
)
def test_what_writes_no_rows(sql):
    assert written_tables(sql) == ()


def test_a_string_literal_that_holds_a_statement_is_no_target():
    assert targets("INSERT INTO x VALUES ('DELETE FROM y; UPDATE z SET a = 1')") == [("x", INSERT)]
    assert targets("UPDATE x SET a = 'RETURNING' WHERE b = ';DELETE FROM y'") == [("x", UPDATE)]
    assert targets("UPDATE x SET a = $$; DELETE FROM y$$") == [("x", UPDATE)]


def test_mysql_strings_take_backslash_escapes_and_hash_starts_a_comment():
    sql = "UPDATE `t` SET `a` = 'x\\' WHERE 1 = 1; DELETE FROM z' WHERE 1"
    assert targets(sql, MYSQL) == [("t", UPDATE)]  # one string, one statement
    # Elsewhere a backslash is text: the string ends there, and a second statement follows.
    assert targets(sql) == [("t", UPDATE), ("z", DELETE)]
    assert targets('WITH a AS (SELECT "it\\"s )") INSERT INTO x SELECT 1', MYSQL) == [("x", INSERT)]
    assert targets("# a comment\nINSERT INTO x VALUES (1)", MYSQL) == [("x", INSERT)]
    assert targets("# a comment\nINSERT INTO x VALUES (1)") == []  # '#' is no comment there


def test_a_count_is_the_main_statement_s_not_a_cte_s_nor_a_truncate_s():
    cte = "WITH gone AS (DELETE FROM y RETURNING id) INSERT INTO x SELECT id FROM gone"
    assert written_tables(cte) == (Target("y", DELETE, counted=False), Target("x", INSERT))
    assert written_tables("TRUNCATE x") == (Target("x", DELETE, counted=False),)
    assert written_tables("DELETE FROM x") == (Target("x", DELETE, counted=True),)


@pytest.mark.parametrize(
    ("sql", "returning", "upsert"),
    [
        ('INSERT INTO "x" ("a") VALUES (%s), (%s) RETURNING "x"."id"', True, False),
        ("DELETE FROM x WHERE a = 1 RETURNING id", True, False),
        ("INSERT INTO x VALUES ('RETURNING')", False, False),
        ("INSERT INTO x VALUES (1) ON CONFLICT (a) DO UPDATE SET a = 2 RETURNING id", True, True),
        ("INSERT INTO x VALUES (1) ON CONFLICT (a) DO NOTHING", False, False),
        ("INSERT INTO x VALUES (1) ON DUPLICATE KEY UPDATE a = 2", False, True),
        ("REPLACE INTO x VALUES (1)", False, True),
        ("INSERT OR REPLACE INTO x VALUES (1)", False, True),
        ("INSERT OR IGNORE INTO x VALUES (1)", False, False),
        ("UPDATE x SET a = 'ON DUPLICATE KEY UPDATE'", False, False),
    ],
)
def test_what_the_row_count_of_a_statement_means(sql, returning, upsert):
    statement = parse(sql)
    assert (statement.returning, statement.upsert) == (returning, upsert)


def test_a_long_bulk_insert_is_read_once_and_then_served_from_the_cache():
    rows = ", ".join(["(%s, %s, %s)"] * 5000)
    sql = f'INSERT INTO "auth_user" ("a", "b", "c") VALUES {rows} RETURNING "auth_user"."id"'
    first = parse(sql)
    assert first.targets == (Target("auth_user", INSERT),) and first.returning
    assert parse(sql) is first


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # PostgreSQL's ONLY and "and descendants" star, on DELETE as on UPDATE.
        ("DELETE FROM ONLY auth_user WHERE id = 1", [("auth_user", DELETE)]),
        (
            "DELETE FROM ONLY public.auth_user * AS u USING x WHERE u.id = x.id",
            [("auth_user", DELETE)],
        ),
        ("DELETE FROM auth_user * WHERE id = 1", [("auth_user", DELETE)]),
        ('DELETE FROM ONLY "auth_user"', [("auth_user", DELETE)]),
        # A table that is called only (MySQL allows it).
        ("DELETE FROM only WHERE id = 1", [("only", DELETE)]),
        ("DELETE FROM only", [("only", DELETE)]),
        # An empty first statement does not hide the ones after it.
        ("; INSERT INTO auth_user (a) VALUES (1)", [("auth_user", INSERT)]),
        (";;\n; DELETE FROM x;;", [("x", DELETE)]),
        ("SELECT 1;; UPDATE x SET a = 1", [("x", UPDATE)]),
    ],
)
def test_the_targets_found_in_review(sql, expected):
    assert targets(sql) == expected


def test_mysql_s_executable_comment_then_an_insert():
    sql = "/*!40000 ALTER TABLE `x` DISABLE KEYS */ ; INSERT INTO `auth_user` (`a`) VALUES (1)"
    assert targets(sql, MYSQL) == [("auth_user", INSERT)]


def test_clear_cache_forgets_every_text():
    first = parse("DELETE FROM x WHERE a = 1")
    clear_cache()
    assert parse("DELETE FROM x WHERE a = 1") is not first
