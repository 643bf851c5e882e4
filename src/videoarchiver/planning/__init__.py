"""Pure planning: ffprobe output in, decisions and ffmpeg argument lists out.

Nothing here starts a process, touches SQLite or needs an event loop, so every rule can be
tested table-driven and fast.
"""
