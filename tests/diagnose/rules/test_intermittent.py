"""An intermittent per-connection tax: some new connections pay, the typical one does not."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lagscope.diagnose.model import Figure
from lagscope.diagnose.rules import evaluate
from lagscope.diagnose.rules.intermittent import intermittent_setup
from lagscope.probe.model import RequestRecord
from support.diagnose_evidence import T, coldwarm, ev, ids, rec


def _cold(totals: list[float]) -> list[RequestRecord]:
    return [rec(v, reused=False, series="cold", connect=0.05) for v in totals]


WARM = [rec(1.0 + 0.02 * (i % 5)) for i in range(10)]


def test_one_connection_in_three_paying_300_ms_is_a_tax_the_median_misses() -> None:
    cold = _cold([301.0, 1.2, 1.1, 300.5, 1.3, 1.2, 302.0, 1.1])
    findings = evaluate(ev(coldwarm=coldwarm(cold, WARM)), T)
    assert [f.id for f in findings] == ["connection-setup-tax"]
    tax = findings[0]
    assert tax.cost_ms == pytest.approx(300.0, abs=2)
    assert tax.affects == "first request per connection"
    assert Figure("taxed_connections", 3) in tax.evidence
    assert "3 of 8 new connections" in tax.detail


def test_a_single_slow_new_connection_is_noise() -> None:
    cold = _cold([301.0, 1.2, 1.1, 1.0, 1.3, 1.2, 1.4, 1.1])
    assert ids(ev(coldwarm=coldwarm(cold, WARM))) == {}


def test_load_spikes_of_unlike_sizes_are_not_a_tax() -> None:
    # Spikes on a busy machine: 15 ms and 90 ms are not one tax paid twice.
    cold = _cold([16.0, 1.2, 1.1, 91.0, 1.3, 1.2, 1.4, 1.1])
    assert intermittent_setup(coldwarm(cold, WARM), T) is None


def test_new_connections_no_slower_than_the_slowest_reused_one_are_not_taxed() -> None:
    warm = [*WARM[:-1], rec(40.0)]  # one reused request as slow as the "taxed" ones
    cold = _cold([35.0, 1.2, 1.1, 36.0, 1.3, 1.2, 34.0, 1.1])
    assert intermittent_setup(coldwarm(cold, warm), T) is None


def test_a_load_spike_among_the_taxed_connections_does_not_hide_the_tax() -> None:
    cold = _cold([301.0, 1.2, 1.1, 300.5, 1.3, 95.0, 302.0, 1.1])
    found = intermittent_setup(coldwarm(cold, WARM), T)
    assert found is not None and len(found.taxed) == 3
    assert found.extra_ms == pytest.approx(300.0, abs=2)


def _closed(totals: list[float], series: str) -> list[RequestRecord]:
    return [
        replace(rec(v, reused=False, series=series, connect=0.05), keep_alive=False) for v in totals
    ]


def test_a_server_closing_every_connection_with_one_in_three_taxed_is_named() -> None:
    cold = _closed([301.0, 1.2, 1.1, 300.5, 1.3, 1.2, 302.0, 1.1], "cold")
    warm = _closed([1.0, 300.8, 1.1, 1.2, 301.5, 1.0, 1.3, 300.2, 1.1, 1.2], "warm")
    evidence = ev(coldwarm=coldwarm(cold, warm, keep=False))
    findings = {f.id: f for f in evaluate(evidence, T)}
    assert set(findings) == {"connection-setup-tax", "keepalive-refused"}
    tax = findings["connection-setup-tax"]
    assert tax.cost_ms == pytest.approx(300.0, abs=2)
    assert "6 of 18 new connections" in tax.detail
    # What keep-alive would save: the tax on average, per request.
    assert findings["keepalive-refused"].cost_ms == pytest.approx(100.0, abs=3)


def test_two_alike_spikes_among_closed_connections_are_not_enough() -> None:
    cold = _closed([31.0, 1.2, 1.1, 1.3, 1.2, 1.2, 1.4, 1.1], "cold")
    warm = _closed([1.0, 1.1, 1.1, 1.2, 29.5, 1.0, 1.3, 1.2, 1.1, 1.2], "warm")
    assert "connection-setup-tax" not in ids(ev(coldwarm=coldwarm(cold, warm, keep=False)))


def test_two_new_connections_11_ms_slow_on_a_busy_machine_are_not_a_tax() -> None:
    # Seen on a healthy Django app at load average 8: two of fifteen new connections paid
    # 10-11 ms alike, above every reused one.
    cold = _cold([11.8, 1.2, 1.1, 1.0, 12.1, 1.2, 1.4, 1.1, 1.3, 1.2, 1.0, 1.1, 1.2, 1.3, 1.1])
    assert intermittent_setup(coldwarm(cold, WARM), T) is None


def test_two_new_connections_in_twelve_paying_twice_are_too_rare_to_be_a_pattern() -> None:
    # Behind nginx without upstream keep-alive, 2 of 12 new connections paid a second
    # upstream tax; the stack's own, not a product inspecting some connections.
    cold = _cold([598.0, 1.2, 1.1, 1.0, 597.0, 1.2, 1.4, 1.1, 1.3, 1.2, 1.0, 1.1])
    assert intermittent_setup(coldwarm(cold, WARM), T) is None
