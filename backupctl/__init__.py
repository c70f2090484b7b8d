"""backupctl: backup and disaster-recovery orchestrator."""

__version__ = "0.1.0"
