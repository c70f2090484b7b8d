"""Coverage-guided fuzzing of the policy loader with atheris (libFuzzer). Not run by
pytest (the name does not start with ``test_``); see ``tests/fuzz/README.md``.

Each input is written as a policy file and loaded: the loader must return policies or
raise PolicyError. Anything else (another exception, a hang past ``-timeout``, memory
past ``-rss_limit_mb``: a YAML bomb) is a crash that libFuzzer saves as ``crash-*``.
Start from the example policies as the seed corpus so mutations begin from valid YAML.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["backupctl", "yaml", "pydantic"]):
    from backupctl.errors import PolicyError
    from backupctl.policy.loader import load_policies

_DIR = Path(tempfile.mkdtemp(prefix="backupctl-atheris-"))
_PATH = _DIR / "policy.yaml"


def test_one_input(data: bytes) -> None:
    _PATH.write_bytes(data)
    with contextlib.suppress(PolicyError):
        load_policies(_PATH)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
