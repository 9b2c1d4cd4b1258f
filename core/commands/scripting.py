"""Scripting commands (EVAL, SCRIPT, FUNCTION, FCALL): they live in
:mod:`trioredis.scripting`; this module lists them as a command group like the others."""

from __future__ import annotations

from ..scripting.commands import register

__all__ = ["register"]
