"""A real PostgreSQL server for tests: a private cluster in a temporary folder, on 127.0.0.1 and a free port.

Debian's ``postgresql`` package (``make sysdeps`` installs it) gives ``initdb`` and ``pg_ctl`` under
``/usr/lib/postgresql/<version>/bin``. The cluster is created with ``initdb`` and started with
``pg_ctl``, as the ``postgres`` user when the tests run as root (PostgreSQL refuses to run as root),
else as the current user. It listens on loopback only, with password (SCRAM) authentication for TCP,
and is stopped and deleted after the session. Durability is switched off (``fsync=off``): a test
cluster, not a production one.

Missing binaries are a test failure with the install command, never a skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from seedance_pipeline_tests.dagster_dev import free_port

INSTALL_HINT = (
    "install Debian's PostgreSQL: `sudo apt-get update && sudo apt-get install -y postgresql` (or `make sysdeps`)"
)
SUPERUSER = "seedance"


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<v>/bin`` with initdb and pg_ctl, else the ones on PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for cand in candidates:
        if all(os.access(Path(cand) / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(cand)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    return None


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    password: str
    version: str

    def connect(self, db: str = "postgres"):
        import psycopg2

        return psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=db, connect_timeout=10
        )

    def create_database(self, name: str) -> str:
        """A fresh, empty database (dropped first if a previous test left one)."""
        conn = self.connect()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name

    def dagster_env(self, db: str) -> dict[str, str]:
        """The environment ``deploy/dagster.yaml`` reads its Postgres connection from."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": db,
        }


class PgCluster:
    """initdb + pg_ctl start/stop of one private cluster; use as a context manager."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="seedance-pg-"))  # under /tmp: reachable by the postgres user
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.password = secrets.token_urlsafe(18)
        self.run_as = "postgres" if os.geteuid() == 0 else None
        self.started = False

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        kw = {}
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C.UTF-8",
            "LANG": "C.UTF-8",
            "HOME": str(self.root),
        }
        if self.run_as:
            kw["user"] = self.run_as
            kw["group"] = pwd.getpwnam(self.run_as).pw_gid
            kw["extra_groups"] = []
        proc = subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            **kw,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{self._log_tail()}"
            )
        return proc

    def _log_tail(self) -> str:
        try:
            return "server log:\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def start(self) -> PgServer:
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        os.chmod(pwfile, 0o600)
        if self.run_as:
            os.chown(pwfile, pwd.getpwnam(self.run_as).pw_uid, -1)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start", timeout=90
        )
        self.started = True
        version = self._run("postgres", "--version").stdout.strip()
        return PgServer(host="127.0.0.1", port=self.port, user=SUPERUSER, password=self.password, version=version)

    def stop(self) -> None:
        try:
            if self.started:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop", timeout=60)
                self.started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server of this test session (per xdist worker), started in about a second."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.fail(
            f"PostgreSQL binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH: "
            f"{INSTALL_HINT}",
            pytrace=False,
        )
    t0 = time.monotonic()
    with PgCluster(bin_dir) as server:
        print(f"\n{server.version} on {server.host}:{server.port} up in {time.monotonic() - t0:.1f} s")
        yield server
