"""``backupctl metrics [--textfile PATH] [--push URL]``: Prometheus metrics (docs/metrics.md)."""

from __future__ import annotations

from pathlib import Path

import click

from backupctl.cli.context import AppContext
from backupctl.observability.metrics import render


@click.command("metrics")
@click.option(
    "--textfile",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write them atomically to this node-exporter textfile (*.prom) instead of stdout.",
)
@click.option("--push", "gateway", metavar="URL", help="Also push them to a Pushgateway.")
@click.pass_obj
def metrics(app: AppContext, textfile: Path | None, gateway: str | None) -> None:
    """Print the metrics in the Prometheus text format (or write or push them)."""
    if textfile is None and gateway is None:
        click.echo(render(app.metrics_registry()), nl=False)
        return
    app.publish_metrics(textfile, gateway)
