"""``make demo``, run as a new user runs it (smaller): it tells the story without a line
that looks like a crash, and a second run prints the same figures as the first.

Run on the suite's database (the demo empties it first), so it runs on every backend.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers.processes import database_url, make

SIZES = {"DEMO_SAVE": "20", "DEMO_BULK": "20", "DEMO_MORE": "200"}


def make_demo(demo_dir: Path) -> subprocess.CompletedProcess[str]:
    variables = {**SIZES, "DEMO_DIR": str(demo_dir), "DEMO_DATABASE_URL": database_url()}
    return make("demo", variables=variables)


def figures(output: str) -> str:
    """The output without what differs from run to run: durations and rates."""
    output = re.sub(r"\d[\d,.]* s\b", "<seconds> s", output)
    return re.sub(r"\d[\d,.]*(?: users)?/s\b", "<rate>/s", output)


@pytest.mark.django_db(transaction=True)
def test_the_demo_tells_the_story_and_a_second_run_prints_the_same_figures(tmp_path):
    first = make_demo(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    lines = (first.stdout + first.stderr).splitlines()
    crashes = [line for line in lines if re.search(r"Error|CommandError|Traceback", line)]
    assert crashes == []

    header = next(i for i, line in enumerate(lines) if line.startswith("RECEIVER  "))
    end = next(i for i, line in enumerate(lines) if line.endswith("(database 'default')."))
    names = [line.split()[0] for line in lines[header + 1 : end]]
    assert names[:2] == [
        "profiles.receivers.create_profile",
        "profiles.receivers.send_welcome_email",
    ]
    assert names[2:] and all(name.startswith("django.") for name in names[2:])

    save = next(line for line in lines if line.startswith("user.save() (insert) "))
    bulk = next(line for line in lines if line.startswith("User.objects.bulk_create() "))
    assert save.split()[-1] == "✓" and "post_save created=True" in save
    assert bulk.split()[-2:] == ["none", "✗"]
    assert "Ran 2 operation(s) in a transaction that was rolled back" in first.stdout

    assert "240 user(s): 20 with a profile, 220 without." in lines
    assert "240 user(s): 240 with a profile, 0 without." in lines
    second = make_demo(tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert figures(second.stdout + second.stderr) == figures(first.stdout + first.stderr)
