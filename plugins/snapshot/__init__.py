"""Snapshot backend (in progress)."""
