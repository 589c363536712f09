"""Small helpers shared by the subcommands."""

from __future__ import annotations

import sys

from ..atomic import write_json  # noqa: F401  (re-exported for the commands)


class TextProgress:
    """A one-line progress counter on stderr (silent when stderr is not a terminal)."""

    def __init__(self, label: str):
        self.label = label
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int | None = None) -> None:
        if self.tty:
            of = f"/{total}" if total else ""
            print(f"\r{self.label}: {done}{of}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)
