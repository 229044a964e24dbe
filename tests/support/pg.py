"""A throwaway PostgreSQL cluster on a free loopback port.

initdb refuses to run as root, so under root (CI, containers) the cluster is owned and run
by the ``postgres`` system user through ``runuser``. Readiness is ``pg_ctl start -w``,
which returns once the server accepts connections.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from support.net import free_port


def find_pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def running_as_root() -> bool:
    """True for root on POSIX (PostgreSQL refuses to run as root: use runuser); never on
    Windows, which has no euid."""
    if sys.platform == "win32":
        return False
    else:  # each branch is type-checked only on its own platform (mypy --platform)
        return os.geteuid() == 0


@dataclass
class PgCluster:
    bindir: Path
    datadir: Path
    sockdir: Path
    port: int = 0
    user: str = "postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if running_as_root():
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            self.user,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )

    def start(self) -> None:
        last = ""
        for _ in range(5):
            if not self.port:
                self.port = free_port()
            opts = (
                f"-c port={self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.sockdir} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
            )
            res = self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-w",
                "-t",
                "60",
                "-l",
                str(self.datadir / "server.log"),
                "-o",
                opts,
                "start",
                check=False,
            )
            if res.returncode == 0:
                return
            last = res.stdout + res.stderr
            self.port = 0
        raise RuntimeError(f"PostgreSQL did not start: {last}")

    def stop(self, mode: str = "fast") -> None:
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-w",
            "-m",
            mode,
            "stop",
            check=False,
        )

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def dsn_for(self, dbname: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        res = self._run(
            str(self.bindir / "psql"),
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
        )
        return res.stdout


def make_cluster() -> PgCluster:
    bindir = find_pg_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb) not found")
    root = Path(tempfile.mkdtemp(prefix="lagscope-pg-"))
    datadir = root / "data"
    sockdir = root / "sock"
    datadir.mkdir()
    sockdir.mkdir()
    if running_as_root():
        shutil.chown(root, "postgres", "postgres")
        for p in (datadir, sockdir):
            shutil.chown(p, "postgres", "postgres")
    cluster = PgCluster(bindir=bindir, datadir=datadir, sockdir=sockdir)
    cluster.init()
    cluster.start()
    return cluster


def destroy_cluster(cluster: PgCluster) -> None:
    cluster.stop("immediate")
    shutil.rmtree(cluster.datadir.parent, ignore_errors=True)
