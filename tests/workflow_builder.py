"""The shipped workflows, written from short specs: UI format (example_workflows/<title>.json, what the
template browser lists) and API twins (workflows/api/<name>.json).

The node schemas decide socket order, widget order (upload and control_after_generate slots
included) and output types, so a template can never disagree with the nodes it uses.
``tests/test_workflows.py`` checks the shipped files equal what this builds; after changing a spec
or a schema, rebuild them with ``python tests/workflow_builder.py`` (needs the package installed).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEMO_CKPT = "demo/v2m-zero-demo-music.safetensors"
DEMO_DATASET = "demo: synthetic percussion (made on first use)"
CLIP = "v2m_demo_clip.mp4"
SONG = "v2m_demo_song.wav"

# Core ComfyUI nodes the templates use: (socket inputs, widget names, outputs), as ComfyUI defines them.
CORE = {
    "PreviewImage": ([("images", "IMAGE")], [], []),
    "SaveVideo": ([("video", "VIDEO")], ["filename_prefix", "format", "codec"], []),
    "PreviewAudio": ([("audio", "AUDIO")], [], []),
    "SaveAudio": ([("audio", "AUDIO")], ["filename_prefix"], []),
}
NOTE_COLOURS = {"color": "#432", "bgcolor": "#653"}

ENCODE = dict(encoder="auto", sample_fps=0.0, size=0, fps=24.0, dinov2_model="dinov2-large", pooling="mean_patch",
              precision="fp32", batch_size=16, download_if_missing=False)
LOAD_MODEL = dict(checkpoint=DEMO_CKPT, text_encoder="none", codec="from checkpoint", precision="fp32", offload=True,
                  lora="none", lora_strength=1.0, download_if_missing=False)
SAMPLER = dict(prompt="", negative_prompt="", steps=0, cfg=0.0, seed=0, uncond="from checkpoint", fast_sampler="auto",
               window_seconds=0.0, overlap_seconds=0.0, only_window=-1)  # 0 / "from checkpoint": the checkpoint's own
# sampling defaults; only_window -1: every window
SMOOTH = dict(kernel_seconds=2.52, target_rate=21.533203, latent_length=0, scale=1.0, offset=0.0)
DEMO_TRAIN_CONFIG = """\
# DEMO settings: a tiny model that trains in a few minutes on a CPU. For real training
# start from an init checkpoint (Stable Audio Open) and see `v2m-zero train --example`.
[model.from_config]        # used when no init checkpoint is chosen
embed_dim = 64
depth = 2
num_heads = 2
cond_token_dim = 32
[text]
encoder = "none"
[curve]
video_encoder = "pixels"   # the weightless frame encoder: Encode Frames 'auto' follows it
[optim]
lr = 1e-3
warmup_steps = 20
[train]
batch_size = 8
[checkpoint]
every = 100
[validation]
every = 0
"""

# Each template: nodes (id, type, pos, size, widgets, links {input: (node, output)}, title),
# notes (id, pos, size, text) and groups (title, [member node/note ids], colour: the box is fitted around them).
# "title" is the template browser's card: the frontend shows a custom node's template by its file name (title and
# description; ~28 characters show on a card), in the server's listing order or A → Z (the number puts the
# quick start first there); the key is the API twin's name (workflows/api/).
# Sizes hold what a node shows after a run (ComfyUI 0.3.64 / 0.33 frontends, measured by
# tools/browser_check.js): widgets + the report box + a 640x360 preview drawn a node's width wide, so
# (Encode Frames' and Smooth Curve's report boxes, what they used and ignored: +80 to +120 px, not yet measured)
# nothing grows out of its group. Layouts fit a 1600x1000 window at zoom >= 0.72.
W_PLOT = 420  # nodes that show a plot or a video: wide enough for the plot's text (core/timing/plot.py)
TEMPLATES = {
    "v2m_quick_start": {
        "title": "1 Quick start (demo model)",
        "name": "V2M-Zero: quick start (demo clip, demo model)",
        "nodes": [
            (1, "V2M_LoadVideo", (15, 185), (320, 340), {"file": CLIP}, {}, "1. Load video (the pack's example clip)"),
            (2, "V2M_LoadModel", (15, 570), (320, 300), LOAD_MODEL, {}, "Model: the bundled DEMO model"),
            (3, "V2M_EncodeFrames", (365, 185), (300, 420), ENCODE, {"video": (1, 0), "model": (2, 0)},
             "2. Frame encoder (auto = the model's)"),
            (4, "V2M_EventCurve", (680, 185), (W_PLOT, 380), dict(peak_threshold=0.0, min_gap=0.25),
             {"features": (3, 0)}, "3. Event curve (eq. 2–3)"),
            (5, "V2M_SmoothCurve", (680, 610), (W_PLOT, 550), SMOOTH, {"curve": (4, 0), "model": (2, 0)},
             "4. Smooth (eq. 4, follows the model)"),
            (6, "V2M_Sampler", (1145, 185), (W_PLOT, 820), SAMPLER, {"model": (2, 0), "curve": (5, 0)},
             "5. Sampler (rectified flow, curve as input channel)"),
            (7, "V2M_DecodeLatents", (1145, 1050), (W_PLOT, 120), {}, {"model": (2, 0), "latent": (6, 0)},
             "6. Decode to audio"),
            (8, "V2M_MuxAudio", (1610, 185), (W_PLOT, 110), dict(save_mp4=False, filename_prefix="video/V2M"),
             {"video": (1, 0), "audio": (7, 0)}, "7. Mux music into the video"),
            (9, "SaveVideo", (1610, 340), (W_PLOT, 350),
             dict(filename_prefix="video/V2M_quick_start", format="auto", codec="auto"), {"video": (8, 0)},
             "8. Save video"),
            (11, "V2M_SyncReport", (1610, 735), (W_PLOT, 470), dict(fps=24.0, tolerance=0.1, shifts=200),
             {"video": (8, 0)}, "Sync report: Scene Cut Hit vs chance"),
        ],
        "notes": [
            (104, (15, 45), (320, 100),
             "The pack's example clip (12 s, seven cuts) and the bundled DEMO model. Upload your own video; pick a "
             "trained V2M checkpoint or a Stable Audio Open base."),
            (101, (365, 45), (735, 100),
             "Timing from the video (§3.2): frames encoded ('pixels', as the demo model was trained; the paper uses "
             "DINOv2), event curve a_k = 1 − cos(f_k, f_k+1) standardised (eq. 2–3), resampled to the music latent "
             "rate and Hann-smoothed (eq. 4). Peaks = hit points (cuts)."),
            (102, (1145, 45), (W_PLOT, 100),
             "A rectified-flow DiT gets the smoothed curve as one extra input channel (§3.3–3.4; trained on MUSIC "
             "curves only). DEMO model: 16 kHz mono, not a real music model."),
            (103, (1610, 45), (W_PLOT, 100),
             "The music fitted to the video's exact length and muxed (every frame kept), saved; Scene Cut Hit = "
             "share of cuts with a beat within ±0.1 s, next to chance (§4.2)."),
        ],
        "groups": [
            ("In: video + model", [1, 2, 104], "#8A8"),
            ("Timing: video → event curve (§3.2)", [3, 4, 5, 101], "#3f789e"),
            ("Generate: sampler + decode (§3.3–3.4)", [6, 7, 102], "#a1309b"),
            ("Out: mux, save, measure (§4.2)", [8, 9, 11, 103], "#b06634"),
        ],
    },
    "v2m_video_to_music": {
        "title": "2 Music for your video",
        "name": "V2M-Zero: music for a video",
        "nodes": [
            (1, "V2M_LoadVideo", (40, 120), (320, 340), {"file": CLIP}, {}, None),
            (4, "V2M_LoadModel", (40, 510), (320, 300), LOAD_MODEL, {}, None),
            (2, "V2M_EncodeFrames", (390, 120), (300, 380), ENCODE, {"video": (1, 0), "model": (4, 0)}, None),
            (3, "V2M_EventCurve", (720, 120), (W_PLOT, 380), dict(peak_threshold=0.0, min_gap=0.25),
             {"features": (2, 0)}, None),
            (5, "V2M_Sampler", (1170, 120), (W_PLOT, 820),
             dict(SAMPLER, prompt="cinematic orchestral score, tense strings, big drums on the cuts",
                  negative_prompt="low quality, noise"),
             {"model": (4, 0), "curve": (3, 0)}, None),
            (6, "V2M_DecodeLatents", (1620, 120), (320, 120), {}, {"model": (4, 0), "latent": (5, 0)}, None),
            (7, "V2M_MuxAudio", (1620, 290), (320, 310), dict(save_mp4=True, filename_prefix="video/V2M"),
             {"video": (1, 0), "audio": (6, 0)}, None),
        ],
        "notes": [
            (101, (390, 540), (750, 130),
             "The sampler smooths the raw event curve exactly as the checkpoint was trained (its curve spec); Encode "
             "Frames 'auto' uses the checkpoint's frame encoder. The default model is the bundled DEMO model (no text: "
             "the prompt is used only by text-conditioned checkpoints, e.g. Stable Audio Open 1.0 bases with "
             "t5_base.safetensors)."),
        ],
        "groups": [],
    },
    "v2m_align_music": {
        "title": "3 Align your own music",
        "name": "V2M-Zero: align your own music to a video's cuts (no model weights)",
        "nodes": [
            (1, "V2M_LoadVideo", (40, 120), (320, 340), {"file": CLIP}, {}, "Video (the pack's example clip)"),
            (2, "V2M_LoadAudio", (40, 510), (320, 200), {"audio": SONG}, {}, "Your music (the pack's example song)"),
            (3, "V2M_EncodeFrames", (390, 120), (300, 380), dict(ENCODE, encoder="pixels"), {"video": (1, 0)}, None),
            (4, "V2M_EventCurve", (720, 120), (W_PLOT, 380), dict(peak_threshold=0.0, min_gap=0.25),
             {"features": (3, 0)}, "Event curve: its peaks are the hit points"),
            (5, "V2M_AlignMusic", (1170, 120), (W_PLOT, 620),
             dict(max_stretch=0.08, edits="beats", start_seconds=0.0, end_fade=1.0, loop_short_music=True,
                  stretcher="auto", skip_intro=True),
             {"audio": (2, 0), "curve": (4, 0)}, "Align music to the hit points"),
            (6, "V2M_MuxAudio", (1620, 120), (320, 310), dict(save_mp4=True, filename_prefix="video/V2M_aligned"),
             {"video": (1, 0), "audio": (5, 0)}, None),
        ],
        "notes": [
            (101, (390, 540), (750, 170),
             "Bring your own music: upload it in 'Your music' (any file ComfyUI can read; or connect any AUDIO, e.g. "
             "from Stable Audio or Decode Latents). Align Music retimes it with bounded tempo changes (±8 %) so that "
             "beats and bar lines land on the video's hit points, and fits it to the video's exact length. No model "
             "weights needed. Its report (on the node) shows Scene Cut Hit before → after, next to chance."),
        ],
        "groups": [],
    },
    "v2m_event_curve": {
        "title": "4 Event curve of a video",
        "name": "V2M-Zero: event curve of a video",
        "nodes": [
            (1, "V2M_LoadVideo", (40, 120), (320, 340), {"file": CLIP}, {}, None),
            (2, "V2M_EncodeFrames", (390, 120), (300, 380), dict(ENCODE, encoder="pixels"), {"video": (1, 0)}, None),
            (3, "V2M_EventCurve", (720, 120), (W_PLOT, 380), dict(peak_threshold=0.0, min_gap=0.25),
             {"features": (2, 0)}, None),
            (4, "V2M_SmoothCurve", (1170, 120), (W_PLOT, 550), SMOOTH, {"curve": (3, 0)}, None),
        ],
        "notes": [],
        "groups": [],
    },
    "v2m_train": {
        "title": "5 Train on music (demo data)",
        "name": "V2M-Zero: fine-tune on music curves (demo data)",
        "nodes": [
            (1, "V2M_Train", (40, 220), (520, 700),
             dict(dataset=DEMO_DATASET, run_name="v2m_demo", init_checkpoint="none", codec="patch:64:1:4000",
                  music_encoder="logmel",
                  clip_seconds=8.0, smoothing_seconds=0.2, max_steps=200, config=DEMO_TRAIN_CONFIG,
                  preset="custom", download_if_missing=False), {}, None),
        ],
        "notes": [
            (101, (40, 40), (520, 150),
             "DEMO: trains a tiny model on the built-in synthetic percussion (made in input/v2m_demo_music on first "
             "use) in a few minutes on a CPU, with music event curves only (paper §3.3). The checkpoint lands in "
             "models/v2m/checkpoints/v2m_demo.safetensors. For real training choose your own dataset folder, an init "
             "checkpoint and the Stable Audio codec."),
        ],
        "groups": [],
    },
}
UI_DIR = "example_workflows"  # the folder name ComfyUI's template browser looks for first
API_DIR = "workflows/api"
TITLE_PX, GROUP_PAD, GROUP_HEADER = 30, 15, 35  # node title bar; group padding and title bar (canvas px)
WINDOW = (1536, 922)  # the canvas of a 1600x1000 browser window (ComfyUI's menus take the rest)


# --- issue 25: generate, then align (self-contained: its own spec, and a link into a widget) -----------------
ALIGN_WIDGETS = dict(max_stretch=0.08, edits="beats", start_seconds=0.0, end_fade=1.0, loop_short_music=True,
                     stretcher="auto", skip_intro=True)
GENERATE_THEN_ALIGN = {
    "title": "6 Generate, then align",
    "name": "V2M-Zero: generate music (or take any), then align it to the video's cuts",
    "nodes": [
        (1, "V2M_LoadVideo", (0, 30), (320, 340), {"file": CLIP}, {}, "Video (the pack's example clip)"),
        (2, "V2M_EncodeFrames", (350, 30), (300, 300), dict(ENCODE, encoder="pixels"), {"video": (1, 0)}, None),
        (3, "V2M_EventCurve", (680, 30), (W_PLOT, 380), dict(peak_threshold=0.0, min_gap=0.25), {"features": (2, 0)},
         "Event curve: its peaks are the hit points"),
        (4, "V2M_MusicPrompt", (350, 400), (300, 520),
         dict(user_text="warm electronic groove, clean drums", fps=24.0, asr_model="none", vlm_model="none",
              llm_model="none", frames=8, frame_mode="even"), {"video": (1, 0)},
         "Prompt + the cut pacing's tempo"),
        (5, "V2M_LoadModel", (0, 800), (320, 300), LOAD_MODEL, {}, "Model (DEMO here; a Stable Audio base)"),
        (6, "V2M_Sampler", (680, 460), (W_PLOT, 820), SAMPLER, {"model": (5, 0), "curve": (3, 0)},
         "Generate (a base ignores the curve)"),
        (7, "V2M_DecodeLatents", (1130, 460), (320, 120), {}, {"model": (5, 0), "latent": (6, 0)}, None),
        (8, "V2M_MusicSource", (1130, 30), (320, 230),
         dict(music_from="file", file=SONG), {"audio": (7, 0)}, "Music: example song or generated"),
        (9, "V2M_AlignMusic", (1480, 30), (W_PLOT, 620), ALIGN_WIDGETS, {"audio": (8, 0), "video": (1, 0)},
         "Align music to the cuts"),
        (10, "V2M_MuxAudio", (1480, 700), (320, 310),
         dict(save_mp4=True, filename_prefix="video/V2M_generated_aligned"), {"video": (1, 0), "audio": (9, 0)}, None),
    ],
    # links into widgets (the frontend turns the widget into a socket): (source node, slot, node, widget)
    "widget_links": [(4, 0, 6, "prompt")],
    "notes": [
        (101, (0, 420), (320, 340),
         "Runs as it is on a fresh host: Music Source plays the pack's example song and Align Music retimes it onto "
         "the clip's cuts. To GENERATE the music instead: put Stable Audio Open 1.0 (model.safetensors + "
         "model_config.json) or a Stable Audio 3 checkpoint in models/checkpoints and its text encoder (t5_base / "
         "t5gemma) in models/text_encoders, choose them in Load Model, and set Music Source to 'audio input'. "
         "Or connect the AUDIO of ComfyUI's own Stable Audio nodes (VAE Decode Audio) to Music Source."),
        (102, (1130, 640), (320, 330),
         "The music prompt carries the tempo the cut pacing suggests (60 + 2.5 x cuts per minute BPM), so the "
         "generated music starts near a tempo the cuts fit; Align Music then moves its beats onto the cuts "
         "(±8 %, a beat dropped or repeated where needed) and reports Scene Cut Hit on the cuts and on the hit "
         "points. An untrained base's curve channel is zero: the curve sets only the length here."),
    ],
    "groups": [],
}


def build_generate_then_align(schemas) -> tuple[dict, dict]:
    """The generate-then-align template: :func:`build`, then its links into widgets (UI and API)."""
    spec = dict(GENERATE_THEN_ALIGN, key="v2m_generate_then_align")
    ui, api = build(spec, schemas)
    nodes = {n["id"]: n for n in ui["nodes"]}
    for src, slot, dst, widget in spec["widget_links"]:
        link_id = ui["last_link_id"] + 1
        typ = nodes[src]["outputs"][slot]["type"]
        ui["links"].append([link_id, src, slot, dst, len(nodes[dst]["inputs"]), typ])
        nodes[dst]["inputs"].append({"name": widget, "type": typ, "widget": {"name": widget}, "link": link_id})
        nodes[src]["outputs"][slot]["links"].append(link_id)
        ui["last_link_id"] = link_id
        api[str(dst)]["inputs"][widget] = [str(src), slot]
    return ui, api


def _schemas():
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import fake_comfy

    fake_comfy.install(tempfile.mkdtemp(prefix="v2m-wf-"))
    from v2m_zero.nodes import node_list

    out = {}
    for n in node_list():
        s = n.define_schema()
        sockets = [(i.id, i.io_type) for i in s.inputs if not getattr(i, "widget", False)]
        widgets = []
        for i in s.inputs:
            if getattr(i, "widget", False):
                widgets.append(i.id)
                if i.extra.get("upload"):
                    widgets.append(("upload", i.extra["upload"]))
                if i.extra.get("control_after_generate"):
                    widgets.append(("control", "fixed"))
        outs = [(o.display_name, o.io_type) for o in s.outputs]
        out[s.node_id] = (sockets, widgets, outs)
    for k, (socks, widgets, outs) in CORE.items():
        out[k] = (socks, widgets, outs)
    return out


def _order(nodes) -> dict[int, int]:
    deps = {nid: {src for src, _ in links.values()} for nid, _t, _p, _s, _w, links, _ti in nodes}
    order, done = {}, set()
    while len(done) < len(deps):
        for nid in sorted(deps):
            if nid not in done and deps[nid] <= done:
                order[nid] = len(order)
                done.add(nid)
    return order


def build(spec: dict, schemas) -> tuple[dict, dict]:
    """(UI workflow, API prompt) of one template spec."""
    nodes, links, api = [], [], {}
    out_links: dict[tuple[int, int], list[int]] = {}
    order = _order(spec["nodes"])
    by_id = {n[0]: n for n in spec["nodes"]}
    for nid, typ, _p, _s, _w, lk, _t in spec["nodes"]:
        sockets = dict(schemas[typ][0])
        for name, (src, slot) in lk.items():
            src_type = schemas[by_id[src][1]][2][slot][1]
            assert sockets[name] == src_type, (nid, name, src_type)
            link_id = len(links) + 1
            links.append([link_id, src, slot, nid, [s for s, _ in schemas[typ][0]].index(name), src_type])
            out_links.setdefault((src, slot), []).append(link_id)
    for nid, typ, pos, size, widgets, lk, title in spec["nodes"]:
        sockets, wslots, outs = schemas[typ]
        values = [w[1] if isinstance(w, tuple) and w[0] == "control"
                  else ("image" if isinstance(w, tuple) else widgets[w]) for w in wslots]
        ins = [{"name": n, "type": t, "link": next((l[0] for l in links if l[3] == nid and l[4] == i), None)}
               for i, (n, t) in enumerate(sockets)]
        node = {"id": nid, "type": typ, "pos": list(pos), "size": list(size), "flags": {}, "order": order[nid],
                "mode": 0, "inputs": ins,
                "outputs": [{"name": n, "type": t, "links": out_links.get((nid, i), []), "slot_index": i}
                            for i, (n, t) in enumerate(outs)],
                "properties": {"Node name for S&R": typ}, "widgets_values": values}
        if title:
            node["title"] = title
        nodes.append(node)
        inputs = {k: widgets[k] for k in wslots if isinstance(k, str)}
        inputs.update({name: [str(src), slot] for name, (src, slot) in lk.items()})
        api[str(nid)] = {"class_type": typ, "inputs": inputs, "_meta": {"title": title or typ}}
    for nid, pos, size, text in spec["notes"]:
        nodes.append({"id": nid, "type": "Note", "pos": list(pos), "size": list(size), "flags": {},
                      "order": len(order) + nid % 100, "mode": 0, "inputs": [], "outputs": [], "properties": {},
                      "widgets_values": [text], **NOTE_COLOURS})
    boxes = {n["id"]: (n["pos"][0], n["pos"][1] - TITLE_PX, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in nodes}
    groups = []
    for i, (t, members, c) in enumerate(spec["groups"]):
        x0, y0 = min(boxes[m][0] for m in members), min(boxes[m][1] for m in members)
        x1, y1 = max(boxes[m][2] for m in members), max(boxes[m][3] for m in members)
        bounding = [x0 - GROUP_PAD, y0 - GROUP_PAD - GROUP_HEADER, x1 - x0 + 2 * GROUP_PAD,
                    y1 - y0 + 2 * GROUP_PAD + GROUP_HEADER]
        groups.append({"id": i + 1, "title": t, "bounding": bounding, "color": c, "font_size": 22, "flags": {}})
    ui = {"last_node_id": max(n["id"] for n in nodes), "last_link_id": len(links),
          "nodes": sorted(nodes, key=lambda n: n["order"]), "links": links, "groups": groups, "config": {},
          "extra": {"info": {"name": spec["name"], "api": f"{API_DIR}/{spec['key']}.json"},
                    "ds": fitted_view(list(boxes.values()) + [_box(g["bounding"]) for g in groups])},
          "version": 0.4}
    return ui, api


def _box(b):
    return (b[0], b[1], b[0] + b[2], b[1] + b[3])


def fitted_view(boxes) -> dict:
    """The view (zoom and offset) that shows every box whole, centred, in a 1600x1000 window: what the
    frontend restores when the template is opened."""
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    scale = round(min(WINDOW[0] / (x1 - x0), WINDOW[1] / (y1 - y0), 1.0) * 0.98, 3)
    return {"scale": scale, "offset": [round(-x0 + (WINDOW[0] / scale - (x1 - x0)) / 2, 1),
                                       round(-y0 + (WINDOW[1] / scale - (y1 - y0)) / 2, 1)]}


def dumps(obj) -> str:
    return json.dumps(obj, indent=1, ensure_ascii=False) + "\n"


def build_all() -> dict[str, str]:
    """{relative path: file text} for every template."""
    schemas = _schemas()
    files = {}
    for name, spec in TEMPLATES.items():
        ui, api = build(dict(spec, key=name), schemas)
        files[f"{UI_DIR}/{spec['title']}.json"] = dumps(ui)
        files[f"{API_DIR}/{name}.json"] = dumps(api)
    ui, api = build_generate_then_align(schemas)  # issue 25
    files[f"{UI_DIR}/{GENERATE_THEN_ALIGN['title']}.json"] = dumps(ui)
    files[f"{API_DIR}/v2m_generate_then_align.json"] = dumps(api)
    return files


if __name__ == "__main__":
    os.makedirs(os.path.join(ROOT, UI_DIR), exist_ok=True)
    for rel, text in build_all().items():
        with open(os.path.join(ROOT, rel), "w", encoding="utf-8") as f:
            f.write(text)
        print("wrote", rel)
