"""Pure tests: fault plans, selection, release arithmetic, config parsing, the log format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

import lagscope.inject as inject_pkg
from lagscope.errors import ExitCode, LagscopeError
from lagscope.inject.config import (
    ProxySettings,
    describe_fault,
    load_routes_toml,
    parse_address,
    parse_fault,
    parse_route,
)
from lagscope.inject.log import (
    ConnectionRecord,
    Counters,
    FlowRecord,
    record_from_json,
    record_to_json,
)
from lagscope.inject.plan import (
    Bandwidth,
    BlackHole,
    ConnectionTax,
    DialDelay,
    Direction,
    Fault,
    FirstChunkDelay,
    FlowPlan,
    Latency,
    Reset,
    Select,
    SlowClose,
    chunk_release_s,
    jitter_rng,
    paced_start_s,
    plan_connection,
    selected_indices,
    selects,
)


def test_public_api_is_explicit() -> None:
    for name in inject_pkg.__all__:
        assert hasattr(inject_pkg, name), name
    assert "Injector" in inject_pkg.__all__
    assert "Route" in inject_pkg.__all__


# -- selection -----------------------------------------------------------------------------


def test_select_all_first_every() -> None:
    assert selected_indices(Select(), 5) == [0, 1, 2, 3, 4]
    assert selected_indices(Select(first=3), 10) == [0, 1, 2]
    assert selected_indices(Select(first=0), 10) == []
    assert selected_indices(Select(every=3), 10) == [2, 5, 8]
    assert selected_indices(Select(every=1), 3) == [0, 1, 2]
    # Conditions combine with AND.
    assert selected_indices(Select(first=6, every=2), 10) == [1, 3, 5]


def test_seeded_probability_is_reproducible_and_seed_dependent() -> None:
    a = selected_indices(Select(probability=0.3, seed=42), 1000)
    b = selected_indices(Select(probability=0.3, seed=42), 1000)
    c = selected_indices(Select(probability=0.3, seed=43), 1000)
    assert a == b
    assert a != c
    assert 230 <= len(a) <= 370  # binomial(1000, 0.3): mean 300, sd ~14.5
    # Deciding index i does not depend on having decided the others (accept order).
    assert [i for i in reversed(range(1000)) if selects(Select(probability=0.3, seed=42), i)] == a[
        ::-1
    ]
    assert selected_indices(Select(probability=0.0, seed=1), 100) == []
    assert selected_indices(Select(probability=1.0, seed=1), 100) == list(range(100))


@pytest.mark.parametrize(
    "kwargs", [{"first": -1}, {"every": 0}, {"probability": 1.5}, {"probability": -0.1}]
)
def test_select_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        Select(**kwargs)  # type: ignore[arg-type]


# -- plans -----------------------------------------------------------------------------------


def test_no_faults_is_passthrough() -> None:
    plan = plan_connection([], 0)
    assert plan.c2u.passthrough and plan.u2c.passthrough
    assert not plan.reset_at_connect and plan.dial_delay_ms == 0 and plan.applied == ()


def test_plan_resolves_directions_and_selection() -> None:
    faults: list[Fault] = [
        ConnectionTax(delay_ms=300, select=Select(first=2)),
        Latency(delay_ms=20, jitter_ms=5, direction=Direction.U2C, seed=9),
        Bandwidth(bytes_per_s=1000, direction=Direction.C2U),
        Bandwidth(bytes_per_s=500),
        SlowClose(delay_ms=100, direction=Direction.U2C),
        DialDelay(delay_ms=50, select=Select(every=2)),
    ]
    p0 = plan_connection(faults, 0)
    assert p0.tax_ms == 300 and p0.c2u.tax and p0.u2c.tax
    assert p0.dial_delay_ms == 0
    assert p0.u2c.latency_ms == 20 and p0.u2c.jitter_ms == 5 and p0.jitter_seed == 9
    assert p0.c2u.latency_ms == 0 and not p0.c2u.per_chunk and p0.u2c.per_chunk
    assert p0.c2u.bytes_per_s == 500 and p0.u2c.bytes_per_s == 500  # the lowest cap wins
    assert p0.u2c.slow_close_ms == 100 and p0.c2u.slow_close_ms == 0
    p1 = plan_connection(faults, 1)
    assert p1.dial_delay_ms == 50
    p2 = plan_connection(faults, 2)
    assert p2.tax_ms == 0 and not p2.c2u.tax
    assert "ConnectionTax" not in p2.applied and "Latency" in p2.applied


def test_plan_reset_and_black_hole() -> None:
    assert plan_connection([Reset()], 0).reset_at_connect
    p = plan_connection([Reset(after_bytes=100, direction=Direction.U2C), Reset(after_bytes=50)], 0)
    assert not p.reset_at_connect
    assert p.u2c.reset_after_bytes == 50 and p.c2u.reset_after_bytes == 50
    assert plan_connection([BlackHole()], 0).black_hole
    half = plan_connection([BlackHole(direction=Direction.C2U)], 0)
    assert half.c2u.black_hole and not half.u2c.black_hole and not half.black_hole


def test_first_chunk_delay_defaults_to_upstream_to_client() -> None:
    p = plan_connection([FirstChunkDelay(delay_ms=40)], 0)
    assert p.u2c.first_delay_ms == 40 and p.c2u.first_delay_ms == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: ConnectionTax(delay_ms=-1),
        lambda: Latency(delay_ms=1, jitter_ms=-1),
        lambda: Bandwidth(bytes_per_s=0),
        lambda: Reset(after_bytes=-5),
    ],
)
def test_faults_reject_negative_values(make: object) -> None:
    with pytest.raises(ValueError, match="must be"):
        make()  # type: ignore[operator]


# -- release arithmetic ----------------------------------------------------------------------


def test_latency_counts_from_read_time_and_does_not_accumulate() -> None:
    plan = FlowPlan(latency_ms=100)
    # Five chunks read 10 ms apart each leave 100 ms after their own read, not 100 ms
    # after the previous chunk left.
    prev = 0.0
    releases = []
    for i in range(5):
        prev = chunk_release_s(i * 0.010, plan, 0.5, prev)
        releases.append(prev)
    assert releases == pytest.approx([0.100, 0.110, 0.120, 0.130, 0.140])


def test_jitter_bounds_and_order_preserved() -> None:
    plan = FlowPlan(latency_ms=50, jitter_ms=20)
    assert chunk_release_s(1.0, plan, 0.0, 0.0) == pytest.approx(1.030)
    assert chunk_release_s(1.0, plan, 0.999999, 0.0) == pytest.approx(1.070, abs=1e-6)
    # A chunk never overtakes the one before it.
    assert chunk_release_s(1.0, plan, 0.0, 1.065) == 1.065
    # Jitter larger than the delay is clipped at zero delay.
    assert chunk_release_s(2.0, FlowPlan(latency_ms=5, jitter_ms=50), 0.0, 0.0) == 2.0
    a = [jitter_rng(3, 7, "u2c").random() for _ in range(3)]
    assert a == [jitter_rng(3, 7, "u2c").random() for _ in range(3)]
    assert a != [jitter_rng(3, 8, "u2c").random() for _ in range(3)]


def test_bandwidth_pacing() -> None:
    start, free = paced_start_s(0.0, 1000, 10_000, 0.0)
    assert start == 0.0 and free == pytest.approx(0.1)
    start, free = paced_start_s(0.05, 1000, 10_000, free)
    assert start == pytest.approx(0.1) and free == pytest.approx(0.2)
    start, _ = paced_start_s(0.5, 1000, 10_000, free)
    assert start == 0.5  # an idle link does not bank credit


# -- config ----------------------------------------------------------------------------------


def test_parse_fault_specs() -> None:
    assert parse_fault("tax:300") == ConnectionTax(delay_ms=300)
    assert parse_fault("tax:delay_ms=300,direction=c2u,first_n=2") == ConnectionTax(
        delay_ms=300, direction=Direction.C2U, select=Select(first=2)
    )
    assert parse_fault("latency:20,jitter_ms=5,direction=u2c,probability=0.5,seed=7") == Latency(
        delay_ms=20,
        jitter_ms=5,
        direction=Direction.U2C,
        seed=7,
        select=Select(probability=0.5, seed=7),
    )
    assert parse_fault("reset") == Reset()
    assert parse_fault("reset:1024") == Reset(after_bytes=1024)
    assert parse_fault("blackhole:direction=c2u") == BlackHole(direction=Direction.C2U)
    assert parse_fault("bandwidth:100000,every=3") == Bandwidth(
        bytes_per_s=100000, select=Select(every=3)
    )
    assert parse_fault("slow-close:250") == SlowClose(delay_ms=250)
    assert parse_fault("dial:2000") == DialDelay(delay_ms=2000)
    assert parse_fault("first:40") == FirstChunkDelay(delay_ms=40)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("nope:1", "unknown fault 'nope'"),
        ("tax:abc", "bad value for delay_ms"),
        ("tax:300,colour=red", "unknown key 'colour'"),
        ("tax:direction=sideways", "bad value for direction"),
        ("tax:-5", "delay_ms must be >= 0"),
        ("reset:1.5", "bad value for after_bytes"),
        ("blackhole:5", "expected key=value"),
        ("tax:300,probability=2", "probability must be within"),
        ("tax:nan", "bad value for delay_ms"),
        ("latency:inf", "bad value for delay_ms"),
        ("slow-close:inf", "bad value"),
    ],
)
def test_parse_fault_errors_are_one_line_usage_errors(spec: str, needle: str) -> None:
    with pytest.raises(LagscopeError) as info:
        parse_fault(spec)
    assert info.value.exit_code == ExitCode.USAGE
    assert needle in info.value.one_line()
    assert "\n" not in info.value.one_line()


def test_parse_address_and_route() -> None:
    assert parse_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_address("[::1]:0") == ("::1", 0)
    assert parse_address(":5432") == ("127.0.0.1", 5432)
    for bad in ("127.0.0.1", "h:port", "h:70000", "::1:80"):
        with pytest.raises(LagscopeError):
            parse_address(bad)
    route = parse_route("db=127.0.0.1:0 127.0.0.1:5432 tax:300 dial:10")
    assert route.name == "db" and route.listen == ("127.0.0.1", 0)
    assert route.upstream == ("127.0.0.1", 5432)
    assert route.faults == (ConnectionTax(delay_ms=300), DialDelay(delay_ms=10))
    assert parse_route(":0 127.0.0.1:1").name == ""
    with pytest.raises(LagscopeError, match="expected"):
        parse_route("127.0.0.1:0")


def test_toml_routes(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(
        """
[[route]]
name = "app"
listen = "127.0.0.1:8081"
upstream = "127.0.0.1:8080"
  [[route.fault]]
  kind = "tax"
  delay_ms = 300

[[route]]
name = "db"
listen = "127.0.0.1:6432"
upstream = "127.0.0.1:5432"
  [[route.fault]]
  kind = "tax"
  delay_ms = 300
  [[route.fault]]
  kind = "reset"
  after_bytes = 0
  probability = 0.1
  seed = 3
""",
        encoding="utf-8",
    )
    app, db = load_routes_toml(path)
    assert app.name == "app" and app.faults == (ConnectionTax(delay_ms=300),)
    assert db.upstream == ("127.0.0.1", 5432)
    assert db.faults[1] == Reset(select=Select(probability=0.1, seed=3))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[route]]\nlisten='127.0.0.1:1'\n", "upstream = 'HOST:PORT' is required"),
        ("x = 1\n", "at least one [[route]]"),
        ("[[route]\n", "routes.toml"),
        ("[[route]]\nlisten=':1'\nupstream=':2'\ncolour=1\n", "unknown key(s) colour"),
        ("[[route]]\nlisten=':1'\nupstream=':2'\n[[route.fault]]\ndelay_ms=3\n", "needs kind"),
        (
            "[[route]]\nlisten=':1'\nupstream=':2'\n[[route.fault]]\nkind='tax'\nfoo=3\n",
            "unknown key 'foo'",
        ),
        ('route = ["a"]\n', "expected a [[route]] table"),
        ("[[route]]\nlisten=':1'\nupstream=':2'\nfault='x'\n", "[[route.fault]] tables"),
        (
            "[[route]]\nlisten=':1'\nupstream=':2'\n[[route.fault]]\nkind='tax'\ndelay_ms=[1]\n",
            "bad value for delay_ms",
        ),
    ],
)
def test_toml_errors(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LagscopeError) as info:
        load_routes_toml(path)
    assert info.value.exit_code == ExitCode.USAGE
    assert needle in info.value.one_line()


@pytest.mark.parametrize(
    "encoding",
    ["utf-8-sig", "utf-16"],  # Notepad's BOM; PowerShell 5.1's `>` (UTF-16 LE + BOM)
)
def test_toml_written_by_windows_tools_loads(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "routes.toml"
    path.write_text("[[route]]\nname = 'café'\nlisten = ':1'\nupstream = ':2'\n", encoding=encoding)
    (route,) = load_routes_toml(path)
    assert route.name == "café"


def test_toml_that_is_not_text_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_bytes("[[route]]\nname = 'café'\n".encode("cp1252"))
    with pytest.raises(LagscopeError) as info:
        load_routes_toml(path)
    assert info.value.exit_code == ExitCode.USAGE
    assert "not UTF-8 text (byte 0xe9" in info.value.one_line()


def test_toml_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LagscopeError, match="cannot read"):
        load_routes_toml(tmp_path / "absent.toml")


def test_settings_validate() -> None:
    assert ProxySettings().chunk_bytes == 262144
    with pytest.raises(ValueError, match="--chunk-bytes must be at least 1"):
        ProxySettings(chunk_bytes=0)
    with pytest.raises(LagscopeError, match="--connect-timeout-s must be a finite number"):
        ProxySettings(connect_timeout_s=float("nan"))
    with pytest.raises(LagscopeError, match="--backlog must be at most 65535"):
        ProxySettings(backlog=99999999999)


def test_describe_fault() -> None:
    assert describe_fault(ConnectionTax(delay_ms=300)) == "tax 300 ms (both)"
    assert (
        describe_fault(Latency(delay_ms=20, jitter_ms=5, select=Select(first=3)))
        == "latency 20±5 ms/chunk (both) [first 3]"
    )
    assert describe_fault(Reset(after_bytes=10, direction=Direction.U2C)) == (
        "reset after 10 B (u2c)"
    )


# -- log format ------------------------------------------------------------------------------


def test_record_json_round_trip() -> None:
    rec = ConnectionRecord(
        id="app#3",
        route="app",
        index=3,
        client="127.0.0.1:50000",
        upstream="127.0.0.1:8080",
        faults=("ConnectionTax",),
        accepted_at=1700000000.123456,
        upstream_connected_ms=0.5,
        closed_ms=310.25,
        tax_applied_ms=300.1234567,
        dial_delay_applied_ms=None,
        c2u=FlowRecord(bytes=100, first_in_ms=1.0, first_out_ms=301.0, held_ms=300.0),
        u2c=FlowRecord(bytes=2000, first_in_ms=302.0, first_out_ms=302.1),
        end="closed",
    )
    line = record_to_json(rec)
    data = json.loads(line)
    assert data["id"] == "app#3" and data["c2u"]["held_ms"] == 300.0
    assert data["tax_applied_ms"] == 300.123
    back = record_from_json(line)
    assert back.c2u == rec.c2u and back.faults == rec.faults and back.end == "closed"
    assert back.delay_applied_ms == pytest.approx(300.0)


def test_counters_add() -> None:
    total = Counters(accepted=1, bytes_c2u=5) + Counters(accepted=2, active=1, bytes_u2c=7)
    assert total == Counters(accepted=3, active=1, bytes_c2u=5, bytes_u2c=7)


def test_the_documented_seed_example_loads(tmp_path: Path) -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "inject.md"
    text = doc.read_text(encoding="utf-8")
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "routes.toml"
    path.write_text(block, encoding="utf-8")
    app, db = load_routes_toml(path)
    assert (app.name, app.upstream, app.faults) == (
        "app",
        ("127.0.0.1", 8080),
        (ConnectionTax(delay_ms=300),),
    )
    assert (db.name, db.upstream, db.faults) == (
        "db",
        ("127.0.0.1", 5432),
        (ConnectionTax(delay_ms=300),),
    )


# -- one class per fault kind ---------------------------------------------------------------


def test_every_fault_class_registers_its_kind() -> None:
    from lagscope.inject.faults import FAULT_KINDS, Fault

    assert list(FAULT_KINDS) == [
        "tax",
        "first",
        "latency",
        "bandwidth",
        "reset",
        "slow-close",
        "blackhole",
        "dial",
    ]
    for kind, cls in FAULT_KINDS.items():
        assert issubclass(cls, Fault) and cls.kind == kind
        assert cls.__name__ in inject_pkg.__all__


def test_a_new_fault_is_one_class() -> None:
    # A kind defined in one place parses, describes and plans itself with no other edit.
    from lagscope.inject.faults import ALL, FAULT_KINDS, ConnectionDraft, Fault

    @dataclass(frozen=True)
    class Hiccup(Fault):
        kind: ClassVar[str] = "hiccup-test"
        bare: ClassVar[str | None] = "delay_ms"
        delay_ms: float
        select: Select = ALL

        def plan(self, draft: ConnectionDraft) -> None:
            draft.dial_delay_ms += self.delay_ms

        def effect(self) -> str:
            return f"hiccup {self.delay_ms:g} ms"

    try:
        fault = parse_fault("hiccup-test:7,first_n=2")
        assert fault == Hiccup(delay_ms=7.0, select=Select(first=2))
        assert describe_fault(fault) == "hiccup 7 ms [first 2]"
        assert plan_connection([fault], 0).dial_delay_ms == 7.0
        assert plan_connection([fault], 2).applied == ()
    finally:
        del FAULT_KINDS["hiccup-test"]


def test_end_reasons_are_a_closed_documented_set() -> None:
    from typing import get_args

    from lagscope.inject.log import END_REASONS, EndReason

    assert set(END_REASONS) == set(get_args(EndReason))
    docs = (Path(__file__).parents[2] / "docs" / "inject.md").read_text(encoding="utf-8")
    for reason in END_REASONS:
        assert f"`{reason}`" in docs, reason
    rec = ConnectionRecord(
        id="r#0", route="r", index=0, client="c", upstream="u", faults=(), accepted_at=0.0,
        upstream_connected_ms=None, closed_ms=1.0, tax_applied_ms=None,
        dial_delay_applied_ms=None, c2u=FlowRecord(), u2c=FlowRecord(), end="closed",
    )  # fmt: skip
    bad = json.loads(record_to_json(rec))
    bad["end"] = "vanished"
    with pytest.raises(ValueError, match="unknown end reason"):
        record_from_json(json.dumps(bad))
