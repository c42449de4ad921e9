"""Load: HTTP client (auth, rate limit, retry), batching, one module per target."""
