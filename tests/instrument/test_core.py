"""The pure instrumentation core: request-start parsing, connection identity, trust,
options and metric building. No sockets, no Django."""

from __future__ import annotations

import gc
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lagscope.instrument as core
from lagscope.instrument import (
    ConnectionTracker,
    Disclosure,
    InstrumentOptions,
    OptionsError,
    RequestTiming,
    build_header,
    build_metrics,
    decide,
    is_loopback,
    options_from_mapping,
    parse_request_start,
    queue_ms,
    settings_rows,
)
from lagscope.instrument.servertiming import parse

NOW = 1_764_000_000.5  # a wall-clock instant in 2025


def test_public_api_is_explicit() -> None:
    for name in core.__all__:
        assert hasattr(core, name), name


# -- X-Request-Start -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("t=1764000000.250", 1764000000.25),  # nginx ${msec}
        ("1764000000.250", 1764000000.25),
        ("t=1764000000250", 1764000000.25),  # milliseconds
        ("t=1764000000250000", 1764000000.25),  # microseconds
        ("  t= 1764000000 ", 1764000000.0),
    ],
)
def test_request_start_units(raw: str, expected: float) -> None:
    assert parse_request_start(raw) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "raw", ["", "t=", "t=abc", "t=-5", "t=0", "t=nan", "t=inf", "t=1e30", "x" * 40]
)
def test_request_start_rejects_garbage(raw: str) -> None:
    assert parse_request_start(raw) is None


@given(st.floats(min_value=1e9, max_value=4e9))
def test_request_start_same_instant_in_every_unit(epoch_s: float) -> None:
    for text, tolerance in (
        (f"t={epoch_s:.3f}", 1e-3),
        (f"t={round(epoch_s * 1e3)}", 1e-3),
        (f"t={round(epoch_s * 1e6)}", 1e-5),
    ):
        parsed = parse_request_start(text)
        assert parsed is not None
        assert abs(parsed - epoch_s) <= tolerance


def test_queue_ms_from_proxy_start() -> None:
    assert queue_ms(f"t={NOW - 0.2:.3f}", NOW, 600) == pytest.approx(200, abs=1)
    # Clock skew: a start slightly in the future means "no measurable queue".
    assert queue_ms(f"t={NOW + 0.05:.3f}", NOW, 600) == 0.0
    # Hours off is a clock problem, not a queue.
    assert queue_ms(f"t={NOW - 7200:.3f}", NOW, 600) is None
    assert queue_ms("garbage", NOW, 600) is None


# -- connection identity -------------------------------------------------------------


class _Channel:
    """Stands in for a server's connection object (waitress's channel)."""


def test_tracker_by_object_identity() -> None:
    tracker = ConnectionTracker()
    a, b = _Channel(), _Channel()
    assert tracker.first_request("127.0.0.1", "5000", a, 0.0) is True
    assert tracker.first_request("127.0.0.1", "5000", a, 1.0) is False
    assert tracker.first_request("127.0.0.1", "5000", b, 1.0) is True
    del a
    gc.collect()
    # The weak set forgets closed connections: memory follows the live ones.
    assert len(tracker._objects) == 1


def test_tracker_by_address_and_idle_expiry() -> None:
    tracker = ConnectionTracker(max_entries=10, idle_s=300)
    assert tracker.first_request("10.0.0.1", 40000, None, 0.0) is True
    assert tracker.first_request("10.0.0.1", "40000", None, 100.0) is False
    assert tracker.first_request("10.0.0.1", "40001", None, 100.0) is True
    # Idle longer than any server keeps a connection: the same port is a new connection.
    assert tracker.first_request("10.0.0.1", "40000", None, 500.0) is True


def test_tracker_memory_is_bounded() -> None:
    tracker = ConnectionTracker(max_entries=100, idle_s=300)
    for port in range(10_000):
        tracker.first_on_address(("10.0.0.1", port), 0.0)
    assert len(tracker._last_seen_s) <= 101
    # The most recent survive, the oldest were evicted.
    assert tracker.first_on_address(("10.0.0.1", 9999), 1.0) is False
    assert tracker.first_on_address(("10.0.0.1", 0), 1.0) is True


def test_tracker_without_identity_says_unknown() -> None:
    tracker = ConnectionTracker()
    assert tracker.first_request(None, None, None, 0.0) is None
    assert tracker.first_request("127.0.0.1", None, None, 0.0) is None
    assert tracker.first_request("127.0.0.1", "", None, 0.0) is None
    with pytest.raises(ValueError, match="max_entries"):
        ConnectionTracker(max_entries=0)


def test_tracker_counts_each_connection_once_across_threads() -> None:
    tracker = ConnectionTracker()
    firsts: list[bool | None] = []
    lock = threading.Lock()

    def worker() -> None:
        for port in range(500):
            result = tracker.first_request("10.0.0.2", port, None, 0.0)
            with lock:
                firsts.append(result)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert firsts.count(True) == 500


# -- trust ---------------------------------------------------------------------------


def _decide(**over: object) -> Disclosure:
    kwargs: dict[str, object] = {
        "debug": False,
        "peer": "203.0.113.9",
        "forwarded_for": None,
        "real_ip": None,
        "internal_ips": (),
        "trust_loopback": True,
        "secret": "",
        "presented_secret": None,
        "untrusted": Disclosure.NONE,
    }
    kwargs.update(over)
    return decide(**kwargs)  # type: ignore[arg-type]


def test_trust_rules() -> None:
    assert _decide() is Disclosure.NONE
    assert _decide(untrusted=Disclosure.TOTAL) is Disclosure.TOTAL
    assert _decide(debug=True) is Disclosure.FULL
    assert _decide(peer="127.0.0.1") is Disclosure.FULL
    assert _decide(peer="::1") is Disclosure.FULL
    assert _decide(peer="::ffff:127.0.0.5") is Disclosure.FULL
    assert _decide(peer="127.0.0.1", trust_loopback=False) is Disclosure.NONE
    assert _decide(internal_ips=("203.0.113.9",)) is Disclosure.FULL
    assert _decide(internal_ips=None) is Disclosure.NONE
    assert _decide(secret="s3cret", presented_secret="s3cret") is Disclosure.FULL
    assert _decide(secret="s3cret", presented_secret="wrong") is Disclosure.NONE
    # An empty secret never matches an empty header.
    assert _decide(secret="", presented_secret="") is Disclosure.NONE
    assert _decide(peer=None) is Disclosure.NONE
    assert _decide(peer="not-an-ip") is Disclosure.NONE


def test_forwarded_clients_must_be_trusted_too() -> None:
    # Behind a local proxy every peer is loopback; the real client decides.
    assert _decide(peer="127.0.0.1", forwarded_for="203.0.113.9") is Disclosure.NONE
    assert _decide(peer="127.0.0.1", real_ip="203.0.113.9") is Disclosure.NONE
    assert _decide(peer="127.0.0.1", forwarded_for="127.0.0.1, 127.0.0.1") is Disclosure.FULL
    # A forged hop anywhere in the chain only lowers trust.
    assert _decide(peer="127.0.0.1", forwarded_for="127.0.0.1, 198.51.100.1") is Disclosure.NONE
    # A forged loopback header from an untrusted peer raises nothing.
    assert _decide(forwarded_for="127.0.0.1", real_ip="127.0.0.1") is Disclosure.NONE


def test_is_loopback() -> None:
    assert is_loopback("127.255.0.1")
    assert is_loopback("[::1]")
    assert not is_loopback("10.0.0.1")
    assert not is_loopback("")
    assert not is_loopback("localhost")  # names are not addresses


# -- options -------------------------------------------------------------------------


def test_options_defaults_and_validation() -> None:
    assert options_from_mapping({}) == InstrumentOptions()
    opts = options_from_mapping({"UNTRUSTED": "total", "secret": "x", "MAX_QUEUE_S": 5})
    assert (opts.untrusted, opts.secret, opts.max_queue_s) == ("total", "x", 5)
    with pytest.raises(OptionsError, match="unknown key 'NOPE'"):
        options_from_mapping({"NOPE": 1})
    with pytest.raises(OptionsError, match="ENABLED must be bool"):
        options_from_mapping({"ENABLED": "yes"})
    with pytest.raises(OptionsError, match="CONNECTION_TABLE_SIZE must be int"):
        options_from_mapping({"CONNECTION_TABLE_SIZE": True})
    with pytest.raises(OptionsError, match="UNTRUSTED must be one of"):
        options_from_mapping({"UNTRUSTED": "all"})
    with pytest.raises(OptionsError, match="at least 1"):
        options_from_mapping({"CONNECTION_TABLE_SIZE": 0})
    with pytest.raises(OptionsError, match="must be a dict"):
        options_from_mapping(["ENABLED"])
    with pytest.raises(OptionsError, match="MAX_QUEUE_S must be a finite number"):
        options_from_mapping({"MAX_QUEUE_S": float("nan")})
    with pytest.raises(OptionsError, match="CONNECTION_IDLE_S must be above 0"):
        InstrumentOptions(connection_idle_s=0)


def test_settings_rows_cover_every_option() -> None:
    rows = settings_rows()
    assert [r[0] for r in rows] == [f.upper() for f in InstrumentOptions.__dataclass_fields__]
    assert all(doc for _, _, doc in rows)


# -- metrics -------------------------------------------------------------------------


def _full_timing() -> RequestTiming:
    t = RequestTiming(10.0)
    t.view_start_s = 10.001
    t.tpl_start_s = t.view_end_s = 10.005
    t.tpl_end_s = 10.008
    t.add_connect(0.004, 10.002)
    t.add_checkout(0.001, 10.0025)
    t.add_query(0.0005, 10.003)
    t.add_query(0.0005, 10.004)
    t.first_on_connection = True
    t.queue_ms = 12.5
    t.thread = "waitress-0"
    t.end_s = 10.010
    return t


def test_metrics_full() -> None:
    metrics = {m.name: m for m in build_metrics(_full_timing(), Disclosure.FULL)}
    assert list(metrics) == [
        "total",
        "view",
        "tpl",
        "db",
        "dbconn",
        "dbpool",
        "conn",
        "queue",
        "thread",
    ]
    assert metrics["total"].dur_ms == pytest.approx(10.0)
    assert metrics["view"].dur_ms == pytest.approx(4.0)
    assert metrics["tpl"].dur_ms == pytest.approx(3.0)
    assert metrics["db"].dur_ms == pytest.approx(1.0)
    assert metrics["db"].desc == "2 queries"
    assert metrics["dbconn"].dur_ms == pytest.approx(4.0)
    assert metrics["dbconn"].desc == "1 connect"
    assert metrics["dbpool"].dur_ms == pytest.approx(1.0)
    assert metrics["dbpool"].desc == "1 checkout"
    assert (metrics["conn"].dur_ms, metrics["conn"].desc) == (None, "new")
    assert metrics["queue"].dur_ms == 12.5
    assert metrics["thread"].desc == "waitress-0"


def test_metrics_levels_and_round_trip() -> None:
    timing = _full_timing()
    assert build_metrics(timing, Disclosure.NONE) == ()
    assert build_header(timing, Disclosure.NONE) is None
    assert [m.name for m in build_metrics(timing, Disclosure.TOTAL)] == ["total"]
    header = build_header(timing, Disclosure.FULL)
    assert header is not None
    parsed = {m.name: m for m in parse(header)}
    assert parsed["db"].desc == "2 queries"
    assert parsed["conn"].desc == "new"
    assert parsed["total"].dur_ms == pytest.approx(10.0, abs=1e-3)


def test_metrics_minimal_request() -> None:
    timing = RequestTiming(1.0)
    assert build_metrics(timing, Disclosure.FULL) == ()  # not finished yet
    timing.end_s = 1.002
    timing.first_on_connection = False
    names = [(m.name, m.desc) for m in build_metrics(timing, Disclosure.FULL)]
    # No db, dbconn, view or tpl when nothing happened: "absent" means "did not occur".
    assert names == [("total", None), ("conn", "reused")]
    assert "RequestTiming" in repr(timing)
