"""Cheap real jobs for scheduling tests: model policies over tiny directories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_model(directory: Path, version: str) -> Path:
    """A model directory holding a VERSION file and one small weights file."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "weights.bin").write_bytes(b"w" * 1024)
    (directory / "VERSION").write_text(version + "\n")
    return directory


def model_policy(
    policies: Path,
    name: str,
    model_dir: Path,
    repository: Path,
    schedule: dict[str, Any],
    **extra: Any,
) -> Path:
    """Write ``policies/<name>.yaml`` backing up ``model_dir`` on ``schedule``."""
    data: dict[str, Any] = {
        "version": 1,
        "name": name,
        "driver": "model",
        "path": str(model_dir),
        "version_from": "VERSION",
        "repository": f"file://{repository}",
        "schedule": schedule,
        **extra,
    }
    policies.mkdir(parents=True, exist_ok=True)
    path = policies / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
