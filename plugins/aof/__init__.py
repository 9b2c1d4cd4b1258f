"""AOF backend (in progress)."""
