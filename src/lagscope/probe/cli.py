"""The ``lagscope probe`` command line (placeholder until the probe lands)."""

from __future__ import annotations

import click


@click.command()
@click.argument("url")
def probe(url: str) -> None:
    """Measure URL cold (new connections) and warm (one keep-alive connection)."""
    raise click.ClickException("not implemented yet")
