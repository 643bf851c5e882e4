"""videoarchiver: raw videos in, verified archive / preview / montage out."""

from __future__ import annotations

__version__ = "0.1.0"
