"""The one error the RDB codec raises."""

from __future__ import annotations


class RdbError(ValueError):
    """A payload or file that is not valid RDB (or uses a feature this codec refuses)."""


class EmptyValue(RdbError):
    """A value with no elements: an RDB file skips such a key, RESTORE refuses it."""
