"""The throwaway PostgreSQL cluster: who runs it, where its binaries are found, and that it
leaves nothing behind (also when initdb fails)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lagscope.demo.pgcluster import (
    PgCluster,
    PgUnavailable,
    RunAs,
    choose_account,
    find_pg_bin,
)


def _accounts(**known: int) -> Callable[[str], RunAs | None]:
    def lookup(name: str) -> RunAs | None:
        return RunAs(name, known[name], known[name]) if name in known else None

    return lookup


def test_not_root_runs_as_itself() -> None:
    assert choose_account(1000, _accounts(postgres=101)) is None
    assert choose_account(None, _accounts()) is None


def test_root_prefers_postgres_then_nobody() -> None:
    both = _accounts(postgres=101, nobody=65534)
    assert choose_account(0, both) == RunAs("postgres", 101, 101)
    only_nobody = _accounts(nobody=65534)
    assert choose_account(0, only_nobody) == RunAs("nobody", 65534, 65534)


def test_root_without_an_unprivileged_account_is_unavailable() -> None:
    with pytest.raises(PgUnavailable, match="refuses to run as root"):
        choose_account(0, _accounts())
    # An account that is root in disguise does not count.
    with pytest.raises(PgUnavailable):
        choose_account(0, _accounts(postgres=0))


def _fake_bindir(root: Path, version: str) -> Path:
    bindir = root / version / "bin"
    bindir.mkdir(parents=True)
    exe = ".exe" if sys.platform.startswith("win") else ""
    for name in ("initdb", "pg_ctl"):
        (bindir / f"{name}{exe}").write_text("")
    return bindir


def test_find_pg_bin_picks_the_newest_install_folder(tmp_path: Path) -> None:
    _fake_bindir(tmp_path, "9")
    newest = _fake_bindir(tmp_path, "16")
    _fake_bindir(tmp_path, "15")
    (tmp_path / "17" / "bin").mkdir(parents=True)  # no binaries: skipped
    found = find_pg_bin(path=str(tmp_path / "nowhere"), globs=[str(tmp_path / "*" / "bin")])
    assert found == newest


def test_find_pg_bin_none_when_nothing_is_installed(tmp_path: Path) -> None:
    assert find_pg_bin(path=str(tmp_path), globs=[str(tmp_path / "*" / "bin")]) is None


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX accounts")
def test_failed_initdb_leaves_no_directory(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    initdb = bindir / "initdb"
    initdb.write_text("#!/bin/sh\necho 'initdb: boom' >&2\nexit 1\n")
    initdb.chmod(0o755)
    parent = tmp_path / "tmp"
    parent.mkdir()
    with pytest.raises(PgUnavailable, match="initdb failed: initdb: boom"):
        PgCluster.create(bindir=bindir, run_as=None, parent_dir=str(parent))
    assert list(parent.iterdir()) == []


@pytest.mark.postgres
def test_real_cluster_starts_answers_and_is_removed(tmp_path: Path) -> None:
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL server binaries not installed")
    with PgCluster.create() as cluster:
        assert cluster.psql("select 6 * 7").strip() == "42"
        root = cluster.root
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            assert cluster.run_as is not None and cluster.run_as.uid != 0
    assert not root.exists()
