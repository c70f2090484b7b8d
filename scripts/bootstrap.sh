#!/usr/bin/env bash
# Set up everything backupctl needs on a Debian machine (run as root): the MariaDB
# packages, zstd, Python with venv, and a virtualenv in .venv with backupctl (editable),
# its runtime dependencies at the production pins (constraints.txt) and the test
# dependencies. For a server, scripts/install.sh instead. Quick when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(mariadb-server mariadb-backup mariadb-client zstd git)
if [ "${1:-}" = "--test" ]; then
    packages+=(chromium)  # the tests render drill reports in a headless browser
    # promtool (checks and unit-tests deploy/prometheus/backupctl-rules.yml) only comes in
    # Debian's prometheus package; without an init system (containers) its server stays off
    packages+=(prometheus)
    # the simulated month moves a test server's clock (tests/integration/test_simulated_month.py)
    packages+=(libfaketime)
fi
if ! command -v python3 >/dev/null || ! python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    packages+=(python3 python3-venv python3-pip)
fi
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: missing Debian packages: ${missing[*]}; run as root or install them" >&2
        exit 1
    fi
    echo "bootstrap: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=.venv/.backupctl-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "bootstrap: creating .venv" >&2
    python3 -m venv .venv
    if ! { .venv/bin/python -m pip install -q --upgrade pip &&
           .venv/bin/python -m pip install -q --constraint constraints.txt -e ".[test]"; } >.venv/pip.log 2>&1; then
        cat .venv/pip.log >&2
        echo "bootstrap: pip install failed (log above, kept in .venv/pip.log)" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
# an editable install is not byte-compiled, and PYTHONDONTWRITEBYTECODE would make every
# run compile every module again (~0.3 s per cron job)
.venv/bin/python -m compileall -q backupctl >/dev/null
