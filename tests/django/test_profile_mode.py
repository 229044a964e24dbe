"""Profile mode of the Django middleware behind a real waitress server: a trusted client that
asks gets a profile naming the helper its view spends in; nobody else is sampled."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

import django_test_urls
from lagscope.instrument.profile import PROFILE_HEADER, Profile, hotspots, parse_header
from support.net import get

pytestmark = pytest.mark.usefixtures("unblocked_db")

ASK = {PROFILE_HEADER: "1"}


def fetch(address: tuple[str, int], path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(*address, timeout=30)
    try:
        return get(conn, path, headers)
    finally:
        conn.close()


def body(address: tuple[str, int], path: str, headers: dict[str, str]) -> tuple[str | None, bytes]:
    conn = http.client.HTTPConnection(*address, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.getheader(PROFILE_HEADER), response.read()
    finally:
        conn.close()


@override_settings(LAGSCOPE={"PROFILE": True})
def test_a_trusted_request_that_asks_gets_a_profile_naming_the_helper(django_server: Any) -> None:
    with django_server(threads=1) as address:
        response = fetch(address, "/helper/?s=0.2", ASK)
    value = response.getheader(PROFILE_HEADER)
    assert value is not None
    profile = parse_header(value)
    assert isinstance(profile, Profile)
    top = hotspots(profile)[0]
    assert top.function == "slow_helper"
    assert 150 <= top.ms <= 250
    assert top.file.endswith("django_test_urls.py") and top.line > 0
    assert top.spends_in == ("sleep (<built-in>)",)
    # The middleware's own frames and pyinstrument's are library code or gone.
    assert not any("pyinstrument" in f.file for f in profile.frames)
    assert all(not f.file.startswith("lagscope/") for f in profile.frames if f.app)


@override_settings(LAGSCOPE={"PROFILE": True})
def test_the_n_plus_one_view_names_the_line_issuing_the_queries(django_server: Any) -> None:
    with django_server(threads=1) as address:
        response = fetch(address, "/repeated/?n=400", ASK)
    profile = parse_header(response.getheader(PROFILE_HEADER) or "")
    assert isinstance(profile, Profile)
    top = hotspots(profile)[0]
    assert top.function == "repeated"
    source = Path(django_test_urls.__file__).read_text().splitlines()
    assert "cursor.execute(" in source[top.line - 1]
    assert "SELECT %s WHERE" in source[top.line]  # the statement inside the loop


@override_settings(LAGSCOPE={"PROFILE": True})
def test_without_the_request_header_nothing_is_sampled(django_server: Any) -> None:
    with django_server(threads=1) as address:
        header, text = body(address, "/sampled/", {})
        asked_header, asked_text = body(address, "/sampled/", ASK)
    assert (header, text) == (None, b"not sampled")
    assert asked_text == b"sampled" and asked_header is not None


@override_settings(LAGSCOPE={"PROFILE": True, "TRUST_LOOPBACK": False})
def test_an_untrusted_client_that_asks_is_not_sampled_and_gets_nothing(
    django_server: Any,
) -> None:
    with django_server(threads=1) as address:
        response = fetch(address, "/helper/?s=0.01", ASK)
        header, text = body(address, "/sampled/", ASK)
    assert response.getheader(PROFILE_HEADER) is None
    assert response.getheader("Server-Timing") is None
    assert (header, text) == (None, b"not sampled")


@override_settings(LAGSCOPE={"PROFILE": True, "TRUST_LOOPBACK": False}, INTERNAL_IPS=["127.0.0.1"])
def test_internal_ips_are_trusted_for_profiles(django_server: Any) -> None:
    with django_server(threads=1) as address:
        header, text = body(address, "/sampled/", ASK)
    assert text == b"sampled" and header is not None


def test_profile_mode_is_off_without_debug_or_the_setting(django_server: Any) -> None:
    with django_server(threads=1) as address:
        header, text = body(address, "/sampled/", ASK)
        with override_settings(DEBUG=True):
            debug_header, debug_text = body(address, "/sampled/", ASK)
    assert (header, text) == ("none off", b"not sampled")
    assert debug_text == b"sampled" and isinstance(parse_header(debug_header or ""), Profile)


@pytest.mark.postgres
@override_settings(LAGSCOPE={"PROFILE": True})
def test_queries_on_postgresql_spend_in_psycopg(
    django_server: Any, make_alias: Any, pg_database: dict[str, Any]
) -> None:
    with make_alias("prof", pg_database), django_server(threads=1) as address:
        fetch(address, "/db/prof/?n=1", {})  # the connection, outside the profile
        response = fetch(address, "/db/prof/?n=300", ASK)
        fetch(address, "/close/prof/", {})
    profile = parse_header(response.getheader(PROFILE_HEADER) or "")
    assert isinstance(profile, Profile)
    top = hotspots(profile)[0]
    assert top.function == "queries"
    assert any(step.startswith("Cursor.execute (psycopg/") for step in top.spends_in), top
