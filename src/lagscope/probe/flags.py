"""The request flags ``probe`` and ``diagnose`` share: extra headers, the address family,
TLS verification and ``--resolve`` pins, declared once so both commands take them alike.

Declarations only: the values are parsed and checked in :mod:`lagscope.probe.options`
(:func:`~lagscope.probe.options.parse_header`, :func:`~lagscope.probe.options.parse_family`,
:func:`~lagscope.probe.options.parse_resolve`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

__all__ = ["request_options"]

F = TypeVar("F", bound=Callable[..., object])


def request_options() -> Callable[[F], F]:
    """``-H``, ``-4``, ``-6``, ``-k``, ``--cacert`` and ``--resolve``, in that order; the
    command gets ``headers``, ``ipv4``, ``ipv6``, ``insecure``, ``cacert`` and ``resolves``."""
    options = [
        click.option(
            "-H",
            "--header",
            "headers",
            multiple=True,
            metavar="'NAME: VALUE'",
            help="Extra request header (repeatable).",
        ),
        click.option("-4", "--ipv4", "ipv4", is_flag=True, help="Use IPv4 addresses only."),
        click.option("-6", "--ipv6", "ipv6", is_flag=True, help="Use IPv6 addresses only."),
        click.option("-k", "--insecure", is_flag=True, help="Skip TLS certificate verification."),
        click.option(
            "--cacert",
            type=click.Path(dir_okay=False),
            default=None,
            help="Also trust the CA certificates in this PEM file (internal CAs, lagscope cert).",
        ),
        click.option(
            "--resolve",
            "resolves",
            multiple=True,
            metavar="HOST:ADDR[,ADDR...]",
            help="Pin HOST to these addresses, tried in order (e.g. localhost:[::1],127.0.0.1; "
            "curl's HOST:PORT:ADDR works too, bracket IPv6 there). Repeatable.",
        ),
    ]

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate
