"""What a real browser did loading one page, as frozen values, and the figures read from them.

Pure. The driver (:mod:`lagscope.browser.driver`) hands over what the browser reported: the
page's Navigation Timing entry, its Resource Timing entries and the DevTools protocol's
``Network.responseReceived`` events (which carry the connection id). :func:`build_load`
turns one load's worth into a :class:`PageLoad`: one :class:`ResourceLoad` per request,
document first, each with its phases, protocol, Server-Timing, connection id and whether
that connection had carried an earlier request of the same browser session.

:func:`setup_ms` prices what new connections added to a load: every first request on a new
connection spent its connect, TLS and any time to first byte beyond what the same kind of
request took on a reused connection (the same URL elsewhere in the session, else the
sub-resources that ran alongside on reused connections) setting the connection up. Setups
that overlap on the page's timeline ran in parallel, so each group of overlapping ones adds
its longest: a document's tax, then five assets paying it side by side, add two taxes, not
six.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from lagscope import redact
from lagscope.instrument.servertiming import Metric

__all__ = [
    "CHROME_IDLE_UNUSED_S",
    "CHROME_IDLE_USED_S",
    "BrowserRun",
    "PageLoad",
    "ResourceLoad",
    "Setup",
    "build_load",
    "idle_rule",
    "run_from_dict",
    "run_to_dict",
    "setup_ms",
]

# Chromium closes idle sockets that never carried a request after 10 s and used ones after
# 300 s (net/socket/client_socket_pool.cc: unused / used idle socket timeouts).
CHROME_IDLE_UNUSED_S = 10.0
CHROME_IDLE_USED_S = 300.0


@dataclass(frozen=True)
class ResourceLoad:
    """One request of a page load, its phases in ms (None where the phase did not happen).

    ``start_ms`` and ``end_ms`` are offsets from the navigation's start. ``queued_ms`` is
    the time before the request could leave (waiting for a socket: six per host over
    HTTP/1.1), ``wait_ms`` request sent to first byte, ``receive_ms`` the rest.
    """

    url: str
    kind: str  # Resource Timing's initiatorType: "navigation", "link", "script", "img", ...
    start_ms: float
    end_ms: float
    queued_ms: float
    dns_ms: float | None
    connect_ms: float | None
    tls_ms: float | None
    wait_ms: float
    receive_ms: float
    protocol: str  # nextHopProtocol: "http/1.1", "h2", "" when the browser did not say
    status: int | None
    transfer_bytes: int
    from_cache: bool
    connection_id: int | None  # the DevTools protocol's connectionId (None: not known)
    reused: bool  # its connection had carried an earlier request of this browser session
    server_timing: tuple[Metric, ...] = ()

    @property
    def new_connection(self) -> bool:
        """The first request on a connection this browser had not used before."""
        return not self.reused and not self.from_cache and self.connection_id is not None

    @property
    def request_start_ms(self) -> float:
        """When the request left, on the page's timeline."""
        return self.end_ms - self.receive_ms - self.wait_ms

    @property
    def setup_start_ms(self) -> float:
        """When its connection's setup began (the request's start when no phase showed)."""
        return self.request_start_ms - (self.connect_ms or 0.0) - (self.tls_ms or 0.0)


@dataclass(frozen=True)
class PageLoad:
    """One load of the page: cold in a fresh context, a reload, or a reload after idling."""

    label: str  # "cold" | "reload" | "idle reload"
    url: str
    load_ms: float  # navigation start to the end of the load event
    dom_content_loaded_ms: float
    resources: tuple[ResourceLoad, ...]  # the document first, then by start
    idle_s: float | None = None  # how long the browser sat idle before this load

    @property
    def connections(self) -> int:
        """Connections that carried this load's requests."""
        return len({r.connection_id for r in self.resources if r.connection_id is not None})

    @property
    def new_connections(self) -> int:
        """Connections this load opened (first used by it)."""
        return sum(r.new_connection for r in self.resources)

    @property
    def document(self) -> ResourceLoad | None:
        return self.resources[0] if self.resources else None


@dataclass(frozen=True)
class BrowserRun:
    """A browser's loads of one URL, in order, and which browser made them."""

    browser: str  # product and version, e.g. "chromium 156.0.7500.0"
    source: str  # how it was found: "--browser-path", "PATH", "channel chrome", ...
    url: str
    loads: tuple[PageLoad, ...]
    idle_rule: str | None = None  # which of Chrome's idle-socket limits applied
    notes: tuple[str, ...] = field(default=())

    def load(self, label: str) -> PageLoad | None:
        for item in self.loads:
            if item.label == label:
                return item
        return None


@dataclass(frozen=True)
class Setup:
    """What connection setup cost one load."""

    added_ms: float  # what setup added to the load: the longest of each overlapping group
    per_connection_ms: float  # the median setup of one new connection
    connections: int  # new connections that paid it
    rounds: int = 0  # groups of setups that ran one after another (overlapping ones are one)


def idle_rule(idle_s: float) -> str:
    """Which of Chrome's idle-socket limits an idle period of ``idle_s`` crossed."""
    if idle_s >= CHROME_IDLE_USED_S:
        return (
            f"{idle_s:g} s idle: past Chrome's {CHROME_IDLE_USED_S:g} s limit for used idle "
            "sockets, so every connection is closed and the next load opens new ones"
        )
    if idle_s >= CHROME_IDLE_UNUSED_S:
        return (
            f"{idle_s:g} s idle: past Chrome's {CHROME_IDLE_UNUSED_S:g} s limit for idle "
            f"sockets that never carried a request, inside its {CHROME_IDLE_USED_S:g} s limit "
            "for used ones (those stay open unless the server closed them)"
        )
    return (
        f"{idle_s:g} s idle: inside Chrome's {CHROME_IDLE_UNUSED_S:g} s and "
        f"{CHROME_IDLE_USED_S:g} s idle-socket limits (only the server can have closed one)"
    )


# --- from what the browser reported ---------------------------------------------------------


def _num(entry: Mapping[str, Any], key: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value) if value == value and abs(value) < 1e12 else 0.0


def _metrics(entry: Mapping[str, Any]) -> tuple[Metric, ...]:
    out: list[Metric] = []
    for item in entry.get("serverTiming") or ():
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        desc = item.get("description")
        out.append(
            Metric(
                name=item["name"],
                dur_ms=_num(item, "duration") if "duration" in item else None,
                desc=desc if isinstance(desc, str) and desc else None,
            )
        )
    return tuple(out)


def _resource(
    entry: Mapping[str, Any], response: Mapping[str, Any] | None, kind: str
) -> ResourceLoad:
    start = _num(entry, "startTime")
    fetch = _num(entry, "fetchStart") or start
    dns_start, dns_end = _num(entry, "domainLookupStart"), _num(entry, "domainLookupEnd")
    c_start, c_end = _num(entry, "connectStart"), _num(entry, "connectEnd")
    tls_start = _num(entry, "secureConnectionStart")
    req = _num(entry, "requestStart")
    first = _num(entry, "responseStart")
    end = _num(entry, "responseEnd") or first
    transfer = int(_num(entry, "transferSize"))
    cached = transfer == 0 and (_num(entry, "encodedBodySize") > 0 or req == 0)
    connect = tls = None
    if c_end > c_start > 0:
        if tls_start >= c_start and tls_start > 0:
            connect, tls = tls_start - c_start, c_end - tls_start
        else:
            connect = c_end - c_start
    dns = dns_end - dns_start if dns_end > dns_start > 0 else None
    if req <= 0:  # from the cache, or the browser hid the phases: all of it counts as wait
        req = first or fetch
    first = max(first, req)
    end = max(end, first)
    setup = (dns or 0.0) + (connect or 0.0) + (tls or 0.0)
    status = entry.get("responseStatus")
    conn_id: int | None = None
    if response is not None and not cached:
        raw = response.get("connectionId")
        if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw > 0:
            conn_id = int(raw)
        if not isinstance(status, int) or not status:
            status = response.get("status")
    return ResourceLoad(
        url=str(entry.get("name", "")),
        kind=kind,
        start_ms=round(start, 3),
        end_ms=round(end, 3),
        queued_ms=round(max(0.0, req - fetch - setup) + (fetch - start), 3),
        dns_ms=None if dns is None else round(dns, 3),
        connect_ms=None if connect is None else round(connect, 3),
        tls_ms=None if tls is None else round(tls, 3),
        wait_ms=round(first - req, 3),
        receive_ms=round(end - first, 3),
        protocol=str(entry.get("nextHopProtocol") or (response or {}).get("protocol") or ""),
        status=int(status) if isinstance(status, (int, float)) and status else None,
        transfer_bytes=transfer,
        from_cache=cached,
        connection_id=conn_id,
        reused=False,
        server_timing=_metrics(entry),
    )


def build_load(
    label: str,
    navigation: Mapping[str, Any],
    resources: Sequence[Mapping[str, Any]],
    responses: Sequence[Mapping[str, Any]],
    seen_connections: Iterable[int] = (),
    idle_s: float | None = None,
) -> tuple[PageLoad, frozenset[int]]:
    """One load from the browser's own reports; returns it and the connection ids seen so far.

    ``responses`` are the ``response`` objects of ``Network.responseReceived`` events, in
    order; each Resource Timing entry takes the first unused one with its URL. A connection
    counts as reused from its second request on, or when an earlier load of the same browser
    session used it (``seen_connections``).
    """
    by_url: dict[str, list[Mapping[str, Any]]] = {}
    for response in responses:
        by_url.setdefault(str(response.get("url", "")), []).append(response)

    def take(url: str) -> Mapping[str, Any] | None:
        queue = by_url.get(url)
        return queue.pop(0) if queue else None

    load_end = _num(navigation, "loadEventEnd") or _num(navigation, "loadEventStart")
    items = [_resource(navigation, take(str(navigation.get("name", ""))), "navigation")]
    for entry in sorted(resources, key=lambda e: _num(e, "startTime")):
        if load_end and _num(entry, "startTime") >= load_end:
            continue  # after the load event (the favicon): not part of this load
        kind = str(entry.get("initiatorType") or "other")
        items.append(_resource(entry, take(str(entry.get("name", ""))), kind))
    seen = set(seen_connections)
    # Requests take their connections in the order they left.
    order = sorted(range(len(items)), key=lambda i: (items[i].request_start_ms, i))
    reused = [False] * len(items)
    for i in order:
        conn = items[i].connection_id
        if conn is None:
            continue
        reused[i] = conn in seen
        seen.add(conn)
    marked = [replace(r, reused=reused[i]) for i, r in enumerate(items)]
    load = PageLoad(
        label=label,
        url=str(navigation.get("name", "")),
        load_ms=round(load_end or _num(navigation, "duration"), 3),
        dom_content_loaded_ms=round(_num(navigation, "domContentLoadedEventEnd"), 3),
        resources=tuple(marked),
        idle_s=idle_s,
    )
    return load, frozenset(seen)


# --- what connection setup cost -------------------------------------------------------------


def _baselines(load: PageLoad, run: Sequence[PageLoad]) -> tuple[dict[str, float], float]:
    """Per URL, the fastest time to first byte on a reused connection in the session; and
    for URLs never fetched on one, the median of the sub-resources that ran on reused
    connections in the same load (they met the same server and the same machine at the
    same moment: a loaded machine slows them alike), else the session's fastest."""
    per_url: dict[str, float] = {}
    sub: list[float] = []
    for each in (load, *run):
        for r in each.resources:
            if r.reused and not r.from_cache:
                per_url[r.url] = min(per_url.get(r.url, r.wait_ms), r.wait_ms)
                if r.kind != "navigation":
                    sub.append(r.wait_ms)
    alongside = [
        r.wait_ms
        for r in load.resources
        if r.reused and not r.from_cache and r.kind != "navigation"
    ]
    if alongside:
        return per_url, float(statistics.median(alongside))
    return per_url, (min(sub) if sub else 0.0)


def setup_ms(load: PageLoad, run: Sequence[PageLoad] = ()) -> Setup:
    """What the new connections of ``load`` added to it (see the module docstring).

    ``run`` is every load of the session, where reused-connection requests of the same URLs
    give the time to first byte without setup (the load itself is included).
    """
    per_url, sub_floor = _baselines(load, run)
    intervals: list[tuple[float, float]] = []
    each: list[float] = []
    for r in load.resources:
        if not r.new_connection:
            continue
        floor = per_url.get(r.url, sub_floor if r.kind != "navigation" else 0.0)
        cost = (r.connect_ms or 0.0) + (r.tls_ms or 0.0) + max(0.0, r.wait_ms - floor)
        each.append(cost)
        start = r.setup_start_ms
        intervals.append((start, start + cost))
    # Setups that overlap ran in parallel: the load waited for the longest of them, once.
    added = 0.0
    reach = float("-inf")
    longest = 0.0
    rounds = 0
    for start, end in sorted(intervals):
        if start >= reach:
            added += longest
            longest = 0.0
            rounds += 1
        longest = max(longest, end - start)
        reach = max(reach, end)
    added += longest
    added = min(added, load.load_ms) if load.load_ms > 0 else added
    return Setup(
        added_ms=round(added, 3),
        per_connection_ms=round(float(statistics.median(each)), 3) if each else 0.0,
        connections=len(each),
        rounds=rounds,
    )


# --- JSON form ------------------------------------------------------------------------------


def _resource_to_dict(r: ResourceLoad) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(r):
        value = getattr(r, f.name)
        if f.name == "server_timing":
            value = [
                {"name": m.name, "dur_ms": m.dur_ms, "desc": m.desc, "params": {}} for m in value
            ]
        elif f.name == "url":
            value = redact.url(value)
        out[f.name] = value
    return out


def _resource_from_dict(d: Mapping[str, Any]) -> ResourceLoad:
    kwargs = {f.name: d[f.name] for f in fields(ResourceLoad) if f.name != "server_timing"}
    metrics = tuple(
        Metric(name=m["name"], dur_ms=m.get("dur_ms"), desc=m.get("desc"))
        for m in d.get("server_timing", ())
    )
    return ResourceLoad(**kwargs, server_timing=metrics)


def run_to_dict(run: BrowserRun) -> dict[str, Any]:
    """The JSON form (inside a diagnose report's ``browser`` key and the demo's rows), every
    URL the browser reported with its secrets (userinfo, secret-looking query values) masked."""
    return {
        "browser": run.browser,
        "source": run.source,
        "url": redact.url(run.url),
        "idle_rule": run.idle_rule,
        "notes": list(run.notes),
        "loads": [
            {
                "label": load.label,
                "url": redact.url(load.url),
                "load_ms": load.load_ms,
                "dom_content_loaded_ms": load.dom_content_loaded_ms,
                "idle_s": load.idle_s,
                "connections": load.connections,
                "new_connections": load.new_connections,
                "resources": [_resource_to_dict(r) for r in load.resources],
            }
            for load in run.loads
        ],
    }


def run_from_dict(d: Mapping[str, Any]) -> BrowserRun:
    return BrowserRun(
        browser=d["browser"],
        source=d["source"],
        url=d["url"],
        idle_rule=d.get("idle_rule"),
        notes=tuple(d.get("notes", ())),
        loads=tuple(
            PageLoad(
                label=load["label"],
                url=load["url"],
                load_ms=load["load_ms"],
                dom_content_loaded_ms=load["dom_content_loaded_ms"],
                idle_s=load.get("idle_s"),
                resources=tuple(_resource_from_dict(r) for r in load["resources"]),
            )
            for load in d["loads"]
        ),
    )
