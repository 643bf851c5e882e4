"""The start-up check: ffmpeg and ffprobe exist and have the encoders the settings name.

These run before any runtime exists (what they find is part of it) and in the web server,
which has none: they are no pipeline step, and always run the real `run_process`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from videoarchiver.config import Config
from videoarchiver.errors import ProcessError, ToolError
from videoarchiver.output_kinds import kinds
from videoarchiver.planning.commands import safe_demuxers
from videoarchiver.processes import read_outputs, run_process


def required_encoders(config: Config) -> set[str]:
    return set().union(*(kind.encoders(config) for kind in kinds()))


@dataclass(frozen=True)
class Tools:
    version: str  # ffmpeg's first `-version` line
    demuxers: str  # what raw files may be read with (`safe_demuxers`)


DEMUXERS: tuple[list[str], str] = (["ffmpeg", "-hide_banner", "-demuxers"], "ffmpeg -demuxers")


async def _outputs(commands: list[tuple[list[str], str]]) -> list[bytes]:
    try:
        return await read_outputs(run_process, commands)
    except ProcessError as exc:
        raise ToolError(f"the ffmpeg tools do not run: {exc}") from exc


def _safe(demuxers: bytes) -> str:
    return safe_demuxers(demuxers.decode(errors="replace"))


async def readable_demuxers() -> str:
    """What a file we cannot vouch for may be read as (`safe_demuxers` of this ffmpeg);
    ToolError when ffmpeg does not run."""
    [demuxers] = await _outputs([DEMUXERS])
    return _safe(demuxers)


async def check_tools(config: Config) -> Tools:
    """Raise ToolError with a message a user can act on, before any file is touched."""
    _, version, listing, demuxers = await _outputs([
        (["ffprobe", "-version"], "ffprobe -version"),
        (["ffmpeg", "-version"], "ffmpeg -version"),
        (["ffmpeg", "-hide_banner", "-encoders"], "ffmpeg -encoders"),
        DEMUXERS,
    ])  # fmt: skip
    available = set(re.findall(r"^ [A-Z.]{6} (\S+)", listing.decode(errors="replace"), re.M))
    missing = sorted(required_encoders(config) - available)
    if missing:
        raise ToolError(
            f"this ffmpeg lacks the encoder(s) {', '.join(missing)}; install an ffmpeg built"
            " with them (Debian's ffmpeg package has libx264, libopus and libsvtav1)"
        )
    first_line = version.decode(errors="replace").partition("\n")[0]
    return Tools(" ".join(first_line.split()[:3]), _safe(demuxers))
