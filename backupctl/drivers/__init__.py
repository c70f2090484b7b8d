"""Drivers: one per kind of thing backupctl protects, found through the registry."""
