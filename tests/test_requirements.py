"""Missing Python requirements: one line each at ComfyUI startup, and the validation error of a node that
needs one (before the prompt runs), without import-time side effects."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest


@pytest.fixture
def no_matplotlib(monkeypatch):
    """matplotlib as if not installed (find_spec of a None entry in sys.modules is None)."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_requirements_file_is_read_with_import_names():
    from v2m_zero.nodes.host import requirements

    req = requirements.requirements()
    assert req["matplotlib"] == "matplotlib" and req["PIL"] == "pillow" and req["huggingface_hub"] == "huggingface-hub"
    assert "torch" not in req and all(" " not in m for m in req)
    assert requirements.missing() == []  # this test environment has them all


def test_missing_requirement_is_one_line_at_startup(host, no_matplotlib, caplog):
    from v2m_zero.nodes import make_extension

    with caplog.at_level(logging.WARNING):
        make_extension()
    lines = [r.getMessage() for r in caplog.records if "V2M-Zero" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith("V2M-Zero: missing matplotlib — pip install -r ")
    assert lines[0].endswith("requirements.txt") and "\n" not in lines[0]


def test_node_needing_it_fails_validation_with_that_line(host, no_matplotlib):
    from v2m_zero.nodes import node_list
    from v2m_zero.nodes.curves import EventCurve, SmoothCurve
    from v2m_zero.nodes.generate import Sampler
    from v2m_zero.nodes.video import EncodeFrames

    for node in (EventCurve, SmoothCurve, Sampler):
        ok = node.validate_inputs()
        assert isinstance(ok, str) and ok.startswith("V2M-Zero: missing matplotlib")
    assert EncodeFrames.validate_inputs(video=None) is True  # it does not need matplotlib
    graph = {"c": {"class_type": "V2M_EventCurve",
                   "inputs": {"features": None, "peak_threshold": 0.0, "min_gap": 0.25}}}
    with pytest.raises(RuntimeError, match="validation failed: V2M-Zero: missing matplotlib"):
        host.run_graph(graph, node_list())


def test_validate_inputs_names_a_linked_input_so_the_host_reports_it(host):
    """ComfyUI reports a failed validate_inputs once per input it passes; with none it reports nothing, and
    a widget named there loses the host's own range/dropdown check: ours name links (or check the widget)."""
    import inspect

    from v2m_zero.nodes import node_list

    for node in node_list():
        check = getattr(node, "validate_inputs", None)
        if check is None:
            continue
        names = [p for p in inspect.signature(check).parameters]
        assert names, node
        schema = {i.id: i for i in node.define_schema().inputs}
        for name in names:
            assert name in schema, (node, name)


def test_import_has_no_side_effects():
    code = ("import logging, sys; logging.basicConfig(level=logging.DEBUG); "
            "sys.modules['matplotlib'] = None; import v2m_zero, v2m_zero.nodes.host.requirements")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "V2M-Zero: missing" not in out.stderr + out.stdout
