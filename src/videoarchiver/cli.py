"""Command line: `videoarchiver run | status`.

Exit codes: 0 success; 1 some file failed (`run --once`); 2 the configuration, the tools or
the lock stop the command before it starts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
from rich.console import Console

from videoarchiver.config import Config, find_config_file, load_config
from videoarchiver.errors import VideoArchiverError
from videoarchiver.layout import Layout
from videoarchiver.locking import hold_lock
from videoarchiver.logs import configure_logging
from videoarchiver.runtime import Runtime
from videoarchiver.scheduler import Scheduler
from videoarchiver.state import StateDB
from videoarchiver.tools import check_tools
from videoarchiver.ui import print_status

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = logging.getLogger("videoarchiver")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videoarchiver",
        description="Turn raw videos into verified archive MKVs, AV1 previews and montages.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, help="root folder (default: current directory)")
    common.add_argument("--config", type=Path, help="config file (TOML)")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", parents=[common], help="process raw/ and keep watching it (the daemon)"
    )
    run.add_argument("--once", action="store_true", help="process what is settled now, then exit")
    commands.add_parser("status", parents=[common], help="show every file's state")
    return parser


def _resolve(args: argparse.Namespace) -> tuple[Layout, Config]:
    start = args.root or Path.cwd()
    config = load_config(find_config_file(args.config, start))
    root = args.root or config.root or start
    return Layout(root.absolute()), config


async def _run(layout: Layout, config: Config, once: bool) -> int:
    await check_tools(config)
    async with StateDB.open(layout.state_db) as state:
        await state.requeue_interrupted()
        scheduler = Scheduler(Runtime.create(layout, config, state))
        if once:
            return EXIT_OK if await scheduler.run_once() else EXIT_FAILED
        while True:
            await scheduler.run_once()
            await anyio.sleep(config.scan_interval)


def command_run(args: argparse.Namespace) -> int:
    layout, config = _resolve(args)
    layout.create()
    configure_logging(layout.log)
    with hold_lock(layout.lock):
        return anyio.run(_run, layout, config, args.once)


async def _status(layout: Layout, console: Console) -> None:
    async with StateDB.open(layout.state_db) as state:
        print_status(console, await state.files(), await state.all_outputs())


def command_status(args: argparse.Namespace, console: Console) -> int:
    layout, _config = _resolve(args)
    if not layout.state_db.exists():
        console.print(f"No state in {layout.root}: run `videoarchiver run` there first.")
        return EXIT_OK
    anyio.run(_status, layout, console)
    return EXIT_OK


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = console or Console()
    try:
        if args.command == "run":
            return command_run(args)
        return command_status(args, console)
    except VideoArchiverError as exc:
        print(f"videoarchiver: {exc}", file=sys.stderr)
        return EXIT_USAGE
