"""The environment rung: OS, Python, proxy variables and the security products the OS reports.

Parsing is pure and tested on recorded outputs (:func:`parse_security_center`,
:func:`products_from_process_names`); :func:`gather` is the shell that asks the system:
PowerShell's ``root/SecurityCenter2 AntiVirusProduct`` on Windows, the process list on
Linux and macOS (best effort). "unknown" is a valid answer; nothing is guessed.
"""

from __future__ import annotations

import json
import platform
import subprocess
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from lagscope.diagnose.context import LadderRun
from lagscope.diagnose.model import Environment, Figure, SecurityProduct

__all__ = [
    "environment_rung",
    "gather",
    "parse_security_center",
    "products_from_process_names",
    "proxy_facts",
]

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")

# Process names of endpoint security agents (lower-case) -> product. Best effort: a product
# not in this list is simply not reported.
_AGENTS: dict[str, str] = {
    "clamd": "ClamAV",
    "freshclam": "ClamAV",
    "falcon-sensor": "CrowdStrike Falcon",
    "falcond": "CrowdStrike Falcon",
    "wdavdaemon": "Microsoft Defender for Endpoint",
    "mdatp": "Microsoft Defender for Endpoint",
    "sentineld": "SentinelOne",
    "s1-agent": "SentinelOne",
    "savd": "Sophos",
    "sophosav": "Sophos",
    "esets_daemon": "ESET",
    "esets": "ESET",
    "cbagentd": "VMware Carbon Black",
    "cbdaemon": "VMware Carbon Black",
    "bdsecd": "Bitdefender",
    "bdagent": "Bitdefender",
    "ds_agent": "Trend Micro Deep Security",
    "rtvscand": "Symantec Endpoint Protection",
    "symcfgd": "Symantec Endpoint Protection",
    "mfetpd": "Trellix (McAfee) Endpoint Security",
    "mfeespd": "Trellix (McAfee) Endpoint Security",
    "kesl": "Kaspersky Endpoint Security",
    "wazuh-agentd": "Wazuh",
}

# The standard library's own NO_PROXY matcher (undeclared in typeshed).
_proxy_bypass: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]

_PS_QUERY = (
    "Get-CimInstance -Namespace root/SecurityCenter2 -ClassName AntiVirusProduct "
    "| Select-Object displayName,productState | ConvertTo-Json -Compress"
)


def _strip_credentials(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        return "<unparsable>"
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return value


def proxy_facts(url: str, environ: Mapping[str, str]) -> tuple[tuple[tuple[str, str], ...], bool]:
    """The proxy variables in force (values without credentials) and whether a client that
    honours them would send ``url`` through a proxy."""
    lowered = {k.lower(): v for k, v in environ.items() if k.lower() in _PROXY_VARS and v}
    shown = tuple(sorted((k, _strip_credentials(v)) for k, v in lowered.items()))
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    proxy = lowered.get(f"{scheme}_proxy") or lowered.get("all_proxy")
    if not proxy:
        return shown, False
    host = parts.hostname or ""
    no_proxy = lowered.get("no_proxy", "")
    bypass = _proxy_bypass(host, {"no": no_proxy}) if no_proxy else False
    return shown, not bypass


def _state_of(product_state: int) -> tuple[Literal["on", "off", "unknown"], bool | None]:
    # productState packs three bytes: (security provider)(scanner state)(signature state).
    # Scanner byte 0x10/0x11 = on, 0x00/0x01 = off; signature byte 0x00 = up to date.
    scanner = (product_state >> 8) & 0xFF
    signatures = product_state & 0xFF
    state: Literal["on", "off", "unknown"] = (
        "on" if scanner & 0x10 else ("off" if scanner in (0x00, 0x01) else "unknown")
    )
    return state, signatures == 0x00


def parse_security_center(output: str) -> tuple[SecurityProduct, ...]:
    """Products from ``Get-CimInstance ... | ConvertTo-Json`` output (one object or a list)."""
    text = output.strip().lstrip("\ufeff")
    if not text:
        return ()
    data: Any = json.loads(text)
    items = data if isinstance(data, list) else [data]
    out: list[SecurityProduct] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        name = str(item.get("displayName") or "unnamed product")
        raw = item.get("productState")
        if isinstance(raw, int) and not isinstance(raw, bool):
            state, fresh = _state_of(raw)
            out.append(SecurityProduct(name, state, fresh))
        else:
            out.append(SecurityProduct(name, "unknown", None))
    return tuple(out)


def products_from_process_names(names: Iterable[str]) -> tuple[SecurityProduct, ...]:
    found: dict[str, SecurityProduct] = {}
    for name in names:
        product = _AGENTS.get(name.strip().lower())
        if product is not None:
            found[product] = SecurityProduct(product, "on", None)
    return tuple(found[k] for k in sorted(found))


def _linux_process_names(proc: Path = Path("/proc")) -> list[str]:
    names: list[str] = []
    try:
        entries = list(proc.iterdir())
    except OSError:
        return names
    for entry in entries:
        if entry.name.isdigit():
            try:
                names.append((entry / "comm").read_text(errors="replace").strip())
            except OSError:
                continue
    return names


def _command_output(argv: list[str], timeout_s: float) -> str | None:
    """stdout of ``argv``, None when it fails (a missing tool raises OSError instead)."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    return done.stdout if done.returncode == 0 else None


def _security(platform_name: str, timeout_s: float) -> tuple[str, tuple[SecurityProduct, ...]]:
    try:
        if platform_name == "win32":
            argv = ["powershell", "-NoProfile", "-NonInteractive", "-Command", _PS_QUERY]
            out = _command_output(argv, timeout_s)
            if out is None:
                return "unknown", ()
            return "SecurityCenter2", parse_security_center(out)
        if platform_name.startswith("linux"):
            return "process list", products_from_process_names(_linux_process_names())
        if platform_name == "darwin":
            out = _command_output(["ps", "-axco", "command"], timeout_s)
            if out is None:
                return "unknown", ()
            return "process list", products_from_process_names(out.splitlines()[1:])
    except (OSError, subprocess.SubprocessError, ValueError):
        return "unknown", ()
    return "unknown", ()


def gather(
    url: str, environ: Mapping[str, str], platform_name: str, timeout_s: float = 5.0
) -> Environment:
    shown, applies = proxy_facts(url, environ)
    source, products = _security(platform_name, timeout_s)
    return Environment(
        os=f"{platform.system()} {platform.release()} ({platform.machine()})",
        python=f"{platform.python_implementation()} {platform.python_version()}",
        proxy_vars=shown,
        proxy_applies=applies,
        security_source=source,
        security_products=products,
    )


def describe(env: Environment) -> str:
    if env.security_source == "unknown":
        return "unknown"
    if not env.security_products:
        return f"none reported ({env.security_source})"
    return ", ".join(f"{p.name} ({p.state})" for p in env.security_products)


__all__ += ["describe"]


def environment_rung(run: LadderRun, environ: Mapping[str, str], platform_name: str) -> Environment:
    """The rung: what :func:`gather` found, as the report's figures."""
    t0 = run.start("environment")
    env = gather(run.probe.target.url, environ, platform_name)
    run.done(
        "environment",
        "Environment",
        t0,
        [
            Figure("os", env.os),
            Figure("python", env.python),
            Figure("proxy_variables", ", ".join(k for k, _ in env.proxy_vars) or "none"),
            Figure("proxy_applies", env.proxy_applies),
            Figure("security_products", describe(env)),
        ],
    )
    return env
