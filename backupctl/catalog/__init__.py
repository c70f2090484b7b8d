"""Manifests (the repository's truth), the local SQLite index built from them, the one
query that says which backups can be restored (``query``), and rebuilding the index from
the repositories (``sync``)."""
