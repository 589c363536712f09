"""The EMA never silently stays at the base weights: names must match the unwrapped model's, shapes whole."""

import pytest
import torch

from v2m_zero.core.errors import ModelError
from v2m_zero.core.train.ema import update_ema, with_ema
from v2m_zero.core.train.runtime import plain_name


def test_update_and_export():
    ema = {"a.weight": torch.zeros(2, 2)}
    update_ema(ema, [("a.weight", torch.ones(2, 2)), ("b.bias", torch.ones(3))], 0.75)
    torch.testing.assert_close(ema["a.weight"], torch.full((2, 2), 0.25))
    out = with_ema({"a.weight": torch.ones(2, 2, dtype=torch.bfloat16), "b.bias": torch.ones(3)}, ema)
    assert out["a.weight"].dtype == torch.bfloat16 and torch.equal(out["b.bias"], torch.ones(3))
    assert plain_name("model._fsdp_wrapped_module.layers.0._checkpoint_wrapped_module.w") == "model.layers.0.w"


def test_wrapped_names_and_shards_are_errors():
    ema = {"a.weight": torch.zeros(2, 2)}
    with pytest.raises(ModelError, match="not found"):
        update_ema(ema, [("_fsdp_wrapped_module.a.weight", torch.ones(2, 2))], 0.9)
    with pytest.raises(ModelError, match="shard"):
        update_ema(ema, [("a.weight", torch.ones(2))], 0.9)
    with pytest.raises(ModelError, match="not in the model's state dict"):
        with_ema({"_fsdp_wrapped_module.a.weight": torch.ones(2, 2)}, ema)
