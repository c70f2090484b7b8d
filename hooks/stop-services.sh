#!/bin/sh
# Example stop hook for a MariaDB restore: stop what writes to the database, then the server.
# backupctl sets BACKUPCTL_POLICY, BACKUPCTL_STEP, BACKUPCTL_BACKUP_ID and BACKUPCTL_DATADIR.
set -eu
echo "stopping services for policy ${BACKUPCTL_POLICY:-?} (step ${BACKUPCTL_STEP:-?})"
for unit in shop-api.service shop-worker.service mariadb.service; do
    if systemctl list-unit-files "$unit" >/dev/null 2>&1; then
        systemctl stop "$unit"
    fi
done
