"""The built-in plugins of trioredis; each uses only the public API of ``trioredis``."""
