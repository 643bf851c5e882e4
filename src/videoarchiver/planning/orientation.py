"""How a video stream is turned for display (phones film sideways and say so), pure.

MP4 and MOV carry a display matrix; Matroska carries the same as a track's projection pose
(`ProjectionPoseYaw` 180 for a mirror, then `ProjectionPoseRoll`), which mpv and ffmpeg read
(ffmpeg 5.1 reads it but does not write it). The mapping is newer ffmpeg's muxer's: of the
matrix's upper-left 2×2, a rotation keeps `m0 == m4` and `m1 == -m3`, a mirrored one
`m0 == -m4` and `m1 == m3`; the roll is `atan2(m3, m4)` in degrees. Any other matrix (a
shear, a stretch) is no turn Matroska can say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from videoarchiver.planning.probe import Stream

MATRIX_VALUES = 9


@dataclass(frozen=True)
class Turn:
    """A mirror (left to right) if `mirrored`, then a rotation of `roll` degrees, as shown."""

    roll: int = 0  # -180 < roll <= 180
    mirrored: bool = False

    @property
    def upright(self) -> bool:
        return self.roll == 0 and not self.mirrored

    @property
    def describe(self) -> str:
        """`rotation 90°`, `rotation -90°, mirrored`, `mirrored`."""
        parts = [f"rotation {self.roll}°"] if self.roll else []
        return ", ".join([*parts, "mirrored"] if self.mirrored else parts)

    def projection(self) -> list[str]:
        """mkvpropedit's settings of one track for this turn."""
        return [
            "--set", f"projection-pose-yaw={180 if self.mirrored else 0}",
            "--set", f"projection-pose-roll={self.roll}",
        ]  # fmt: skip


UPRIGHT = Turn()


def turned_size(width: int, height: int, turn: Turn) -> tuple[int, int]:
    """A picture's size as shown: width and height swap for a quarter turn."""
    return (height, width) if turn.roll % 180 == 90 else (width, height)


def _normal_roll(degrees: float) -> int:
    roll = round(degrees) % 360
    return roll - 360 if roll > 180 else roll


def matrix_turn(matrix: list[int]) -> Turn | None:
    """The turn a display matrix (ffprobe's nine values, row by row) makes; None when it is
    no rotation, mirrored or not."""
    if len(matrix) != MATRIX_VALUES or matrix[2] or matrix[5] or not (matrix[0] or matrix[1]):
        return None
    m0, m1, m3, m4 = matrix[0], matrix[1], matrix[3], matrix[4]
    if m0 == m4 and m1 == -m3:
        mirrored = False
    elif m0 == -m4 and m1 == m3:
        mirrored = True
    else:
        return None
    return Turn(_normal_roll(math.degrees(math.atan2(m3, m4))), mirrored)


def _matrix_values(text: str) -> list[int]:
    """ffprobe prints the matrix as three lines `00000000:  0  -65536  0`."""
    values: list[int] = []
    for line in text.strip().splitlines():
        _label, _colon, numbers = line.partition(":")
        values.extend(int(number) for number in numbers.split())
    return values


def stream_turn(stream: Stream) -> Turn | None:
    """How `stream` is shown: UPRIGHT when it says nothing, None when what its display
    matrix says is no rotation or mirror."""
    for side_data in stream.side_data_list:
        text = side_data.get("displaymatrix")
        if isinstance(text, str):
            try:
                return matrix_turn(_matrix_values(text))
            except ValueError:
                return None
    rotate = stream.tags.get("rotate")  # older ffprobes: clockwise degrees
    try:
        return Turn(_normal_roll(-float(rotate))) if rotate else UPRIGHT
    except (ValueError, OverflowError):  # no number, NaN, infinite
        return None
