"""The `videoarchiver` command. Ctrl-C at any moment, even while Python is still importing the
program, ends it quietly with exit code 130 instead of a traceback."""

from __future__ import annotations

from videoarchiver.exitcodes import EXIT_KILLED


def main() -> int:
    try:
        from videoarchiver.cli import main as run_command

        return run_command()
    except KeyboardInterrupt:
        return EXIT_KILLED
