"""Schedules: expressions, due-time computation, locks."""
