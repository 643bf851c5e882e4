from __future__ import annotations

import errno

from videoarchiver.errors import (
    ProcessError,
    StreamFailures,
    VerifyError,
    describe_error,
    first_of,
    short_reason,
)
from videoarchiver.space import short_of_space


def test_stream_failures_keep_each_error_its_type_and_its_stream() -> None:
    check = VerifyError("montage is 10x10, expected 20x20")
    full = OSError(errno.ENOSPC, "No space left on device", "work/s1.mkv")
    ffmpeg = ProcessError("encode failed: boom", "ffmpeg said:\nline 1\nboom")
    group = StreamFailures.of([(0, check), (1, full), (3, ffmpeg)])
    assert first_of(group, (VerifyError,)) is check, "the verification error is found"
    assert short_of_space(group), "and the full disk"
    assert short_reason(group) == (
        "stream 0: montage is 10x10, expected 20x20; stream 1: No space left on device"
        " (work/s1.mkv); stream 3: encode failed: boom"
    )
    assert describe_error(group).endswith("stream 3: ffmpeg said:\nline 1\nboom")
