"""The probes: what perfgate measures (HTTP endpoints, PostgreSQL plans)."""
