"""Settings of the ``db_worker`` processes the task-per-user reference starts.

The bench's own settings module (``BENCH_BASE_SETTINGS``), with the bench's
throwaway database (``BENCH_DATABASES``: the bench connection's settings as
JSON, so the worker connects exactly as the bench does), django-tasks-db
installed and its backend the default, ``DEBUG`` off, and mail sent over SMTP to
the bench's sink on 127.0.0.1 (``BENCH_SMTP_PORT``).
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

from bench.smtp_sink import HOST, smtp_mail_settings

_base = importlib.import_module(os.environ["BENCH_BASE_SETTINGS"])
globals().update({name: getattr(_base, name) for name in dir(_base) if name.isupper()})

DEBUG = False
DATABASES: dict[str, Any] = json.loads(os.environ["BENCH_DATABASES"])
INSTALLED_APPS: list[str] = list(_base.INSTALLED_APPS)
if "django_tasks_db" not in INSTALLED_APPS:
    # Before the switches app, which stays last (cliproject/settings.py).
    INSTALLED_APPS.insert(len(INSTALLED_APPS) - 1, "django_tasks_db")
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
globals().update(smtp_mail_settings(HOST, int(os.environ["BENCH_SMTP_PORT"])))
