"""Runbooks: ordered steps that describe, run and undo themselves, with a journal."""
