"""Order statistics: percentiles, the distribution-free median interval, the comparison."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lagscope.probe.stats import compare, median_ci, percentile, summarize


def test_percentile_interpolates_like_numpy_default() -> None:
    xs = [1.0, 2.0, 3.0, 4.0]
    assert percentile(xs, 0.5) == 2.5
    assert percentile(xs, 0.9) == pytest.approx(3.7)
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError, match="empty"):
        percentile([], 0.5)


def _coverage(n: int, j: int) -> float:
    below: float = sum(math.comb(n, i) for i in range(j)) / 2**n
    return 1 - 2 * below


@pytest.mark.parametrize("n", [6, 10, 20, 50, 101])
def test_median_ci_reaches_95_percent_with_the_narrowest_symmetric_ranks(n: int) -> None:
    xs = [float(i) for i in range(n)]
    low, high, level = median_ci(xs)
    j = int(low) + 1
    assert high == xs[n - j]
    assert level >= 0.95
    assert level == pytest.approx(_coverage(n, j))
    # One rank narrower would fall below 95 %.
    assert _coverage(n, j + 1) < 0.95 or j + 1 > (n + 1) // 2


def _median_ci_by_repeated_sums(
    sorted_values: Sequence[float], level: float
) -> tuple[float, float, float]:
    """The earlier quadratic code, kept verbatim as the reference: each candidate rank's
    binomial tail summed from scratch with math.comb."""

    def cdf(k: int, n: int) -> float:
        if k < 0:
            return 0.0
        if k >= n:
            return 1.0
        total: int = sum(math.comb(n, i) for i in range(k + 1))
        return total / (1 << n)

    n = len(sorted_values)
    alpha_half = (1.0 - level) / 2.0
    j = 1
    while j + 1 <= (n + 1) // 2 and cdf(j, n) <= alpha_half:
        j += 1
    achieved = 1.0 - 2.0 * cdf(j - 1, n)
    return float(sorted_values[j - 1]), float(sorted_values[n - j]), achieved


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=300),
    level=st.one_of(
        st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99, 0.999]),
        st.floats(min_value=0.0, max_value=1.0),
    ),
)
def test_median_ci_running_sum_equals_the_repeated_sums(n: int, level: float) -> None:
    xs = [float(i) * 1.5 for i in range(n)]
    assert median_ci(xs, level) == _median_ci_by_repeated_sums(xs, level)


def test_median_ci_at_the_documented_maximum_of_10000_samples() -> None:
    xs = [float(i) for i in range(10_000)]
    started = time.perf_counter()
    low, high, level = median_ci(xs)
    elapsed_s = time.perf_counter() - started
    # The ranks are symmetric and close to the normal approximation n/2 ± 1.96·√n/2 = ±98.
    assert low + high == 9_999.0
    assert 4_890 <= low <= 4_910
    assert 0.95 <= level < 0.96
    # A generous bound against a return of the quadratic code (which took hours here), not
    # a speed target: that is bench/bench_stats.py's job.
    assert elapsed_s < 5.0


def test_median_ci_small_sample_reports_the_confidence_it_really_has() -> None:
    low, high, level = median_ci([1.0, 2.0, 3.0])
    assert (low, high) == (1.0, 3.0)
    assert level == pytest.approx(0.75)


def test_summarize() -> None:
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    assert (s.n, s.min_ms, s.max_ms, s.p50_ms, s.mean_ms) == (10, 1.0, 10.0, 5.5, 5.5)
    assert s.ci_low_ms <= s.p50_ms <= s.ci_high_ms


def test_compare_significant_only_without_overlap() -> None:
    cold = summarize([200.0 + i * 0.1 for i in range(20)])
    warm = summarize([1.0 + i * 0.1 for i in range(20)])
    c = compare("total", cold, warm)
    assert c.significant and c.diff_ms == pytest.approx(199.0)
    assert c.diff_low_ms <= c.diff_ms <= c.diff_high_ms
    noisy = compare(
        "total",
        summarize([1.0, 5.0, 2.0, 4.0, 3.0, 6.0, 2.5]),
        summarize([1.5, 4.5, 2.2, 3.9, 3.1, 5.0, 2.0]),
    )
    assert not noisy.significant
    slower_warm = compare("total", warm, cold)
    assert slower_warm.significant and slower_warm.diff_ms < 0
