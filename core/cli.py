"""The ``v2m-zero`` command line: one subcommand per module in ``core/commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order ``--help`` lists them. Each module defines NAME, HELP,
# add_arguments(parser) and run(args) -> int, and is imported only when its command runs
# (so ``v2m-zero mux`` never imports torch or transformers).
COMMANDS: tuple[str, ...] = (
    "demo",
    "curve",
    "mux",
    "eval",
    "prompt",
    "init_checkpoint",
    "generate",
    "prepare",
    "train",
)


def _load(module: str):
    return importlib.import_module(f"{__package__}.commands.{module}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="v2m-zero",
        description="V2M-Zero: video event curves and music timed to a video's cuts.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        mod = _load(module)
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .errors import V2MError

    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except V2MError as exc:
        print(f"v2m-zero {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"v2m-zero {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
