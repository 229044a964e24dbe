"""The CA and the localhost certificate: what they say, checked with cryptography and by a
real TLS handshake (Python's ssl, OpenSSL) against the CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509

from lagscope.cert.authority import (
    CA_DAYS,
    LEAF_DAYS,
    Issued,
    leaf_matches,
    make_ca,
    make_leaf,
    sha1_hex,
    spki_sha256_b64,
)

NOW = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.timezone.utc)


def test_the_ca_is_a_root_that_may_sign_only_for_loopback() -> None:
    ca = make_ca("me@box", NOW).cert
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    nc = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical
    assert set(nc.value.permitted_subtrees or []) == {
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
        x509.IPAddress(ipaddress.ip_network("::1/128")),
    }
    assert "me@box" in ca.subject.rfc4514_string()
    assert ca.not_valid_after_utc - NOW == dt.timedelta(days=CA_DAYS)


def test_the_leaf_names_localhost_and_both_loopback_addresses() -> None:
    ca = make_ca("me@box", NOW)
    leaf = make_leaf(ca, NOW).cert
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert leaf.not_valid_after_utc - NOW == dt.timedelta(days=LEAF_DAYS)
    assert LEAF_DAYS <= 825  # Apple's limit for TLS server certificates
    leaf.verify_directly_issued_by(ca.cert)


def test_leaf_matches_renews_near_expiry_and_for_another_ca() -> None:
    ca = make_ca("me@box", NOW)
    leaf = make_leaf(ca, NOW).cert
    assert leaf_matches(leaf, ca.cert, NOW)
    assert not leaf_matches(leaf, ca.cert, NOW + dt.timedelta(days=LEAF_DAYS - 29))
    other = make_ca("me@box", NOW)
    assert not leaf_matches(leaf, other.cert, NOW)


def test_identifiers() -> None:
    ca = make_ca("me@box", NOW).cert
    assert len(sha1_hex(ca)) == 40 and sha1_hex(ca).isupper()
    assert len(spki_sha256_b64(ca)) == 44  # base64 of 32 bytes


def _handshake(tmp_path: Path, leaf: Issued, ca: Issued, addr: str, host: str) -> str | None:
    """A real TLS handshake (Python's ssl, OpenSSL) to a server holding ``leaf``, verified
    against ``ca`` for ``host``; the TLS version."""
    (tmp_path / "c.pem").write_bytes(leaf.cert_pem)
    (tmp_path / "k.pem").write_bytes(leaf.key_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    client_ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
    with socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET) as listener:
        listener.bind((addr, 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

        t = threading.Thread(target=serve)
        t.start()
        try:
            with (
                socket.create_connection((addr, port), timeout=5) as raw,
                client_ctx.wrap_socket(raw, server_hostname=host) as tls,
            ):
                tls.sendall(b"x")
                return tls.version()
        finally:
            t.join(5)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
def test_openssl_accepts_the_leaf_for_each_name(tmp_path: Path, host: str) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    ca = make_ca("me@box", now)
    addr = "::1" if host == "::1" else "127.0.0.1"
    assert _handshake(tmp_path, make_leaf(ca, now), ca, addr, host) == "TLSv1.3"


def test_openssl_refuses_a_name_outside_the_constraints(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    ca = make_ca("me@box", now)
    rogue = make_leaf(ca, now, names=("example.com",))
    with pytest.raises(ssl.SSLCertVerificationError, match=r"(?i)name constraint|permitted"):
        _handshake(tmp_path, rogue, ca, "127.0.0.1", "example.com")
