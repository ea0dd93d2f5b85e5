"""A real PgBouncer in front of the test PostgreSQL server, for tests of the pooled path.

Started from Debian's ``pgbouncer`` package with its stock settings (in
particular no ``ignore_startup_parameters``), in transaction mode, on a free
port on 127.0.0.1, with a small pool so that clients really share server
connections. ``.ci/run`` installs the package; with ``CI=true`` a missing
binary fails the run instead of skipping (:func:`pgbouncer_binary`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# The tests stage at most: one run holding its lock's transaction and a batch stuck
# behind a table lock (two server connections), while another run looks in (one).
POOL_SIZE = 3


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )
    if found is None:
        message = "pgbouncer is not installed (Debian: apt-get install pgbouncer)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@dataclass(frozen=True)
class PgBouncer:
    port: int
    log: Path

    def url(self, database: str, *, user: str = "postgres", password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgres://{auth}@127.0.0.1:{self.port}/{database}"


@contextmanager
def running_pgbouncer(
    *,
    server_host: str,
    server_port: int,
    users: Mapping[str, str],
    databases: Mapping[str, str] | None = None,
) -> Iterator[PgBouncer]:
    """PgBouncer on a free port; ``users`` are name -> password ("" for trust).

    Users with a password log in with SCRAM, the others are trusted; ``databases``
    adds [databases] entries (name -> connection string) before the catch-all.
    """
    # A directory of its own under /tmp: run as "nobody", PgBouncer must reach it,
    # and pytest's tmp_path lies under a directory only its owner may enter.
    with tempfile.TemporaryDirectory(prefix="pgbouncer-") as name:
        yield from _run(
            Path(name),
            server_host=server_host,
            server_port=server_port,
            users=users,
            databases=databases,
        )


def _run(
    workdir: Path,
    *,
    server_host: str,
    server_port: int,
    users: Mapping[str, str],
    databases: Mapping[str, str] | None,
) -> Iterator[PgBouncer]:
    port = _free_port()
    hba = [
        f"host all {name} 127.0.0.1/32 {'scram-sha-256' if password else 'trust'}"
        for name, password in users.items()
    ]
    (workdir / "hba.conf").write_text("\n".join(hba) + "\n")
    (workdir / "userlist.txt").write_text(
        "".join(f'"{name}" "{password}"\n' for name, password in users.items())
    )
    entries = [f"{name} = {spec}" for name, spec in (databases or {}).items()]
    entries.append(f"* = host={server_host} port={server_port}")
    (workdir / "pgbouncer.ini").write_text(
        "\n".join(
            [
                "[databases]",
                *entries,
                "",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = hba",
                f"auth_hba_file = {workdir / 'hba.conf'}",
                f"auth_file = {workdir / 'userlist.txt'}",
                "pool_mode = transaction",
                f"default_pool_size = {POOL_SIZE}",
                f"logfile = {workdir / 'pgbouncer.log'}",
                "",
            ]
        )
    )
    command = [pgbouncer_binary()]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        nobody = pwd.getpwnam("nobody")
        (workdir / "stderr.log").touch()
        for path in (workdir, *workdir.iterdir()):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        command += ["-u", "nobody"]
    command.append(str(workdir / "pgbouncer.ini"))
    with (workdir / "stderr.log").open("wb") as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        _wait_for_port(port, proc, workdir=workdir)
        yield PgBouncer(port=port, log=workdir / "pgbouncer.log")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], *, workdir: Path) -> None:
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            logs = [p.read_text() for p in (workdir / "stderr.log", workdir / "pgbouncer.log")]
            raise AssertionError(f"pgbouncer exited with {proc.returncode}:\n{''.join(logs)}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert time.monotonic() < deadline, "pgbouncer did not start listening within 15 s"
        time.sleep(0.05)
