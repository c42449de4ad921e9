"""The test Redis server's settings (the ``redis_url`` fixture in conftest.py starts it)."""

REDIS_PASSWORD = "rl-test-s3cret-pw"
"""The test Redis server's password: tests check that it never shows in output or reports."""
