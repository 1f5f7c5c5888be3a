"""data layer (import-light)."""
