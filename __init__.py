"""V2M-Zero for ComfyUI: music that lands on a video's cuts and motion.

The repository root is both a ComfyUI custom-node folder and the Python package ``v2m_zero``.
Importing it does nothing but define ``comfy_entrypoint``: ComfyUI calls that coroutine, which
imports the node modules (and with them ``comfy_api``) only then, so the library and the CLI
work without ComfyUI.
"""

__version__ = "0.1.0"

# ComfyUI serves every .js in this folder to the browser (read from the module on both hosts, V3 entry
# point or not): a minimal extension that shows our reports on our nodes and gives our audio nodes
# core's audio player (web/v2m_zero.js).
WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    """ComfyUI V3 entry point: return the extension object that lists our nodes."""
    from .nodes import make_extension

    return make_extension()


__all__ = ["comfy_entrypoint", "__version__", "WEB_DIRECTORY"]
