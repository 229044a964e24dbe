"""The local development CA and its localhost certificate, made with ``cryptography``.

Pure: the clock, the owner's name and the key generator are passed in, nothing is written.
It owns what the certificates say:

- the CA is a root (``BasicConstraints ca=True, path_length=0``) that may sign only for
  ``localhost`` (and ``*.localhost``), 127.0.0.0/8 and ::1 (a critical ``NameConstraints``
  extension): a stolen key cannot vouch for any other site, in any verifier that honours
  name constraints (Chrome, Firefox/NSS, Windows CryptoAPI, macOS, OpenSSL);
- the leaf names ``localhost``, 127.0.0.1 and ::1, is for TLS servers only (extended key
  usage serverAuth) and lives 820 days (Apple refuses TLS server certificates valid for
  more than 825 days);
- both keys are ECDSA P-256: the cheapest handshake, accepted by every store above.

The files themselves (where, which mode) are :mod:`lagscope.cert.files`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_DAYS",
    "LEAF_DAYS",
    "LEAF_NAMES",
    "Issued",
    "KeyMaker",
    "ca_name",
    "describe",
    "leaf_matches",
    "make_ca",
    "make_leaf",
    "new_key",
    "sha1_hex",
    "spki_sha256_b64",
]

# A development root kept for ten years: replacing it means installing it again everywhere.
CA_DAYS = 3650
# Apple refuses TLS server certificates valid for more than 825 days; mkcert uses ~820 too.
LEAF_DAYS = 820
# Renewed by `cert create` (and serve --https) when it has less than this left.
RENEW_BEFORE_DAYS = 30
# What the leaf is valid for: the three ways a browser names this machine's loopback.
LEAF_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
# What the CA may ever sign for (its name constraints).
_PERMITTED_DNS = "localhost"
_PERMITTED_NETS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# Certificates are backdated a little: a client whose clock runs behind still accepts them.
_BACKDATE = dt.timedelta(hours=1)

KeyMaker = Callable[[], ec.EllipticCurvePrivateKey]


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, as PEM bytes."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def ca_name(owner: str) -> str:
    """The CA's common name; ``owner`` is ``user@host``, so two machines' CAs differ."""
    return f"lagscope development CA {owner}"[:64]  # CN is at most 64 characters


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(owner: str, now: dt.datetime, key_maker: KeyMaker = new_key) -> Issued:
    """A self-signed root allowed to sign only for localhost and loopback addresses."""
    key = key_maker()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lagscope development CA"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, owner[:64] or "unknown"),
            x509.NameAttribute(NameOID.COMMON_NAME, ca_name(owner)),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.NameConstraints(
                permitted_subtrees=[
                    x509.DNSName(_PERMITTED_DNS),
                    *(x509.IPAddress(net) for net in _PERMITTED_NETS),
                ],
                excluded_subtrees=None,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _san(names: tuple[str, ...]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def make_leaf(
    ca: Issued,
    now: dt.datetime,
    names: tuple[str, ...] = LEAF_NAMES,
    key_maker: KeyMaker = new_key,
) -> Issued:
    """The server certificate for ``names``, signed by ``ca``."""
    ca_cert = ca.cert
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key")
    key = key_maker()
    public = key.public_key()
    not_after = min(now + dt.timedelta(days=LEAF_DAYS), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(
                        NameOID.ORGANIZATION_NAME, "lagscope development certificate"
                    ),
                    x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_san(names)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def leaf_matches(leaf: x509.Certificate, ca: x509.Certificate, now: dt.datetime) -> bool:
    """True while ``leaf`` was issued by ``ca``, names :data:`LEAF_NAMES` and has more than
    :data:`RENEW_BEFORE_DAYS` left; otherwise it is made again."""
    if leaf.issuer != ca.subject:
        return False
    try:
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    }
    if not set(LEAF_NAMES) <= have:
        return False
    return leaf.not_valid_after_utc - now > dt.timedelta(days=RENEW_BEFORE_DAYS)


def sha1_hex(cert: x509.Certificate) -> str:
    """The certificate's SHA-1 thumbprint (upper-case hex): how Windows' certutil and macOS'
    security name a certificate in a store."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()


def spki_sha256_b64(cert: x509.Certificate) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)): what Chromium's
    ``--ignore-certificate-errors-spki-list`` takes."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def describe(cert: x509.Certificate) -> str:
    """One line: the subject's CN, validity end and SHA-1 thumbprint."""
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = str(cn[0].value) if cn else cert.subject.rfc4514_string()
    until = cert.not_valid_after_utc.strftime("%Y-%m-%d")
    return f"{name} (valid until {until}, SHA-1 {sha1_hex(cert)})"
