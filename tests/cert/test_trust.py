"""Trust-store plans as exact argument lists (Windows, macOS, Linux), and the real NSS
``certutil`` against a throwaway database in a throwaway home."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lagscope.cert.trust import (
    CaIdentity,
    CopyFile,
    MakeDir,
    RemoveFile,
    Run,
    check_system_allowed,
    execute,
    is_present,
    nss_databases,
    plans,
    present,
)
from lagscope.errors import ExitCode, LagscopeError

SHA1 = "BC5761E2D52DF8086DDF1672B0538ED6A8597E5D"
WIN_CA = CaIdentity(Path("C:\\Users\\me\\AppData\\Local\\lagscope\\cert\\rootCA.pem"), SHA1)
MAC_HOME = Path("/Users/me")
MAC_CA = CaIdentity(MAC_HOME / "Library/Application Support/lagscope/cert/rootCA.pem", SHA1)
CERTUTIL = "C:\\Windows\\System32\\certutil.exe"
KEYCHAIN = "/Users/me/Library/Keychains/login.keychain-db"


def _argvs(
    op: str, ca: CaIdentity, platform: str, home: Path, **kw: object
) -> list[tuple[str, ...]]:
    out = []
    for plan in plans(op, ca, platform, home, **kw):  # type: ignore[arg-type]
        for step in (*plan.steps, *([plan.probe] if plan.probe else [])):
            assert isinstance(step, Run)
            out.append(step.argv)
    return out


def test_windows_uses_the_current_users_root_store_only() -> None:
    home = Path("C:\\Users\\me")
    assert _argvs("install", WIN_CA, "win32", home) == [
        (CERTUTIL, "-user", "-addstore", "Root", str(WIN_CA.ca_path))
    ]
    assert _argvs("uninstall", WIN_CA, "win32", home) == [
        (CERTUTIL, "-user", "-delstore", "Root", SHA1)
    ]
    assert _argvs("status", WIN_CA, "win32", home) == [(CERTUTIL, "-user", "-store", "Root", SHA1)]
    # certutil by full path under SystemRoot, whatever its spelling
    assert _argvs("install", WIN_CA, "win32", home, system_root="D:\\WINNT\\")[0][0] == (
        "D:\\WINNT\\System32\\certutil.exe"
    )


def test_macos_uses_the_login_keychain_and_user_trust_settings() -> None:
    assert _argvs("install", MAC_CA, "darwin", MAC_HOME) == [
        (
            "/usr/bin/security",
            "add-trusted-cert",
            "-r",
            "trustRoot",
            "-k",
            KEYCHAIN,
            str(MAC_CA.ca_path),
        )
    ]
    # no -d anywhere: -d is the admin (system) trust domain
    assert all(
        "-d" not in argv
        for op in ("install", "uninstall", "status")
        for argv in _argvs(op, MAC_CA, "darwin", MAC_HOME)
    )
    assert _argvs("uninstall", MAC_CA, "darwin", MAC_HOME) == [
        ("/usr/bin/security", "remove-trusted-cert", str(MAC_CA.ca_path)),
        ("/usr/bin/security", "delete-certificate", "-Z", SHA1, KEYCHAIN),
    ]
    assert _argvs("status", MAC_CA, "darwin", MAC_HOME) == [
        ("/usr/bin/security", "find-certificate", "-a", "-Z", KEYCHAIN)
    ]


def test_macos_status_reads_the_thumbprint_from_find_certificate() -> None:
    (plan,) = plans("status", MAC_CA, "darwin", MAC_HOME)
    listing = f'keychain: "{KEYCHAIN}"\nSHA-256 hash: 00\nSHA-1 hash: {SHA1}\n'
    assert is_present(plan, MAC_CA, 0, listing)
    assert not is_present(plan, MAC_CA, 0, listing.replace(SHA1, "0" * 40))


def test_linux_plans_touch_the_system_only_when_asked(tmp_path: Path) -> None:
    ca = CaIdentity(tmp_path / "rootCA.pem", SHA1)
    db = tmp_path / ".pki" / "nssdb"
    install = plans("install", ca, "linux", tmp_path)
    assert [p.kind for p in install] == ["nss"]
    assert install[0].steps == (
        MakeDir(db),
        Run(("certutil", "-N", "-d", f"sql:{db}", "--empty-password")),
        Run(
            (
                "certutil",
                "-A",
                "-d",
                f"sql:{db}",
                "-t",
                "C,,",
                "-n",
                ca.nickname,
                "-i",
                str(ca.ca_path),
            )
        ),
    )
    with_system = plans("install", ca, "linux", tmp_path, system=True)
    anchor = (
        Path("/usr/local/share/ca-certificates")
        / f"lagscope-development-ca-{SHA1[:16].lower()}.crt"
    )
    assert with_system[-1].steps == (CopyFile(ca.ca_path, anchor), Run(("update-ca-certificates",)))
    fedora = plans("uninstall", ca, "linux", tmp_path, system=True, distro="fedora")
    assert fedora[-1].steps == (
        RemoveFile(
            Path("/etc/pki/ca-trust/source/anchors")
            / f"lagscope-development-ca-{SHA1[:16].lower()}.pem"
        ),
        Run(("update-ca-trust", "extract")),
    )


def test_system_store_needs_the_flag_root_and_linux() -> None:
    check_system_allowed(False, "linux", is_root=False)
    check_system_allowed(True, "linux", is_root=True)
    for platform, root in (("linux", False), ("win32", True), ("darwin", True)):
        with pytest.raises(LagscopeError) as err:
            check_system_allowed(True, platform, is_root=root)
        assert err.value.exit_code == ExitCode.USAGE


def test_firefox_profiles_with_a_database_are_found(tmp_path: Path) -> None:
    profile = tmp_path / ".mozilla" / "firefox" / "abc.default-release"
    profile.mkdir(parents=True)
    (profile / "cert9.db").write_bytes(b"")
    (tmp_path / ".mozilla" / "firefox" / "no-db").mkdir()
    assert nss_databases(tmp_path) == [tmp_path / ".pki" / "nssdb", profile]


needs_certutil = pytest.mark.skipif(
    shutil.which("certutil") is None, reason="NSS certutil (libnss3-tools) not installed"
)


def _listed(db: Path) -> str:
    return subprocess.run(
        ["certutil", "-L", "-d", f"sql:{db}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


@needs_certutil
def test_install_status_uninstall_in_a_throwaway_nss_database(tmp_path: Path) -> None:
    import datetime as dt

    from lagscope.cert.authority import make_ca, sha1_hex

    issued = make_ca("me@box", dt.datetime.now(dt.timezone.utc))
    (tmp_path / "rootCA.pem").write_bytes(issued.cert_pem)
    ca = CaIdentity(tmp_path / "rootCA.pem", sha1_hex(issued.cert))
    home = tmp_path / "home"
    home.mkdir()
    # A Firefox profile with its own database, made by certutil as Firefox would have.
    profile = home / ".mozilla" / "firefox" / "p.default"
    profile.mkdir(parents=True)
    subprocess.run(
        ["certutil", "-N", "-d", f"sql:{profile}", "--empty-password"], check=True, timeout=30
    )
    chrome = home / ".pki" / "nssdb"

    (status_chrome, status_ff) = plans("status", ca, "linux", home)
    assert present(status_chrome, ca) is None  # Chrome's database does not exist yet
    assert present(status_ff, ca) is False

    for plan in plans("install", ca, "linux", home):
        execute(plan)
    for db in (chrome, profile):
        assert ca.nickname in _listed(db)
        assert all(present(p, ca) for p in plans("status", ca, "linux", home))
    assert (chrome / "cert9.db").is_file()

    for plan in plans("uninstall", ca, "linux", home):
        execute(plan)
    for db in (chrome, profile):
        assert ca.nickname not in _listed(db)
    assert not any(present(p, ca) for p in plans("status", ca, "linux", home))


@needs_certutil
def test_a_failing_store_command_is_one_line(tmp_path: Path) -> None:
    ca = CaIdentity(tmp_path / "missing.pem", SHA1)
    (plan,) = plans("install", ca, "linux", tmp_path)
    with pytest.raises(LagscopeError) as err:
        execute(plan)
    assert err.value.exit_code == ExitCode.ENVIRONMENT
    assert "\n" not in err.value.one_line()
    assert "certutil -A failed" in err.value.one_line()
