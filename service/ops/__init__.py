"""What operators see of every stage: metrics, logs and traces.

metrics.py   Prometheus metrics (KAMELEOON_METRICS_LISTEN) and the in-process counters behind them
logs.py      structlog: JSON in production, readable on a terminal; secrets never logged
tracing.py   OpenTelemetry spans of gRPC calls and Kameleoon requests (KAMELEOON_TRACING)
"""
