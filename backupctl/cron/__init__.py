"""Schedule expressions: five-field cron (with aliases such as ``daily``), parsed once and
read the same way by validation, APScheduler triggers and systemd ``OnCalendar=``."""
