"""``lagscope serve --reload`` with real processes and real files: a throwaway Django project
is edited, broken, fixed and trimmed while keep-alive clients use it."""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lagscope.serve import ServeProcess
from serve.reload.project import views, write_file, write_project
from support.pg import PgCluster
from support.taxproxy import tax_proxy

ARGS = ["--django-settings", "site_settings", "--reload", "--port", "0", "--host", "127.0.0.1"]
RELOADED = "lagscope serve: reloaded in "
FAILED = "lagscope serve: reload failed "
BOUND_S = 90.0  # a reload imports Django afresh; the machine may be busy


@dataclass
class Reply:
    status: int
    body: str
    conn: str  # Server-Timing conn's desc: "new" / "reused"
    elapsed_s: float


@dataclass
class Client:
    """One keep-alive connection that must never be replaced."""

    port: int
    host: str = "127.0.0.1"
    source: str | None = None
    conn: http.client.HTTPConnection = field(init=False)
    sock: socket.socket | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        source = (self.source, 0) if self.source else None
        self.conn = http.client.HTTPConnection(
            self.host, self.port, timeout=30, source_address=source
        )

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        started = time.perf_counter()
        self.conn.request("GET", path, headers=headers or {})
        resp = self.conn.getresponse()
        body = resp.read().decode()
        if self.sock is None:
            self.sock = self.conn.sock
        assert self.conn.sock is self.sock, "the client connection was replaced"
        timing = resp.getheader("Server-Timing") or ""
        conn = next((p.split("desc=")[1] for p in timing.split(", ") if p.startswith("conn;")), "")
        return Reply(resp.status, body, conn, time.perf_counter() - started)

    def local_port(self) -> int:
        assert self.sock is not None
        return int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.conn.close()


def wait_until(check: Callable[[], bool], what: str, bound_s: float = BOUND_S) -> None:
    """Poll ``check`` (a request or a look at the output) until it holds; bounded."""
    deadline = time.monotonic() + bound_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _reloaded_more(proc: ServeProcess, than: int) -> bool:
    return len(lines_after(proc, 0, RELOADED)) > than


def lines_after(proc: ServeProcess, start: int, prefix: str) -> list[str]:
    return [line for line in proc.lines[start:] if line.startswith(prefix)]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "site")


@contextlib.contextmanager
def serving(project: Path, *extra: str) -> Iterator[ServeProcess]:
    with ServeProcess([*ARGS, *extra], cwd=str(project), ready_timeout_s=BOUND_S) as proc:
        yield proc


def served_version(client: Client, prefix: str) -> Callable[[], bool]:
    def check() -> bool:
        reply = client.get("/version/")
        assert reply.status == 200, reply
        return reply.body.startswith(prefix)

    return check


@dataclass
class Background:
    """A second client sending a request every 50 ms on its own connection."""

    port: int
    replies: list[Reply] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        client = Client(self.port)
        try:
            for _ in range(20_000):  # bounded; stopped long before
                if self.stop.wait(0.05):
                    break
                try:
                    self.replies.append(client.get("/version/"))
                except (OSError, http.client.HTTPException, AssertionError) as exc:
                    self.errors.append(repr(exc))
                    client.close()
                    client = Client(self.port)
        finally:
            client.close()


def test_edit_then_syntax_error_then_fix_on_one_connection(project: Path) -> None:
    with serving(project) as proc:
        client = Client(proc.port)
        background = Background(proc.port)
        thread = threading.Thread(target=background.run)
        thread.start()
        try:
            first = client.get("/version/")
            assert first.body.startswith("v1 ") and first.conn == "new"
            pid_v1 = first.body.split()[1]

            write_file(project / "views.py", views("v2"))
            wait_until(served_version(client, "v2 "), "v2 to be served")
            v2 = client.get("/version/")
            assert v2.conn == "reused"
            assert v2.body.split()[1] != pid_v1

            mark = len(proc.lines)
            write_file(project / "views.py", views("v3") + "\ndef broken(:\n")
            wait_until(lambda: bool(lines_after(proc, mark, FAILED)), "the failure line")
            assert "SyntaxError" in proc.output
            assert "keeps serving the previous code" in lines_after(proc, mark, FAILED)[0]
            assert client.get("/version/").body == v2.body  # the v2 process serves on

            write_file(project / "views.py", views("v3"))
            wait_until(served_version(client, "v3 "), "v3 to be served")
            # Its connection, idle between requests, moved to the v3 process too.
            wait_until(
                lambda: any(r.body.startswith("v3 ") for r in background.replies),
                "v3 on the background connection",
            )
        finally:
            background.stop.set()
            thread.join(30)
            client.close()
        code = proc.stop()
    assert code == 0
    assert background.errors == []
    assert all(r.status == 200 for r in background.replies)
    seen = {r.body.split()[0] for r in background.replies}
    assert {"v1", "v2", "v3"} <= seen, seen
    assert len(lines_after(proc, 0, RELOADED)) == 2


def test_template_change_is_served(project: Path) -> None:
    with serving(project) as proc:
        client = Client(proc.port)
        assert client.get("/page/").body == "<p>page v1 one</p>\n"
        write_file(project / "tpl" / "page.html", "<p>page {{ v }} two</p>\n")
        wait_until(lambda: client.get("/page/").body == "<p>page v1 two</p>\n", "new template")
        # A request body, sized and chunked, on the handed-over connection.
        for chunked in (False, True):
            body = iter([b"abc", b"def"]) if chunked else b"abcdef"
            client.conn.request("POST", "/echo/", body=body, encode_chunked=chunked)
            assert client.conn.getresponse().read() == b"fedcba"
        assert client.get("/version/").status == 200
        client.close()
        assert proc.stop() == 0


def test_a_deleted_module_keeps_the_old_process_and_a_new_one_is_served(project: Path) -> None:
    with serving(project) as proc:
        client = Client(proc.port)
        assert client.get("/extra/").body == "helper one"
        mark = len(proc.lines)
        (project / "helper.py").unlink()
        wait_until(lambda: bool(lines_after(proc, mark, FAILED)), "the failure line")
        assert "ModuleNotFoundError: No module named 'helper'" in proc.output
        assert client.get("/extra/").body == "helper one"

        write_file(project / "fresh.py", 'TEXT = "fresh module"\n')
        write_file(
            project / "views.py",
            views("v2").replace("import helper\n", "import fresh as helper\n"),
        )
        wait_until(lambda: client.get("/extra/").body == "fresh module", "the new module")
        client.close()
        assert proc.stop() == 0


def test_client_facts_and_trusted_proxy_behind_the_front(project: Path) -> None:
    with serving(project, "--trusted-proxy", "127.0.0.2") as proc:
        client = Client(proc.port)
        reply = client.get("/peer/", {"X-Forwarded-For": "10.9.9.9"})
        addr, port, forwarded = reply.body.split()
        assert (addr, port) == ("127.0.0.1", str(client.local_port()))
        assert forwarded == "None"  # not from the trusted proxy
        assert reply.conn == "new"
        assert client.get("/peer/").conn == "reused"

        proxy = Client(proc.port, source="127.0.0.2")
        addr, _port, _fwd = proxy.get("/peer/", {"X-Forwarded-For": "10.1.2.3"}).body.split()
        assert addr == "10.1.2.3"

        write_file(project / "views.py", views("v2"))
        wait_until(served_version(client, "v2 "), "v2 to be served")
        after = client.get("/peer/")
        assert after.conn == "reused"
        assert after.body.split()[:2] == ["127.0.0.1", str(client.local_port())]
        client.close()
        proxy.close()
        assert proc.stop() == 0


def test_first_request_after_an_edit_pays_no_connection_tax(project: Path) -> None:
    tax_s = 0.3
    with serving(project) as proc, tax_proxy(("127.0.0.1", proc.port), tax_s) as proxy:
        client = Client(proxy.port)
        assert client.get("/version/").elapsed_s >= tax_s  # the one new connection
        warm = [client.get("/version/").elapsed_s for _ in range(5)]
        assert max(warm) < tax_s / 2

        mark = len(proc.lines)
        write_file(project / "views.py", views("v2"))
        wait_until(lambda: bool(lines_after(proc, mark, RELOADED)), "the switch")
        first = client.get("/version/")
        assert first.body.startswith("v2 ")
        assert first.elapsed_s < tax_s / 2, first
        assert proxy.connections == 1
        client.close()
        assert proc.stop() == 0


def test_sigterm_drains_the_old_and_the_new_process(project: Path) -> None:
    with serving(project) as proc:
        replies: dict[str, Reply] = {}

        def slow(name: str) -> None:
            client = Client(proc.port)
            replies[name] = client.get(f"/slow/?until=release&mark={name}")
            client.close()

        old = threading.Thread(target=slow, args=("old",))
        old.start()
        wait_until((project / "slow-old").exists, "the request on the old process")
        mark = len(proc.lines)
        write_file(project / "views.py", views("v2"))
        wait_until(lambda: bool(lines_after(proc, mark, RELOADED)), "the switch")
        assert "drains" in lines_after(proc, mark, RELOADED)[0]
        new = threading.Thread(target=slow, args=("new",))
        new.start()
        wait_until((project / "slow-new").exists, "the request on the new process")
        assert "old" not in replies  # both are in flight now
        proc.signal(signal.SIGTERM)
        wait_until(lambda: "finishing in-flight requests" in proc.output, "the stop to begin")
        write_file(project / "release", "")
        old.join(30)
        new.join(30)
        code = proc.wait(30)
    assert code == 0
    assert replies["old"].status == 200 and replies["old"].body.startswith("slow v1 ")
    assert replies["new"].status == 200 and replies["new"].body.startswith("slow v2 ")
    assert "lagscope serve: stopped (2 request(s) were in flight, all finished)" in proc.output


def test_the_connection_limit_holds_new_clients_in_the_backlog(project: Path) -> None:
    with serving(project, "--connection-limit", "8") as proc:
        clients = [Client(proc.port) for _ in range(8)]
        for client in clients:
            assert client.get("/version/").status == 200
        wait_until(lambda: "new ones wait until one closes" in proc.output, "the limit line")
        late: list[Reply] = []
        ninth = Client(proc.port)
        thread = threading.Thread(target=lambda: late.append(ninth.get("/version/")))
        thread.start()
        # The ninth is connected (the kernel's backlog) but not accepted: no answer while
        # eight are open, however long; one closes, and it is served.
        assert all(c.get("/version/").status == 200 for c in clients[1:])
        assert late == []
        clients[0].close()
        thread.join(BOUND_S)
        assert [r.status for r in late] == [200]
        assert late[0].conn == "new"
        for client in [*clients[1:], ninth]:
            client.close()
        assert proc.stop() == 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_during_a_reload_leaves_no_process_behind(project: Path) -> None:
    with serving(project) as proc:
        front = proc._proc
        assert front is not None
        client = Client(proc.port)
        serving_pid = int(client.get("/version/").body.split()[1])
        client.close()
        # The new code takes long to import: Ctrl+C arrives while it is loading.
        marker = project / "importing"
        loading = f"open({str(marker)!r}, 'w').close()\ntime.sleep(60)"
        write_file(project / "views.py", views("v2", extra=loading))
        wait_until(marker.exists, "the new app process to import views.py")
        group = [front.pid, *_children(front.pid)]
        assert serving_pid in group
        for pid in group:  # what a console's Ctrl+C does: SIGINT to the whole group
            os.kill(pid, signal.SIGINT)
        code = proc.wait(30)
        wait_until(lambda: not any(_alive(p) for p in group[1:]), "the app processes to end", 15)
    assert code == 0
    assert not lines_after(proc, 0, RELOADED)


def test_an_app_that_fails_to_import_at_start_exits_2(project: Path) -> None:
    write_file(project / "views.py", views("v1") + "\ndef broken(:\n")
    proc = ServeProcess(ARGS, cwd=str(project), ready_timeout_s=BOUND_S)
    with pytest.raises(RuntimeError, match="exit 2"):
        proc.start()
    assert "SyntaxError" in proc.output
    assert "lagscope: reload: the app failed to load" in proc.output


@pytest.mark.postgres
def test_manage_py_reload_on_postgresql_opens_connections_only_before_each_switch(
    project: Path, pg_cluster: PgCluster
) -> None:
    dbname = "reload_site"
    pg_cluster.psql(f"DROP DATABASE IF EXISTS {dbname}")
    pg_cluster.psql(f"CREATE DATABASE {dbname}")
    database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": dbname,
        "USER": pg_cluster.user,
        "HOST": "127.0.0.1",
        "PORT": str(pg_cluster.port),
        "OPTIONS": {"gssencmode": "disable"},
    }
    env = {**os.environ, "SITE_DATABASE": json.dumps(database)}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py names its own (pytest-django set one)

    def backends() -> set[str]:
        out = pg_cluster.psql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{dbname}'")
        return set(out.split())

    command = [sys.executable, "manage.py", "lagscope", "serve"]
    args = ["--reload", "--port", "0", "--host", "127.0.0.1", "--threads", "2"]
    with ServeProcess(args, env=env, cwd=str(project), command=command) as proc:
        client = Client(proc.port)
        assert client.get("/query/").body.startswith("v1 ")
        for version in ("v2", "v3"):
            reloads = len(lines_after(proc, 0, RELOADED))
            write_file(project / "views.py", views(version))
            wait_until(functools.partial(_reloaded_more, proc, reloads), "the switch")
            # The new process's pool was open before the switch: the pool's connections
            # are all there is, and the requests after it open none.
            after_switch = backends()
            replies = [client.get("/query/") for _ in range(10)]
            assert all(r.status == 200 and r.body.startswith(version) for r in replies)
            assert backends() <= after_switch
        # The old processes drained and closed theirs: one pool of 2 is left.
        wait_until(lambda: len(backends()) == 2, "the old pools to close", 30)
        client.close()
        assert proc.stop() == 0
    wait_until(lambda: not backends(), "every connection closed at the stop", 30)
