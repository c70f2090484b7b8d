"""``backupctl demo``: the tour on a throwaway MariaDB, model directory and (when one is
given) Elasticsearch cluster; and the throwaway server and sample data it uses, which
the tests and benchmarks use too. Nothing outside this package imports it but the
command line."""
