"""Whether a copy of a raw stream shows what the raw shows: the same frames at the same
times (the archive shows exactly the raw's timing).

ffmpeg 5.1 cannot always copy a stream's timing into Matroska: a packet an MP4/MOV edit
list hides (flagged discard) is shown in Matroska, which has no way to hide a video frame;
packed B-frames in AVI (DivX/XviD) get colliding timestamps under `-fflags +genpts`, and
`mpeg4_unpack_bframes` keeps them wrong (the packets' times stay where the packing put
them). Such a stream keeps its encode, which decodes the raw as a player does.

Audio is as long as its samples, whatever its packets' times say: ASF/WMV and SWF files'
packets often span more or less than their audio decodes to (WMA, MP3 in Flash). There,
or where an output's audio duration differs from the raw's packets at verify, the audio
(never the video) of the raw and of the output is decoded and its samples are the measure:
such files are archived as plain ffmpeg archives them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from videoarchiver.planning.packets import PacketTally, StreamPackets
from videoarchiver.planning.probe import Probe

FFMPEG_VERSION = "ffmpeg 5.1"
# Matroska stores milliseconds; the raw's times are exact.
SAME_TIME = 0.0015
FRAME_ENTRIES = "frame=best_effort_timestamp_time"
PACKED_WARNING = "packed B-frames"
# Containers whose audio packets' times are known to disagree with what the audio decodes to.
DECODED_FORMATS = frozenset({"asf", "swf"})
DECODED_ENTRIES = "frame=stream_index,nb_samples"


def frame_times(lines: Sequence[str]) -> list[float | None]:
    """The decoded frames' times of `ffprobe -show_entries frame=best_effort_timestamp_time
    -of csv=p=0` (a frame with side data ends in `,`); None for a frame without a time."""
    times: list[float | None] = []
    for line in lines:
        text = line.split(",")[0].strip()
        if not text:
            continue
        try:
            times.append(float(text))
        except ValueError:  # N/A
            times.append(None)
    return times


def hidden_reason(counted: StreamPackets) -> str | None:
    """Why a copy cannot show the raw stream as it is shown, found in its packets."""
    if not counted.hidden:
        return None
    return (
        f"its edit list hides {counted.hidden} of its packets, which a copy into Matroska"
        f" would show ({FFMPEG_VERSION} cannot hide them)"
    )


def copy_timing_reason(
    raw: Sequence[float | None], copy: Sequence[float | None], warnings: Sequence[str] = ()
) -> str | None:
    """Why a copy of the raw stream's first packets shows its frames otherwise than the raw
    decodes (None: it shows the same frames at the same times). `raw` and `copy` are the
    decoded frames' times of the same packets, `warnings` what decoding the raw warned of."""
    why = f"a copy into Matroska ({FFMPEG_VERSION}) shows its frames at other times"
    if any(PACKED_WARNING in line for line in warnings):
        unpacked = f"{FFMPEG_VERSION}, with or without mpeg4_unpack_bframes"
        why = f"its B-frames are packed (DivX/XviD): a copy into Matroska ({unpacked}) shows"
        why += " its frames at other times"
    timed = [time for time in copy if time is not None]
    for before, after in itertools.pairwise(timed):
        if after <= before:
            return f"{why}: {after:.3f} s after {before:.3f} s"
    if len(raw) != len(copy):
        return f"{why}: {len(copy)} frames of its first packets, raw {len(raw)}"
    for number, (want, have) in enumerate(zip(raw, copy, strict=True)):
        if want is not None and (have is None or abs(have - want) > SAME_TIME):
            shown = "none" if have is None else f"{have:.3f} s"
            return f"{why}: frame {number} at {shown}, raw {want:.3f} s"
    return None


def audio_decoded_first(probe: Probe) -> bool:
    """Whether the raw's audio is to be measured by decoding it from the start."""
    names = set((probe.format.format_name or "").split(","))
    return bool(names & DECODED_FORMATS) and any(stream.is_audio for stream in probe.streams)


def count_samples(samples: dict[int, int], lines: Sequence[str]) -> None:
    """Add up `ffprobe -show_entries frame=stream_index,nb_samples -of csv=p=0` lines."""
    for line in lines:
        fields = line.split(",")
        if len(fields) >= 2 and fields[0].isdigit() and fields[1].isdigit():
            samples[int(fields[0])] = samples.get(int(fields[0]), 0) + int(fields[1])


def set_decoded(tally: PacketTally, probe: Probe, samples: dict[int, int]) -> None:
    """Each audio stream's decoded length into its sums (streams without samples: 0 s)."""
    for stream in probe.streams:
        if stream.is_audio and stream.sample_rate:
            tally.get_or_add(stream.index).decoded = (
                samples.get(stream.index, 0) / stream.sample_rate
            )
