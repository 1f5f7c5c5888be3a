"""Fixtures of this folder's tests: the shared local Ray cluster."""

from tests.support.ray_cluster import cluster  # noqa: F401  (a fixture: pytest finds it here)
