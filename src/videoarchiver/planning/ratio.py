"""The size-ratio rule: give up on an encode that will not save enough space.

While encoding, the output is compared with the raw stream prorated to the media time encoded
so far, once `grace_seconds` have been written (the first seconds of an encode are dominated
by keyframes and headers). The finished output is compared without proration, so an archive
stream is never larger than `ratio` × its raw stream unless it is the raw stream itself.
"""

from __future__ import annotations

from videoarchiver.planning.progress import ProgressUpdate

KEPT_RAW = "raw stream kept (ratio rule)"  # the note a stream job gets when the rule stops it


def kept_raw_note(reason: str) -> str:
    return f"{KEPT_RAW}: {reason}"


def allowed_bytes(raw_bytes: int, raw_seconds: float, out_seconds: float, ratio: float) -> float:
    """Bytes the output may hold after `out_seconds` of media (whole budget without a time)."""
    if raw_seconds <= 0:
        return ratio * raw_bytes
    return ratio * raw_bytes * min(out_seconds, raw_seconds) / raw_seconds


def exceeds_during_encode(
    out_bytes: int | None,
    out_seconds: float | None,
    raw_bytes: int,
    raw_seconds: float,
    ratio: float,
    grace_seconds: float,
) -> bool:
    """True when a running encode should be stopped in favour of copying the raw stream."""
    if out_bytes is None or out_seconds is None or out_seconds < grace_seconds:
        return False
    return out_bytes > allowed_bytes(raw_bytes, raw_seconds, out_seconds, ratio)


def exceeds_when_finished(out_bytes: int, raw_bytes: int, ratio: float) -> bool:
    """The final check on a finished stream, whatever its length."""
    return out_bytes > ratio * raw_bytes


def fallback_reason(
    out_bytes: int, raw_bytes: int, ratio: float, out_frames: int | None, raw_frames: int
) -> str | None:
    """Why a finished encode gives way to the raw stream (None: the encode is kept): it is
    larger than `ratio` × the raw stream, or (video: `out_frames` given) its decoder gave
    fewer frames than the raw stream has."""
    if exceeds_when_finished(out_bytes, raw_bytes, ratio):
        return f"finished at {out_bytes} bytes > {ratio} × {raw_bytes}"
    if out_frames is not None and out_frames < raw_frames:
        return f"decoder gave {out_frames} of {raw_frames} frames"
    return None


class RatioWatch:
    """Watches an encode's progress and says when the ratio rule wants it stopped.

    Sans-I/O: `check` takes each parsed `-progress` update and returns True once the encode
    should be terminated; `reason` then says why, with the figures, for the job record.
    `warned` turns True once the output is too large after half the grace already: whatever
    must be known before a stop (can the raw stream stand in?) is best asked then.
    """

    def __init__(
        self,
        raw_bytes: int,
        raw_seconds: float,
        ratio: float,
        grace: float,
        start: float = 0.0,
        previous: tuple[int, float] = (0, 0.0),
    ) -> None:
        """`start`: where the encode's progress clock begins (the stream's offset in its file);
        `previous`: bytes and seconds of the parts kept from interrupted runs, which count."""
        self._start = start
        self._previous_bytes, self._previous_seconds = previous
        self._raw_bytes = raw_bytes
        self._raw_seconds = raw_seconds
        self._ratio = ratio
        self._grace = grace
        self.reason: str | None = None
        self.warned = False

    def check(self, update: ProgressUpdate) -> bool:
        media = None
        if update.out_seconds is not None:
            media = self._previous_seconds + max(0.0, update.out_seconds - self._start)
        size = None if update.total_size is None else self._previous_bytes + update.total_size
        self.warned = self.warned or exceeds_during_encode(
            size, media, self._raw_bytes, self._raw_seconds, self._ratio, self._grace / 2
        )
        if self.reason is None and exceeds_during_encode(
            size, media, self._raw_bytes, self._raw_seconds, self._ratio, self._grace
        ):
            self.reason = (
                f"stopped at {media:.1f} s: {size} bytes >"
                f" {self._ratio} × {self._raw_bytes} × {media:.1f} / {self._raw_seconds:.1f}"
            )
        return self.reason is not None
