"""The Makefile's clean target, run in a scratch directory with the project's Makefile:
it removes every file the project's commands and tests leave beside a SQLite database."""

from __future__ import annotations

from tests.helpers.processes import make

LEFT_BEHIND = [
    "db.sqlite3",
    "db.sqlite3-wal",
    "db.sqlite3-shm",
    # dbtools.locks names SQLite lock files as docs/cron.md says.
    "db.sqlite3.backfill_profiles.lock",
    "db.sqlite3.backfill_profiles-1-4.lock",
    "db.sqlite3.welcome_mails_sync.lock",
    "db.sqlite3.seed_users-run12.lock",
    ".test-db-lead.sqlite3",
    ".test-db-lead.sqlite3.backfill_profiles.lock",
    "var/mail/1.log",
    "var/demo/demo.sqlite3",
    "var/demo/demo.sqlite3.welcome_mails_send.lock",
]


def test_make_clean_leaves_no_database_lock_or_mail_file(tmp_path):
    for name in LEFT_BEHIND:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    kept = tmp_path / "notes.txt"
    kept.write_text("mine")
    venv = tmp_path / "venv-to-remove"
    venv.mkdir()
    result = make("clean", variables={"VENV": str(venv)}, directory=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
