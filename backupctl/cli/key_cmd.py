"""``backupctl key generate`` and ``backupctl key id``: repository encryption keys."""

from __future__ import annotations

import os
from pathlib import Path

import click

from backupctl.cli import render
from backupctl.errors import UsageError
from backupctl.storage.encryption import decode_key, generate_key, key_id, write_key_file


@click.group("key")
def key_group() -> None:
    """Keys for client-side repository encryption (`repository: {encryption: …}`)."""


@key_group.command("generate")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the key to this new file (mode 0600; never overwritten) instead of stdout.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the key id (and path) as JSON.")
def generate(output: Path | None, as_json: bool) -> None:
    """Make a random 256-bit key (base64). Keep a copy outside the repository: without
    it, nothing encrypted with it can be restored."""
    text = generate_key()
    kid = key_id(decode_key(text, "the new key"))
    if output is not None:
        write_key_file(output, text)
        if as_json:
            render.emit_json({"key_id": kid, "path": str(output)})
        else:
            click.echo(f"key {kid} written to {output} (mode 0600)")
        return
    if as_json:
        render.emit_json({"key_id": kid, "key": text})
        return
    click.echo(text)
    click.echo(f"key id: {kid}", err=True)


@key_group.command("id")
@click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--key-env", metavar="VAR", default=None)
@click.option("--json", "as_json", is_flag=True)
def show_id(key_file: Path | None, key_env: str | None, as_json: bool) -> None:
    """Print the id of a key, as manifests and error messages show it."""
    if (key_file is None) == (key_env is None):
        raise UsageError("give exactly one of --key-file, --key-env")
    try:
        if key_file is not None:
            source = f"key file {key_file}"
            text = key_file.read_text()
        else:
            source = f"environment variable {key_env}"
            text = os.environ[str(key_env)]
        kid = key_id(decode_key(text, source))
    except (OSError, UnicodeDecodeError, KeyError) as exc:
        reason = getattr(exc, "strerror", None) or "not set or not readable"
        raise UsageError(f"cannot read {source}: {reason}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if as_json:
        render.emit_json({"key_id": kid})
    else:
        click.echo(kid)
