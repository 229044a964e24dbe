"""Order statistics: percentiles, the distribution-free median interval, the comparison."""

from __future__ import annotations

import math

import pytest

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
