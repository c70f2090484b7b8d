"""What a user asks for, one module each: ``backup``, ``restore`` (plan, run, resume,
roll back), ``verify``, ``prune``, ``drill``, ``follow`` (binlog streaming),
``catalog`` (sync), ``jobs`` (one scheduled job), ``run_due`` and ``daemon`` (the
scheduler). The command line parses flags into a typed request and calls one of these;
lower layers (drivers, the catalog, locks, the state layout) never import them.
"""
