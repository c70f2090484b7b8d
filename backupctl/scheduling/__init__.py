"""Schedules of the policies: the jobs they define (``plan``), what ``run-due`` and the
scheduler remember per job (``state``), when a job is due (``due``), and the same jobs as
systemd units (``systemd``) or crontab lines (``crontab``). Running them is an operation
(``backupctl.operations.jobs``, ``run_due``, ``daemon``)."""
