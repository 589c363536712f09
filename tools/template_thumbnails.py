"""Thumbnails for the template browser: example_workflows/<name>.jpg beside each <name>.json.

ComfyUI's frontend shows a custom node pack's template with the picture of the same name (``.jpg``).
Each is drawn here from the template itself: its groups, nodes (our nodes in the pack's colour, core
nodes grey, notes brown) and links, as the canvas shows them — small files (~10-30 KB), made again by

    python tools/template_thumbnails.py

after ``python tests/workflow_builder.py`` changes a template. Needs matplotlib and Pillow (the pack's
own requirements).
"""

from __future__ import annotations

import glob
import io
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = (480, 300)  # px: the card shows ~4:3 .. 16:10
TITLE_PX = 30
OURS, CORE, NOTE, BG = "#1f5f73", "#4a4a4a", "#6b4f2a", "#202020"


def _bezier(x0, y0, x1, y1, n=24):
    import numpy as np

    t = np.linspace(0, 1, n)[:, None]
    d = max(abs(x1 - x0) * 0.5, 40)
    p = np.array([[x0, y0], [x0 + d, y0], [x1 - d, y1], [x1, y1]], dtype=float)
    pts = (1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t ** 2 * p[2] + t ** 3 * p[3]
    return pts[:, 0], pts[:, 1]


def render(workflow: dict, size=SIZE) -> bytes:
    """JPEG bytes of a template's layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch, Rectangle
    from PIL import Image

    nodes = {n["id"]: n for n in workflow["nodes"]}
    boxes = [(n["pos"][0], n["pos"][1] - TITLE_PX, n["size"][0], n["size"][1] + TITLE_PX) for n in nodes.values()]
    boxes += [tuple(g["bounding"]) for g in workflow.get("groups", [])]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    pad = 0.04 * max(x1 - x0, y1 - y0)
    w, h = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
    aspect = size[0] / size[1]
    if w / h < aspect:  # centre the graph in the picture's shape
        x0 -= (h * aspect - w) / 2
        w = h * aspect
    else:
        y0 -= (w / aspect - h) / 2
        h = w / aspect

    fig = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100, facecolor=BG)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(x0 - pad, x0 - pad + w)
    ax.set_ylim(y0 - pad + h, y0 - pad)  # canvas y grows downwards
    ax.axis("off")
    ax.set_facecolor(BG)
    scale = size[0] / w  # picture px per canvas px
    for g in workflow.get("groups", []):
        gx, gy, gw, gh = g["bounding"]
        ax.add_patch(Rectangle((gx, gy), gw, gh, facecolor=g.get("color", "#555"), alpha=0.35, edgecolor="none"))
        frame = ax.add_patch(Rectangle((gx, gy), gw, gh, facecolor="none", edgecolor="none"))
        ax.text(gx + 8, gy + 6, g["title"], color="white", fontsize=max(5.0, 22 * scale * 0.72), va="top",
                ha="left").set_clip_path(frame)
    for _id, a, a_slot, b, b_slot, _t in workflow["links"]:
        na, nb = nodes[a], nodes[b]
        xs, ys = _bezier(na["pos"][0] + na["size"][0], na["pos"][1] + 14 + 20 * a_slot,
                         nb["pos"][0], nb["pos"][1] + 14 + 20 * b_slot)
        ax.plot(xs, ys, color="#9ab", linewidth=max(0.6, 3 * scale), alpha=0.8, zorder=2)
    for n in nodes.values():
        x, y = n["pos"][0], n["pos"][1] - TITLE_PX
        nw, nh = n["size"][0], n["size"][1] + TITLE_PX
        colour = NOTE if n["type"] in ("Note", "MarkdownNote") else OURS if n["type"].startswith("V2M_") else CORE
        body = ax.add_patch(FancyBboxPatch((x, y), nw, nh, boxstyle="round,pad=0,rounding_size=8",
                                           facecolor="#353535", edgecolor=colour, linewidth=max(0.5, 2 * scale),
                                           zorder=3))
        ax.add_patch(Rectangle((x, y), nw, TITLE_PX, facecolor=colour, edgecolor="none", zorder=4))
        title = n.get("title") or n["type"].removeprefix("V2M_")
        if n["type"] != "Note":
            t = ax.text(x + 6, y + TITLE_PX / 2, title, color="white", fontsize=max(4.0, 15 * scale * 0.72),
                        va="center", ha="left", zorder=5)
            t.set_clip_path(body)  # a long title stops at its node's edge
    fig.canvas.draw()
    image = Image.frombuffer("RGBA", fig.canvas.get_width_height(), fig.canvas.buffer_rgba()).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=82, optimize=True)
    return out.getvalue()


def main(folder: str = os.path.join(ROOT, "example_workflows")) -> int:
    paths = sorted(glob.glob(os.path.join(folder, "*.json")))
    for path in paths:
        with open(path, encoding="utf-8") as f:
            data = render(json.load(f))
        jpg = os.path.splitext(path)[0] + ".jpg"
        tmp = jpg + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, jpg)
        print(f"wrote {os.path.relpath(jpg, ROOT)} ({len(data) // 1024} KB)")
    return 0 if paths else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
