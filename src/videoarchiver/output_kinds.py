"""The registry of output kinds: what each output a raw file gets is called, where it is
published, what makes it and what it needs. Every part that names outputs reads them here
(the pipeline, the layout of the root, the work folders, `status`, `verify`, the web page,
the start-up check of the encoders), so that a new kind is one registration.

An output is made by its maker, `async maker(runtime, source)`, in its own work folder
(`source.work / kind.name`), and published by the publishing protocol (`outputs.py`): as one
file `<folder>/<stem><suffix>`, or, per stream, one file per video stream (recorded on each
stream's job), `<folder>/<stem><suffix>` or `<folder>/<stem>/<stream><suffix>` for several.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from videoarchiver.config import Config
    from videoarchiver.runtime import Runtime, Source

Maker = Callable[["Runtime", "Source"], Awaitable[None]]


@dataclass(frozen=True)
class OutputKind:
    name: str  # as the store records it; also its work folder's name
    label: str  # one of it, as a person reads it ("montage sheet")
    folder: str  # where it is published, under the root
    suffix: str  # of its published files
    per_stream: bool  # one file per video stream, each recorded on its stream's job
    maker: Maker
    encoders: Callable[[Config], set[str]]  # the ffmpeg encoders its settings ask for


def _lazy(module: str, function: str) -> Maker:
    """A maker imported when it first runs: the pipeline's modules read this registry."""

    async def make(runtime: Runtime, source: Source) -> None:
        maker: Maker = getattr(importlib.import_module(module), function)
        await maker(runtime, source)

    return make


_KINDS: list[OutputKind] = [
    OutputKind(
        "archive", "archive", "archive", ".mkv", False,
        _lazy("videoarchiver.archiving", "make_archive"),
        lambda config: {config.archive.video_codec, config.archive.audio_codec},
    ),
    OutputKind(
        "preview", "preview", "preview", ".mkv", False,
        _lazy("videoarchiver.previewing", "make_preview"),
        lambda config: {config.preview.video_codec, config.preview.audio_codec},
    ),
    OutputKind(
        "montage", "montage sheet", "screenshot", ".jpg", True,
        _lazy("videoarchiver.montaging", "make_montage"),
        lambda config: {"mjpeg", "png"},
    ),
]  # fmt: skip


def kinds() -> tuple[OutputKind, ...]:
    """Every output a file gets, in this order: the order of their steps in a file's turn."""
    return tuple(_KINDS)


def names() -> tuple[str, ...]:
    return tuple(kind.name for kind in _KINDS)


def kind(name: str) -> OutputKind:
    """The kind called `name` (KeyError: none is)."""
    for known in _KINDS:
        if known.name == name:
            return known
    raise KeyError(name)


def order(name: str) -> int:
    """Where the kind called `name` comes among all."""
    return names().index(name)


@contextmanager
def registered(new: OutputKind) -> Iterator[OutputKind]:
    """Register `new` after the others while the block runs (a kind of a test, or of a
    program that embeds videoarchiver)."""
    if new.name in names():
        raise ValueError(f"an output kind called {new.name!r} is registered already")
    _KINDS.append(new)
    try:
        yield new
    finally:
        _KINDS.remove(new)
