"""Real nginx for tests: a self-contained prefix, a free loopback port (fixtures and helpers).

nginx cannot bind port 0 and report the port back, so a free port is picked and the start
retried on the rare race. Readiness is a successful TCP connect to the listen port (polled,
bounded), or nginx exiting, whichever comes first; never a sleep.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from lagscope.demo.nginx import wait_listening
from lagscope.nginx.config import Endpoint, NginxSettings
from lagscope.nginx.render import NginxConfig, Tls, render
from support.net import free_port

NGINX = Path("/usr/sbin/nginx")
_READY_TIMEOUT_S = 10.0


def nginx_bin() -> Path | None:
    found = shutil.which("nginx")
    if found:
        return Path(found)
    return NGINX if NGINX.is_file() else None


@pytest.fixture(scope="session")
def nginx() -> Path:
    found = nginx_bin()
    if found is None:
        pytest.skip("nginx not installed")
    return found


@pytest.fixture
def nginx_prefix() -> Iterator[Path]:
    # Not tmp_path: pytest makes its dirs 0700, and nginx under root runs its worker as
    # `nobody`, which must reach the temp dirs under the prefix.
    prefix = Path(tempfile.mkdtemp(prefix="lagscope-nginx-test-"))
    prefix.chmod(0o755)
    try:
        yield prefix
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


@contextmanager
def running_nginx(
    nginx: Path,
    prefix: Path,
    upstream: Endpoint,
    settings: NginxSettings | None = None,
    transform: Callable[[str], str] = lambda text: text,
    run_as: str | None = None,
    tls: Tls | None = None,
) -> Iterator[int]:
    """nginx with lagscope's config (passed through ``transform``); yields its port.

    ``run_as``: a user name; nginx is started as that user through ``runuser`` (root only).
    """
    launcher: list[str] = []
    if run_as is not None:
        shutil.chown(prefix, run_as)
        launcher = ["runuser", "-u", run_as, "--"]
    last_error = ""
    for _ in range(3):
        port = free_port()
        cfg = NginxConfig(
            upstream=upstream,
            listen=(Endpoint("127.0.0.1", port),),
            settings=settings or NginxSettings(),
            prefix=prefix,
            tls=tls,
        )
        conf = prefix / "nginx.conf"
        conf.write_text(transform(render(cfg)), encoding="utf-8")
        proc = subprocess.Popen(
            [*launcher, str(nginx), "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            if wait_listening(proc, port, _READY_TIMEOUT_S):
                yield port
                return
            last_error = (prefix / "error.log").read_text(errors="replace")
        finally:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            if proc.stderr is not None:
                last_error += proc.stderr.read().decode(errors="replace")
                proc.stderr.close()
    raise RuntimeError(f"nginx did not start: {last_error.strip()}")


@pytest.fixture
def start_nginx(nginx: Path, nginx_prefix: Path) -> Callable[..., AbstractContextManager[int]]:
    """``with start_nginx(upstream, settings=..., transform=...) as port:``"""

    def start(
        upstream: Endpoint,
        settings: NginxSettings | None = None,
        transform: Callable[[str], str] = lambda text: text,
        run_as: str | None = None,
        tls: Tls | None = None,
    ) -> AbstractContextManager[int]:
        return running_nginx(nginx, nginx_prefix, upstream, settings, transform, run_as, tls)

    return start
