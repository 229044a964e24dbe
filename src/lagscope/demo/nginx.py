"""nginx in front of a demo version (``--nginx``): its config (pure) and its process.

"before" gets the config most tutorials show: ``proxy_pass`` straight to the app address,
no ``upstream`` block, so nginx opens a new connection to the app for every request (and
pays the tax on it). "hand-tuned" and "lagscope" get ``lagscope nginx-config``'s config
(:func:`lagscope.nginx.render.render`), whose upstream pool keeps connections open. Both
are self-contained under a prefix directory, so nginx runs without touching /etc.

nginx cannot report a port it chose, so the port is picked free beforehand; readiness is a
successful TCP connect (polled, bounded) or nginx exiting, whichever comes first.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from lagscope import procgroup
from lagscope.errors import ExitCode, LagscopeError
from lagscope.netutil import free_port
from lagscope.nginx.config import Endpoint
from lagscope.nginx.render import NginxConfig, Tls, render

__all__ = ["NginxProcess", "nginx_command", "nginx_config", "tutorial_config"]

_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0


def _q(path: Path) -> str:
    return '"' + path.as_posix().replace('"', '\\"') + '"'


def tutorial_config(listen_port: int, upstream: tuple[str, int], prefix: Path) -> str:
    """The usual tutorial config: a new upstream connection per request."""
    host, port = upstream
    temp = "\n".join(
        f"    {name}_temp_path {_q(prefix / (name + '_temp'))};" for name in _TEMP_PATHS
    )
    return f"""# The config most tutorials show: proxy_pass to the app's address, no upstream block.
# nginx speaks HTTP/1.0 with "Connection: close" to the app (before 1.29.7), and keeps no
# upstream connection in any version without an upstream {{ keepalive }} block: one new
# connection to the app per request.
worker_processes 1;
pid {_q(prefix / "nginx.pid")};
error_log {_q(prefix / "error.log")} warn;

events {{
    worker_connections 1024;
}}

http {{
{temp}
    access_log off;

    server {{
        listen 127.0.0.1:{listen_port};

        location / {{
            proxy_pass http://{host}:{port};
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
        }}
    }}
}}
"""


def nginx_config(
    keepalive: bool,
    listen_port: int,
    upstream: tuple[str, int],
    prefix: Path,
    tls: Tls | None = None,
) -> str:
    """The config of one version: ``lagscope nginx-config``'s (with ``tls``, its
    ``--https`` listener: TLS with HTTP/2), or the tutorial one."""
    if not keepalive:
        if tls is not None:
            raise ValueError("the tutorial config is plain HTTP")
        return tutorial_config(listen_port, upstream, prefix)
    return render(
        NginxConfig(
            upstream=Endpoint(*upstream),
            listen=(Endpoint("127.0.0.1", listen_port),),
            prefix=prefix,
            tls=tls,
        )
    )


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def nginx_command(binary: Path, prefix: Path) -> list[str]:
    """nginx with the demo's prefix and config: the start (plus ``-g 'daemon off;'``) and,
    on Windows, the stop (plus ``-s stop``) name the same instance."""
    return [str(binary), "-p", str(prefix), "-c", str(prefix / "nginx.conf")]


class NginxProcess:
    """``nginx -p PREFIX -c nginx.conf -g 'daemon off;'`` as a child; ``port`` once ready."""

    def __init__(
        self,
        binary: Path,
        prefix: Path,
        keepalive: bool,
        upstream: tuple[str, int],
        tls: Tls | None = None,
    ):
        self.tls = tls
        self.binary = binary
        self.prefix = prefix
        self.keepalive = keepalive
        self.upstream = upstream
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        self.prefix.mkdir(parents=True, exist_ok=True)
        # Under root nginx's workers run as nobody and must reach the temp paths.
        self.prefix.chmod(0o755)
        last = ""
        for _ in range(3):  # a free port can be taken before nginx binds it
            port = free_port()
            conf = self.prefix / "nginx.conf"
            conf.write_text(
                nginx_config(self.keepalive, port, self.upstream, self.prefix, self.tls),
                encoding="utf-8",
            )
            self._proc = subprocess.Popen(
                [*self._command(), "-g", "daemon off;"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # Its own group: the fallback kill takes its workers with it, and a
                # terminal's Ctrl+C reaches us, who stop it, not nginx.
                start_new_session=True,  # POSIX; ignored on Windows
                creationflags=procgroup.NEW_GROUP_FLAGS,
            )
            if wait_listening(self._proc, port, READY_TIMEOUT_S):
                self.port = port
                return port
            self.stop()
            last = _last_line(self.prefix / "error.log")
        raise LagscopeError(
            "nginx", f"nginx did not start: {last or 'no error log'}", ExitCode.ENVIRONMENT
        )

    def _command(self) -> list[str]:
        return nginx_command(self.binary, self.prefix)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            if sys.platform != "win32":
                proc.terminate()  # SIGTERM: nginx's fast shutdown
            else:
                # TerminateProcess on the master would leave its workers (and the port)
                # behind; nginx for Windows takes its stop through -s.
                subprocess.run(
                    [*self._command(), "-s", "stop"],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=STOP_TIMEOUT_S,
                    check=False,
                )
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            procgroup.kill_group(proc)  # the master and its workers


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout_s: float) -> bool:
    """Whether ``proc`` accepts connections on 127.0.0.1:``port`` within ``timeout_s``
    (False as soon as it exits). nginx has no readiness line; accepting is its signal."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.01)  # poll interval between connect attempts
    return False
