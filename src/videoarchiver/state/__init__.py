"""The SQLite state: the only package that speaks SQL."""

from __future__ import annotations

from videoarchiver.state.database import FileRow, OutputRow, StateDB, StreamJobRow, Summary

__all__ = ["FileRow", "OutputRow", "StateDB", "StreamJobRow", "Summary"]
