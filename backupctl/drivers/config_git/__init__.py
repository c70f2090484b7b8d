"""The ``config-git`` driver: configuration files kept in Git history, forever."""
