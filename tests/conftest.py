"""Shared fixtures: real mariadbd instances, moto's S3 server, and the CLI as users run it."""

pytest_plugins = [
    "tests.support.s3",
    "tests.support.mariadb",
    "tests.support.cli",
    "tests.support.elasticsearch",
]
