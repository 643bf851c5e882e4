"""Verification of a finished archive against its raw file, as pure comparisons.

Matroska stores cover art and attachments after its tracks, so those are compared as counts;
every other stream must appear in the raw order with the raw's type, video and audio with the
raw's duration, and a re-encoded video stream with exactly the raw's number of frames.
Subtitle streams are sparse: their packet span depends on empty "gap" samples (mov_text has
them, SubRip does not), so their duration says nothing about what was kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from videoarchiver.planning.archive import Action, StreamDecision, stream_kind
from videoarchiver.planning.orientation import UPRIGHT, Turn, stream_turn, turned_size
from videoarchiver.planning.packets import PacketTally, StreamPackets
from videoarchiver.planning.probe import Probe, Stream

UNORDERED_KINDS = frozenset({"attached_pic", "attachment"})
TIMED_KINDS = frozenset({"video", "audio"})
MIN_TOLERANCE = 0.1


@dataclass(frozen=True)
class ExpectedStream:
    kind: str
    duration: float
    frame_seconds: float | None = None
    frames: int | None = None
    packets: int | None = None  # a stream copied as it is: its packet count
    truncated: bool = False  # the raw file ends inside a packet, which may not decode
    # Audio measured by its decoded samples (the raw's packets disagree with them): the
    # output's audio is measured so too.
    decoded: bool = False
    # Video: how it is to be shown (turned, and its size so turned); None: not checked.
    turn: Turn | None = None
    shown: tuple[int, int] | None = None

    @property
    def tolerance(self) -> float:
        """max(0.1 s, 2 frames), and one frame more for a file cut inside its last packet."""
        frames = 3 if self.truncated else 2
        return max(MIN_TOLERANCE, frames * (self.frame_seconds or 0.0))


def raw_duration(
    stream: Stream,
    counted: StreamPackets,
    container: float | None,
    decodable: bool = False,
    truncated: bool = False,
) -> float:
    """A raw stream's duration from its packets; a raw elementary stream (`.h264`) has no
    timestamps at all, and then its frames at its nominal frame rate are the measure; a
    stream of one packet without a duration (a short WavPack file) lasts what ffprobe says
    of the stream, else of the file (`container`), which also bounds a last short frame.
    Audio whose samples were counted (`decoded`) lasts as long as they do."""
    if counted.decoded is not None:
        return counted.decoded
    duration = counted.decodable_duration if decodable else counted.duration
    if duration == 0 and counted.nonempty and stream.frame_seconds:
        return counted.nonempty * stream.frame_seconds
    if truncated and stream.is_video and stream.frame_seconds:
        # Cut mid-GOP: frames after the cut that earlier packets refer to are not there.
        duration = min(duration, counted.nonempty * stream.frame_seconds)
    stated = stream.duration or container
    if duration == 0 and counted.nonempty:
        return stated or 0.0
    # The last frame of some codecs (TTA, ALAC) is short, while its packet says (or is
    # taken to last) a whole frame: what the stream states, if within that frame, is right.
    if stated and 0 < duration - stated <= counted.last_span:
        return stated
    return duration


def expected_streams(
    probe: Probe, decisions: Sequence[StreamDecision], packets: PacketTally
) -> list[ExpectedStream]:
    streams = {stream.index: stream for stream in probe.streams}
    expected = []
    for decision in decisions:
        if decision.action is Action.DROP:
            continue
        stream = streams[decision.index]
        counted = packets.get(decision.index)
        reencoded_video = decision.kind == "video" and decision.action is Action.ENCODE
        turn, shown = None, None
        if decision.kind == "video" and decision.turn is not None:
            # An encode turns the pixels upright; a copy is turned as the raw is.
            turn = decision.turn if decision.action is Action.COPY else UPRIGHT
            shown = turned_size(stream.width or 0, stream.height or 0, decision.turn)
        expected.append(
            ExpectedStream(
                kind=decision.kind,
                duration=raw_duration(
                    stream, counted, probe.format.duration, truncated=packets.truncated
                ),
                frame_seconds=stream.frame_seconds,
                frames=counted.nonempty if reencoded_video else None,
                # A copy holds the packets an edit list hides too (Matroska shows them).
                packets=counted.count + counted.hidden if decision.action is Action.COPY else None,
                truncated=packets.truncated,
                decoded=counted.decoded is not None,
                turn=turn,
                shown=shown,
            )
        )
    return expected


def verify_output(
    expected: Sequence[ExpectedStream], probe: Probe, packets: PacketTally
) -> list[str]:
    """Every way the output differs from what was expected; empty when it is good."""
    actual = [(stream.index, stream_kind(stream)) for stream in probe.streams]
    ordered_expected = [e for e in expected if e.kind not in UNORDERED_KINDS]
    ordered_actual = [(i, kind) for i, kind in actual if kind not in UNORDERED_KINDS]
    problems = []
    unordered_want = Counter(e.kind for e in expected if e.kind in UNORDERED_KINDS)
    unordered_have = Counter(kind for _, kind in actual if kind in UNORDERED_KINDS)
    if unordered_want != unordered_have:
        problems.append(
            f"expected {dict(unordered_want)} pictures/attachments, found {dict(unordered_have)}"
        )
    want_kinds = [e.kind for e in ordered_expected]
    have_kinds = [kind for _, kind in ordered_actual]
    if want_kinds != have_kinds:
        problems.append(f"streams are {have_kinds}, expected {want_kinds}")
        return problems
    for position, (want, (index, kind)) in enumerate(
        zip(ordered_expected, ordered_actual, strict=True)
    ):
        counted = packets.get(index)
        duration = raw_duration(probe.stream(index), counted, probe.format.duration)
        # A copy holding every packet is whole, whatever its container says of its length.
        whole_copy = want.packets == counted.count
        if (
            kind in TIMED_KINDS
            and abs(duration - want.duration) > want.tolerance
            and not whole_copy
        ):
            problems.append(
                f"{kind} stream {position}: duration {duration:.3f} s, raw {want.duration:.3f} s"
            )
        if want.frames is not None and counted.nonempty != want.frames:
            problems.append(
                f"{kind} stream {position}: {counted.nonempty} frames, raw {want.frames}"
            )
        problems += _shown_problems(want, probe.stream(index), position)
    return problems


def audio_duration_differs(problems: Sequence[str]) -> bool:
    """Whether `verify_output` found an audio stream of another duration than the raw's."""
    return any(p.startswith("audio stream") and ": duration " in p for p in problems)


def _shown_problems(want: ExpectedStream, stream: Stream, position: int) -> list[str]:
    """A video stream is shown turned and sized as the raw's is."""
    if want.turn is None:
        return []
    problems = []
    turn = stream_turn(stream)
    if turn != want.turn:
        have = "a display matrix no turn can say" if turn is None else turn.describe or "upright"
        problems.append(
            f"video stream {position}: shown with {have}, raw {want.turn.describe or 'upright'}"
        )
    shown = turned_size(stream.width or 0, stream.height or 0, turn or UPRIGHT)
    if want.shown is not None and shown != want.shown:
        size, raw = ("x".join(map(str, size)) for size in (shown, want.shown))
        problems.append(f"video stream {position}: shown {size}, raw {raw}")
    return problems
