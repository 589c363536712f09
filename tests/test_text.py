"""T5TextEncoder on a tiny random T5 and a word-level tokenizer built offline."""

from __future__ import annotations

import shutil

import pytest
import torch

from v2m_zero.core.errors import ModelError
from v2m_zero.model_io.text import find_t5_files, load_t5
from tiny_models import tiny_t5


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory):
    return tiny_t5(tmp_path_factory.mktemp("t5-tiny"))


def test_encode_shapes_mask_and_zeroed_padding(t5_folder):
    enc = load_t5(t5_folder)
    assert enc.dim == 16 and enc.max_length == 128 and enc.dtype == torch.float32
    tokens, mask = enc.encode(["a calm piano piece", "upbeat electronic dance track with drums"])
    assert tokens.shape == (2, 128, 16) and tokens.dtype == torch.float32
    assert mask.shape == (2, 128) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [5, 7]  # words + </s>
    assert mask[:, :5].all() and not mask[0, 5:].any()
    assert (tokens[~mask] == 0).all()
    assert (tokens[mask].abs().sum(-1) > 0).all()
    # Same as running the model by hand, times the mask (stable-audio-tools' T5Conditioner).
    ids = enc.tokenizer(["a calm piano piece"], padding="max_length", max_length=128, return_tensors="pt")
    with torch.no_grad():
        hidden = enc.model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).last_hidden_state
    torch.testing.assert_close(tokens[:1], hidden * ids["attention_mask"][..., None])


def test_deterministic_and_reload_identical(t5_folder):
    a = load_t5(t5_folder)
    b = load_t5(t5_folder)
    t1, m1 = a.encode("soft strings")
    t2, m2 = a.encode(["soft strings"])
    t3, _ = b.encode(["soft strings"])
    assert torch.equal(t1, t2) and torch.equal(m1, m2) and torch.equal(t1, t3)
    # Batching does not change a prompt's encoding.
    tb, _ = a.encode(["soft strings", "a calm piano piece with soft drums and strings"])
    torch.testing.assert_close(tb[:1], t1, atol=1e-6, rtol=1e-5)


def test_truncation_and_custom_length(t5_folder):
    enc = load_t5(t5_folder, max_length=4, dtype=torch.float64)
    tokens, mask = enc.encode(["a calm piano piece with soft drums"])
    assert tokens.shape == (1, 4, 16) and tokens.dtype == torch.float32
    assert mask.all()


def test_null_conditions(t5_folder):
    enc = load_t5(t5_folder)
    zeros, zmask = enc.null_condition(3)
    assert zeros.shape == (3, 128, 16) and (zeros == 0).all() and zmask.all()
    empty, emask = enc.null_condition(2, mode="empty")
    assert emask.sum(1).tolist() == [1, 1]  # only </s>
    assert empty[:, 0].abs().sum() > 0 and (empty[:, 1:] == 0).all()
    torch.testing.assert_close(empty[:1], enc.encode("")[0])
    with pytest.raises(ValueError):
        enc.null_condition(1, mode="nothing")


def test_diffusers_style_subfolders(t5_folder, tmp_path):
    shutil.copytree(t5_folder, tmp_path / "text_encoder")
    (tmp_path / "tokenizer").mkdir()
    for f in (tmp_path / "text_encoder").glob("*token*"):
        f.rename(tmp_path / "tokenizer" / f.name)
    model_dir, tok_dir = find_t5_files(tmp_path)
    assert model_dir.name == "text_encoder" and tok_dir.name == "tokenizer"
    t1, _ = load_t5(tmp_path).encode("calm piano")
    t2, _ = load_t5(t5_folder).encode("calm piano")
    assert torch.equal(t1, t2)


def test_missing_or_incomplete_folder(t5_folder, tmp_path):
    with pytest.raises(ModelError, match=r"not found.*models/v2m/text_encoders/t5-base"):
        load_t5(tmp_path / "absent")
    no_tok = tmp_path / "no_tok"
    shutil.copytree(t5_folder, no_tok)
    (no_tok / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"no_tok.*tokenizer"):
        load_t5(no_tok)
    no_cfg = tmp_path / "no_cfg"
    shutil.copytree(t5_folder, no_cfg)
    (no_cfg / "config.json").unlink()
    with pytest.raises(ModelError, match=r"no_cfg.*config\.json"):
        load_t5(no_cfg)
    no_weights = tmp_path / "no_weights"
    shutil.copytree(t5_folder, no_weights)
    (no_weights / "model.safetensors").rename(no_weights / "pytorch_model.bin")
    with pytest.raises(ModelError, match=r"no_weights.*model\.safetensors.*pytorch_model\.bin"):
        load_t5(no_weights)
