"""Exit codes of every command (documented in the README)."""

from __future__ import annotations

EXIT_OK = 0  # success; `run` stopped by a signal
EXIT_FAILED = 1  # a file failed (`run --once`), a retry matched nothing, `verify` found problems
EXIT_USAGE = 2  # could not start: configuration, tools, state
EXIT_KILLED = 130  # a second signal stopped `run` at once
