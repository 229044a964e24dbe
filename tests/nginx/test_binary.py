"""Where lagscope looks for the nginx binary (lagscope.nginx.binary)."""

from __future__ import annotations

from pathlib import Path

from lagscope.nginx.binary import find_nginx, nginx_locations


def test_nginx_is_looked_for_where_the_windows_zip_is_unpacked(tmp_path: Path) -> None:
    for version in ("1.9.0", "1.27.3"):
        (tmp_path / f"nginx-{version}").mkdir()
        (tmp_path / f"nginx-{version}" / "nginx.exe").write_bytes(b"")
    assert nginx_locations("win32", drive=str(tmp_path)) == [
        tmp_path / "nginx" / "nginx.exe",
        tmp_path / "nginx-1.27.3" / "nginx.exe",
        tmp_path / "nginx-1.9.0" / "nginx.exe",
    ]
    assert nginx_locations("linux")[0] == Path("/usr/sbin/nginx")


def test_an_explicit_path_that_is_not_a_file_finds_nothing(tmp_path: Path) -> None:
    assert find_nginx(str(tmp_path / "missing")) is None
    binary = tmp_path / "nginx"
    binary.write_bytes(b"")
    assert find_nginx(str(binary)) == binary
