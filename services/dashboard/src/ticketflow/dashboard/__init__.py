"""The dashboard: the support lead's page and the agent's workspace (docs/dashboard.md)."""
