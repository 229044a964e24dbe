"""``page-new-connections``, and the browser's side of the per-connection findings, from
hand-built browser loads."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lagscope.browser.model import BrowserRun, PageLoad, ResourceLoad
from lagscope.diagnose.rules import evaluate
from support.diagnose_evidence import (
    T,
    coldwarm,
    ev,
    healthy_cw,
    ids,
    localhost_refused_on_ipv6,
    rec,
)

TAX = 300.0


def res(
    path: str,
    start: float,
    wait: float,
    conn: int,
    reused: bool,
    connect: float | None = None,
    kind: str = "link",
) -> ResourceLoad:
    return ResourceLoad(
        url=f"http://h{path}",
        kind=kind,
        start_ms=start,
        end_ms=start + (connect or 0.0) + wait + 1.0,
        queued_ms=0.0,
        dns_ms=None,
        connect_ms=connect,
        tls_ms=None,
        wait_ms=wait,
        receive_ms=1.0,
        protocol="http/1.1",
        status=200,
        transfer_bytes=300,
        from_cache=False,
        connection_id=conn,
        reused=reused,
    )


def page(tax: float, connect: float | None = None) -> BrowserRun:
    """A document on its own connection, then five assets on new connections in parallel
    and one on the document's; then a reload on kept connections."""
    doc = res("/", 0.0, tax + 5.0, 1, False, connect, kind="navigation")
    start = tax + 10.0
    assets = [res("/a0.css", start, 2.0, 1, True)]
    assets += [res(f"/a{i}.css", start, tax + 2.0, 1 + i, False, connect) for i in range(1, 6)]
    cold = PageLoad("cold", "http://h/", 2 * tax + 40.0, 2 * tax + 30.0, (doc, *assets))
    again = res("/", 0.0, 5.0, 3, True, kind="navigation")
    reload = PageLoad("reload", "http://h/", 40.0, 30.0, (again,))
    return BrowserRun("chromium 156", "PATH", "http://h/", (cold, reload))


def taxed_cw() -> object:
    """The ladder's own cold vs warm, new connections paying the tax."""
    cold = [rec(TAX + i, reused=False, series="cold") for i in range(12)]
    warm = [rec(1.0 + 0.01 * i) for i in range(12)]
    return coldwarm(cold, warm)


def test_a_page_paying_a_tax_per_connection_is_named_and_priced() -> None:
    findings = evaluate(ev(coldwarm=taxed_cw(), browser=page(TAX)), T)
    # Worst first: the page's two taxes before one connection's.
    assert [f.id for f in findings] == ["page-new-connections", "connection-setup-tax"]
    f = findings[0]
    assert f.severity == "critical"
    assert f.affects == "every cold page load"
    # The document's setup, then five assets' in parallel: two taxes, not six.
    assert f.cost_ms == pytest.approx(2 * TAX, abs=5)
    figures = {e.name: e.value for e in f.evidence}
    assert figures["connections_opened"] == 6
    assert figures["rounds_of_setup"] == 2
    assert figures["reload_connections_opened"] == 0
    assert "2 rounds" in f.detail


def test_cheap_connections_are_not_a_finding() -> None:
    assert "page-new-connections" not in ids(ev(coldwarm=healthy_cw(), browser=page(1.0)))


def test_a_page_whose_setup_is_just_over_the_threshold_is_a_warning() -> None:
    found = ids(ev(browser=page(T.page_setup_ms)))
    assert found["page-new-connections"] == "warning"


def test_without_the_ladders_corroboration_it_is_only_a_note() -> None:
    # The ladder's new connections cost nothing: a slow burst is the machine's load.
    findings = {f.id: f for f in evaluate(ev(coldwarm=healthy_cw(), browser=page(TAX)), T)}
    note = findings["page-new-connections"]
    assert note.severity == "info"
    assert "machine's load" in note.detail


def test_the_browser_paying_chromes_fallback_prices_localhost_fallback() -> None:
    resolution = localhost_refused_on_ipv6()
    # Chrome waits its 300 ms before trying IPv4: each new connection's connect shows it.
    found = {
        f.id: f for f in evaluate(ev(resolution=resolution, browser=page(0.0, connect=TAX + 1)), T)
    }
    fallback = found["localhost-fallback"]
    assert fallback.cost_ms == pytest.approx(TAX + 1)
    assert fallback.severity == "critical"
    assert "browser_connect_ms" in {e.name for e in fallback.evidence}
    assert "The browser itself paid 301 ms" in fallback.detail


def _h2_fix(f_fix: tuple[str, ...]) -> str | None:
    return next((x for x in f_fix if x.startswith("Serve over HTTP/2")), None)


def _over(run: BrowserRun, scheme: str, protocol: str) -> BrowserRun:
    def move(r: ResourceLoad) -> ResourceLoad:
        return replace(r, url=r.url.replace("http://", f"{scheme}://"), protocol=protocol)

    loads = tuple(
        replace(
            load,
            url=load.url.replace("http://", f"{scheme}://"),
            resources=tuple(move(r) for r in load.resources),
        )
        for load in run.loads
    )
    return replace(run, url=run.url.replace("http://", f"{scheme}://"), loads=loads)


def test_http2_is_advised_over_http11_with_its_saving_and_the_step_for_the_scheme() -> None:
    (f,) = evaluate(ev(coldwarm=healthy_cw(), browser=page(TAX)), T)
    fix = _h2_fix(f.fix)
    assert fix is not None
    # six HTTP/1.1 connections to one origin would be one; the second round of setup goes
    assert "6 HTTP/1.1 connections would be 1" in fix
    assert "about 300 ms of setup" in fix  # two rounds of one 300 ms tax: one goes
    assert "only over TLS" in fix and "serve --https" in fix
    over_tls = _over(page(TAX), "https", "http/1.1")
    (f,) = evaluate(ev(coldwarm=healthy_cw(), browser=over_tls), T)
    assert "offers only HTTP/1.1 over TLS" in (_h2_fix(f.fix) or "")
    (f,) = evaluate(ev(coldwarm=healthy_cw(), browser=over_tls, alpn="h2"), T)
    assert "offers h2 (ALPN), yet the browser spoke HTTP/1.1" in (_h2_fix(f.fix) or "")


def test_no_http2_advice_when_the_page_already_came_over_http2() -> None:
    over_h2 = _over(page(TAX), "https", "h2")
    found = evaluate(ev(coldwarm=healthy_cw(), browser=over_h2, alpn="h2"), T)
    for f in found:
        assert _h2_fix(f.fix) is None
    # Six h2 connections to one origin: not HTTP/2's doing, and the finding says why.
    (f,) = found
    why = next(x for x in f.fix if x.startswith("Already HTTP/2"))
    assert "opened 6 connections to https://h" in why and "credentials" in why


def test_one_h2_connection_gets_neither_http2_advice_nor_the_why() -> None:
    doc = replace(
        res("/", 0.0, TAX + 5.0, 1, False, kind="navigation"), url="https://h/", protocol="h2"
    )
    assets = tuple(
        replace(res(f"/a{i}.css", TAX + 10.0, 2.0, 1, True), url=f"https://h/a{i}.css")
        for i in range(6)
    )
    cold = PageLoad("cold", "https://h/", TAX + 30.0, TAX + 20.0, (doc, *assets))
    run = BrowserRun(browser="Chromium", source="test", url="https://h/", loads=(cold,))
    found = {f.id: f for f in evaluate(ev(coldwarm=healthy_cw(), browser=run, alpn="h2"), T)}
    for f in found.values():
        assert not any(x.startswith(("Serve over HTTP/2", "Already HTTP/2")) for x in f.fix)
    # The one connection's tax is still the page's cost.
    note = found["page-new-connections"]
    assert note.title.startswith("Loading the page cold opened 1 connection,")
