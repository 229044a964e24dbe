"""A throwaway PostgreSQL cluster: ``initdb`` + ``pg_ctl`` in a temp dir on a free loopback port.

This module owns finding the server binaries (PATH, then the usual install folders), the
root rule (PostgreSQL refuses to run as root, so under root the cluster is owned and run by
an unprivileged account, chosen by :func:`choose_account`), start-up with a readiness
signal (``pg_ctl start -w`` returns once the server accepts connections) and removal
(stop, then delete the directory). It never touches a cluster it did not create: the data
directory is a fresh temp dir, trust authentication is bound to 127.0.0.1 and a private
socket directory.

Used by ``lagscope demo`` at run time and by the test suite's ``pg_cluster`` fixture.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lagscope.netutil import free_port
from lagscope.procgroup import NEW_GROUP_FLAGS
from lagscope.stopping import ClosedOnExit

__all__ = [
    "PG_BIN_GLOBS",
    "RUN_AS_CANDIDATES",
    "PgCluster",
    "PgUnavailable",
    "RunAs",
    "choose_account",
    "find_pg_bin",
    "lookup_account",
]

# Where PostgreSQL server binaries live when they are not on PATH (Debian/Ubuntu, source
# builds, Homebrew, Postgres.app, the EDB Windows installer).
PG_BIN_GLOBS: tuple[str, ...] = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
    "/Applications/Postgres.app/Contents/Versions/*/bin",
    "C:/Program Files/PostgreSQL/*/bin",
)

# Unprivileged accounts that may own a throwaway cluster when we run as root, in order of
# preference: the packaged server's own account, then the traditional nobody.
RUN_AS_CANDIDATES: tuple[str, ...] = ("postgres", "nobody")

_EXE = ".exe" if sys.platform.startswith("win") else ""
# initdb + first start of an empty cluster take ~1.5 s here; a loaded CI box needs more.
_COMMAND_TIMEOUT_S = 120.0


class PgUnavailable(Exception):
    """No throwaway cluster can be had here; the message says why in one line."""


@dataclass(frozen=True)
class RunAs:
    """The account that owns and runs the cluster (only when we are root)."""

    name: str
    uid: int
    gid: int


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


def find_pg_bin(path: str | None = None, globs: Iterable[str] = PG_BIN_GLOBS) -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first (``path`` overrides the
    PATH variable), then ``globs``, newest version first. None when nothing is found."""
    found = shutil.which("initdb", path=path)
    if found:
        bindir = Path(found).resolve().parent
        if (bindir / f"pg_ctl{_EXE}").exists():
            return bindir
    candidates: list[str] = []
    for pattern in globs:
        candidates.extend(glob.glob(pattern))
    for bindir_text in sorted(candidates, key=_version_key, reverse=True):
        bindir = Path(bindir_text)
        if (bindir / f"initdb{_EXE}").exists() and (bindir / f"pg_ctl{_EXE}").exists():
            return bindir
    return None


def lookup_account(name: str) -> RunAs | None:
    """The account ``name`` from the system's user database, or None (always None on
    Windows, which has no root problem)."""
    if sys.platform == "win32":
        return None
    else:  # each branch is type-checked only on its own platform (mypy --platform)
        import pwd

        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return RunAs(name, entry.pw_uid, entry.pw_gid)


def choose_account(
    euid: int | None,
    lookup: Callable[[str], RunAs | None] = lookup_account,
    candidates: Sequence[str] = RUN_AS_CANDIDATES,
) -> RunAs | None:
    """Who runs the cluster: None means "ourselves" (not root, or no euid on Windows).

    Under root, the first candidate account that exists and is not root itself. Raises
    :class:`PgUnavailable` when we are root and no such account exists.
    """
    if euid is None or euid != 0:
        return None
    for name in candidates:
        account = lookup(name)
        if account is not None and account.uid != 0:
            return account
    raise PgUnavailable(
        "PostgreSQL refuses to run as root and no unprivileged account "
        f"({', '.join(candidates)}) exists to run it"
    )


def _current_euid() -> int | None:
    if sys.platform == "win32":
        return None
    else:
        return os.geteuid()


def _give(path: Path, account: RunAs) -> None:
    if sys.platform != "win32":  # accounts are only chosen on POSIX (root)
        os.chown(path, account.uid, account.gid)


class PgCluster(ClosedOnExit):
    """A throwaway cluster. ``PgCluster.create()`` (or ``with PgCluster.create() as c:``)
    makes the temp dir, runs initdb and starts the server; :meth:`remove` stops it and
    deletes everything. ``dsn`` is a trust-auth URL for the ``postgres`` superuser.
    """

    def __init__(
        self,
        bindir: Path,
        root: Path,
        run_as: RunAs | None = None,
        user: str = "postgres",
        port: int = 0,
    ) -> None:
        self.bindir = bindir
        self.root = root
        self.datadir = root / "data"
        self.sockdir = root / "sock"
        self.logfile = root / "server.log"
        self.run_as = run_as
        self.user = user
        self.port = port

    def __repr__(self) -> str:
        return f"<PgCluster {self.root} port={self.port} run_as={self.run_as}>"

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        bindir: Path | None = None,
        run_as: RunAs | str | None = "auto",
        parent_dir: str | None = None,
    ) -> PgCluster:
        """Find binaries (unless given), make a fresh temp dir, initdb, start.

        Raises :class:`PgUnavailable` when binaries or an account are missing, or when
        initdb/start fail; the temp dir is gone again in every failure case.
        """
        if bindir is None:
            bindir = find_pg_bin()
            if bindir is None:
                raise PgUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")
        account = choose_account(_current_euid()) if run_as == "auto" else run_as
        assert not isinstance(account, str)
        # The directory is made inside the try: a Ctrl+C right after it exists (the demo's
        # "database: starting" line is when a user presses it) must not leave it behind.
        cluster: PgCluster | None = None
        root: Path | None = None
        try:
            root = Path(tempfile.mkdtemp(prefix="lagscope-pg-", dir=parent_dir))
            cluster = cls(bindir, root, account)
            cluster.datadir.mkdir()
            cluster.sockdir.mkdir()
            if account is not None:
                for p in (root, cluster.datadir, cluster.sockdir):
                    _give(p, account)
            cluster.init()
            cluster.start()
        except BaseException:
            if cluster is not None:
                cluster.remove()
            elif root is not None:
                shutil.rmtree(root, ignore_errors=True)
            raise
        return cluster

    def _command(self, args: Sequence[str], timeout_s: float, check: bool = True) -> str:
        kwargs: dict[str, object] = {}
        if self.run_as is not None:
            kwargs = {"user": self.run_as.uid, "group": self.run_as.gid, "extra_groups": []}
        # Output goes to files, not pipes: on Windows the server that pg_ctl starts
        # inherits pipe handles and a reader would wait for it to exit.
        out_path, err_path = self.root / "command.out", self.root / "command.err"
        with (
            out_path.open("w+", encoding="utf-8", errors="replace") as out,
            err_path.open("w+", encoding="utf-8", errors="replace") as err,
        ):
            if self.run_as is not None:
                for p in (out_path, err_path):
                    _give(p, self.run_as)
            proc = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.root,
                # Its own group (a session on POSIX): a terminal Ctrl+C must not kill pg_ctl
                # half-way through starting a server that would then outlive us.
                creationflags=NEW_GROUP_FLAGS,
                start_new_session=True,
                **kwargs,  # type: ignore[call-overload]
            )
            interrupted: BaseException | None = None
            while True:
                try:
                    code = proc.wait(timeout_s)
                    break
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    raise PgUnavailable(
                        f"{Path(args[0]).name} did not finish within {timeout_s:g} s"
                    ) from None
                except KeyboardInterrupt as exc:
                    # Let the short command finish so that what it started can be
                    # stopped; the interrupt is re-raised right after.
                    interrupted = exc
            out.seek(0)
            err.seek(0)
            text, errors = out.read(), err.read()
        if interrupted is not None:
            raise interrupted
        if check and code != 0:
            lines = (errors.strip() or text.strip()).splitlines()
            raise PgUnavailable(f"{Path(args[0]).name} failed: {' '.join(lines[-2:]) or code}")
        return text

    def _bin(self, name: str) -> str:
        return str(self.bindir / f"{name}{_EXE}")

    def init(self) -> None:
        self._command(
            [
                self._bin("initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.user,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            _COMMAND_TIMEOUT_S,
        )

    def start(self) -> None:
        last: PgUnavailable | None = None
        for _ in range(5):
            if not self.port:
                self.port = free_port()
            opts = (
                f"-c port={self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.sockdir.as_posix()} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
            )
            try:
                self._command(
                    [
                        self._bin("pg_ctl"),
                        "-D",
                        str(self.datadir),
                        "-w",
                        "-t",
                        "60",
                        "-l",
                        str(self.logfile),
                        "-o",
                        opts,
                        "start",
                    ],
                    _COMMAND_TIMEOUT_S,
                )
                return
            except PgUnavailable as exc:
                last = exc
                self.port = 0
        assert last is not None
        raise last

    @property
    def running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._command(
                [self._bin("pg_ctl"), "-D", str(self.datadir), "-w", "-m", mode, "stop"],
                _COMMAND_TIMEOUT_S,
                check=False,
            )

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop the server (immediately) and delete the whole temp dir. Idempotent."""
        if not self.root.exists():
            return
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def close(self) -> None:
        """What the end of a ``with`` block does: :meth:`remove`."""
        self.remove()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, dbname: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run one statement with ``psql -Atc`` and return its output (tests, scripts)."""
        return self._command(
            [
                self._bin("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                dbname,
                "-Atc",
                sql,
            ],
            _COMMAND_TIMEOUT_S,
        )


def remove_quietly(cluster: PgCluster | None) -> None:
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.remove()
