"""The ``elasticsearch`` driver: snapshots through the cluster's snapshot API."""
