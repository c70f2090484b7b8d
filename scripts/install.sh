#!/usr/bin/env bash
# Install backupctl for production on a Debian server (as root): the Debian packages it
# drives, a virtualenv in $PREFIX (default /opt/backupctl) with backupctl and its pinned
# runtime dependencies only (constraints.txt; not editable, no test dependencies), the
# sysusers.d/tmpfiles.d entries and, with --units, the systemd units of deploy/systemd.
# Installing again upgrades in place. docs/installing.md walks through the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${PREFIX:-/opt/backupctl}
units=false
[ "${1:-}" = "--units" ] && units=true
if [ "$(id -u)" -ne 0 ]; then
    echo "install: run as root (it installs Debian packages and writes $prefix, /etc)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    mariadb-backup mariadb-client zstd git util-linux python3 python3-venv >/dev/null
python3 -m venv "$prefix/.venv"
"$prefix/.venv/bin/python" -m pip install -q --upgrade pip
"$prefix/.venv/bin/python" -m pip install -q --constraint constraints.txt .
"$prefix/.venv/bin/python" -m compileall -q "$prefix/.venv/lib" >/dev/null || true
install -D -m 0644 deploy/sysusers.d/backupctl.conf /usr/lib/sysusers.d/backupctl.conf
install -D -m 0644 deploy/tmpfiles.d/backupctl.conf /usr/lib/tmpfiles.d/backupctl.conf
if command -v systemd-sysusers >/dev/null; then
    systemd-sysusers backupctl.conf
else
    getent group backupctl >/dev/null || groupadd --system backupctl
fi
if command -v systemd-tmpfiles >/dev/null; then
    systemd-tmpfiles --create backupctl.conf
fi
if $units; then
    install -m 0644 deploy/systemd/*.service deploy/systemd/*.timer /etc/systemd/system/
    systemctl daemon-reload 2>/dev/null || true
fi
"$prefix/.venv/bin/backupctl" --version
echo "install: done; next: policies in /etc/backupctl/policies, then" \
    "'$prefix/.venv/bin/backupctl policy validate' (docs/installing.md)" >&2
