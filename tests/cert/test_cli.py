"""``lagscope cert`` end to end in a throwaway home and data directory (real NSS certutil)."""

from __future__ import annotations

import shutil
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lagscope.cert.files import cert_files, ensure
from lagscope.cli import main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("LAGSCOPE_DATA_DIR", str(tmp_path / "data"))
    return home


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["cert", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_create_keeps_the_keys_private_and_is_idempotent(home: Path, tmp_path: Path) -> None:
    code, out = _run("create")
    assert code == 0 and out.count("(created)") == 2
    files = cert_files(tmp_path / "data")
    assert stat.S_IMODE(files.directory.stat().st_mode) == 0o700
    for key in (files.ca_key, files.leaf_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = files.ca_cert.read_bytes(), files.leaf_cert.read_bytes()
    code, out = _run("create")
    assert code == 0 and out.count("(kept)") == 2
    assert (files.ca_cert.read_bytes(), files.leaf_cert.read_bytes()) == before
    # nothing else was written next to them (no temporary file left behind)
    assert sorted(p.name for p in files.directory.iterdir()) == [
        "localhost-key.pem",
        "localhost.pem",
        "rootCA-key.pem",
        "rootCA.pem",
    ]


def test_a_leaf_from_another_ca_is_made_again(home: Path, tmp_path: Path) -> None:
    files = cert_files(tmp_path / "data")
    first = ensure(files)
    files.ca_cert.unlink()
    files.ca_key.unlink()
    second = ensure(files)
    assert second.ca_created and second.leaf_created
    assert second.ca != first.ca
    second.leaf.verify_directly_issued_by(second.ca)  # raises if signed by the old CA


@pytest.mark.skipif(shutil.which("certutil") is None, reason="NSS certutil not installed")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux NSS stores")
def test_install_status_uninstall(home: Path) -> None:
    code, out = _run("status")
    assert code == 0 and "no CA yet" in out
    code, out = _run("install")
    assert code == 0, out
    assert f"trusted in NSS {home}/.pki/nssdb" in out
    code, out = _run("status")
    assert f"trusted      NSS {home}/.pki/nssdb" in out
    assert "not trusted  system anchors" in out  # never touched without --system
    code, out = _run("uninstall")
    assert code == 0 and f"removed from NSS {home}/.pki/nssdb" in out
    code, out = _run("status")
    assert f"not trusted  NSS {home}/.pki/nssdb" in out
    code, out = _run("uninstall")
    assert code == 0 and "not in NSS" in out
