"""Logging to stderr and to `log/videoarchiver.log`, rotated so it never fills the disk."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

FORMAT = "%(asctime)s %(levelname)s %(message)s"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5


def configure_logging(log_dir: Path | None, console: Console | None) -> None:
    """Log to `log_dir` and to the terminal: through `console` when a live progress display
    shares it (lines then print above the bars), else plainly to stderr."""
    logger = logging.getLogger("videoarchiver")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    terminal: logging.Handler = (
        RichHandler(console=console, show_path=False) if console else logging.StreamHandler()
    )
    handlers: list[logging.Handler] = [terminal]
    if log_dir is not None:
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_dir / "videoarchiver.log", maxBytes=MAX_BYTES, backupCount=BACKUPS
            )
        )
    for handler in handlers:
        if not isinstance(handler, RichHandler):
            handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
