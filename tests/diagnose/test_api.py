"""The Python API's options: ``make_options`` and ``run`` take the same keywords: the rows of
``DiagnoseSettings`` (or the record itself) and the request flags shared with probe."""

from __future__ import annotations

import socket

import pytest

from lagscope.diagnose import DiagnoseSettings, make_options, run
from lagscope.diagnose.ladder import QUICK
from lagscope.errors import LagscopeError


def test_defaults_are_the_cli_defaults() -> None:
    opts = make_options("http://127.0.0.1:8000/")
    assert (opts.probe.timeout_s, opts.probe.max_time_s) == (10.0, 60.0)
    assert opts.probe.family == socket.AF_UNSPEC
    assert opts.probe.verify_tls
    assert opts.direct is None
    assert not opts.quick


def test_every_choice_reaches_the_options() -> None:
    choices: dict[str, object] = {
        "direct": "http://127.0.0.1:9000/",
        "database": "postgresql://u@127.0.0.1:5432/db",
        "resolve": ["localhost:127.0.0.1"],
        "headers": ["X-A: 1"],
        "ipv4": True,
        "timeout_s": 2.0,
        "max_time_s": 5.0,
        "quick": True,
        "allow_load": True,
        "verify_tls": False,
        "command": ["lagscope", "diagnose"],
    }
    opts = make_options("http://localhost:8000/", **choices)  # type: ignore[arg-type]
    assert opts.direct is not None and opts.direct.target.port == 9000
    assert opts.database is not None and opts.database.params["dbname"] == "db"
    assert opts.probe.resolve and opts.probe.headers == (("X-A", "1"),)
    assert opts.probe.family == socket.AF_INET
    assert (opts.probe.timeout_s, opts.probe.max_time_s) == (2.0, 5.0)
    assert opts.plan == QUICK and opts.allow_load and not opts.probe.verify_tls
    assert opts.command == ("lagscope", "diagnose")


def test_a_misspelt_keyword_is_refused_not_ignored() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'quik'"):
        make_options("http://127.0.0.1:8000/", quik=True)
    with pytest.raises(TypeError, match="'quik'"):
        run("http://127.0.0.1:8000/", quik=True)


def test_bad_input_is_a_one_line_error() -> None:
    with pytest.raises(LagscopeError, match="-4 and -6 exclude each other"):
        make_options("http://127.0.0.1:8000/", ipv4=True, ipv6=True)


def test_a_settings_record_is_the_same_as_its_keywords() -> None:
    record = DiagnoseSettings(quick=True, timeout_s=2.0, direct="http://127.0.0.1:9000/")
    by_record = make_options("http://127.0.0.1:8000/", record)
    by_keywords = make_options(
        "http://127.0.0.1:8000/", quick=True, timeout_s=2, direct="http://127.0.0.1:9000/"
    )
    assert by_record == by_keywords
    with pytest.raises(TypeError, match="not both"):
        make_options("http://127.0.0.1:8000/", record, quick=False)


def test_keywords_are_checked_by_their_rows() -> None:
    with pytest.raises(LagscopeError, match="--timeout must be at least"):
        make_options("http://127.0.0.1:8000/", timeout_s=0)
    with pytest.raises(LagscopeError, match="--quick must be bool"):
        make_options("http://127.0.0.1:8000/", quick="yes")
    with pytest.raises(LagscopeError, match="need --browser"):
        make_options("http://127.0.0.1:8000/", browser_idle_s=20)
    with pytest.raises(LagscopeError, match="--browser-idle must be at most 900"):
        make_options("http://127.0.0.1:8000/", browser=True, browser_idle_s=901)
