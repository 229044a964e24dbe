"""A real Chromium over ``serve --https``: one HTTP/2 connection for the page and its ten
assets, trusting the local CA's key by its own option (nothing installed on the machine)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from lagscope.browser import open_browser
from lagscope.cert.authority import spki_sha256_b64
from lagscope.errors import ExitCode, LagscopeError
from lagscope.serve import ServeProcess
from support.staticsite import ASSETS
from support.taxproxy import tax_proxy

from .conftest import have_browser

pytestmark = pytest.mark.skipif(
    not have_browser() or importlib.util.find_spec("granian") is None,
    reason="Chromium, Playwright and granian needed",
)


@pytest.fixture(scope="module")
def https_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, str]]:
    data_dir = tmp_path_factory.mktemp("https-site")
    env = dict(os.environ, LAGSCOPE_DATA_DIR=str(data_dir))
    args = ["support.staticsite:site_app", "--https", "--host", "127.0.0.1", "--port", "0"]
    with ServeProcess(args, env=env) as proc:
        leaf = x509.load_pem_x509_certificate(Path(data_dir, "cert", "localhost.pem").read_bytes())
        yield proc, spki_sha256_b64(leaf)


def test_one_h2_connection_for_the_page_and_its_assets(
    https_site: tuple[ServeProcess, str],
) -> None:
    server, spki = https_site
    # A counting forwarder (no delay): what really reached the server, retries included.
    with (
        tax_proxy(("127.0.0.1", server.port), 0.0) as counter,
        open_browser(timeout_s=30, trusted_spki=(spki,)) as session,
    ):
        run = session.visit(f"https://127.0.0.1:{counter.port}/")
        opened = counter.connections
    cold = run.load("cold")
    assert cold is not None and len(cold.resources) == 1 + len(ASSETS)
    assert all(r.status == 200 for r in cold.resources)
    assert {r.protocol for r in cold.resources} == {"h2"}
    assert cold.new_connections == 1 == cold.connections
    assert opened == 1  # no hidden second connection (ignore_https_errors retries one)
    reload = run.load("reload")
    assert reload is not None and reload.new_connections == 0


def test_without_the_key_the_browser_refuses_in_one_line(
    https_site: tuple[ServeProcess, str],
) -> None:
    server, _ = https_site
    with open_browser(timeout_s=30) as session, pytest.raises(LagscopeError) as err:
        session.visit(f"https://127.0.0.1:{server.port}/", reload=False)
    assert err.value.exit_code == ExitCode.TLS
    assert "ERR_CERT" in err.value.one_line()
