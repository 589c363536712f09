"""The pack's Python requirements as ComfyUI sees them: named once at startup, checked when a node is validated.

Nothing is imported to check: ``importlib.util.find_spec`` only looks a module up. A missing one is one
line, ``V2M-Zero: missing matplotlib — pip install -r <pack>/requirements.txt``, in the startup log and
as the validation error of every node that needs it (before the prompt runs, not mid-run).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re

REQUIREMENTS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                 "requirements.txt")
# distribution name -> import name, where they differ
_IMPORT_NAMES = {"pillow": "PIL", "huggingface-hub": "huggingface_hub"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirements(path: str = REQUIREMENTS_FILE) -> dict[str, str]:
    """{import name: distribution name} of the requirements file's packages, in its order."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        line = line.split("#", 1)[0]
        m = _NAME.match(line)
        if m:
            dist = m.group(1).lower()
            out[_IMPORT_NAMES.get(dist, dist.replace("-", "_"))] = dist
    return out


def is_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or half-removed package
        return False


def missing_line(module: str) -> str:
    dist = requirements().get(module, module)
    return f"V2M-Zero: missing {dist} — pip install -r {REQUIREMENTS_FILE}"


def missing(modules=None) -> list[str]:
    """Import names of ``modules`` (default: every requirement) that cannot be imported."""
    return [m for m in (requirements() if modules is None else modules) if not is_installed(m)]


def report_missing(log=logging.warning) -> list[str]:
    """Log one line per missing requirement (ComfyUI startup); returns the lines."""
    lines = [missing_line(m) for m in missing()]
    for line in lines:
        log(line)
    return lines


def check(modules) -> bool | str:
    """True, or the line naming the first missing module (a V3 ``validate_inputs`` result)."""
    gone = missing(modules)
    return True if not gone else missing_line(gone[0])
