"""Recovery drill reports: the typed report, its Markdown and self-contained HTML, and
where they are kept (the repository and the state directory). Running a drill is an
operation (``backupctl.operations.drill``)."""
