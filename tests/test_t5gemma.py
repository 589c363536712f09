"""T5Gemma (Stable Audio 3's text encoder) through transformers' T5GemmaEncoderModel: a Hugging Face
folder, the SA3 repository and diffusers layouts, and ComfyUI's single file with its tokenizer inside."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

pytest.importorskip("sentencepiece")

from tiny_models import tiny_t5  # noqa: E402
from tiny_sa3 import TEXT_DIM, spiece_model, tiny_t5gemma_comfy_file, tiny_t5gemma_folder  # noqa: E402
from v2m_zero.core.errors import ModelError  # noqa: E402
from v2m_zero.core.model.text import SentencePieceTokens, T5GemmaTextEncoder  # noqa: E402
from v2m_zero.model_io.text import load_t5gemma, load_text_encoder, text_encoder_kind  # noqa: E402


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("t5gemma")
    proto = spiece_model()
    folder = root / "t5gemma-b-b-ul2"
    model = tiny_t5gemma_folder(str(folder), proto)
    comfy = root / "t5gemma_b_b_ul2.safetensors"
    tiny_t5gemma_comfy_file(str(comfy), proto)  # the same seed: the same weights
    return {"root": root, "folder": folder, "comfy": comfy, "model": model, "proto": proto}


def _reference(model, ids, mask):
    with torch.no_grad():
        return model.get_encoder()(input_ids=ids, attention_mask=mask.long()).last_hidden_state


def test_folder_gives_the_transformers_encoder_output_padded_to_256(layouts):
    enc = load_t5gemma(layouts["folder"])
    assert isinstance(enc, T5GemmaTextEncoder) and enc.max_length == 256 and enc.dim == TEXT_DIM
    tokens, mask = enc.encode(["calm piano", "upbeat electronic dance track with soft drums and strings"])
    assert tokens.shape == (2, 256, TEXT_DIM) and mask.shape == (2, 256) and tokens.dtype == torch.float32
    assert 0 < mask[0].sum() < mask[1].sum() < 256 and mask[0, : mask[0].sum()].all()  # right padding
    ids, m = enc.tokenize(["calm piano"])
    torch.testing.assert_close(tokens[:1], _reference(layouts["model"], ids, m))
    # the real tokens do not depend on how much padding follows them
    short = T5GemmaTextEncoder(enc.model, enc.tokenizer, max_length=16).encode(["calm piano"])[0]
    n = int(mask[0].sum())
    torch.testing.assert_close(short[0, :n], tokens[0, :n], atol=1e-5, rtol=1e-5)


def test_comfyui_file_matches_the_folder_and_tokenizes_without_bos(layouts):
    import sentencepiece as spm

    enc = load_text_encoder(layouts["comfy"], kind="t5gemma")
    assert isinstance(enc.tokenizer, SentencePieceTokens)
    ids, mask = enc.tokenize(["calm piano"])
    want = spm.SentencePieceProcessor(model_proto=layouts["proto"]).encode("calm piano")
    assert ids[0, : len(want)].tolist() == want and mask[0].sum() == len(want) and (ids[0, len(want):] == 0).all()
    tokens, _ = enc.encode(["calm piano"])
    torch.testing.assert_close(tokens, _reference(layouts["model"], ids, mask))
    long = enc.tokenize(["piano " * 400])[1]
    assert long.shape == (1, 256) and long.all()  # truncated to 256


def test_sa3_repository_and_diffusers_layouts(layouts, tmp_path):
    repo = layouts["root"]  # model_config.json + t5gemma-b-b-ul2/ (the Hugging Face SA3 repository)
    (repo / "model_config.json").write_text("{}")
    assert text_encoder_kind(repo) == "t5gemma" and text_encoder_kind(layouts["comfy"]) == "t5gemma"
    diff = tmp_path / "pipe"
    shutil.copytree(layouts["folder"], diff / "text_encoder")
    os.makedirs(diff / "tokenizer")
    for f in os.listdir(diff / "text_encoder"):
        if f.startswith("tokenizer"):
            shutil.move(diff / "text_encoder" / f, diff / "tokenizer" / f)
    a, _ = load_text_encoder(repo, max_length=16).encode(["soft drums"])
    b, _ = load_text_encoder(diff, max_length=16).encode(["soft drums"])
    torch.testing.assert_close(a, b)


def test_wrong_or_broken_encoders_are_named(layouts, tmp_path):
    t5 = tiny_t5(str(tmp_path / "t5-base"))
    with pytest.raises(ModelError, match="T5Gemma"):
        load_text_encoder(t5, kind="t5gemma")
    with pytest.raises(ModelError, match="T5 "):
        load_text_encoder(layouts["comfy"], kind="t5")
    from safetensors.torch import load_file, save_file

    sd = load_file(str(layouts["comfy"]))
    sd.pop("spiece_model")
    save_file(sd, str(tmp_path / "no_tok.safetensors"))
    with pytest.raises(ModelError, match="spiece_model"):
        load_t5gemma(tmp_path / "no_tok.safetensors")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelError, match="single file"):
        load_text_encoder(tmp_path / "other.safetensors")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text('{"model_type": "t5gemma"}')
    with pytest.raises(ModelError, match="model.safetensors"):
        load_text_encoder(tmp_path / "empty")
