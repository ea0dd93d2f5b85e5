"""Environments for cliproject/settings.py that both its in-process tests
(tests/cliproject/test_settings.py) and its process tests (tests/system/test_settings.py) use."""

from __future__ import annotations

# Each numeric setting at the end of its range that a server may refuse.
LIMITS = {
    "DATABASE_LOCK_TIMEOUT_SECONDS": "2147483",
    "BATCH_STATEMENT_TIMEOUT_SECONDS": "1",
    "BATCH_RETRIES": "0",
    "RECEIVER_SWITCHES_REFRESH_SECONDS": "0",
    "DATABASE_CONNECT_TIMEOUT": "1",
    "EMAIL_PORT": "65535",
    "EMAIL_TIMEOUT": "1",
}
