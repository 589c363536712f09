"""Prompts saved by earlier versions keep running: inputs renamed since are renamed back on arrival.

ComfyUI passes every queued prompt through the handlers registered with
``PromptServer.instance.add_on_prompt_handler`` before it validates it (0.3.64 and 0.33.x alike).
"""

from __future__ import annotations

# node id -> {old input name: new input name}
RENAMED_INPUTS = {
    # Load Music's combo is called `audio` (as core Load Audio's) so the frontend gives it the upload
    # button and player; it was `file` before.
    "V2M_LoadAudio": {"file": "audio"},
}


def upgrade_prompt(json_data):
    """Rename old input names in a queued request (``{"prompt": {id: {"class_type", "inputs"}}}``) in place;
    anything that is not such a request passes through untouched."""
    prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
    if not isinstance(prompt, dict):
        return json_data
    for node in prompt.values():
        renames = RENAMED_INPUTS.get(node.get("class_type")) if isinstance(node, dict) else None
        inputs = node.get("inputs") if renames else None
        if not isinstance(inputs, dict):
            continue
        for old, new in renames.items():
            if old in inputs and new not in inputs:
                inputs[new] = inputs.pop(old)
    return json_data


def register() -> bool:
    """Install :func:`upgrade_prompt` on the running server (once); False without one (a bare import)."""
    try:
        from server import PromptServer
    except ImportError:
        return False
    server = getattr(PromptServer, "instance", None)
    handlers = getattr(server, "on_prompt_handlers", None)
    if server is None or not hasattr(server, "add_on_prompt_handler"):
        return False
    if handlers is None or upgrade_prompt not in handlers:
        server.add_on_prompt_handler(upgrade_prompt)
    return True
