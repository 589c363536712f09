"""The ``v2m-zero`` command line: one subcommand per module in ``core/commands``.

Every failure ends in one line on stderr, ``v2m-zero CMD: error: …``, and exit status 2: bad
arguments, unusable inputs, outputs that cannot be written, and (as a last resort) unexpected
errors, whose traceback ``V2M_DEBUG=1`` shows. Warnings of the library (``logging``) go to stderr.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

from .commands._common import ArgumentParser

# Subcommand modules, in the order ``--help`` lists them. Each module defines NAME, HELP,
# add_arguments(parser) and run(args) -> int, and is imported only when its command runs
# (so ``v2m-zero mux`` never imports torch or transformers).
COMMANDS: tuple[str, ...] = (
    "demo",
    "curve",
    "mux",
    "align",
    "eval",
    "prompt",
    "init_checkpoint",
    "generate",
    "prepare",
    "train",
    "models",
)


def _load(module: str):
    return importlib.import_module(f"{__package__}.commands.{module}")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="v2m-zero",
        description="V2M-Zero: video event curves and music timed to a video's cuts.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=ArgumentParser)
    for module in COMMANDS:
        mod = _load(module)
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        what = exc.strerror or type(exc).__name__
        return f"{what}: {exc.filename!r}" + (f" -> {exc.filename2!r}" if exc.filename2 else "")
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    from .errors import V2MError

    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"v2m-zero {args.command}: warning: %(message)s"))
    log = logging.getLogger("v2m_zero")
    log.addHandler(handler)
    log.setLevel(logging.WARNING)
    debug = bool(os.environ.get("V2M_DEBUG"))
    try:
        return int(args._run(args) or 0)
    except V2MError as exc:
        print(f"v2m-zero {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"v2m-zero {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if debug:
            raise
        print(f"v2m-zero {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line (V2M_DEBUG=1 shows the traceback)
        if debug:
            raise
        print(f"v2m-zero {args.command}: error: unexpected {type(exc).__name__}: {_one_line(exc)} "
              "(set V2M_DEBUG=1 for the traceback and please report it)", file=sys.stderr)
        return 2
    finally:
        log.removeHandler(handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
