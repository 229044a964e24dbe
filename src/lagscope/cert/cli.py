"""``lagscope cert create|install|uninstall|status``: the thin shell over the CA files
(:mod:`lagscope.cert.files`) and the trust-store plans (:mod:`lagscope.cert.trust`).

Exit codes: 0 done; 2 ``--system`` where it does not apply or without root; 8 a store
command failed or is missing (NSS's ``certutil``); 5 a store command took over 300 s.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from lagscope.cert.authority import describe, sha1_hex
from lagscope.cert.files import cert_files, ensure, load_ca
from lagscope.cert.trust import (
    CaIdentity,
    StorePlan,
    check_system_allowed,
    execute,
    linux_distro,
    missing_programs,
    plans,
    present,
)
from lagscope.errors import ExitCode, LagscopeError

__all__ = ["cert"]

_SYSTEM_HELP = (
    "Linux, as root: also the system's CA anchors (update-ca-certificates / update-ca-trust). "
    "Never done without this flag."
)


def _home() -> Path:
    return Path(os.environ.get("HOME") or os.environ.get("USERPROFILE") or Path.home())


def _is_root() -> bool:
    return sys.platform != "win32" and os.geteuid() == 0


def _store_plans(op: str, ca: CaIdentity, system: bool) -> list[StorePlan]:
    return plans(
        op,  # type: ignore[arg-type]
        ca,
        sys.platform,
        _home(),
        system=system,
        system_root=os.environ.get("SYSTEMROOT", "C:\\Windows"),
        distro=linux_distro(),
    )


def _require_programs(chosen: list[StorePlan]) -> None:
    for plan in chosen:
        missing = missing_programs(plan)
        if missing:
            hint = (
                " (Debian/Ubuntu: apt install libnss3-tools; Fedora: dnf install nss-tools)"
                if "certutil" in missing
                else ""
            )
            raise LagscopeError(
                "cert", f"{plan.store}: {', '.join(missing)} not found{hint}", ExitCode.ENVIRONMENT
            )


@click.group("cert")
def cert() -> None:
    """A local development CA for https://localhost (as mkcert does it).

    The CA may sign only for localhost and loopback addresses; its key stays in the
    per-user data directory. install trusts it for the current user only.
    """


@cert.command("create")
def create() -> None:
    """Make the CA and the localhost certificate (kept when they exist and are current)."""
    made = ensure(cert_files())
    files = made.files
    click.echo(f"CA:          {files.ca_cert}  ({'created' if made.ca_created else 'kept'})")
    click.echo(f"             {describe(made.ca)}")
    click.echo(f"certificate: {files.leaf_cert}  ({'created' if made.leaf_created else 'kept'})")
    click.echo(f"             {describe(made.leaf)}")
    click.echo(f"keys:        {files.ca_key}, {files.leaf_key} (only you can read them)")
    click.echo("Browsers trust it after: lagscope cert install")


@cert.command("install")
@click.option("--system", is_flag=True, help=_SYSTEM_HELP)
def install(system: bool) -> None:
    """Trust the CA for the current user (made first if missing)."""
    check_system_allowed(system, sys.platform, _is_root())
    made = ensure(cert_files())
    ca = CaIdentity(made.files.ca_cert, sha1_hex(made.ca))
    chosen = _store_plans("install", ca, system)
    _require_programs(chosen)
    for plan in chosen:
        if sys.platform == "win32":
            click.echo("Windows asks you to confirm adding the certificate: check its thumbprint")
            click.echo(f"  is {ca.sha1} and answer Yes.")
        elif sys.platform == "darwin":
            click.echo("macOS asks for your password to change your trust settings.")
        execute(plan)
        click.echo(f"trusted in {plan.store}")
    click.echo(f"CA {describe(made.ca)}")


@cert.command("uninstall")
@click.option("--system", is_flag=True, help=_SYSTEM_HELP)
def uninstall(system: bool) -> None:
    """Remove the CA from the stores install put it in (the files stay)."""
    check_system_allowed(system, sys.platform, _is_root())
    files = cert_files()
    ca_cert = load_ca(files)
    if ca_cert is None:
        click.echo(f"no CA in {files.directory}: nothing to remove")
        return
    ca = CaIdentity(files.ca_cert, sha1_hex(ca_cert))
    chosen = _store_plans("uninstall", ca, system)
    _require_programs(chosen)
    for plan in chosen:
        if present(_status_of(plan, ca, system), ca) is False:
            click.echo(f"not in {plan.store}")
            continue
        execute(plan)
        click.echo(f"removed from {plan.store}")
    click.echo(f"The CA and its key are still in {files.directory}; delete it to remove them too.")


def _status_of(plan: StorePlan, ca: CaIdentity, system: bool) -> StorePlan:
    for candidate in _store_plans("status", ca, system):
        if candidate.store == plan.store:
            return candidate
    return plan


@cert.command("status")
def status() -> None:
    """Where the CA is, and which stores trust it."""
    files = cert_files()
    ca_cert = load_ca(files)
    if ca_cert is None:
        click.echo(f"no CA yet in {files.directory} (lagscope cert create)")
        return
    click.echo(f"CA {describe(ca_cert)}")
    click.echo(f"   {files.ca_cert}")
    ca = CaIdentity(files.ca_cert, sha1_hex(ca_cert))
    for plan in _store_plans("status", ca, system=sys.platform.startswith("linux")):
        if missing_programs(plan):
            click.echo(f"unknown      {plan.store} ({', '.join(missing_programs(plan))} not found)")
            continue
        found = present(plan, ca)
        word = {True: "trusted", False: "not trusted", None: "no store"}[found]
        click.echo(f"{word:<12} {plan.store}")
