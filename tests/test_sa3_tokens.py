"""Stable Audio 3's prompt tokens: one rule, the same ids on every road, equal to the reference's.

``fixtures/sa3_token_ids.json`` holds the ids the reference code paths give (Stability-AI/stable-audio-3 @ 636f906:
the TensorRT port's FastTokenizer, the MLX port's SentencePiece tokenize, T5GemmaConditioner's transformers call;
yzkee/ComfyUI @ 783545f6: SAT5GemmaTokenizer) on the tiny Gemma-style SentencePiece model
``fixtures/tiny_gemma_spiece.model`` (written by ``fixtures/make_sa3_token_ids.py``; the real T5Gemma
tokenizer is not here). Our roads: the Hugging Face folder ``models download`` fetches (google's copy, which
adds ``<bos>`` by default), a folder whose tokenizer adds none (the kind SA3 bundles), and ComfyUI's
single file (``spiece_model`` bytes) — all through ``load_text_encoder``, as the nodes and CLI load them.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

pytest.importorskip("sentencepiece")

from tiny_sa3 import TEXT_DIM, gemma_tokenizer, tiny_t5gemma_comfy_file, tiny_t5gemma_folder  # noqa: E402
from v2m_zero.core.model.text import (SA3_PAD_ID, SentencePieceTokens, pad_token_rows,  # noqa: E402
                                      t5gemma_token_ids)
from v2m_zero.model_io.text import load_text_encoder  # noqa: E402

HERE = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="module")
def reference():
    with open(os.path.join(HERE, "sa3_token_ids.json"), encoding="utf-8") as f:
        ref = json.load(f)
    with open(os.path.join(HERE, ref["tokenizer"]), "rb") as f:
        ref["proto"] = f.read()
    return ref


@pytest.fixture(scope="module")
def roads(reference, tmp_path_factory):
    root = tmp_path_factory.mktemp("sa3_tokens")
    proto = reference["proto"]
    tiny_t5gemma_folder(str(root / "google"), proto, add_bos=True)
    tiny_t5gemma_folder(str(root / "bundled"), proto, add_bos=False)
    tiny_t5gemma_comfy_file(str(root / "t5gemma_b_b_ul2.safetensors"), proto)
    return {name: load_text_encoder(root / f, kind="t5gemma")
            for name, f in (("google folder", "google"), ("bundled folder", "bundled"),
                            ("comfyui file", "t5gemma_b_b_ul2.safetensors"))}


@pytest.mark.parametrize("road", ["google folder", "bundled folder", "comfyui file"])
def test_every_road_gives_the_reference_ids(reference, roads, road):
    want = torch.tensor(reference["ids"]["mlx_sentencepiece"])
    assert want.shape == (len(reference["prompts"]), 256)
    ids, mask = roads[road].tokenize(reference["prompts"])
    assert torch.equal(ids, want)
    # the mask marks the prompt's own tokens: ComfyUI's unpadded ids give their count ("" has none)
    lengths = [len(r) if p else 0 for p, r in zip(reference["prompts"], reference["comfyui_unpadded"])]
    assert mask.sum(dim=1).tolist() == [min(n, 256) for n in lengths]
    assert not mask[1].any() and (ids[1] == SA3_PAD_ID).all()  # "" is padding only
    assert mask[-1].all()  # the long prompt is truncated to 256


def test_reference_roads_agree_and_a_bos_tokenizer_would_shift_them(reference):
    ids = reference["ids"]
    assert ids["tensorrt_fast_tokenizer"] == ids["mlx_sentencepiece"] == ids["pytorch_bundled_folder"]
    # T5GemmaConditioner's call on google's copy (what a plain AutoTokenizer call does) starts with <bos>: we drop it
    assert all(row[0] == 2 for row in ids["pytorch_google_folder"])
    sp = SentencePieceTokens(reference["proto"])
    hf = gemma_tokenizer(reference["proto"], add_bos=True)
    assert hf("calm piano")["input_ids"][0] == 2
    for a, b in zip(t5gemma_token_ids(sp, reference["prompts"], 256), t5gemma_token_ids(hf, reference["prompts"], 256)):
        assert torch.equal(a, b)


def test_padding_rule():
    ids, mask = pad_token_rows([[5, 6, 7], [], list(range(1, 10))], 4)
    assert ids.tolist() == [[5, 6, 7, 0], [0, 0, 0, 0], [1, 2, 3, 4]]
    assert mask.tolist() == [[True, True, True, False], [False] * 4, [True] * 4]


def test_empty_prompt_encodes_to_padding_only(roads):
    from v2m_zero.core.model.conditioners import TokenConditioner

    enc = roads["comfyui file"]
    tokens, mask = enc.encode(["", "calm piano"])
    assert tokens.shape == (2, 256, TEXT_DIM) and torch.isfinite(tokens).all()
    assert not mask[0].any() and mask[1].sum() > 0
    cond = TokenConditioner(TEXT_DIM, TEXT_DIM, padding_mode="learned")
    out, _ = cond(tokens, mask)
    torch.testing.assert_close(out[0], cond.padding_embedding.detach().expand(256, -1))  # SA3: all padding
    # the prompt's tokens do not change with a batch neighbour that is empty
    alone, _ = enc.encode(["calm piano"])
    n = int(mask[1].sum())
    torch.testing.assert_close(alone[0, :n], tokens[1, :n], atol=1e-5, rtol=1e-5)


def test_an_sa3_files_bundled_tokenizer_is_the_one_used(reference, tmp_path):
    """`models download sa3` puts the repository's own t5gemma tokenizer beside the weights: it wins over the
    text encoder's own (the tokenizer SA3 was trained with), under the same rule."""
    import io

    import sentencepiece as spm

    from tiny_sa3 import tiny_sa3_file
    from v2m_zero.core.generate import load_music_model

    buf = io.BytesIO()  # another vocabulary, so which tokenizer was used shows in the ids
    spm.SentencePieceTrainer.train(sentence_iterator=iter(["zebra quartz violin " * 5] * 20), model_writer=buf,
                                   vocab_size=300, model_type="bpe", pad_id=0, eos_id=1, bos_id=2, unk_id=3,
                                   pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
                                   add_dummy_prefix=False, byte_fallback=True, minloglevel=2, hard_vocab_limit=False,
                                   num_threads=1)
    other = buf.getvalue()
    base = tiny_sa3_file(str(tmp_path / "stable_audio_3_small_music_base.safetensors"))
    text = str(tmp_path / "t5gemma_b_b_ul2.safetensors")
    tiny_t5gemma_comfy_file(text, reference["proto"])
    plain = load_music_model(base, text_encoder=text).text.tokenize(["calm piano"])[0]
    gemma_tokenizer(other, add_bos=True).save_pretrained(str(tmp_path / "t5gemma-b-b-ul2"))
    gen = load_music_model(base, text_encoder=text)
    ids, mask = gen.text.tokenize(["calm piano"])
    want = spm.SentencePieceProcessor(model_proto=other).encode("calm piano")
    assert ids[0, : len(want)].tolist() == want and int(mask[0].sum()) == len(want)  # no <bos> either
    assert not torch.equal(ids, plain)
