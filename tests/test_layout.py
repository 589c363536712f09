"""The code map holds: import directions between the layers, and modules of a readable size.

Rules (DESIGN.md §2): ``core/`` never imports ComfyUI or ``nodes/``; architectures (``core/model/``)
never import ``model_io``; production code never imports the test media (``core/eval/synth``).
Every import statement is read, also those inside functions (imports are lazy on purpose here).
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "v2m_zero"
COMFY = ("comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "execution", "nodes")
PRODUCTION = ("core", "model_io", "nodes")


def _modules():
    for top in PRODUCTION:
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(folder, f)
                    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                    is_pkg = rel[-1] == "__init__"
                    yield path, ".".join([PKG] + (rel[:-1] if is_pkg else rel)), is_pkg


def _imports(path: str, module: str, is_pkg: bool) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file; relative imports resolved."""
    out = []
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                # "from . import x" may import a submodule x
                out += [(node.lineno, f"{target}.{a.name}") for a in node.names] if not node.module else [(node.lineno, target)]
            else:
                out += [(node.lineno, node.module)]
    return out


def _violations(rule) -> list[str]:
    bad = []
    for path, module, is_pkg in _modules():
        for line, target in _imports(path, module, is_pkg):
            why = rule(module, target)
            if why:
                bad.append(f"{os.path.relpath(path, ROOT)}:{line} imports {target}: {why}")
    return bad


def _core_imports_comfy(module: str, target: str) -> str | None:
    if module.startswith(f"{PKG}.core") and target.split(".")[0] in COMFY:
        return "core/ must not import ComfyUI (pass what it needs in from nodes/)"
    return None


def _core_imports_nodes(module: str, target: str) -> str | None:
    if module.startswith(f"{PKG}.core") and target.startswith(f"{PKG}.nodes"):
        return "core/ must not import nodes/"
    return None


def _architecture_imports_model_io(module: str, target: str) -> str | None:
    if module.startswith(f"{PKG}.core.model") and target.startswith(f"{PKG}.model_io"):
        return "architectures (core/model/) never import model_io (weights are read there)"
    return None


def _production_imports_synth(module: str, target: str) -> str | None:
    if target == f"{PKG}.core.eval.synth" and module != target:
        return "production code must not depend on test media (core/eval/synth)"
    return None


@pytest.mark.parametrize("rule", [_core_imports_comfy, _core_imports_nodes, _architecture_imports_model_io,
                                  _production_imports_synth], ids=lambda r: r.__name__.strip("_"))
def test_import_directions(rule):
    assert _violations(rule) == []


def test_the_rules_catch_violations(tmp_path):
    """Each rule flags a made-up offending import (so the checks above can fail)."""
    assert _core_imports_comfy(f"{PKG}.core.timing.encoders", "folder_paths")
    assert _core_imports_comfy(f"{PKG}.core.generate", "comfy.model_management")
    assert not _core_imports_comfy(f"{PKG}.nodes.video", "folder_paths")
    assert _core_imports_nodes(f"{PKG}.core.cli", f"{PKG}.nodes.host.runtime")
    assert _architecture_imports_model_io(f"{PKG}.core.model.dit", f"{PKG}.model_io.weights")
    assert not _architecture_imports_model_io(f"{PKG}.core.generate", f"{PKG}.model_io.weights")
    assert _production_imports_synth(f"{PKG}.core.commands.demo", f"{PKG}.core.eval.synth")
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from ...model_io import weights\n")
    assert _imports(str(src), f"{PKG}.core.model.x", False) == [(2, f"{PKG}.model_io")]


def test_modules_stay_readable():
    """No production module over about 500 lines (DESIGN.md: small, single-purpose modules)."""
    long = []
    for path, _, _ in _modules():
        n = sum(1 for _ in open(path, encoding="utf-8"))
        if n > 520:
            long.append(f"{os.path.relpath(path, ROOT)}: {n} lines")
    assert long == []
