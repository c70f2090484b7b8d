"""Operations visibility: run records, status, Prometheus metrics, notifications."""
