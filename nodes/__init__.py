"""ComfyUI nodes (V3 API): thin classes that convert types, report progress and call ``core``.

Importing this package needs ComfyUI's ``comfy_api`` (the host provides it); the library under
``core`` never does.
"""

from __future__ import annotations

import importlib

# One module per stage; each lists its node classes in NODES.
NODE_MODULES = ("video", "curves", "generate", "audio", "align", "evaluate", "prompt", "train")


def node_list() -> list:
    nodes = []
    for name in NODE_MODULES:
        nodes.extend(importlib.import_module(f"{__name__}.{name}").NODES)
    return nodes


def make_extension():
    """The ComfyUI extension (called by ``comfy_entrypoint`` at startup: missing requirements are logged
    then, one line each)."""
    from comfy_api.latest import ComfyExtension

    from .host import legacy
    from .host.models import register_model_folders
    from .host.requirements import report_missing

    report_missing()

    class V2MZeroExtension(ComfyExtension):
        async def on_load(self) -> None:
            register_model_folders()
            legacy.register()  # earlier versions' API prompts keep running

        async def get_node_list(self):
            return node_list()

    return V2MZeroExtension()
