"""Manifests (the repository's truth) and the local SQLite index built from them."""
