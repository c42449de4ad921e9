"""A real PostgreSQL server for the tests: ``initdb`` and ``postgres`` from the machine's
PostgreSQL binaries (Debian package ``postgresql``, installed by ``make postgresql``), in a
temporary directory, on a free port of 127.0.0.1, password authentication (SCRAM) on.

PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` system user
(created by the Debian package; else ``nobody``), in a directory it owns.
``CONTACTPIPE_PG_BIN`` names another binaries directory.

Each test gets its own schema (:meth:`PgServer.fresh_url`): the URL's ``search_path`` points
there, so tests (and xdist workers, each with its own server) never see each other's tables.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

ADMIN, ADMIN_PASSWORD = "cpadmin", "admin-Secr3t-pw"
SERVER_USERS = ("postgres", "nobody")
"""Who runs the server when the tests run as root (the first that exists)."""


def server_user() -> pwd.struct_passwd:
    for name in SERVER_USERS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError(f"running as root and none of the users {SERVER_USERS} exists")


def bin_dir() -> Path | None:
    """The directory of ``initdb`` / ``pg_ctl`` / ``postgres``, or None."""
    env = os.environ.get("CONTACTPIPE_PG_BIN")
    if env:
        return Path(env) if (Path(env) / "initdb").is_file() else None
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One running server; :meth:`stop` removes everything."""

    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        """``durable``: PostgreSQL's default fsync settings (benchmarks); the tests turn
        fsync off, a crash of the test server loses nothing of value."""
        self.bindir = bindir
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="contactpipe-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        if os.geteuid() == 0:  # postgres will not run as root
            user = server_user()
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", user.pw_name, "--"]
        os.chmod(self.root, 0o700)
        pwfile = self.root / "pw"
        pwfile.write_text(ADMIN_PASSWORD + "\n")
        if self.as_user:
            os.chown(pwfile, server_user().pw_uid, -1)
        self._run(
            "initdb", "-D", str(self.data), "-U", ADMIN, "-A", "scram-sha-256",
            f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off -c max_connections=50"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def _run(self, tool: str, *args: str) -> None:
        cmd = [*self.as_user, str(self.bindir / tool), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root, timeout=120)
        if done.returncode != 0:
            log = self.root / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr[-2000:]}{tail}")

    def url(
        self,
        user: str = ADMIN,
        password: str | None = ADMIN_PASSWORD,
        database: str = "postgres",
        schema: str | None = None,
    ) -> str:
        auth = quote(user) + (f":{quote(password)}" if password is not None else "")
        url = f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"
        return url + (f"?options=-csearch_path%3D{schema}" if schema else "")

    def admin(self) -> contextlib.AbstractContextManager:  # type: ignore[type-arg]
        import psycopg

        return psycopg.connect(self.url(), autocommit=True)

    def fresh_schema(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with self.admin() as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return name

    def fresh_url(self) -> str:
        """A URL whose tables land in a new, empty schema."""
        return self.url(schema=self.fresh_schema())

    def halt(self) -> None:
        """Stop the server at once, as a crash or a restart would (its files stay)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running(*, durable: bool = False) -> Iterator[PgServer]:
    bindir = bin_dir()
    if bindir is None:
        raise RuntimeError(
            "the PostgreSQL server binaries (initdb, pg_ctl, postgres) are not installed: "
            "`make postgresql` installs the Debian package"
        )
    server = PgServer(bindir, durable=durable)
    try:
        yield server
    finally:
        server.stop()
