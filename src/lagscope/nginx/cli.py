"""``lagscope nginx-config``: the thin shell around :func:`lagscope.nginx.render.render`.

This module owns the command's I/O: parsing flags (one per row of the nginx settings
table), writing the config atomically (temp file + ``os.replace``) or to stdout, and the
optional ``nginx -t`` check, which runs before the file is replaced so a config nginx
rejects never overwrites a working one.

Exit codes: 0 written (and checked); 2 bad input (HOST:PORT, inconsistent timeouts);
8 environment (output not writable, ``--check`` without an nginx binary);
1 ``nginx -t`` rejected the config (nothing written).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from lagscope.cert import check_tls_files, served_files
from lagscope.errors import ExitCode, LagscopeError
from lagscope.fileio import write_text_atomic
from lagscope.nginx.binary import find_nginx
from lagscope.nginx.config import (
    DEFAULT_LISTEN,
    AppServer,
    NginxSettings,
    check_consistency,
    expand_listen,
    parse_endpoint,
)
from lagscope.nginx.render import NginxConfig, Tls, render
from lagscope.outputs import FILE_PATH
from lagscope.procgroup import NEW_GROUP_FLAGS, kill_group
from lagscope.settings_table import build, click_options

__all__ = ["nginx_check", "nginx_config"]

_NGINX_CHECK_TIMEOUT_S = 30


def nginx_check(
    nginx: Path, conf: Path, prefix: Path, timeout_s: float = _NGINX_CHECK_TIMEOUT_S
) -> None:
    """Run ``nginx -t`` on ``conf``; raise GATE_FAILED with nginx's own complaint.

    nginx runs in a process group of its own, and a check that outlives ``timeout_s`` has
    the whole group killed: a wrapper script's children never outlive it.
    """
    argv = [str(nginx), "-t", "-q", "-p", str(prefix), "-c", str(conf)]
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            creationflags=NEW_GROUP_FLAGS,  # Windows' own group
            start_new_session=True,  # POSIX's own group; Windows ignores it
        )
    except OSError as exc:
        raise LagscopeError("check", f"cannot run {nginx}: {exc}", ExitCode.ENVIRONMENT) from None
    try:
        _, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise LagscopeError(
            "check", f"{nginx} -t took over {timeout_s:g} s", ExitCode.TIMEOUT
        ) from None
    res = subprocess.CompletedProcess(argv, proc.returncode, "", stderr)
    if res.returncode != 0:
        complaint = next(
            (ln for ln in res.stderr.splitlines() if "[emerg]" in ln or "[alert]" in ln),
            res.stderr.strip() or f"exit status {res.returncode}",
        )
        if "Permission denied" in complaint:
            # The usual cause: a system-paths config checked by a non-root user.
            complaint += " (use --prefix DIR for a config that runs without root)"
        raise LagscopeError(
            "check", f"nginx -t rejected the config: {complaint}", ExitCode.GATE_FAILED
        )


def _check_snippet(nginx: Path, snippet_file: Path) -> None:
    # A snippet is not a whole config: wrap it in a minimal one, self-contained in a temp
    # prefix, and check that.
    with tempfile.TemporaryDirectory(prefix="lagscope-nginx-check-") as tmp:
        prefix = Path(tmp)
        temp_paths = "".join(
            f'    {d}_temp_path "{(prefix / d).as_posix()}";\n'
            for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        wrapper = prefix / "nginx.conf"
        wrapper.write_text(
            f'pid "{(prefix / "nginx.pid").as_posix()}";\n'
            f'error_log "{(prefix / "error.log").as_posix()}";\n'
            "events {}\n"
            "http {\n"
            f"{temp_paths}"
            f'    include "{snippet_file.resolve().as_posix()}";\n'
            "}\n",
            encoding="utf-8",
        )
        nginx_check(nginx, wrapper, prefix)


def nginx_version(
    nginx: Path, timeout_s: float = _NGINX_CHECK_TIMEOUT_S
) -> tuple[int, int, int] | None:
    """The version ``nginx -v`` reports (``nginx version: nginx/1.22.1``), or None."""
    try:
        res = subprocess.run(
            [str(nginx), "-v"], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_nginx_version(res.stderr + res.stdout)


def parse_nginx_version(text: str) -> tuple[int, int, int] | None:
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def _tls_for(https: bool, cert: Path | None, key: Path | None, nginx_bin: str | None) -> Tls | None:
    check_tls_files(https, cert, key)
    if not https:
        return None
    cert_file, key_file, _ = served_files(cert, key)
    found = find_nginx(nginx_bin)
    # The HTTP/2 syntax depends on the version; unknown (no nginx here) gets the older one,
    # which newer nginx still accepts.
    return Tls(cert_file.resolve(), key_file.resolve(), nginx_version(found) if found else None)


@click.command("nginx-config")
@click.option(
    "--upstream",
    required=True,
    metavar="HOST:PORT",
    help="Where the app server listens (e.g. the address `lagscope serve` printed).",
)
@click.option(
    "--listen",
    multiple=True,
    metavar="HOST:PORT",
    help=f"Where nginx listens; repeatable. 'localhost' means both 127.0.0.1 and ::1. "
    f"[default: {DEFAULT_LISTEN}]",
)
@click.option(
    "--output",
    "-o",
    type=FILE_PATH,
    help="Write the config to this file (atomically) instead of stdout.",
)
@click.option(
    "--prefix",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Self-contained config: pid, logs and temp dirs under DIR, so nginx runs without "
    "root: nginx -p DIR -c FILE. DIR is created if missing.",
)
@click.option(
    "--snippet",
    is_flag=True,
    help="Only what goes inside http {} (for /etc/nginx/conf.d/); excludes --prefix.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Validate with `nginx -t` before writing; nothing is written if nginx rejects it.",
)
@click.option(
    "--nginx",
    "nginx_bin",
    metavar="PATH",
    help="The nginx binary for --check [default: nginx on PATH, else /usr/sbin/nginx].",
)
@click.option(
    "--https",
    is_flag=True,
    help="Listen with TLS and HTTP/2 (one browser connection per origin), redirect plain "
    "http:// on that port; the upstream stays HTTP/1.1 with keep-alive.",
)
@click.option(
    "--tls-cert-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="--https: certificate chain (PEM) [default: the local CA's localhost certificate, "
    "made by lagscope cert when missing].",
)
@click.option(
    "--tls-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="--https: the key of --tls-cert-file.",
)
@click_options(AppServer)
@click_options(NginxSettings)
def nginx_config(
    upstream: str,
    listen: tuple[str, ...],
    output: Path | None,
    prefix: Path | None,
    snippet: bool,
    check: bool,
    nginx_bin: str | None,
    server_idle_timeout_s: int | None,
    https: bool,
    tls_cert_file: Path | None,
    tls_key_file: Path | None,
    **table: int | None,
) -> None:
    """Write an nginx config that keeps upstream connections alive in front of an app server.

    Upstream keep-alive is done right (an upstream block with `keepalive`, HTTP/1.1 and an
    empty Connection header), the timeouts agree with the app server's, and nginx sends
    X-Request-Start so the app can measure queue time. Every number can be overridden with
    the flags below; docs/nginx.md explains each.
    """
    settings, _ = build(NginxSettings, table)
    app_server, _ = build(AppServer, {"server_idle_timeout_s": server_idle_timeout_s})
    check_consistency(settings, app_server.server_idle_timeout_s)
    if snippet and prefix is not None:
        raise LagscopeError("config", "--snippet and --prefix exclude each other", ExitCode.USAGE)
    up = parse_endpoint(upstream, "upstream")
    listens = tuple(
        ep
        for text in (listen or (DEFAULT_LISTEN,))
        for ep in expand_listen(parse_endpoint(text, "listen"))
    )
    if len(set(listens)) != len(listens):
        raise LagscopeError("listen", "the same address is given twice", ExitCode.USAGE)

    tls = _tls_for(https, tls_cert_file, tls_key_file, nginx_bin)
    nginx: Path | None = None
    if check:
        nginx = find_nginx(nginx_bin)
        if nginx is None:
            where = nginx_bin or "PATH, /usr/sbin, /usr/local/sbin"
            raise LagscopeError("check", f"nginx binary not found ({where})", ExitCode.ENVIRONMENT)

    if prefix is not None:
        prefix = prefix.resolve()
        try:
            prefix.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LagscopeError(
                "prefix", f"cannot create {prefix}: {exc.strerror or exc}", ExitCode.ENVIRONMENT
            ) from None
    text = render(
        NginxConfig(
            upstream=up,
            listen=listens,
            settings=settings,
            prefix=prefix,
            snippet=snippet,
            tls=tls,
        )
    )

    def validate(conf_file: Path) -> None:
        if nginx is None:
            return
        if snippet:
            _check_snippet(nginx, conf_file)
        else:
            nginx_check(nginx, conf_file, prefix or conf_file.parent)

    if output is not None:
        write_text_atomic(output, text, check=validate)
        click.echo(f"lagscope: wrote {output}" + (" (nginx -t: ok)" if check else ""), err=True)
        return
    if nginx is not None:
        with tempfile.TemporaryDirectory(prefix="lagscope-nginx-") as tmp:
            conf_file = Path(tmp) / "nginx.conf"
            conf_file.write_text(text, encoding="utf-8")
            validate(conf_file)
    sys.stdout.write(text)
    sys.stdout.flush()
