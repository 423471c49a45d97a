"""Service runtime: settings, broker and pool wiring, telemetry, health endpoints."""
