"""Tiny Stable Audio 3 models in their real file layouts: the single file (HF / ComfyUI checkpoint),
T5Gemma as a Hugging Face folder and as ComfyUI's single file with its SentencePiece tokenizer inside."""

from __future__ import annotations

import io
import json
import os

import torch

# A SAME whose shapes say everything ComfyUI files leave out (stride 16, 44.1 kHz, as SA3's):
# 2 × 32-sample patches, one TRB of stride 16 → 512 samples per latent frame (86 Hz), 8 channels.
# Attention as SAME-S's (chunks of 32 frames, half-chunk shift; 1×1 encoder / kernel-3 decoder mappings): the
# SAMEConfig defaults. The attention layout is in no weight: a loader finds it in the model_config.json
# (SAME_PRETRANSFORM, the reference's "pretransform" block), which tiny_sa3_file writes beside the file.
SAME = {"audio_channels": 2, "patch_size": 32, "channels": 16, "c_mults": [1], "strides": [16],
        "transformer_depths": [1],
        "latent_dim": 8, "dim_heads": 8, "differential": True, "ff_mult": 3.0, "sample_rate": 44100}
_SAME_BLOCK = {"channels": 16, "c_mults": [1], "strides": [16], "latent_dim": 8, "transformer_depths": [1],
               "differential": True, "dyt": True, "dim_heads": 8, "variable_stride": True, "chunk_size": 32,
               "chunk_midpoint_shift": True, "ff_mult": 3}
SAME_PRETRANSFORM = {"type": "autoencoder", "config": {
    "encoder": {"type": "same", "config": {"in_channels": 64, **_SAME_BLOCK, "conv_mapping": False}},
    "decoder": {"type": "same", "config": {"out_channels": 64, **_SAME_BLOCK, "sinusoidal_blocks": [0],
                                           "conv_mapping": True}},
    "bottleneck": {"type": "softnorm", "config": {"dim": 8, "auto_scale": True}},
    "pretransform": {"type": "patched", "config": {"patch_size": 32, "channels": 2}},
    "latent_dim": 8, "downsampling_ratio": 512, "io_channels": 2}}
# The DiT: small-music-base's layout (standard attention, memory tokens, local-add input) at toy size, in the
# widths ComfyUI's loader takes as given (tests/fixtures/comfy_sa3_layout.json): it reads no FF multiplier
# (always 4, as SA3 small and medium have) and builds the seconds_total embedder 768 wide, concatenated to
# the 768-wide T5Gemma tokens; so a file made here loads in ComfyUI's own SA3 loader too.
DIT = {"io_channels": 8, "embed_dim": 128, "depth": 2, "num_heads": 2, "cond_token_dim": 768, "global_cond_dim": 768,
       "local_add_cond_dim": 9, "num_memory_tokens": 4, "ff_kwargs": {"mult": 4.0}}
TEXT_DIM = 768
WORDS = "a calm piano piece with soft drums and strings upbeat electronic dance track".split()


def randomise(module: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> None:
    """Small random values everywhere (the zero-initialised branches too), so outputs are not trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith(("gamma", "running_std", "scaling_factor", "weight_g")):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(scale * torch.randn(p.shape, generator=g))


def tiny_same(seed: int = 0):
    from v2m_zero.core.model.same import SAMECodec

    codec = SAMECodec(SAME).eval()
    randomise(codec, seed, 0.3)
    return codec


def tiny_sa3_state_dict(seed: int = 0, *, differential: bool = False) -> dict[str, torch.Tensor]:
    """``model.model.*`` + ``conditioner.conditioners.*`` + ``pretransform.model.*``, as an SA3 file holds them."""
    from v2m_zero.core.model.sa3 import SA3DiT, make_sa3_model_config

    torch.manual_seed(seed)
    dit = SA3DiT(make_sa3_model_config(**DIT, attn_kwargs={"qk_norm": "rms", "differential": differential}))
    randomise(dit, seed)
    sd = dict(dit.state_dict())
    sd.update({"pretransform.model." + k: v for k, v in tiny_same(seed).state_dict().items()})
    # a trainable-text-encoder checkpoint also stores T5Gemma here: it must be ignored
    sd["conditioner.conditioners.prompt.model.encoder.norm.weight"] = torch.ones(TEXT_DIM)
    return sd


def tiny_sa3_file(path: str, seed: int = 0, *, reference: dict | None = None, differential: bool = False,
                  config: bool = True) -> str:
    """An SA3 single file without V2M metadata with a ``model_config.json`` beside it (the Hugging Face
    repository layout): ``reference`` (its SAME section added when it has none), else a minimal one
    (the SAME section). ``config=False``: the file alone (ComfyUI's layout), whose tiny SAME no
    loader can read (its attention layout is in no weight; the real SAME-S/L are known by shape)."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tiny_sa3_state_dict(seed, differential=differential).items()}, path,
              metadata={"format": "pt"})
    if config:
        ref = json.loads(json.dumps(reference or {}))
        ref.setdefault("model", {}).setdefault("pretransform", SAME_PRETRANSFORM)
        with open(os.path.join(os.path.dirname(path), "model_config.json"), "w") as f:
            json.dump(ref, f)
    return path


def spiece_model() -> bytes:
    """A tiny SentencePiece BPE model normalised as Gemma's is (no dummy prefix, whitespace kept, digits split,
    byte fallback; pad 0, eos 1, bos 2, unk 3). ComfyUI stores T5Gemma's tokenizer this way, as bytes."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter([" ".join(WORDS)] * 20 + WORDS), model_writer=buf,
                                   vocab_size=320, model_type="bpe", pad_id=0, eos_id=1, bos_id=2, unk_id=3,
                                   pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
                                   add_dummy_prefix=False, remove_extra_whitespaces=False, split_digits=True,
                                   byte_fallback=True, normalization_rule_name="identity", minloglevel=2,
                                   hard_vocab_limit=False, num_threads=1)
    return buf.getvalue()


def gemma_tokenizer(proto: bytes, *, add_bos: bool = True):
    """The same vocabulary as a transformers ``GemmaTokenizer`` (a ``tokenizer.json`` folder), BPE merges read
    off the SentencePiece model; ``add_bos`` as google's ``t5gemma-b-b-ul2`` copy has it by default."""
    import sentencepiece as spm
    from transformers import GemmaTokenizer

    sp = spm.SentencePieceProcessor(model_proto=proto)
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    merges = []
    for piece, i in vocab.items():
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i):
            continue
        merges += [(i, vocab[piece[:k]], vocab[piece[k:]], piece[:k], piece[k:]) for k in range(1, len(piece))
                   if piece[:k] in vocab and piece[k:] in vocab]
    return GemmaTokenizer(vocab=vocab, merges=[(a, b) for *_, a, b in sorted(merges)], add_bos_token=add_bos)


def tiny_t5gemma_full(vocab_size: int, seed: int = 0):
    """A random T5Gemma encoder-decoder (what the SA3 repository's t5gemma-b-b-ul2 folder holds), tiny."""
    from transformers import T5GemmaConfig, T5GemmaForConditionalGeneration
    from transformers.models.t5gemma.configuration_t5gemma import T5GemmaModuleConfig

    mod = T5GemmaModuleConfig(vocab_size=vocab_size, hidden_size=TEXT_DIM, intermediate_size=48, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=64, query_pre_attn_scalar=64,
                              layer_types=["sliding_attention", "full_attention"])
    torch.manual_seed(seed)
    return T5GemmaForConditionalGeneration(T5GemmaConfig(encoder=mod.to_dict(), decoder=mod.to_dict())).eval()


def tiny_t5gemma_folder(folder: str, proto: bytes | None = None, *, add_bos: bool = True):
    """``t5gemma-b-b-ul2/``-style folder (encoder-decoder weights + a Gemma tokenizer that adds ``<bos>``
    unless ``add_bos`` is False, as google's copy does); returns the model."""
    import sentencepiece as spm

    proto = proto or spiece_model()
    model = tiny_t5gemma_full(spm.SentencePieceProcessor(model_proto=proto).get_piece_size())
    model.save_pretrained(folder)
    gemma_tokenizer(proto, add_bos=add_bos).save_pretrained(folder)
    return model


def tiny_t5gemma_comfy_file(path: str, proto: bytes | None = None):
    """ComfyUI's ``t5gemma_b_b_ul2.safetensors`` layout: ``model.encoder.*`` + ``spiece_model`` bytes."""
    import sentencepiece as spm
    from safetensors.torch import save_file

    proto = proto or spiece_model()
    model = tiny_t5gemma_full(spm.SentencePieceProcessor(model_proto=proto).get_piece_size())
    sd = {k: v.contiguous() for k, v in model.state_dict().items() if k.startswith("model.encoder.")}
    sd["spiece_model"] = torch.frombuffer(bytearray(proto), dtype=torch.uint8)
    save_file(sd, path)
    return model
