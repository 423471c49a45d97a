"""Service runtime: settings, telemetry, Kafka wiring (dead letters, retries), health endpoints.
Every service's main.py uses the same few calls, so one service reads like all the others."""
