"""MariaDB: full backups with mariabackup (binlogs and recovery instances follow)."""
