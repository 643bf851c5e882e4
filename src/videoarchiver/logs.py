"""Logging to stderr and to `log/videoarchiver.log`, rotated so it never fills the disk.

Names in messages are escaped: a newline in a file name cannot forge a log line, and a name
whose bytes are not UTF-8 is shown with `\\xNN` escapes instead of breaking the handler. The
log file is readable by its owner only (it names every recording).
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import sys
from pathlib import Path, PurePath

from rich.console import Console
from rich.logging import RichHandler

from videoarchiver.planning.messages import printable

FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"  # ISO 8601
# syslog priorities, which journald reads from a `<N>` prefix.
PRIORITIES = {
    logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7
}  # fmt: skip
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
PRIVATE = 0o600


class _EscapeNames(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                printable(str(arg)) if isinstance(arg, str | PurePath) else arg
                for arg in record.args
            )
        return True


class _JournalFormatter(logging.Formatter):
    """For journald: its own timestamps, and our level as a syslog priority on every line, so
    `journalctl -p err` finds the failures."""

    def format(self, record: logging.LogRecord) -> str:
        priority = PRIORITIES.get(record.levelno, 6)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


def stderr_is_journal() -> bool:
    """True when systemd connected our stderr to the journal (`$JOURNAL_STREAM` names it)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        info = os.fstat(2)
    except OSError:
        return False
    return stream == f"{info.st_dev}:{info.st_ino}"


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """The log file, private; a line it cannot take (a full disk) is said once on stderr,
    where every line goes anyway, instead of a traceback for each (logging's default)."""

    failing = False  # the last line could not be written
    _failed = False  # this one could not

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE)
        os.fchmod(fd, PRIVATE)
        return io.TextIOWrapper(io.FileIO(fd, "a"), encoding="utf-8", errors="backslashreplace")

    def emit(self, record: logging.LogRecord) -> None:
        self._failed = False
        super().emit(record)  # a failure goes to `handleError`
        if self.failing and not self._failed:
            sys.stderr.write(f"videoarchiver: {self.baseFilename} takes lines again\n")
        self.failing = self._failed

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)  # a bug of ours: logging's own report
            return
        self._failed = True
        if not self.failing:
            sys.stderr.write(
                f"videoarchiver: cannot write {self.baseFilename} ({error.strerror or error});"
                " its lines go to stderr alone until it can\n"
            )


def configure_logging(log_dir: Path | None, console: Console | None) -> None:
    """Log to `log_dir` and to the terminal: through `console` when a live progress display
    shares it (lines then print above the bars), else plainly to stderr."""
    logger = logging.getLogger("videoarchiver")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    terminal: logging.Handler = (
        RichHandler(console=console, show_path=False, log_time_format=f"[{DATE_FORMAT}]")
        if console
        else logging.StreamHandler()
    )
    handlers: list[logging.Handler] = [terminal]
    if log_dir is not None:
        handlers.append(
            _PrivateRotatingFileHandler(
                log_dir / "videoarchiver.log", maxBytes=MAX_BYTES, backupCount=BACKUPS
            )
        )
    for handler in handlers:
        if not isinstance(handler, RichHandler):  # it draws time and level itself
            handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
        handler.addFilter(_EscapeNames())
        logger.addHandler(handler)
    if console is None and stderr_is_journal():
        terminal.setFormatter(_JournalFormatter("%(message)s"))
