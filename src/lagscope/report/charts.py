"""Chart geometry for the HTML report: numbers in, positions out. Pure; no SVG text here.

Each function turns report numbers into a small frozen layout (pixel positions in a fixed
viewBox, the values they stand for, and axis ticks). The SVG markup lives in the Jinja2
templates next to this module, so what a chart *shows* is decided here and tested without
a browser, and how it *looks* is CSS and template.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from lagscope.browser.model import PageLoad
from lagscope.instrument.profile import ProfileFrame
from lagscope.probe.model import RequestRecord
from lagscope.probe.stats import Summary

__all__ = [
    "BAR_PHASES",
    "BROWSER_PHASES",
    "Bar",
    "BarChart",
    "CostBar",
    "CostChart",
    "Ecdf",
    "EcdfSeries",
    "Icicle",
    "IcicleCell",
    "Point",
    "Segment",
    "SequencePlot",
    "Tick",
    "Waterfall",
    "WaterfallRow",
    "bar_chart",
    "browser_waterfall",
    "cost_chart",
    "ecdf",
    "fmt_ms",
    "icicle",
    "nice_ticks",
    "part_classes",
    "sequence",
    "thread_of",
    "waterfall",
]

# The phases a request's time is made of, in the order they happen.
BAR_PHASES = ("resolve", "connect", "tls", "send", "wait", "receive")

WIDTH = 760.0  # every chart's viewBox width; CSS scales it to the page
LABEL_W = 190.0  # left gutter for row labels
PLOT_W = WIDTH - LABEL_W - 70.0  # right margin for the value text


@dataclass(frozen=True)
class Tick:
    x: float  # position along the value axis
    label: str


def part_classes(names: Sequence[str]) -> dict[str, str]:
    """CSS classes for bar parts: a phase keeps its phase colour, other parts (budget
    items such as "connection setup") take the part palette in order of appearance."""
    out: dict[str, str] = {}
    others = 0
    for name in names:
        if name in out:
            continue
        if name in BAR_PHASES:
            out[name] = f"ph-{name}"
        else:
            out[name] = f"part{others % 8}"
            others += 1
    return out


def fmt_ms(ms: float) -> str:
    """Milliseconds as the report prints them everywhere (two decimals)."""
    return f"{ms:,.2f}"


def _nice_step(span: float, count: int) -> float:
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    return float(next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw))


def nice_ticks(hi: float, count: int = 5, lo: float = 0.0) -> list[float]:
    """Round tick values (1-2-2.5-5 steps) covering ``lo``..``hi``; ``lo`` ≤ 0 ≤ ``hi``
    keeps 0 a tick."""
    if not (math.isfinite(hi) and math.isfinite(lo)) or hi - lo <= 0:
        return [0.0, 1.0]
    step = _nice_step(hi - lo, count)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _tick_label(v: float) -> str:
    return f"{v:g}"


def _scale(hi: float, width: float) -> tuple[float, list[Tick], float]:
    """Pixels per ms, the ticks, and the axis maximum for values up to ``hi``."""
    ticks = nice_ticks(hi)
    top = ticks[-1]
    px = width / top
    return px, [Tick(x=v * px, label=_tick_label(v)) for v in ticks], top


# --- horizontal bars: stacked (budget) or single (costs) ------------------------------------


@dataclass(frozen=True)
class Segment:
    name: str  # phase or part name
    ms: float
    x: float
    w: float
    cls: str = ""  # CSS class; "ph-<name>" when empty

    @property
    def css(self) -> str:
        return self.cls or f"ph-{self.name}"


@dataclass(frozen=True)
class Bar:
    label: str
    total_ms: float
    y: float
    segments: tuple[Segment, ...]
    note: str = ""  # e.g. the interval, shown after the value


@dataclass(frozen=True)
class BarChart:
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    height: float
    row_h: float
    names: tuple[str, ...]  # segment names present, for the legend


def bar_chart(
    rows: Sequence[tuple[str, Sequence[tuple[str, float]], str]],
    row_h: float = 28.0,
    classes: Sequence[str] = (),
    name_classes: Mapping[str, str] | None = None,
) -> BarChart:
    """Stacked horizontal bars, one per (label, [(part, ms)...], note), on one shared scale.
    A segment's CSS class is its row's from ``classes``, else its name's from
    ``name_classes``, else ``ph-<name>``."""
    totals = [sum(max(ms, 0.0) for _, ms in parts) for _, parts, _ in rows]
    px, ticks, _ = _scale(max(totals, default=0.0), PLOT_W)
    bars = []
    names: list[str] = []
    for i, ((label, parts, note), total) in enumerate(zip(rows, totals, strict=True)):
        x = 0.0
        segs = []
        for name, ms in parts:
            w = max(ms, 0.0) * px
            css = classes[i] if classes else (name_classes or {}).get(name, "")
            segs.append(Segment(name=name, ms=ms, x=x, w=w, cls=css))
            x += w
            if name not in names:
                names.append(name)
        bars.append(Bar(label=label, total_ms=total, y=i * row_h, segments=tuple(segs), note=note))
    return BarChart(
        bars=tuple(bars),
        ticks=tuple(ticks),
        height=len(rows) * row_h,
        row_h=row_h,
        names=tuple(names),
    )


# --- waterfall ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaterfallRow:
    label: str
    connection: str
    reused: bool
    total_ms: float
    start_ms: float
    y: float
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Waterfall:
    rows: tuple[WaterfallRow, ...]
    ticks: tuple[Tick, ...]
    height: float
    row_h: float
    shown: int
    total: int


def waterfall(
    records: Sequence[tuple[str, RequestRecord]], limit: int = 40, row_h: float = 18.0
) -> Waterfall:
    """The first ``limit`` requests by start time, DevTools-style: each row is one request,
    placed at its start, with its phases laid end to end. ``records`` pairs each record with
    its connection id label."""
    ordered = sorted(records, key=lambda pr: pr[1].start_ms)
    shown = ordered[:limit]
    if not shown:
        return Waterfall(rows=(), ticks=(), height=0.0, row_h=row_h, shown=0, total=0)
    t0 = shown[0][1].start_ms
    end = max(r.start_ms + r.total_ms for _, r in shown) - t0
    px, ticks, _ = _scale(end, PLOT_W)
    rows = []
    for i, (conn, r) in enumerate(shown):
        x = (r.start_ms - t0) * px
        segs = []
        for phase in BAR_PHASES:
            ms = r.phase(phase)
            if ms is None:
                continue
            segs.append(Segment(name=phase, ms=ms, x=x, w=max(ms, 0.0) * px))
            x += max(ms, 0.0) * px
        rows.append(
            WaterfallRow(
                label=f"{r.series} {r.index + 1}",
                connection=conn,
                reused=r.reused,
                total_ms=r.total_ms,
                start_ms=r.start_ms - t0,
                y=i * row_h,
                segments=tuple(segs),
            )
        )
    return Waterfall(
        rows=tuple(rows),
        ticks=tuple(ticks),
        height=len(rows) * row_h,
        row_h=row_h,
        shown=len(shown),
        total=len(ordered),
    )


# The phases of a browser's request, in the order they happen (Resource Timing's).
BROWSER_PHASES = ("queued", "resolve", "connect", "tls", "wait", "receive")


def browser_waterfall(load: PageLoad, row_h: float = 18.0) -> Waterfall:
    """One row per request of a browser's page load, placed at its start on the page's
    timeline, its phases end to end; labelled by path and connection (new or reused).
    A request served from the cache is a row without phases."""
    rows_in = list(load.resources)
    if not rows_in:
        return Waterfall(rows=(), ticks=(), height=0.0, row_h=row_h, shown=0, total=0)
    end = max([load.load_ms, *(r.end_ms for r in rows_in)])
    px, ticks, _ = _scale(end, PLOT_W)
    rows = []
    for i, r in enumerate(rows_in):
        x = r.start_ms * px
        segs = []
        for phase, ms in zip(
            BROWSER_PHASES,
            (r.queued_ms, r.dns_ms, r.connect_ms, r.tls_ms, r.wait_ms, r.receive_ms),
            strict=True,
        ):
            if ms is None or (ms <= 0 and phase != "wait"):
                continue
            segs.append(Segment(name=phase, ms=ms, x=x, w=max(ms, 0.0) * px))
            x += max(ms, 0.0) * px
        path = urlsplit(r.url).path or "/"
        if r.from_cache:
            conn, reused = "cache", True
        elif r.connection_id is None:
            conn, reused = "?", r.reused
        else:
            conn, reused = f"c{r.connection_id}", r.reused
        rows.append(
            WaterfallRow(
                label=path if len(path) <= 28 else "…" + path[-27:],
                connection=conn,
                reused=reused,
                total_ms=r.end_ms - r.start_ms,
                start_ms=r.start_ms,
                y=i * row_h,
                segments=tuple(segs) if not r.from_cache else (),
            )
        )
    return Waterfall(
        rows=tuple(rows),
        ticks=tuple(ticks),
        height=len(rows) * row_h,
        row_h=row_h,
        shown=len(rows),
        total=len(rows),
    )


# --- distributions: ECDF with medians and intervals -------------------------------------------


@dataclass(frozen=True)
class EcdfSeries:
    name: str
    n: int
    path: str  # SVG path data of the step function
    summary: Summary
    median_x: float
    ci_x: float
    ci_w: float


@dataclass(frozen=True)
class Ecdf:
    series: tuple[EcdfSeries, ...]
    ticks: tuple[Tick, ...]
    width: float
    height: float


def ecdf(
    samples: Sequence[tuple[str, Sequence[float], Summary]],
    width: float = WIDTH - 80.0,
    height: float = 220.0,
) -> Ecdf:
    """Empirical CDFs of several samples on one axis: the fraction of requests at or under
    each latency, with each median marked and its confidence interval shaded."""
    hi = max((max(v) for _, v, _ in samples if v), default=0.0)
    px, ticks, _ = _scale(hi, width)
    out = []
    for name, values, summary in samples:
        ordered = sorted(values)
        n = len(ordered)
        if not n:
            continue
        parts = [f"M0,{height:.1f}"]
        for i, v in enumerate(ordered):
            x = v * px
            parts.append(f"H{x:.1f}V{height - (i + 1) / n * height:.1f}")
        parts.append(f"H{width:.1f}")
        out.append(
            EcdfSeries(
                name=name,
                n=n,
                path="".join(parts),
                summary=summary,
                median_x=summary.p50_ms * px,
                ci_x=summary.ci_low_ms * px,
                ci_w=max((summary.ci_high_ms - summary.ci_low_ms) * px, 1.0),
            )
        )
    return Ecdf(series=tuple(out), ticks=tuple(ticks), width=width, height=height)


# --- request sequence: index -> latency -------------------------------------------------------


def thread_of(r: RequestRecord) -> str | None:
    """The worker thread that served the request, from Server-Timing ``thread``."""
    for m in r.server_timing:
        if m.name == "thread" and m.desc:
            return m.desc
    return None


@dataclass(frozen=True)
class Point:
    order: int  # 1-based position in the run
    x: float
    y: float
    ms: float
    reused: bool
    series: str
    connection: str
    worker: str | None
    worker_class: int  # index into the worker palette


@dataclass(frozen=True)
class SequencePlot:
    points: tuple[Point, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]  # Tick.x is the vertical position here
    width: float
    height: float
    workers: tuple[str, ...]


def sequence(
    records: Sequence[tuple[str, RequestRecord]],
    width: float = WIDTH - 80.0,
    height: float = 220.0,
) -> SequencePlot:
    """Each request's total latency against its position in the run, so warm-up shows as
    the first points of each worker and new connections stand apart from reused ones."""
    ordered = sorted(records, key=lambda pr: pr[1].start_ms)
    hi = max((r.total_ms for _, r in ordered), default=0.0)
    py, yt, _ = _scale(hi, height)
    n = len(ordered)
    step = width / max(n, 1)
    workers: list[str] = []
    points = []
    for i, (conn, r) in enumerate(ordered):
        w = thread_of(r)
        if w is not None and w not in workers:
            workers.append(w)
        points.append(
            Point(
                order=i + 1,
                x=(i + 0.5) * step,
                y=height - r.total_ms * py,
                ms=r.total_ms,
                reused=r.reused,
                series=r.series,
                connection=conn,
                worker=w,
                worker_class=workers.index(w) % 8 if w is not None else -1,
            )
        )
    xt = nice_ticks(float(n))
    return SequencePlot(
        points=tuple(points),
        x_ticks=tuple(Tick(x=v * step, label=_tick_label(v)) for v in xt if v <= n),
        y_ticks=tuple(Tick(x=height - t.x, label=t.label) for t in yt),
        width=width,
        height=height,
        workers=tuple(workers),
    )


# --- costs: signed differences with intervals --------------------------------------------------


@dataclass(frozen=True)
class CostBar:
    label: str
    ms: float
    low_ms: float | None
    high_ms: float | None
    significant: bool
    y: float
    x: float  # left edge of the bar
    w: float
    whisker_x1: float | None
    whisker_x2: float | None


@dataclass(frozen=True)
class CostChart:
    bars: tuple[CostBar, ...]
    ticks: tuple[Tick, ...]
    zero_x: float
    height: float
    row_h: float


def cost_chart(
    rows: Sequence[tuple[str, float, float | None, float | None, bool]], row_h: float = 24.0
) -> CostChart:
    """Horizontal bars of signed costs (label, ms, low, high, significant) from a shared
    zero, each with its interval as a whisker."""
    values = [v for _, ms, lo, hi, _ in rows for v in (ms, lo, hi) if v is not None]
    tick_values = nice_ticks(max([0.0, *values]), lo=min([0.0, *values]))
    bottom, top = tick_values[0], tick_values[-1]
    px = PLOT_W / ((top - bottom) or 1.0)
    zero = -bottom * px
    bars = []
    for i, (label, ms, lo, hi, sig) in enumerate(rows):
        x1, x2 = sorted((zero, zero + ms * px))
        bars.append(
            CostBar(
                label=label,
                ms=ms,
                low_ms=lo,
                high_ms=hi,
                significant=sig,
                y=i * row_h,
                x=x1,
                w=max(x2 - x1, 0.5),
                whisker_x1=None if lo is None else zero + lo * px,
                whisker_x2=None if hi is None else zero + hi * px,
            )
        )
    return CostChart(
        bars=tuple(bars),
        ticks=tuple(Tick(x=zero + v * px, label=_tick_label(v)) for v in tick_values),
        zero_x=zero,
        height=len(rows) * row_h,
        row_h=row_h,
    )


# --- the profile's icicle chart -------------------------------------------------------------------


@dataclass(frozen=True)
class IcicleCell:
    """One frame of a profile: its box (callers above callees) and what it says."""

    x: float
    y: float
    w: float
    label: str  # cut to what fits the box ("" when nothing does)
    title: str  # the whole name, file:line and ms, for hover and screen readers
    app: bool  # the app's own code (else library)


@dataclass(frozen=True)
class Icicle:
    cells: tuple[IcicleCell, ...]
    height: float
    row_h: float
    total_ms: float


# Average glyph width at the chart's 10 px font, for cutting labels to their box.
_GLYPH_W = 6.0


def _fit(text: str, width: float) -> str:
    room = int((width - 6) / _GLYPH_W)
    if room >= len(text):
        return text
    return text[: room - 1] + "…" if room >= 4 else ""


def icicle(
    frames: Sequence[ProfileFrame], width: float = WIDTH, row_h: float = 18.0, max_depth: int = 12
) -> Icicle:
    """A profile as an icicle: the top frames side by side across the whole width (their
    share of the profile), each frame's callees below it within its span. Frames deeper
    than ``max_depth`` or narrower than a pixel are left out (the table lists them)."""
    total_ms = sum(f.total_ms for f in frames if f.parent < 0)
    if total_ms <= 0:
        return Icicle((), 0.0, row_h, 0.0)
    scale = width / total_ms
    x_of: dict[int, float] = {}
    next_x: dict[int, float] = {}  # where a frame's next callee starts
    depth_of: dict[int, int] = {}
    cells: list[IcicleCell] = []
    top_x = 0.0
    for i, f in enumerate(frames):
        if f.parent < 0:
            x, depth = top_x, 0
            top_x += f.total_ms * scale
        elif f.parent in x_of:
            x, depth = next_x[f.parent], depth_of[f.parent] + 1
            next_x[f.parent] = x + f.total_ms * scale
        else:
            continue
        w = f.total_ms * scale
        if depth >= max_depth or w < 1.0:
            continue
        x_of[i], next_x[i], depth_of[i] = x, x, depth
        name = f"{f.function} ({f.where})"
        cells.append(
            IcicleCell(
                x=x,
                y=depth * row_h,
                w=w,
                label=_fit(f.function, w),
                title=f"{name}: {fmt_ms(f.total_ms)} ms, {f.total_ms / total_ms:.0%}",
                app=f.app,
            )
        )
    depth = max((int(c.y / row_h) for c in cells), default=-1) + 1
    return Icicle(tuple(cells), depth * row_h, row_h, total_ms)
