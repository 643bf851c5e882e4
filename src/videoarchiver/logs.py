"""Logging to stderr and to `log/videoarchiver.log`, rotated so it never fills the disk."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(message)s"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5


def configure_logging(log_dir: Path | None) -> None:
    logger = logging.getLogger("videoarchiver")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_dir is not None:
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_dir / "videoarchiver.log", maxBytes=MAX_BYTES, backupCount=BACKUPS
            )
        )
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
