"""A throwaway PostgreSQL server for tests and the bench, from the machine's own binaries.

``initdb`` and ``pg_ctl`` in a fresh temporary directory (in memory, /dev/shm, for a server without
fsync when there is room), listening on a free
loopback port, trust authentication (plus one password user, to test that the
password never shows). PostgreSQL refuses to run as root: as root, every
server command runs as the unprivileged ``postgres`` user (``runuser -u
postgres --``), and the directory is handed to that user.

Binaries: $KAMELEOON_TEST_PG_BINDIR when set, else the newest /usr/lib/postgresql/<v>/bin
(Debian's ``postgresql`` package), else ``pg_ctl`` on PATH. None found: tests
that need a server skip, or fail when CI=true (see tests/outbox/pg.py).

``python -m tools.postgres_server`` starts one and prints its URL, until Ctrl-C.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
UNPRIVILEGED_USER = "postgres"
# A server without fsync (the tests', make mutate's) keeps its files in memory when /dev/shm has room.
# On a disk mounted with ``discard``, as this machine's is, deleting the ~50 databases of one test
# session once written back (400 MB) took 19 s, every freed block trimmed; CREATE DATABASE took
# 0.17 s instead of 0.04 s. The bench's server (fsync on) stays on disk, as a deployment's would.
MEMORY_DIR = "/dev/shm"
MEMORY_DIR_ROOM = 2 * 1024**3  # each worker of make test makes ~60 databases of ~8 MB
PASSWORD_USER = "kd_password_user"
PASSWORD = "s3cr3t-Pa55-w0rd"  # the password tests look for in logs and errors

SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
    "log_connections": "off",
    "autovacuum_naptime": "5s",
}


def _version(bindir: str) -> float:
    try:
        return float(bindir.split("/")[-2])
    except ValueError:
        return 0.0


def find_bindir() -> str | None:
    """Where initdb and pg_ctl are, or None."""
    if os.environ.get("KAMELEOON_TEST_PG_BINDIR"):  # when set, the only place looked at
        candidates = [os.environ["KAMELEOON_TEST_PG_BINDIR"]]
    else:
        candidates = sorted(glob.glob(DEBIAN_BINDIRS), key=_version, reverse=True)
        on_path = shutil.which("pg_ctl")
        if on_path:
            candidates.append(os.path.dirname(on_path))
    for directory in candidates:
        if all(os.access(os.path.join(directory, tool), os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One server in its own directory; ``start``/``stop`` may be called again (restart tests)."""

    def __init__(self, bindir: str, *, fsync: bool = False):
        self.bindir = bindir
        self.fsync = fsync
        self.port = 0
        self.root = ""
        self.datadir = ""
        self.logfile = ""
        self._as_user: list[str] = []
        self._databases = 0
        self._file_copy: bool | None = None
        self.attached = False  # another process started this server and owns it (see attach)

    # -- the server -------------------------------------------------------------

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self._as_user, os.path.join(self.bindir, tool), *args],
            check=check,
            capture_output=True,
            text=True,
            cwd=self.root or "/",
        )

    def _parent(self) -> str | None:
        """Where the server's directory goes: MEMORY_DIR for a server without fsync when it has room, else the temp dir."""
        if self.fsync:
            return None
        try:
            room = shutil.disk_usage(MEMORY_DIR).free
        except OSError:
            return None
        return MEMORY_DIR if room >= MEMORY_DIR_ROOM and os.access(MEMORY_DIR, os.W_OK) else None

    def init(self) -> PostgresServer:
        self.root = tempfile.mkdtemp(prefix="kd-postgres-", dir=self._parent())
        if os.geteuid() == 0:  # PostgreSQL will not run as root: hand the directory to its own user
            user = pwd.getpwnam(UNPRIVILEGED_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", UNPRIVILEGED_USER, "--"]
        self.datadir = os.path.join(self.root, "data")
        self.logfile = os.path.join(self.root, "server.log")
        try:
            self._run("initdb", "-D", self.datadir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed: {exc.stderr or exc.stdout}") from None
        self.port = free_port()
        settings = dict(SETTINGS, port=str(self.port), unix_socket_directories=f"'{self.root}'")
        if not self.fsync:  # tests do not survive power loss; a crash of PostgreSQL alone they do
            settings.update(fsync="off", full_page_writes="off")
        if self.has_statement_stats():  # statements counted (pg_stat_statements): what the store sends, per call
            settings.update(shared_preload_libraries="'pg_stat_statements'")
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as hba:
            hba.write(f"local all all trust\nhost all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n")
        return self

    def has_statement_stats(self) -> bool:
        """Whether the contrib module pg_stat_statements is installed with these binaries."""
        result = subprocess.run([os.path.join(self.bindir, "pg_config"), "--pkglibdir"], capture_output=True, text=True)
        return result.returncode == 0 and os.path.exists(os.path.join(result.stdout.strip(), "pg_stat_statements.so"))

    def start(self) -> PostgresServer:
        result = self._run("pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60", "start", check=False)
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {result.stderr or result.stdout}\n{self.log()}")
        return self

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", self.datadir, "status", check=False).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        """``fast``: clean shutdown, connections closed; ``immediate``: a crash, recovered from WAL on start."""
        self._run("pg_ctl", "-D", self.datadir, "-m", mode, "-w", "-t", "60", "stop", check=False)

    def destroy(self) -> None:
        if self.datadir:
            self.stop("immediate")
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        try:
            with open(self.logfile) as file:
                return file.read()
        except OSError:
            return ""

    def handle(self) -> str:
        """What another process needs to use this running server: see attach."""
        return json.dumps({"bindir": self.bindir, "root": self.root, "port": self.port})

    @classmethod
    def attach(cls, handle: str) -> PostgresServer:
        """The running server another process started (its ``handle()``): used, never stopped here."""
        fields = json.loads(handle)
        server = cls(fields["bindir"])
        server.root, server.port, server.attached = fields["root"], fields["port"], True
        server.datadir = os.path.join(server.root, "data")
        server.logfile = os.path.join(server.root, "server.log")
        if os.geteuid() == 0:
            server._as_user = ["runuser", "-u", UNPRIVILEGED_USER, "--"]
        return server

    # -- using it -------------------------------------------------------------

    def url(self, database: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` as the superuser; its output (tuples only, unaligned)."""
        result = self._run(
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-c",
            sql,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr}")
        return result.stdout.strip()

    def create_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; its URL."""
        self._databases += 1
        name = f"{prefix}{os.getpid()}_{self._databases}"
        if self._file_copy is None:  # PostgreSQL 15 copies small databases faster this way
            self._file_copy = int(self.psql("SHOW server_version_num")) >= 150000
        self.psql(f"CREATE DATABASE {name}" + (" STRATEGY FILE_COPY" if self._file_copy else ""))
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database create_database made, closing its connections."""
        self.psql(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def create_password_user(self) -> None:
        self.psql(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{PASSWORD_USER}') THEN "
            f"CREATE ROLE {PASSWORD_USER} LOGIN SUPERUSER PASSWORD '{PASSWORD}'; END IF; END $$"
        )


def start_server(*, fsync: bool = False) -> PostgresServer:
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError("no PostgreSQL binaries (initdb, pg_ctl)")
    server = PostgresServer(bindir, fsync=fsync)
    try:
        return server.init().start()
    except BaseException:
        server.destroy()
        raise


def main() -> int:
    import signal

    server = start_server(fsync=True)
    try:
        print(server.url(), flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
