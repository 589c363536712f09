"""Shipped workflows match the node schemas: UI files in workflows/, API twins in workflows/api/."""

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


# Model files the shipped workflows name: created in the fake models folder so that the
# dropdowns list them and combo values are checked strictly.
WORKFLOW_MODELS = {
    "checkpoints": ["v2m_sao1.safetensors"],
    "text_encoders": ["t5-base/"],
}


@pytest.fixture
def schemas(host):
    import folder_paths

    from v2m_zero.nodes import node_list

    for kind, names in WORKFLOW_MODELS.items():
        for name in names:
            path = os.path.join(folder_paths.models_dir, "v2m", kind, name)
            os.makedirs(os.path.dirname(path.rstrip("/")), exist_ok=True)
            if name.endswith("/"):
                os.makedirs(path, exist_ok=True)
            else:
                open(path, "wb").close()
    os.makedirs(os.path.join(folder_paths.get_input_directory(), "v2m_music"), exist_ok=True)  # the training dataset
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
                assert (inp.min is None or value >= inp.min) and (inp.max is None or value <= inp.max), (nid, name, value)
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
    assert {str(k) for k in nodes} == set(api)
    for n in wf["nodes"]:
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
