"""Node errors carry the message, not object dumps: ComfyUI sends a failed node's message and its inputs,
each formatted with ``str()`` (execution.format_value), to the page; with a model, curve and features
connected that stays under 1 KB."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tiny_models import tiny_v2m_checkpoint
from v2m_zero.core.errors import V2MError
from v2m_zero.core.timing.curves import Curve, Features


def _format_value(x):  # ComfyUI execution.format_value (0.3.64 and 0.33.0)
    if x is None:
        return None
    if isinstance(x, (int, float, bool, str)):
        return x
    return str(x)


def _payload(exc: BaseException, inputs: dict) -> str:
    """What the host sends for a failed node (without its traceback, which is the host's own)."""
    return json.dumps({"exception_message": str(exc), "exception_type": type(exc).__name__,
                       "current_inputs": {k: [_format_value(v)] for k, v in inputs.items()}})


@pytest.fixture
def model(host):
    import folder_paths

    from v2m_zero.nodes import generate

    ckdir = os.path.join(folder_paths.models_dir, "v2m", "checkpoints")
    os.makedirs(ckdir)
    tiny_v2m_checkpoint(os.path.join(ckdir, "tiny-v2m.safetensors"))
    return generate.LoadModel.execute(checkpoint="tiny-v2m.safetensors", text_encoder="none",
                                      codec="from checkpoint", precision="fp32", offload=True).args[0]


def test_objects_print_as_one_short_line(model):
    curve = Curve(np.random.rand(20000).astype(np.float32), np.arange(20000) / 62.5, 320.0, 62.5,
                  spec={"kind": "video", "peaks": list(range(500))})
    feats = Features(np.random.rand(5000, 384).astype(np.float32), np.arange(5000) / 24.0, 208.4, "pixels")
    for obj in (model, curve, feats):
        text = str(obj)
        assert len(text) < 200 and "\n" not in text, text[:300]
    assert "20000 samples" in str(curve) and "5000 x 384" in str(feats)


def test_a_bad_input_error_from_a_node_is_under_1_kb(model):
    from v2m_zero.nodes import curves, generate

    curve = Curve(np.random.rand(20000).astype(np.float32), np.arange(20000) / 62.5, 320.0, 62.5,
                  spec={"kind": "video", "peaks": list(range(500))})
    bad = {"samples": None, "type": "audio"}
    with pytest.raises(V2MError) as e:
        generate.DecodeLatents.execute(model=model, latent=bad)
    size = len(_payload(e.value, {"model": model, "latent": bad}))
    assert size < 1024, size
    with pytest.raises(V2MError) as e:  # more samples than a sampler uses, with the model connected
        curves.SmoothCurve.execute(curve=curve, kernel_seconds=2.5, target_rate=21.5, latent_length=50000, scale=1.0,
                                   offset=0.0, model=model)
    size = len(_payload(e.value, {"curve": curve, "model": model, "latent_length": 50000}))
    assert size < 1024, size
