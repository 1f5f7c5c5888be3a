"""features layer (import-light)."""
