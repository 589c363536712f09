"""The web extension (web/v2m_zero.js) that shows our outputs on our nodes, and the prompt upgrade
that keeps earlier API prompts running (nodes/host/legacy.py). Host-free: the JS runs under node
with a stub of the frontend's globals when node is installed."""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JS = os.path.join(ROOT, "web", "v2m_zero.js")


def _js_list(name: str) -> list[str]:
    m = re.search(rf"export const {name} = \[([^\]]*)\]", open(JS, encoding="utf-8").read())
    assert m, f"{name} not found in {JS}"
    return re.findall(r'"([^"]+)"', m.group(1))


def test_web_directory_is_declared_and_holds_the_extension():
    import v2m_zero

    web = os.path.normpath(os.path.join(ROOT, v2m_zero.WEB_DIRECTORY))
    assert web == os.path.dirname(JS) and os.path.isfile(JS)
    assert sorted(os.listdir(web)) == ["v2m_zero.js"]  # every .js there is loaded by the browser


def _returns(cls, *needles) -> bool:
    src = inspect.getsource(cls.execute) + "".join(
        inspect.getsource(f) for f in vars(sys.modules[cls.__module__]).values()
        if inspect.isfunction(f) and f.__name__.startswith("_") and f.__name__ + "(" in inspect.getsource(cls.execute))
    return any(n in src for n in needles)


def test_the_extension_covers_exactly_the_nodes_that_show_text_or_audio(host):
    from v2m_zero.nodes import node_list

    ids = {n.define_schema().node_id: n for n in node_list()}
    text, audio = _js_list("TEXT_NODES"), _js_list("AUDIO_NODES")
    assert set(text) <= set(ids) and set(audio) <= set(ids)  # only our own node ids
    assert {i for i, n in ids.items() if _returns(n, '"text"', "PreviewText")} == set(text)
    assert {i for i, n in ids.items() if _returns(n, "PreviewAudio")} == set(audio)
    assert "V2M_LoadAudio" in audio and "V2M_SyncReport" in text


NODE_SCRIPT = r"""
const calls = [];
globalThis.window = { comfyAPI: {
  app: { app: { registerExtension: (e) => calls.push(e) } },
  api: { api: { apiURL: (route) => "/api" + route } },
  widgets: { ComfyWidgets: { STRING: (node, name, spec) => {
    const w = { name, value: "", options: {}, element: { value: "", readOnly: false }, spec };
    (node.widgets ??= []).push(w); return { widget: w }; } } },
} };
const m = await import(process.argv[2]);
const out = { registered: calls.length, name: calls[0]?.name };
// a text node: a read-only box that is never serialised, filled by onExecuted
class T { }
await m.extension.beforeRegisterNodeDef(T, { name: "V2M_SyncReport", input: { required: {} } });
const t = new T(); t.onNodeCreated(); t.onExecuted({ text: ["Scene Cut Hit 0.86 (chance 0.30)"] });
const box = t.widgets[0];
out.text = { name: box.name, value: box.value, element: box.element.value, readOnly: box.element.readOnly,
             serialize: box.serialize, optSerialize: box.options.serialize };
t.onExecuted({ images: [] }); out.keptOnImageOnly = box.value;
// Load Music: core's player (AUDIO_UI) before core's upload button, the combo first
const d = { name: "V2M_LoadAudio", input: { required: { audio: [["a.wav"], { audio_upload: true }],
                                                       upload: ["AUDIOUPLOAD", {}] } } };
class A { }
await m.extension.beforeRegisterNodeDef(A, d);
out.loadMusic = Object.keys(d.input.required); out.loadMusicHasText = "onNodeCreated" in A.prototype;
const dec = { name: "V2M_DecodeLatents", input: { required: { model: ["V2M_MODEL", {}] } } };
class D { }
await m.extension.beforeRegisterNodeDef(D, dec); out.decode = Object.keys(dec.input.required);
const removed = [];
const d1 = new D();
d1.widgets = [{ name: "audioUI", value: "", element: { src: "", classList: { remove: (c) => removed.push(c) } } }];
d1.onExecuted({ audio: [{ filename: "v2m 1.flac", subfolder: "", type: "temp" }] });
out.player = { src: d1.widgets[0].element.src, value: d1.widgets[0].value, removed };
// anybody else's node: untouched
const other = { name: "LoadAudio", input: { required: { audio: [["a.wav"], { audio_upload: true }] } } };
class O { }
await m.extension.beforeRegisterNodeDef(O, other);
out.other = Object.keys(other.input.required); out.otherProto = Object.keys(O.prototype);
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node (JavaScript) not installed")
def test_extension_under_node_with_a_stub_frontend(tmp_path):
    mod = tmp_path / "v2m_zero.mjs"  # ES module whatever node's default
    shutil.copy(JS, mod)
    script = tmp_path / "run.mjs"
    script.write_text(NODE_SCRIPT)
    res = subprocess.run(["node", str(script), mod.as_uri()], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["registered"] == 1 and out["name"].startswith("V2M-Zero")
    assert out["text"] == {"name": "v2m_report", "value": "Scene Cut Hit 0.86 (chance 0.30)",
                           "element": "Scene Cut Hit 0.86 (chance 0.30)", "readOnly": True, "serialize": False,
                           "optSerialize": False}
    assert out["keptOnImageOnly"] == "Scene Cut Hit 0.86 (chance 0.30)"
    assert out["loadMusic"] == ["audio", "audioUI", "upload"] and out["loadMusicHasText"] is False
    assert out["decode"] == ["model", "audioUI"]
    src = "/api/view?filename=v2m+1.flac&type=temp&subfolder="
    assert out["player"] == {"src": src, "value": src, "removed": ["empty-audio-widget"]}
    assert out["other"] == ["audio"] and out["otherProto"] == []


# ---------------------------------------------------------------- earlier prompts
def test_upgrade_prompt_renames_load_music_file_to_audio():
    from v2m_zero.nodes.host import legacy

    old = {"prompt": {"2": {"class_type": "V2M_LoadAudio", "inputs": {"file": "song.wav"}},
                      "3": {"class_type": "V2M_LoadVideo", "inputs": {"file": "clip.mp4"}}}, "client_id": "x"}
    out = legacy.upgrade_prompt(old)
    assert out["prompt"]["2"]["inputs"] == {"audio": "song.wav"}
    assert out["prompt"]["3"]["inputs"] == {"file": "clip.mp4"}  # other nodes' `file` untouched
    new = {"prompt": {"2": {"class_type": "V2M_LoadAudio", "inputs": {"audio": "a.wav", "file": "b.wav"}}}}
    assert legacy.upgrade_prompt(new)["prompt"]["2"]["inputs"]["audio"] == "a.wav"  # a current name wins
    for junk in (None, [], {"prompt": None}, {"prompt": {"1": None}},
                 {"prompt": {"1": {"class_type": "V2M_LoadAudio"}}}):
        assert legacy.upgrade_prompt(junk) == junk


def test_upgrade_prompt_is_registered_once_on_the_server(monkeypatch):
    from v2m_zero.nodes.host import legacy

    class Server:
        def __init__(self):
            self.on_prompt_handlers = []

        def add_on_prompt_handler(self, h):
            self.on_prompt_handlers.append(h)

    fake = types.ModuleType("server")
    fake.PromptServer = type("PromptServer", (), {"instance": Server()})
    monkeypatch.setitem(sys.modules, "server", fake)
    assert legacy.register() and legacy.register()
    assert fake.PromptServer.instance.on_prompt_handlers == [legacy.upgrade_prompt]
    monkeypatch.setitem(sys.modules, "server", None)  # no server: a bare import
    assert legacy.register() is False


def test_a_template_ends_in_an_output_node(host):
    """ComfyUI refuses a prompt without an output node ("Prompt has no outputs"): every API twin has one."""
    import glob

    from v2m_zero.nodes import node_list

    outputs = {n.define_schema().node_id for n in node_list() if n.define_schema().is_output_node}
    outputs |= {"SaveVideo", "PreviewImage", "PreviewAudio", "SaveAudio"}
    assert {"V2M_EventCurve", "V2M_SmoothCurve"} <= outputs  # curve plots are results a graph may end with
    for path in glob.glob(os.path.join(ROOT, "workflows", "api", "*.json")):
        assert {n["class_type"] for n in json.load(open(path)).values()} & outputs, path
