"""The code map holds: import directions between the layers, and modules of a readable size.

Rules (DESIGN.md §2): ``core/`` never imports ComfyUI or ``nodes/``; architectures (``core/model/``)
never import ``model_io``; production code never imports the test media (``core/eval/synth``); no
module imports one that imports it back (no import circles); ``model_io`` is a layer between the
architectures and the pipelines. Every import statement is read, also those inside functions
(imports are lazy on purpose here).
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "v2m_zero"
COMFY = ("comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "execution", "nodes")
PRODUCTION = ("core", "model_io", "nodes")


def _modules(root: str = ROOT, tops=PRODUCTION):
    for top in tops:
        for folder, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(folder, f)
                    rel = os.path.relpath(path, root)[:-3].split(os.sep)
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
                out += ([(node.lineno, f"{target}.{a.name}") for a in node.names] if not node.module
                        else [(node.lineno, target)])
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


def _command_imports_command(module: str, target: str) -> str | None:
    """Commands (``core/commands/<name>.py``, no leading underscore) share helpers through ``_*`` modules."""
    prefix = f"{PKG}.core.commands."

    def is_command(name: str) -> bool:
        return name.startswith(prefix) and "." not in name[len(prefix):] and not name[len(prefix):].startswith("_")

    if is_command(module) and is_command(target) and target != module:
        return "a command never imports another command (share helpers through core/commands/_*.py)"
    return None


@pytest.mark.parametrize("rule", [_core_imports_comfy, _core_imports_nodes, _architecture_imports_model_io,
                                  _production_imports_synth, _command_imports_command],
                         ids=lambda r: r.__name__.strip("_"))
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
    assert _command_imports_command(f"{PKG}.core.commands.demo", f"{PKG}.core.commands.generate")
    assert not _command_imports_command(f"{PKG}.core.commands.demo", f"{PKG}.core.commands._pipeline")
    assert not _command_imports_command(f"{PKG}.core.cli", f"{PKG}.core.commands.generate")
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


# --------------------------------------------------------------------------------------------
# the module graph: no circles, and model_io a layer

# what model_io may import from core: the architectures and the plain data/utility modules below it
MODEL_IO_MAY_IMPORT = ("core.model", "core.errors", "core.atomic", "core.precision", "core.timing.spec",
                       "core.timing.curves")


def _graph(root: str = ROOT, tops=PRODUCTION) -> dict[str, set[str]]:
    """Module → modules it imports (package-internal only; imports inside functions count).

    ``from .pkg import x`` is an edge to the submodule ``pkg.x`` when it exists, else to ``pkg``; a
    name below a module (``pkg.mod.func``) resolves to the longest module prefix.
    """
    mods = {module: (path, is_pkg) for path, module, is_pkg in _modules(root, tops)}

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for module, (path, is_pkg) in mods.items():
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_pkg else module.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target for a in node.names]
            for n in names:
                r = resolve(n)
                if r and r != module:
                    graph[module].add(r)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as one import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(_one_circle(graph, set(comp)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _one_circle(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A shortest path a → … → a inside the component (what the failure message shows)."""
    start = min(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start] + path[::-1][1:] + [start] if v != start else [start, start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)  # pragma: no cover (a component always has a circle)


def _show(circle: list[str]) -> str:
    return " -> ".join(m.removeprefix(PKG + ".") for m in circle)


def test_no_import_circles():
    circles = _circles(_graph())
    assert not circles, "import circles (a module imports one that imports it back):\n" + "\n".join(map(_show, circles))


def test_the_circle_rule_catches_a_made_up_circle(tmp_path):
    pkg = tmp_path / "core"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .sub import b  # a submodule, lazily\n")
    (pkg / "sub" / "b.py").write_text("from ..c import g\n")
    (pkg / "c.py").write_text("from .a import f\n")
    (pkg / "d.py").write_text("from . import a\n")  # into the circle, not part of it
    circles = _circles(_graph(str(tmp_path), ("core",)))
    assert [_show(c) for c in circles] == ["core.a -> core.sub.b -> core.c -> core.a"]


def _allowed_for_model_io(target: str) -> bool:
    name = target.removeprefix(PKG + ".")
    return any(name == a or name.startswith(a + ".") for a in MODEL_IO_MAY_IMPORT)


def test_model_io_is_a_layer():
    """model_io imports from core only the architectures and the data/utility modules below it, and
    nothing it imports (however indirectly) imports model_io back."""
    graph = _graph()
    io = f"{PKG}.model_io"
    bad = [f"{m} imports {t}" for m in sorted(graph) if m.startswith(io) for t in sorted(graph[m])
           if t.startswith(f"{PKG}.core") and not _allowed_for_model_io(t)]
    below = sorted(m for m in graph if _allowed_for_model_io(m))
    for m in below:
        seen, todo, prev = {m}, [m], {}
        while todo:
            v = todo.pop()
            for w in graph[v]:
                if w not in seen:
                    seen.add(w)
                    prev[w] = v
                    todo.append(w)
        back = sorted(w for w in seen if w.startswith(io))
        if back:
            path = [back[0]]
            while path[-1] != m:
                path.append(prev[path[-1]])
            bad.append(f"{_show(path[::-1])}: below model_io, yet reaches it")
    assert not bad, "model_io is not a layer:\n" + "\n".join(bad)
    assert _allowed_for_model_io(f"{PKG}.core.model.dit") and not _allowed_for_model_io(f"{PKG}.core.timing.encoders")
