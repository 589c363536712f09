"""Shipped workflows match the node schemas (UI files in workflows/, API twins in workflows/api/)
and every API twin runs end to end through the nodes on a fresh host with nothing placed by a user."""

import glob
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UI_FILES = sorted(glob.glob(os.path.join(ROOT, "workflows", "*.json")))
API_FILES = sorted(glob.glob(os.path.join(ROOT, "workflows", "api", "*.json")))

# Core ComfyUI nodes our workflows use: input name → type (links only; no widgets).
CORE_NODES = {
    "PreviewImage": {"inputs": {"images": "IMAGE"}, "outputs": []},
    "PreviewAudio": {"inputs": {"audio": "AUDIO"}, "outputs": []},
    "SaveVideo": {"inputs": {"video": "VIDEO"}, "outputs": [], "widgets": ["filename_prefix", "format", "codec"]},
    "SaveAudio": {"inputs": {"audio": "AUDIO"}, "outputs": [], "widgets": ["filename_prefix"]},
    "LoadAudio": {"inputs": {}, "outputs": ["AUDIO"], "widgets": ["audio"]},
}


UI_ONLY = {"Note", "MarkdownNote"}  # frontend nodes: never in an API prompt


@pytest.fixture
def schemas(host):
    """The node schemas as a FRESH install lists them: empty input, models and output folders, so
    every combo value a template names must be one the pack offers by itself."""
    import folder_paths

    from v2m_zero.nodes import node_list

    for folder in (folder_paths.get_input_directory(), folder_paths.models_dir, folder_paths.get_output_directory()):
        assert not os.path.isdir(folder) or not os.listdir(folder), f"not a fresh host: {folder}"
    return {n.define_schema().node_id: n.define_schema() for n in node_list()}


def _io_type(x):
    return x.io_type


def _widget_slots(schema):
    """Widget names in widgets_values order: an upload combo adds its button's value, and a
    control_after_generate number is followed by its mode ("fixed", "randomize", ...)."""
    slots = []
    for i in schema.inputs:
        if not getattr(i, "widget", False):
            continue
        slots.append(i.id)
        if i.extra.get("upload"):
            slots.append(None)
        if i.extra.get("control_after_generate"):
            slots.append(None)
    return slots


def test_every_ui_workflow_has_an_api_twin():
    assert UI_FILES, "no workflows shipped"
    ui_names = {os.path.basename(p) for p in UI_FILES}
    api_names = {os.path.basename(p) for p in API_FILES}
    assert ui_names == api_names
    for p in UI_FILES:  # only UI-format graphs directly in workflows/ (the template browser lists them)
        assert "nodes" in json.load(open(p)) and "links" in json.load(open(p))


@pytest.mark.parametrize("path", API_FILES, ids=os.path.basename)
def test_api_twin_matches_node_schemas(path, schemas):
    graph = json.load(open(path))
    assert graph
    for nid, node in graph.items():
        ct = node["class_type"]
        assert ct in schemas or ct in CORE_NODES, f"{nid}: unknown class_type {ct}"
        if ct in CORE_NODES:
            allowed = set(CORE_NODES[ct]["inputs"]) | set(CORE_NODES[ct].get("widgets", []))
            assert set(node["inputs"]) <= allowed, (nid, ct)
            continue
        schema = schemas[ct]
        by_id = {i.id: i for i in schema.inputs}
        unknown = set(node["inputs"]) - set(by_id)
        assert not unknown, f"{nid} {ct}: inputs not in schema: {unknown}"
        missing = [i.id for i in schema.inputs if not i.optional and i.id not in node["inputs"]]
        assert not missing, f"{nid} {ct}: required inputs missing: {missing}"
        for name, value in node["inputs"].items():
            inp = by_id[name]
            if isinstance(value, list):  # a link [node id, output index]
                src = graph[value[0]]
                outs = ([_io_type(o) for o in schemas[src["class_type"]].outputs] if src["class_type"] in schemas
                        else CORE_NODES[src["class_type"]]["outputs"])
                assert value[1] < len(outs), (nid, name)
                assert outs[value[1]] == _io_type(inp), f"{nid}.{name}: {outs[value[1]]} → {_io_type(inp)}"
                continue
            assert getattr(inp, "widget", False), f"{nid}.{name} is a socket but has a literal value"
            if inp.io_type == "COMBO" and not inp.extra.get("upload"):
                assert value in inp.options, f"{nid}.{name}={value!r} not in {inp.options}"
            if inp.io_type in ("INT", "FLOAT"):
                assert ((inp.min is None or value >= inp.min)
                        and (inp.max is None or value <= inp.max)), (nid, name, value)
                assert isinstance(value, (int, float)) and (inp.io_type == "FLOAT" or isinstance(value, int))
            if inp.io_type == "BOOLEAN":
                assert isinstance(value, bool)
            if inp.io_type == "STRING":
                assert isinstance(value, str)


@pytest.mark.parametrize("path", UI_FILES, ids=os.path.basename)
def test_ui_workflow_widgets_and_links(path, schemas):
    wf = json.load(open(path))
    api = json.load(open(os.path.join(ROOT, "workflows", "api", os.path.basename(path))))
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert {str(k) for k, n in nodes.items() if n["type"] not in UI_ONLY} == set(api)
    for n in wf["nodes"]:
        if n["type"] in UI_ONLY:
            assert n["widgets_values"] and isinstance(n["widgets_values"][0], str)
            continue
        assert api[str(n["id"])]["class_type"] == n["type"]
        if n["type"] in schemas:
            slots = _widget_slots(schemas[n["type"]])
            assert len(n["widgets_values"]) == len(slots), (n["type"], n["widgets_values"], slots)
            for name, value in zip(slots, n["widgets_values"]):
                if name is not None and name in api[str(n["id"])]["inputs"]:
                    assert api[str(n["id"])]["inputs"][name] == value, (n["type"], name)
    for link_id, a, a_slot, b, b_slot, typ in wf["links"]:
        assert nodes[a]["outputs"][a_slot]["type"] == typ
        assert nodes[b]["inputs"][b_slot]["type"] == typ
        assert link_id in nodes[a]["outputs"][a_slot]["links"] and nodes[b]["inputs"][b_slot]["link"] == link_id


def test_shipped_workflows_are_what_the_builder_makes(host):
    import workflow_builder

    for rel, text in workflow_builder.build_all().items():
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            assert f.read() == text, (f"{rel} differs from tests/workflow_builder.py: "
                                      "run python tests/workflow_builder.py")


def test_quick_start_is_laid_out_left_to_right_with_notes_and_groups():
    wf = json.load(open(os.path.join(ROOT, "workflows", "v2m_quick_start.json")))
    nodes = {n["id"]: n for n in wf["nodes"]}
    for _link, a, _sa, b, _sb, _t in wf["links"]:  # every link runs left to right (or straight down)
        assert nodes[a]["pos"][0] <= nodes[b]["pos"][0], (nodes[a]["type"], nodes[b]["type"])
    stages = ["V2M_LoadVideo", "V2M_EncodeFrames", "V2M_EventCurve", "V2M_SmoothCurve", "V2M_Sampler",
              "V2M_DecodeLatents", "V2M_MuxAudio", "SaveVideo"]
    xs = [next(n["pos"][0] for n in wf["nodes"] if n["type"] == t) for t in stages]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert {"V2M_SyncReport", "PreviewImage", "V2M_LoadModel"} <= {n["type"] for n in wf["nodes"]}
    notes = [n["widgets_values"][0] for n in wf["nodes"] if n["type"] == "Note"]
    assert sum("§" in t for t in notes) >= 3  # the stages named after the paper's sections
    for g in wf["groups"]:  # every node sits in exactly one group
        assert g["title"] and len(g["bounding"]) == 4
    for n in wf["nodes"]:
        x, y = n["pos"]
        inside = [g for g in wf["groups"] if g["bounding"][0] <= x < g["bounding"][0] + g["bounding"][2]
                  and g["bounding"][1] <= y < g["bounding"][1] + g["bounding"][3]]
        assert len(inside) == 1, (n["type"], [g["title"] for g in inside])


# Steps of the train template when tests run it (the template itself trains 200 steps: minutes on a CPU).
TEST_TRAIN_STEPS = 2


@pytest.mark.parametrize("path", API_FILES, ids=os.path.basename)
def test_api_twin_runs_on_a_fresh_host(path, schemas, host):
    """Queue the template as it ships, on a host with nothing added by a user: it must succeed."""
    import folder_paths

    from v2m_zero.core.timing import media
    from v2m_zero.nodes import node_list

    graph = json.load(open(path))
    for node in graph.values():
        if node["class_type"] == "V2M_Train":
            assert node["inputs"]["max_steps"] <= 300  # a few minutes on a CPU
            node["inputs"]["max_steps"] = TEST_TRAIN_STEPS
    out = host.run_graph(graph, node_list())
    assert set(out) == set(graph)
    saved = []
    for dirpath, _dirs, files in os.walk(folder_paths.get_output_directory()):
        saved += [os.path.join(dirpath, f) for f in files]
    types = {n["class_type"] for n in graph.values()}
    if "V2M_MuxAudio" in types or "SaveVideo" in types:
        videos = [p for p in saved if p.endswith(".mp4")]
        assert videos, "no video saved"
        for v in videos:
            info = media.probe_video(v)
            assert info.has_audio and info.duration == pytest.approx(12.0, abs=0.05)
    if "V2M_SyncReport" in types:
        report = next(out[k] for k, n in graph.items() if n["class_type"] == "V2M_SyncReport")[0]
        assert report.startswith("Scene Cut Hit: 0.") or report.startswith("Scene Cut Hit: 1.")  # a number, not n/a
        if os.path.basename(path) == "v2m_quick_start.json":  # the figures README's First minute quotes (issue 26)
            from test_readme_figures import template_report_line

            assert report.splitlines()[0] == template_report_line()
    if "V2M_Train" in types:
        ckpt = next(out[k] for k, n in graph.items() if n["class_type"] == "V2M_Train")[0]
        assert os.path.isfile(ckpt) and ckpt.startswith(folder_paths.models_dir)
        assert os.path.isfile(os.path.join(folder_paths.get_input_directory(), "v2m_demo_music", "README.txt"))
    if "V2M_EventCurve" in types:
        hits = next(out[k] for k, n in graph.items() if n["class_type"] == "V2M_EventCurve")[2]
        assert len(hits.split(",")) == 7  # the example clip's seven cuts
