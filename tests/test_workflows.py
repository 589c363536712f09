"""Shipped workflows match the node schemas (UI files in example_workflows/, API twins in workflows/api/)
and every API twin runs end to end through the nodes on a fresh host with nothing placed by a user."""

import glob
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UI_FILES = sorted(glob.glob(os.path.join(ROOT, "example_workflows", "*.json")))
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


def _api_twin(path: str) -> str:
    return os.path.join(ROOT, json.load(open(path))["extra"]["info"]["api"])


def test_every_ui_workflow_has_an_api_twin():
    assert UI_FILES, "no workflows shipped"
    assert sorted(map(_api_twin, UI_FILES)) == API_FILES
    for p in UI_FILES:  # only UI-format graphs directly in example_workflows/ (the template browser lists them)
        assert "nodes" in json.load(open(p)) and "links" in json.load(open(p))
    # ComfyUI serves a pack's templates from the first of these folders that has them and lists every one:
    # a second folder of UI graphs would show each template twice
    for other in ("example", "examples", "workflow", "workflows"):
        assert not glob.glob(os.path.join(ROOT, other, "*.json")), other


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
    api = json.load(open(_api_twin(path)))
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
                linked = name is not None and any(i.get("widget", {}).get("name") == name and i.get("link")
                                                  for i in n["inputs"])
                if name is not None and name in api[str(n["id"])]["inputs"] and not linked:
                    assert api[str(n["id"])]["inputs"][name] == value, (n["type"], name)
                if linked:  # a widget turned into a socket: the API twin links it too
                    assert isinstance(api[str(n["id"])]["inputs"][name], list), (n["type"], name)
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


QUICK_START = next(p for p in UI_FILES if "Quick start" in os.path.basename(p))


def test_quick_start_is_laid_out_left_to_right_with_notes_and_groups():
    wf = json.load(open(QUICK_START))
    nodes = {n["id"]: n for n in wf["nodes"]}
    for _link, a, _sa, b, _sb, _t in wf["links"]:  # every link runs left to right (or straight down)
        assert nodes[a]["pos"][0] <= nodes[b]["pos"][0], (nodes[a]["type"], nodes[b]["type"])
    stages = ["V2M_LoadVideo", "V2M_EncodeFrames", "V2M_EventCurve", "V2M_SmoothCurve", "V2M_Sampler",
              "V2M_DecodeLatents", "V2M_MuxAudio", "SaveVideo"]
    at = [tuple(next(n["pos"] for n in wf["nodes"] if n["type"] == t)) for t in stages]
    assert at == sorted(at) and len(set(at)) == len(at)  # columns left to right, down within a column
    assert {"V2M_SyncReport", "V2M_LoadModel"} <= {n["type"] for n in wf["nodes"]}
    notes = [n["widgets_values"][0] for n in wf["nodes"] if n["type"] == "Note"]
    assert sum("§" in t for t in notes) >= 3  # the stages named after the paper's sections
    for n in wf["nodes"]:  # every node lies whole (title bar included) in exactly one group
        x, y, w, h = n["pos"][0], n["pos"][1] - 30, n["size"][0], n["size"][1] + 30
        inside = [g for g in wf["groups"] if g["bounding"][0] <= x and x + w <= g["bounding"][0] + g["bounding"][2]
                  and g["bounding"][1] + 35 <= y and y + h <= g["bounding"][1] + g["bounding"][3]]
        assert len(inside) == 1, (n["type"], [g["title"] for g in inside])


@pytest.mark.parametrize("path", UI_FILES, ids=os.path.basename)
def test_template_fits_a_1600x1000_window_at_a_readable_zoom(path):
    """The whole graph shows at >= 0.7 zoom (the frontend hides text below ~0.6) in the canvas of a
    1600x1000 window, and that is the view the template opens with; nodes do not overlap."""
    wf = json.load(open(path))
    boxes = [(n["pos"][0], n["pos"][1] - 30, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in wf["nodes"]]
    boxes += [(b[0], b[1], b[0] + b[2], b[1] + b[3]) for b in (g["bounding"] for g in wf["groups"])]
    w = max(b[2] for b in boxes) - min(b[0] for b in boxes)
    h = max(b[3] for b in boxes) - min(b[1] for b in boxes)
    zoom = min(1536 / w, 922 / h)
    assert zoom >= 0.7, f"{os.path.basename(path)} needs zoom {zoom:.2f}"
    assert 0.7 <= wf["extra"]["ds"]["scale"] <= zoom
    nodes = boxes[:len(wf["nodes"])]
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


@pytest.mark.parametrize("path", UI_FILES, ids=os.path.basename)
def test_no_preview_shown_twice(path):
    """Our nodes show their own plot, player and report: a core Preview node fed by one of them shows the
    same thing again."""
    wf = json.load(open(path))
    types = {n["id"]: n["type"] for n in wf["nodes"]}
    for _link, a, _sa, b, _sb, _t in wf["links"]:
        assert not (types[b] in ("PreviewImage", "PreviewAudio") and types[a].startswith("V2M_")), (types[a], types[b])


def test_template_titles_and_thumbnails_for_the_browser():
    """The frontend shows a custom node's template by its file name (title and description) with
    <name>.jpg beside it as the thumbnail, in name order: the quick start first."""
    from PIL import Image

    names = sorted(os.path.splitext(os.path.basename(p))[0] for p in UI_FILES)
    assert names[0].startswith("1 Quick start")
    for name in names:
        assert not set(name) & set('<>:"/\\|?*'), name  # a file name on every OS
        assert len(name) <= 28, name  # what a card shows untruncated (frontend 1.49)
        thumb = os.path.join(ROOT, "example_workflows", name + ".jpg")
        assert os.path.isfile(thumb), f"no thumbnail for {name}: python tools/template_thumbnails.py"
        assert os.path.getsize(thumb) < 60_000
        with Image.open(thumb) as im:
            assert im.format == "JPEG" and im.size[0] >= 300 and 1.0 <= im.size[0] / im.size[1] <= 2.0


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
