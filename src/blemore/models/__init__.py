"""models layer (import-light)."""
