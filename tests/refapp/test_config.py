"""The reference app's pure settings: database URLs, data directory, settings dict."""

from __future__ import annotations

from pathlib import Path

import pytest

from lagscope.errors import ExitCode, LagscopeError
from lagscope.refapp.config import build_settings, default_data_dir, parse_database_url
from lagscope.refapp.seed import seed_rows


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    db = parse_database_url(None, tmp_path)
    assert db == {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "demo.sqlite3")}


def test_postgresql_url() -> None:
    db = parse_database_url(
        "postgresql://app:s%40cret@127.0.0.1:5433/items?gssencmode=disable", Path(".")
    )
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"]) == ("items", "app", "s@cret")
    assert (db["HOST"], db["PORT"]) == ("127.0.0.1", "5433")
    assert db["OPTIONS"] == {"gssencmode": "disable"}


def test_sqlite_url() -> None:
    assert parse_database_url("sqlite:////tmp/x.db", Path("."))["NAME"] == "/tmp/x.db"
    assert parse_database_url("sqlite:///x.db", Path("."))["NAME"] == "x.db"


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("mysql://h/db", "unsupported database URL scheme"),
        ("postgresql://h", "no database name"),
        ("postgresql://h:99999/db", "a port is not a number"),
        ("sqlite://", "no file name"),
    ],
)
def test_bad_urls_are_usage_errors(url: str, needle: str) -> None:
    with pytest.raises(LagscopeError) as info:
        parse_database_url(url, Path("."))
    assert info.value.exit_code == ExitCode.USAGE
    assert needle in info.value.one_line()


def test_data_dir_per_platform() -> None:
    home = {"HOME": "/h"}
    assert default_data_dir({"LAGSCOPE_DATA_DIR": "/x", **home}, "linux") == Path("/x")
    assert default_data_dir(home, "linux") == Path("/h/.local/share/lagscope")
    assert default_data_dir({**home, "XDG_DATA_HOME": "/d"}, "linux") == Path("/d/lagscope")
    assert default_data_dir(home, "darwin") == Path("/h/Library/Application Support/lagscope")
    win = {"USERPROFILE": "C:/Users/u", "LOCALAPPDATA": "C:/Users/u/AppData/Local"}
    assert default_data_dir(win, "win32") == Path("C:/Users/u/AppData/Local/lagscope")


def test_settings_install_the_middleware_first_and_keep_common_middleware(
    tmp_path: Path,
) -> None:
    settings = build_settings(None, tmp_path)
    assert settings["MIDDLEWARE"][0] == "lagscope.django.middleware.ServerTimingMiddleware"
    assert "django.middleware.common.CommonMiddleware" in settings["MIDDLEWARE"]
    assert "lagscope.django" in settings["INSTALLED_APPS"]
    assert settings["DEBUG"] is False  # cached templates, no query log
    plain = build_settings(None, tmp_path, servertiming=False)
    assert "lagscope.django" not in plain["INSTALLED_APPS"]


def test_seed_rows_are_deterministic_and_unique() -> None:
    rows = seed_rows(500)
    assert rows == seed_rows(500)
    assert len({r["sku"] for r in rows}) == 500
    assert any("&" in r["name"] for r in rows)  # escaping gets exercised


def test_static_files_through_staticfiles_and_whitenoise(tmp_path: Path) -> None:
    settings = build_settings(None, tmp_path)
    assert "django.contrib.staticfiles" in settings["INSTALLED_APPS"]
    middleware = settings["MIDDLEWARE"]
    security = middleware.index("django.middleware.security.SecurityMiddleware")
    assert middleware[security + 1] == "whitenoise.middleware.WhiteNoiseMiddleware"
    assert settings["STATIC_URL"] == "/static/"
    assert settings["WHITENOISE_USE_FINDERS"] is True


def test_the_static_files_are_small_and_the_projects_own() -> None:
    root = Path(__file__).parents[2] / "src" / "lagscope" / "refapp" / "static" / "refapp"
    files = sorted(p for p in root.rglob("*") if p.is_file())
    kinds = [p.suffix for p in files]
    assert (kinds.count(".css"), kinds.count(".js"), kinds.count(".svg")) == (3, 3, 4)
    assert all(p.stat().st_size < 2048 for p in files)
