"""Operations visibility: status, Prometheus metrics, notifications, and the reporter
every run tells its outcome (the run history itself is ``backupctl.history``)."""
