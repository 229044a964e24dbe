"""Who may see the details: the trust decision. Pure.

A client is trusted when any of these holds:

* DEBUG is on (Django, when ``trust_debug``);
* it presents the configured secret in ``secret_header`` (compared in constant time);
* its address is loopback (when ``trust_loopback``) or listed in INTERNAL_IPS (when
  ``trust_internal_ips``).

Forwarded addresses: behind a proxy on the same machine every peer is loopback, so a
trusted peer only vouches for itself. When the request carries ``X-Forwarded-For`` or
``X-Real-IP``, *every* address named there must be trusted as well. A forged header can
therefore only lower trust, never raise it.

Untrusted clients get :attr:`Disclosure.NONE` or, if so configured,
:attr:`Disclosure.TOTAL` (only the ``total`` metric).
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Collection

from lagscope.addresses import is_loopback_literal

__all__ = ["Disclosure", "decide", "is_loopback"]


class Disclosure(enum.Enum):
    NONE = "none"
    TOTAL = "total"
    FULL = "full"


# Peer and forwarded addresses are literals; a name is never trusted as loopback here.
is_loopback = is_loopback_literal


def _address_trusted(
    address: str, trust_loopback: bool, internal_ips: Collection[str] | None
) -> bool:
    address = address.strip()
    if trust_loopback and is_loopback(address):
        return True
    return internal_ips is not None and address in internal_ips


def decide(
    *,
    debug: bool,
    peer: str | None,
    forwarded_for: str | None,
    real_ip: str | None,
    internal_ips: Collection[str] | None,
    trust_loopback: bool,
    secret: str,
    presented_secret: str | None,
    untrusted: Disclosure,
) -> Disclosure:
    """Decide what this request's client may see.

    ``internal_ips`` is None when INTERNAL_IPS trust is off. ``untrusted`` is what an
    untrusted client gets (NONE or TOTAL).
    """
    if debug:
        return Disclosure.FULL
    if (
        secret
        and presented_secret is not None
        and hmac.compare_digest(
            presented_secret.encode("utf-8", "surrogateescape"),
            secret.encode("utf-8", "surrogateescape"),
        )
    ):
        return Disclosure.FULL
    if peer is None or not _address_trusted(peer, trust_loopback, internal_ips):
        return untrusted
    if forwarded_for is not None:
        for hop in forwarded_for.split(","):
            if not _address_trusted(hop, trust_loopback, internal_ips):
                return untrusted
    if real_ip is not None and not _address_trusted(real_ip, trust_loopback, internal_ips):
        return untrusted
    return Disclosure.FULL
