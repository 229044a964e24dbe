"""The diagnosis rules as pure functions over constructed evidence: no sockets, no clock."""

from __future__ import annotations

import pytest

from lagscope.diagnose.budget import budgets
from lagscope.diagnose.evidence import (
    AddressProbe,
    ColdWarm,
    Evidence,
    Hygiene,
    QueueLevel,
    RedirectHop,
    Resolution,
    Warmup,
)
from lagscope.diagnose.model import Environment
from lagscope.diagnose.rules import RULES, evaluate
from lagscope.diagnose.thresholds import DEFAULT_THRESHOLDS, Thresholds, docs_table
from lagscope.probe.model import RequestRecord
from lagscope.servertiming import Metric

T = DEFAULT_THRESHOLDS
ENV = Environment("Linux", "CPython 3.11", (), False, "unknown", ())


def rec(
    total: float,
    *,
    reused: bool = True,
    wait: float | None = None,
    receive: float = 0.05,
    connect: float | None = None,
    st: tuple[Metric, ...] = (),
    series: str = "warm",
    connection: int = 0,
) -> RequestRecord:
    wait_ms = total - receive - 0.01 - (connect or 0.0) if wait is None else wait
    return RequestRecord(
        series=series,
        index=0,
        connection=connection,
        reused=reused,
        status=200,
        http_version="1.1",
        start_ms=0.0,
        resolve_ms=None,
        connect_ms=None if reused else (connect if connect is not None else 0.05),
        tls_ms=None,
        send_ms=0.01,
        wait_ms=wait_ms,
        receive_ms=receive,
        total_ms=total,
        body_bytes=10,
        keep_alive=True,
        server_timing=st,
    )


def app(total: float, **extra: tuple[float | None, str | None]) -> tuple[Metric, ...]:
    out = [Metric("total", total, None)]
    out += [Metric(name, dur, desc) for name, (dur, desc) in extra.items()]
    return tuple(out)


def coldwarm(cold: list[RequestRecord], warm: list[RequestRecord], keep: bool = True) -> ColdWarm:
    return ColdWarm(
        tuple(cold), tuple(warm), (), keep, None if keep else "it sent Connection: close"
    )


def ids(ev: Evidence, t: Thresholds = T) -> dict[str, str]:
    return {f.id: f.severity for f in evaluate(ev, t)}


def ev(**kw: object) -> Evidence:
    return Evidence(url="http://127.0.0.1:8000/", loopback=True, environment=ENV, **kw)  # type: ignore[arg-type]


def healthy_cw() -> ColdWarm:
    cold = [rec(0.3 + 0.01 * i, reused=False, series="cold") for i in range(12)]
    warm = [rec(0.2 + 0.01 * i) for i in range(12)]
    return coldwarm(cold, warm)


def test_a_healthy_stack_has_no_findings() -> None:
    assert ids(ev(coldwarm=healthy_cw())) == {}


def test_a_tax_on_new_connections_is_named_with_its_cost() -> None:
    cold = [rec(300.0 + i, reused=False, series="cold") for i in range(12)]
    warm = [rec(1.0 + 0.01 * i) for i in range(12)]
    findings = evaluate(ev(coldwarm=coldwarm(cold, warm)), T)
    assert [f.id for f in findings] == ["connection-setup-tax"]
    assert findings[0].severity == "critical"
    assert findings[0].cost_ms == pytest.approx(304.5, abs=1)


def test_a_difference_within_noise_is_not_a_tax() -> None:
    cold = [rec(v, reused=False, series="cold") for v in (1, 60, 2, 70, 3, 80, 1, 90)]
    warm = [rec(v) for v in (1, 50, 2, 60, 3, 70, 1, 80)]
    assert "connection-setup-tax" not in ids(ev(coldwarm=coldwarm(cold, warm)))


def test_a_slow_view_is_slow_app_never_a_tax() -> None:
    cold = [rec(200.5, reused=False, series="cold", st=app(200.0)) for _ in range(10)]
    warm = [rec(200.2, st=app(200.0)) for _ in range(10)]
    assert ids(ev(coldwarm=coldwarm(cold, warm))) == {"slow-app": "warning"}


def test_db_connect_per_request_from_the_apps_own_account() -> None:
    st = app(20.0, dbconn=(12.0, "1 connect"))
    cw = coldwarm([rec(21, reused=False, series="cold", st=st)] * 6, [rec(20.5, st=st)] * 6)
    found = {f.id: f for f in evaluate(ev(coldwarm=cw), T)}
    assert set(found) == {"db-connect-per-request"}
    assert found["db-connect-per-request"].cost_ms == 12.0


def test_a_slow_connect_already_counted_per_request_is_info() -> None:
    st = app(320.0, dbconn=(300.0, "1 connect"))
    cw = coldwarm([rec(321, reused=False, series="cold", st=st)] * 6, [rec(320.5, st=st)] * 6)
    assert ids(ev(coldwarm=cw)) == {"db-connect-per-request": "critical", "db-connect-slow": "info"}


def test_worker_warmup_seen_through_threads_and_connects() -> None:
    early = [
        rec(205.0, st=app(204.0, dbconn=(200.0, "1 connect"), thread=(None, f"w-{i}")))
        for i in range(4)
    ] + [rec(1.0, st=app(0.5, thread=(None, "w-0")))]
    steady = coldwarm(
        [rec(1.2, reused=False, series="cold", st=app(0.5))] * 8, [rec(1.0, st=app(0.5))] * 8
    )
    found = {f.id: f for f in evaluate(ev(coldwarm=steady, warmup=Warmup(tuple(early), ())), T)}
    assert set(found) == {"worker-warmup", "db-connect-slow"}
    assert found["worker-warmup"].cost_ms == pytest.approx(203.5)
    assert found["db-connect-slow"].severity == "info"


def test_one_slow_first_request_is_not_per_worker_warmup() -> None:
    early = [rec(40.0, reused=False)] + [rec(1.0) for _ in range(6)]
    assert "worker-warmup" not in ids(ev(coldwarm=healthy_cw(), warmup=Warmup(tuple(early), ())))


def test_small_write_stall_clusters_at_the_delayed_ack_timer() -> None:
    cold = [rec(1.0, reused=False, series="cold", receive=0.05) for _ in range(8)]
    warm = [rec(41.0, receive=40.2 + 0.1 * i) for i in range(8)]
    found = {f.id: f for f in evaluate(ev(coldwarm=coldwarm(cold, warm)), T)}
    assert set(found) == {"small-write-stall"}
    assert found["small-write-stall"].cost_ms == pytest.approx(40.2, abs=0.2)


def test_keepalive_refused_and_a_tax_seen_outside_the_app() -> None:
    st = app(2.0)
    records = [rec(202.0, reused=False, series="cold", wait=201.9, st=st) for _ in range(8)]
    cw = coldwarm(records, records, keep=False)
    found = ids(ev(coldwarm=cw))
    assert found == {"keepalive-refused": "critical", "connection-setup-tax": "critical"}


def test_upstream_without_keepalive_when_the_app_sees_new_connections() -> None:
    st = app(1.0, conn=(None, "new"))
    warm = [rec(201.5, wait=201.4, st=st) for _ in range(8)]
    cold = [rec(201.8, reused=False, series="cold", st=st) for _ in range(8)]
    found = {f.id: f for f in evaluate(ev(coldwarm=coldwarm(cold, warm)), T)}
    assert set(found) == {"upstream-no-keepalive"}
    assert found["upstream-no-keepalive"].cost_ms == pytest.approx(200.4, abs=0.5)


def test_queueing_needs_waiting_that_the_apps_own_time_does_not_explain() -> None:
    def level(clients: int, outside: float, app_ms: float) -> QueueLevel:
        records = [rec(app_ms + outside, wait=app_ms + outside, st=app(app_ms))] * 4
        return QueueLevel(clients, tuple(records))

    queued = (level(1, 0.2, 100), level(2, 100.2, 100), level(4, 300.2, 100))
    found = {f.id: f for f in evaluate(ev(queue=queued), T)}
    assert found["server-queueing"].cost_ms == pytest.approx(100.0)
    # CPU contention: the app's own time grows with the wait, so no worker queue is blamed.
    contended = (level(1, 0.2, 14), level(2, 14, 28), level(4, 42, 56))
    assert "server-queueing" not in ids(ev(queue=contended))


def test_localhost_fallback_from_a_refused_first_address() -> None:
    res = Resolution(
        host="localhost",
        is_name=True,
        source="pinned",
        resolve_ms=(),
        addresses=(
            AddressProbe("::1", "ipv6", ("refused",) * 3, (0.05,) * 3),
            AddressProbe("127.0.0.1", "ipv4", ("connected",) * 3, (0.04,) * 3),
        ),
        hostname_connect_ms=(0.1, 0.1, 0.1),
    )
    found = {f.id: f for f in evaluate(ev(resolution=res), T)}
    assert set(found) == {"localhost-fallback"}
    assert found["localhost-fallback"].severity == "warning"
    assert found["localhost-fallback"].cost_ms == pytest.approx(0.05)


def test_many_queries_judged_by_repetition_not_cost() -> None:
    st = app(5.0, db=(1.0, "61 queries"), dbshapes=(0.9, "2 shapes, max 60 repeats"))
    cw = coldwarm([rec(6, reused=False, series="cold", st=st)] * 4, [rec(5.5, st=st)] * 4)
    found = {f.id: f for f in evaluate(ev(coldwarm=cw), T)}
    assert found["many-queries"].severity == "warning"
    few = app(5.0, db=(1.0, "12 queries"), dbshapes=(0.9, "12 shapes, max 1 repeat"))
    cw = coldwarm([rec(6, reused=False, series="cold", st=few)] * 4, [rec(5.5, st=few)] * 4)
    assert "many-queries" not in ids(ev(coldwarm=cw))


def test_hygiene_rules() -> None:
    hy = Hygiene(
        redirects=(RedirectHop("http://x/a", 301, "http://x/a/", 2.0),),
        content_type="application/json",
        content_encoding=None,
        body_bytes=400_000,
        compressed_bytes=40_000,
        receive_ms=150.0,
    )
    found = ids(ev(hygiene=hy))
    assert found == {
        "redirects": "warning",
        "uncompressed-text": "warning",
        "large-payload": "warning",
    }
    small = Hygiene((), "application/json", None, 2_000, 1_900, 0.1)
    assert ids(ev(hygiene=small)) == {}


def test_proxy_env_warns_only_when_the_proxy_applies() -> None:
    applies = Environment("Linux", "py", (("http_proxy", "http://p:3128"),), True, "unknown", ())
    excluded = Environment("Linux", "py", (("http_proxy", "http://p:3128"),), False, "unknown", ())
    assert ids(Evidence("http://127.0.0.1/", True, applies)) == {"proxy-env": "warning"}
    assert ids(Evidence("http://127.0.0.1/", True, excluded)) == {"proxy-env": "info"}


def test_budget_adds_up_to_the_measured_total() -> None:
    st = app(10.0, view=(8.0, None), db=(2.0, "3 queries"), queue=(1.0, None))
    cold = [rec(215.0, reused=False, series="cold", st=st) for _ in range(6)]
    warm = [rec(15.0, st=st) for _ in range(6)]
    for budget in budgets(ev(coldwarm=coldwarm(cold, warm))):
        top = sum(i.ms for i in budget.items if i.within is None)
        assert top == pytest.approx(budget.total_ms)
    cold_budget = budgets(ev(coldwarm=coldwarm(cold, warm)))[1]
    assert cold_budget.get("connection setup") == pytest.approx(200.0)


def test_every_rule_is_listed_once_and_thresholds_are_documented() -> None:
    assert len(set(RULES)) == len(RULES)
    table = docs_table()
    assert "setup_tax_ms" in table and "Lighthouse" in table


def test_rules_hold_at_the_largest_run() -> None:
    # The documented maximum: 10 000 warm requests; rules stay linear-ish.
    warm = [rec(1.0 + (i % 7) * 0.01) for i in range(10_000)]
    cold = [rec(1.2, reused=False, series="cold") for _ in range(1000)]
    assert ids(ev(coldwarm=coldwarm(cold, warm))) == {}


def test_the_docs_thresholds_table_is_generated_from_the_table() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "diagnose.md").read_text(encoding="utf-8")
    start = text.index("<!-- thresholds:start -->\n") + len("<!-- thresholds:start -->\n")
    end = text.index("<!-- thresholds:end -->")
    assert text[start:end] == docs_table()
