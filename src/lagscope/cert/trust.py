"""Which trust stores the local CA goes into, as plain steps; and running those steps.

The plans are pure functions of the platform, the home directory and the CA's identity, so
the exact commands for every platform are tested on any machine. Only the CURRENT USER's
stores are touched unless the system store is asked for by name (``--system``) by root:

- Windows: ``certutil -user -addstore Root`` (the user's Root store; Windows shows a
  confirmation dialog naming the certificate before adding a root);
- macOS: ``security add-trusted-cert -r trustRoot -k ~/Library/Keychains/login.keychain-db``
  (the login keychain and the user's trust settings; macOS asks for the user's password);
- Linux: the NSS databases Chrome/Chromium (``~/.pki/nssdb``, made when missing) and
  Firefox profiles (those that have a ``cert9.db``) read, with NSS's ``certutil``
  (Debian: libnss3-tools, Fedora: nss-tools); with ``--system`` as root also the system
  anchors (``/usr/local/share/ca-certificates`` + ``update-ca-certificates`` on Debian,
  ``/etc/pki/ca-trust/source/anchors`` + ``update-ca-trust`` on Fedora).

Every certificate is named by its SHA-1 thumbprint (Windows, macOS) or a nickname holding
its start (NSS), so uninstall removes exactly this CA and nothing else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lagscope.errors import ExitCode, LagscopeError

__all__ = [
    "CaIdentity",
    "CopyFile",
    "MakeDir",
    "RemoveFile",
    "Run",
    "Step",
    "StorePlan",
    "check_system_allowed",
    "execute",
    "is_present",
    "nss_databases",
    "plans",
]

Op = Literal["install", "uninstall", "status"]

# A store command may wait for a person (Windows' confirmation dialog, macOS' password).
STORE_COMMAND_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class CaIdentity:
    """What the stores know the CA by."""

    ca_path: Path
    sha1: str  # upper-case hex thumbprint

    @property
    def nickname(self) -> str:
        return f"lagscope development CA {self.sha1[:16]}"

    @property
    def system_file_stem(self) -> str:
        return f"lagscope-development-ca-{self.sha1[:16].lower()}"


@dataclass(frozen=True)
class Run:
    argv: tuple[str, ...]


@dataclass(frozen=True)
class MakeDir:
    path: Path


@dataclass(frozen=True)
class CopyFile:
    src: Path
    dst: Path


@dataclass(frozen=True)
class RemoveFile:
    path: Path


Step = Run | MakeDir | CopyFile | RemoveFile


@dataclass(frozen=True)
class StorePlan:
    """One trust store: its name for people, and the steps for the asked operation.

    For status, ``probe`` is the one step whose outcome says whether the CA is there
    (:func:`is_present` reads it): a command's exit status and output, or a file."""

    store: str
    kind: str  # windows-user | macos-login | nss | linux-system
    steps: tuple[Step, ...] = ()
    probe: Step | None = None
    needs: tuple[str, ...] = field(default=())  # programs that must exist


def windows_certutil(system_root: str) -> str:
    # By full path: a certutil earlier on PATH (NSS's has the same name) is never run.
    return f"{system_root.rstrip(chr(92))}\\System32\\certutil.exe"


def login_keychain(home: Path) -> str:
    return str(home / "Library" / "Keychains" / "login.keychain-db")


_SECURITY = "/usr/bin/security"
_NSS_CERTUTIL = "certutil"


def nss_databases(home: Path) -> list[Path]:
    """The user's NSS databases: Chrome/Chromium's (always, made when missing) and every
    Firefox profile that already has one (plain, snap and flatpak installs)."""
    found = [home / ".pki" / "nssdb"]
    for root in (
        home / ".mozilla" / "firefox",
        home / "snap" / "firefox" / "common" / ".mozilla" / "firefox",
        home / ".var" / "app" / "org.mozilla.firefox" / ".mozilla" / "firefox",
    ):
        try:
            profiles = sorted(p for p in root.iterdir() if (p / "cert9.db").is_file())
        except OSError:
            continue
        found.extend(profiles)
    return found


def _system_store(platform: str, linux_distro: str) -> tuple[Path, tuple[str, ...], str]:
    if linux_distro == "fedora":
        return (
            Path("/etc/pki/ca-trust/source/anchors"),
            ("update-ca-trust", "extract"),
            ".pem",
        )
    return Path("/usr/local/share/ca-certificates"), ("update-ca-certificates",), ".crt"


def linux_distro(root: Path = Path("/")) -> str:
    """``fedora`` where ``update-ca-trust``'s anchors directory exists, else ``debian``."""
    return (
        "fedora"
        if (root / "etc" / "pki" / "ca-trust" / "source" / "anchors").is_dir()
        else "debian"
    )


def check_system_allowed(system: bool, platform: str, is_root: bool) -> None:
    """``--system`` is for Linux, as root; anything else is refused before a store is touched."""
    if not system:
        return
    if not platform.startswith("linux"):
        raise LagscopeError(
            "cert",
            "--system is for Linux; on Windows and macOS lagscope only uses the current "
            "user's store (docs/https.md says how IT can add the CA machine-wide)",
            ExitCode.USAGE,
        )
    if not is_root:
        raise LagscopeError(
            "cert", "--system changes the machine's trust store and needs root", ExitCode.USAGE
        )


def _nss_plans(ca: CaIdentity, dbs: Sequence[Path], op: Op) -> list[StorePlan]:
    plans = []
    for db in dbs:
        where = f"sql:{db}"
        chrome = db.name == "nssdb"
        name = f"NSS {db}" + (" (Chrome, Chromium)" if chrome else " (Firefox)")
        if op == "install":
            steps: tuple[Step, ...] = (
                Run(
                    (
                        _NSS_CERTUTIL,
                        "-A",
                        "-d",
                        where,
                        "-t",
                        "C,,",
                        "-n",
                        ca.nickname,
                        "-i",
                        str(ca.ca_path),
                    )
                ),
            )
            if chrome and not (db / "cert9.db").exists():
                steps = (
                    MakeDir(db),
                    Run((_NSS_CERTUTIL, "-N", "-d", where, "--empty-password")),
                    *steps,
                )
            plans.append(StorePlan(name, "nss", steps, needs=(_NSS_CERTUTIL,)))
        elif op == "uninstall":
            if (db / "cert9.db").exists():
                plans.append(
                    StorePlan(
                        name,
                        "nss",
                        (Run((_NSS_CERTUTIL, "-D", "-d", where, "-n", ca.nickname)),),
                        needs=(_NSS_CERTUTIL,),
                    )
                )
        else:
            probe = Run((_NSS_CERTUTIL, "-L", "-d", where, "-n", ca.nickname))
            plans.append(
                StorePlan(
                    name,
                    "nss",
                    probe=probe if (db / "cert9.db").exists() else None,
                    needs=(_NSS_CERTUTIL,),
                )
            )
    return plans


def plans(
    op: Op,
    ca: CaIdentity,
    platform: str,
    home: Path,
    *,
    system: bool = False,
    system_root: str = "C:\\Windows",
    nss_dbs: Sequence[Path] | None = None,
    distro: str = "debian",
) -> list[StorePlan]:
    """The stores ``op`` touches on ``platform`` and the steps, as data (nothing runs).

    ``nss_dbs`` defaults to :func:`nss_databases` of ``home``; ``system`` adds the Linux
    system anchors (allowed only by :func:`check_system_allowed`)."""
    if platform == "win32":
        certutil = windows_certutil(system_root)
        store = "Windows current user Root store (certutil -user)"
        if op == "install":
            steps: tuple[Step, ...] = (
                Run((certutil, "-user", "-addstore", "Root", str(ca.ca_path))),
            )
            return [StorePlan(store, "windows-user", steps)]
        if op == "uninstall":
            return [
                StorePlan(
                    store, "windows-user", (Run((certutil, "-user", "-delstore", "Root", ca.sha1)),)
                )
            ]
        return [
            StorePlan(
                store, "windows-user", probe=Run((certutil, "-user", "-store", "Root", ca.sha1))
            )
        ]
    if platform == "darwin":
        keychain = login_keychain(home)
        store = f"macOS login keychain {keychain}"
        if op == "install":
            return [
                StorePlan(
                    store,
                    "macos-login",
                    (
                        Run(
                            (
                                _SECURITY,
                                "add-trusted-cert",
                                "-r",
                                "trustRoot",
                                "-k",
                                keychain,
                                str(ca.ca_path),
                            )
                        ),
                    ),
                )
            ]
        if op == "uninstall":
            return [
                StorePlan(
                    store,
                    "macos-login",
                    (
                        Run((_SECURITY, "remove-trusted-cert", str(ca.ca_path))),
                        Run((_SECURITY, "delete-certificate", "-Z", ca.sha1, keychain)),
                    ),
                )
            ]
        return [
            StorePlan(
                store,
                "macos-login",
                probe=Run((_SECURITY, "find-certificate", "-a", "-Z", keychain)),
            )
        ]
    # Linux and other POSIX systems with NSS
    out = _nss_plans(ca, nss_databases(home) if nss_dbs is None else nss_dbs, op)
    if system:
        directory, update, suffix = _system_store(platform, distro)
        target = directory / (ca.system_file_stem + suffix)
        store = f"system anchors {directory}"
        if op == "install":
            out.append(
                StorePlan(
                    store,
                    "linux-system",
                    (CopyFile(ca.ca_path, target), Run(update)),
                    needs=(update[0],),
                )
            )
        elif op == "uninstall":
            out.append(
                StorePlan(
                    store, "linux-system", (RemoveFile(target), Run(update)), needs=(update[0],)
                )
            )
        else:
            out.append(StorePlan(store, "linux-system", probe=CopyFile(ca.ca_path, target)))
    return out


def is_present(plan: StorePlan, ca: CaIdentity, returncode: int, output: str) -> bool:
    """Whether the status probe's outcome shows the CA in the store (pure)."""
    if plan.kind == "macos-login":
        # find-certificate -Z prints "SHA-1 hash: <HEX>" for every certificate it lists.
        return f"SHA-1 HASH: {ca.sha1}" in output.upper()
    return returncode == 0


# ------------------------------------------------------------------------------ shell

Runner = Callable[[tuple[str, ...]], "subprocess.CompletedProcess[str]"]


def run_command(argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """Run one store command, bounded; its output captured for the one-line error."""
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=STORE_COMMAND_TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise LagscopeError("cert", f"{argv[0]} not found", ExitCode.ENVIRONMENT) from None
    except subprocess.TimeoutExpired:
        raise LagscopeError(
            "cert", f"{argv[0]} {argv[1]} took over {STORE_COMMAND_TIMEOUT_S:g} s", ExitCode.TIMEOUT
        ) from None
    except OSError as exc:
        raise LagscopeError("cert", f"cannot run {argv[0]}: {exc}", ExitCode.ENVIRONMENT) from None


def missing_programs(
    plan: StorePlan, which: Callable[[str], str | None] = shutil.which
) -> list[str]:
    return [p for p in plan.needs if which(p) is None]


def _complaint(res: subprocess.CompletedProcess[str]) -> str:
    text = (res.stderr or res.stdout or "").strip().splitlines()
    return text[-1] if text else f"exit status {res.returncode}"


def execute(plan: StorePlan, runner: Runner = run_command) -> None:
    """Run a plan's steps in order; the first failure raises with the store's own words."""
    for step in plan.steps:
        try:
            if isinstance(step, MakeDir):
                step.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            elif isinstance(step, CopyFile):
                shutil.copyfile(step.src, step.dst)
                os.chmod(step.dst, 0o644)
            elif isinstance(step, RemoveFile):
                step.path.unlink(missing_ok=True)
            else:
                res = runner(step.argv)
                if res.returncode != 0:
                    raise LagscopeError(
                        "cert",
                        f"{plan.store}: {' '.join(step.argv[:2])} failed: {_complaint(res)}",
                        ExitCode.ENVIRONMENT,
                    )
        except OSError as exc:
            raise LagscopeError("cert", f"{plan.store}: {exc}", ExitCode.ENVIRONMENT) from None


def present(plan: StorePlan, ca: CaIdentity, runner: Runner = run_command) -> bool | None:
    """Whether the CA is in this store; None when the store does not exist."""
    probe = plan.probe
    if probe is None:
        return None
    if isinstance(probe, CopyFile):  # the system anchor: is our file there
        return probe.dst.is_file()
    if not isinstance(probe, Run):
        return None
    res = runner(probe.argv)
    return is_present(plan, ca, res.returncode, res.stdout)
