"""MariaDB: full backups with mariabackup, binlog backups and streaming, point-in-time
restores, recovery instances and drills."""
