"""The log file on a full disk: said once on stderr, never a traceback a line."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest

from videoarchiver.logs import configure_logging


class _FullDisk:
    """A file whose writes fail as a full disk's do, until `freed`."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.freed = False

    def write(self, text: str) -> int:
        if not self.freed:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.lines.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def close(self) -> None:
        pass


def test_a_log_file_that_cannot_be_written_is_said_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(tmp_path, None)
    logger = logging.getLogger("videoarchiver")
    [handler] = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
    disk = _FullDisk()
    assert handler.stream is not None
    handler.stream.close()
    handler.stream = disk  # type: ignore[assignment]
    try:
        for number in range(3):
            logger.warning("line %d", number)
        disk.freed = True
        logger.warning("line 3")
    finally:
        for added in list(logger.handlers):
            logger.removeHandler(added)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Logging error" not in err
    assert err.count("cannot write") == 1
    assert "No space left on device" in err
    assert err.count("takes lines again") == 1
    assert "line 0" in err and "line 3" in err, "stderr has every line"
    assert "".join(disk.lines).count("line 3") == 1
