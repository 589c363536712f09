"""Text encoders from local folders: T5 (Stable Audio Open) and T5Gemma (Stable Audio 3, also from
ComfyUI's single file); ``load_text_encoder`` picks by the files. Never downloads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..core.errors import ModelError
from ..core.model.text import SAO_T5_MAX_LENGTH, T5TextEncoder
from .formats import T5, T5_ANCHOR, T5GEMMA, detect


_DEFAULT_FOLDER_HINT = "models/v2m/text_encoders/t5-base/"
_TOKENIZER_FILES = ("tokenizer.json", "spiece.model")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


def _needs(folder: Path, what: str) -> ModelError:
    return ModelError(
        f"{folder}: {what}. Fix: put the Hugging Face T5 files there (config.json, model.safetensors, "
        f"tokenizer.json or spiece.model, tokenizer_config.json), e.g. the google-t5/t5-base repository in "
        f"{_DEFAULT_FOLDER_HINT}; a diffusers Stable Audio folder with text_encoder/ and tokenizer/ also works."
    )


def find_t5_files(folder: str | os.PathLike) -> tuple[Path, Path]:
    """``(model_folder, tokenizer_folder)`` for a T5 folder, checking the needed files are there.

    Accepts a plain transformers folder or a diffusers pipeline folder (``text_encoder/`` +
    ``tokenizer/``). Raises ``ModelError`` naming the folder and what to put in it.
    """
    root = Path(folder)
    if not root.is_dir():
        raise _needs(root, "text encoder folder not found" if not root.exists() else "is not a folder")
    model_dir, tok_dir = root, root
    if (root / "text_encoder").is_dir() and not (root / "config.json").is_file():
        model_dir = root / "text_encoder"
        tok_dir = root / "tokenizer" if (root / "tokenizer").is_dir() else model_dir
    if not (model_dir / "config.json").is_file():
        raise _needs(model_dir, "config.json is missing")
    if not any((model_dir / f).is_file() for f in _WEIGHT_FILES):
        pickles = [f for f in ("pytorch_model.bin", "tf_model.h5") if (model_dir / f).is_file()]
        extra = f" (found {pickles[0]}, which we do not open: get model.safetensors)" if pickles else ""
        raise _needs(model_dir, "model.safetensors is missing" + extra)
    if not any((tok_dir / f).is_file() for f in _TOKENIZER_FILES):
        raise _needs(tok_dir, "the tokenizer (tokenizer.json or spiece.model) is missing")
    return model_dir, tok_dir


def load_t5(folder: str | os.PathLike, *, max_length: int = SAO_T5_MAX_LENGTH,
            device: Any = "cpu", dtype: torch.dtype = torch.float32,
            tokenizer: str | os.PathLike | None = None) -> T5TextEncoder:
    """Load ``T5EncoderModel`` + tokenizer from ``folder`` (never downloads).

    ``folder`` may also be a single ``.safetensors`` file of T5 weights in the Hugging Face key
    layout, as ComfyUI keeps T5-base for Stable Audio (``models/text_encoders/t5_base.safetensors``);
    its tokenizer then comes from the folder ``tokenizer`` (ComfyUI ships one:
    ``comfy/text_encoders/t5_tokenizer``). stable-audio-tools runs T5 in float16 on GPU; float32 is
    the default here so CPU works.
    """
    if os.path.isfile(folder) and str(folder).lower().endswith(".safetensors"):
        return load_t5_file(folder, tokenizer=tokenizer, max_length=max_length, device=device, dtype=dtype)
    model_dir, tok_dir = find_t5_files(folder)
    from transformers import AutoTokenizer, T5EncoderModel

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
        model = T5EncoderModel.from_pretrained(str(model_dir), local_files_only=True, use_safetensors=True,
                                               dtype=dtype)
    except ModelError:
        raise
    except Exception as exc:  # transformers raises OSError/ValueError/KeyError for bad folders
        raise _needs(Path(folder), f"cannot be loaded as a T5 encoder ({type(exc).__name__}: {exc})") from None
    return T5TextEncoder(model.to(device), tokenizer, max_length=max_length)


# --------------------------------------------------------------------------------------------
# a single-file T5 (ComfyUI's models/text_encoders/t5_base.safetensors)

def t5_config_from_header(header: dict) -> dict[str, Any]:
    """``T5Config`` fields read off the tensor shapes (t5-base: 12 layers, 768 wide, 12 heads, 3072 ff)."""
    import re

    def shape(key):
        return header[key]["shape"]

    emb = "shared.weight" if "shared.weight" in header else "encoder.embed_tokens.weight"
    if emb not in header:
        raise ModelError("no token embedding (shared.weight or encoder.embed_tokens.weight)")
    vocab, d_model = shape(emb)
    layers = 1 + max(int(m.group(1)) for k in header for m in [re.match(r"encoder\.block\.(\d+)\.", k)] if m)
    inner = shape(T5_ANCHOR)[0]
    buckets, heads = shape("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in header
    d_ff = shape("encoder.block.0.layer.1.DenseReluDense." + ("wi_0" if gated else "wi") + ".weight")[0]
    return {"vocab_size": vocab, "d_model": d_model, "d_kv": inner // heads, "d_ff": d_ff, "num_layers": layers,
            "num_heads": heads, "relative_attention_num_buckets": buckets,
            "feed_forward_proj": "gated-gelu" if gated else "relu", "pad_token_id": 0, "eos_token_id": 1,
            "is_encoder_decoder": False, "use_cache": False}


def load_t5_file(path: str | os.PathLike, *, tokenizer: str | os.PathLike | None, max_length: int = SAO_T5_MAX_LENGTH,
                 device: Any = "cpu", dtype: torch.dtype = torch.float32) -> T5TextEncoder:
    """A T5 encoder from one safetensors file (decoder and LM head, if present, are not read) and a
    tokenizer folder (``tokenizer.json`` or ``spiece.model``)."""
    from .weights import SafetensorsFile, read_safetensors

    path = Path(path)
    file = SafetensorsFile(path)
    header = file.header
    if not T5.fits(file):
        raise ModelError(f"{path}: not a T5 encoder in the Hugging Face layout (no {T5_ANCHOR!r}). Fix: use "
                         "t5_base.safetensors (google-t5/t5-base's model.safetensors) or a T5 folder.")
    if tokenizer is None or not any((Path(tokenizer) / f).is_file() for f in _TOKENIZER_FILES):
        raise ModelError(f"{path}: a single-file T5 needs a tokenizer folder (tokenizer.json or spiece.model); "
                         f"got {tokenizer!r}. In ComfyUI the host's comfy/text_encoders/t5_tokenizer is used; "
                         f"elsewhere pass a T5 folder such as {_DEFAULT_FOLDER_HINT}")
    try:
        cfg = t5_config_from_header(header)
    except (ModelError, KeyError, ValueError, IndexError) as exc:
        raise ModelError(f"{path}: cannot read a T5 config off its tensors ({exc})") from None
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    from .build import assign_weights, on_meta

    model = on_meta(lambda: T5EncoderModel(T5Config(**cfg)), name=str(path))
    tensors, _ = read_safetensors(file, skip_prefixes=("decoder.", "lm_head."))
    model = assign_weights(model, tensors, name=str(path), device=device, dtype=dtype, fit=_fit_t5)
    try:
        tok = AutoTokenizer.from_pretrained(str(tokenizer), local_files_only=True)
    except Exception as exc:  # transformers raises OSError/ValueError for bad folders
        raise ModelError(f"{tokenizer}: cannot load the T5 tokenizer ({type(exc).__name__}: {exc})") from None
    return T5TextEncoder(model, tok, max_length=max_length)


def _fit_t5(model, tensors, name: str) -> dict:
    """The encoder's tensors, the tied token embedding under both names (files keep one of them)."""
    want = model.state_dict()
    emb = tensors.get("shared.weight", tensors.get("encoder.embed_tokens.weight"))
    sd = {k: (emb if k in ("shared.weight", "encoder.embed_tokens.weight") else tensors.get(k)) for k in want}
    missing = [k for k, v in sd.items() if v is None]
    bad = [k for k, v in sd.items() if v is not None and tuple(v.shape) != tuple(want[k].shape)]
    if missing or bad:
        raise ModelError(f"{name}: T5 weights incomplete or mis-shaped (missing: {missing[:3]}, shapes: {bad[:3]})")
    return sd


# --------------------------------------------------------------------------------------------
# T5Gemma (Stable Audio 3)

_T5GEMMA_HINT = ("Fix: use the t5gemma-b-b-ul2 folder of the Stable Audio 3 repository "
                 "(config.json, model.safetensors, tokenizer files), a diffusers SA3 folder "
                 "(text_encoder/ + tokenizer/), or ComfyUI's models/text_encoders/t5gemma_b_b_ul2.safetensors.")
# T5Gemma b-b (what SA3 uses) where a ComfyUI file's shapes do not say (as ComfyUI's own loader)
_T5GEMMA_BB = {"head_dim": 64, "rms_norm_eps": 1e-6, "attn_logit_softcapping": 50.0, "sliding_window": 4096,
               "hidden_activation": "gelu_pytorch_tanh"}


def _model_type(folder: Path) -> str | None:
    import json

    try:
        return json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return None


def text_encoder_folders(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(model_folder, tokenizer_folder)`` of a text-encoder folder: a plain transformers folder, a
    diffusers pipeline (``text_encoder/`` + ``tokenizer/``) or a Stable Audio 3 repository
    (``model_config.json`` + ``t5gemma-*/``)."""
    root = Path(path)
    if (root / "config.json").is_file():
        return root, root
    if (root / "text_encoder").is_dir():
        return root / "text_encoder", root / "tokenizer" if (root / "tokenizer").is_dir() else root / "text_encoder"
    subs = sorted(p for p in root.glob("t5gemma*") if p.is_dir()) if root.is_dir() else []
    if subs:
        return subs[0], subs[0]
    return root, root


def text_encoder_kind(path: str | os.PathLike) -> str:
    """``"t5"`` or ``"t5gemma"`` for a text-encoder folder or file (by its config or keys)."""
    p = Path(path)
    if p.is_file():
        fmt = detect(p)
        if fmt in (T5, T5GEMMA):
            return fmt.id
        raise ModelError(f"{p}: not a text encoder this pack reads as a single file (ComfyUI's t5_base.safetensors "
                         f"or t5gemma_b_b_ul2.safetensors). Fix: give a Hugging Face folder instead. {_T5GEMMA_HINT}")
    folder, _ = text_encoder_folders(p)
    kind = _model_type(folder)
    if kind in ("t5", "t5gemma"):
        return kind
    if kind is None:  # no readable config.json: the T5 loader names what is missing
        return "t5"
    raise ModelError(f"{folder}: config.json names model_type {kind!r}; expected a T5 (Stable Audio Open) or "
                     f"T5Gemma (Stable Audio 3) encoder. {_T5GEMMA_HINT}")


def load_text_encoder(path: str | os.PathLike, *, kind: str | None = None, max_length: int | None = None,
                      device: Any = "cpu", dtype: torch.dtype = torch.float32,
                      tokenizer: str | os.PathLike | None = None):
    """The text encoder in ``path`` (T5 or T5Gemma, by its files); ``kind`` is what the checkpoint
    was trained with (its metadata ``text.type``), checked against what the files hold. ``tokenizer``:
    the tokenizer folder of a single-file T5 (ComfyUI's own, inside ComfyUI)."""
    found = text_encoder_kind(path)
    if kind is not None and kind != found:
        names = {"t5": "T5 (Stable Audio Open)", "t5gemma": "T5Gemma (Stable Audio 3)"}
        raise ModelError(f"{path} is a {names.get(found, found)} text encoder but the checkpoint was trained with "
                         f"{names.get(kind, kind)}: choose the matching one")
    if found == "t5gemma":
        from ..core.model.text import SA3_T5GEMMA_MAX_LENGTH

        return load_t5gemma(path, max_length=max_length or SA3_T5GEMMA_MAX_LENGTH, device=device, dtype=dtype,
                            tokenizer=tokenizer)
    return load_t5(path, max_length=max_length or SAO_T5_MAX_LENGTH, device=device, dtype=dtype, tokenizer=tokenizer)


def load_t5gemma(path: str | os.PathLike, *, max_length: int = 256, device: Any = "cpu",
                 dtype: torch.dtype = torch.float32, tokenizer: str | os.PathLike | None = None):
    """T5Gemma's encoder (``T5GemmaEncoderModel``) + tokenizer from a folder or ComfyUI's single file;
    never downloads. ``tokenizer``: a tokenizer folder that replaces the encoder's own (the one an SA3
    repository bundles, ``t5gemma-b-b-ul2/``: the tokenizer SA3 was trained with); the ids follow one rule
    whichever it is (:func:`~v2m_zero.core.model.text.t5gemma_token_ids`)."""
    from ..core.model.text import T5GemmaTextEncoder

    p = Path(path)
    if p.is_file():
        model, tok = _t5gemma_from_file(p, dtype)
    else:
        model, tok = _t5gemma_from_folder(p, dtype)
    if tokenizer is not None:
        tok = _t5gemma_tokenizer(Path(tokenizer))
    return T5GemmaTextEncoder(model.to(device), tok, max_length=max_length)


def _t5gemma_tokenizer(folder: Path):
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "spiece.model")):
        raise ModelError(f"{folder}: no T5Gemma tokenizer (tokenizer.json or tokenizer.model). {_T5GEMMA_HINT}")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # transformers raises OSError/ValueError/KeyError for bad folders
        raise ModelError(f"{folder}: cannot load the T5Gemma tokenizer ({type(exc).__name__}: {exc}). "
                         f"{_T5GEMMA_HINT}") from None


def _t5gemma_from_folder(root: Path, dtype):
    model_dir, tok_dir = text_encoder_folders(root)
    if not (model_dir / "config.json").is_file():
        raise ModelError(f"{model_dir}: config.json is missing. {_T5GEMMA_HINT}")
    if not any((model_dir / f).is_file() for f in _WEIGHT_FILES):
        raise ModelError(f"{model_dir}: model.safetensors is missing. {_T5GEMMA_HINT}")
    from transformers import AutoConfig, AutoTokenizer, T5GemmaEncoderModel
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # an encoder-decoder folder: the decoder weights are unused on purpose
    try:
        cfg = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
        cfg.is_encoder_decoder = False  # as the SA3 reference: the encoder alone
        model = T5GemmaEncoderModel.from_pretrained(str(model_dir), config=cfg, local_files_only=True,
                                                    use_safetensors=True, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    except Exception as exc:  # transformers raises OSError/ValueError/KeyError for bad folders
        raise ModelError(f"{root}: cannot be loaded as a T5Gemma encoder ({type(exc).__name__}: {exc}). "
                         f"{_T5GEMMA_HINT}") from None
    finally:
        hf_logging.set_verbosity(level)
    return model, tokenizer


def _t5gemma_from_file(p: Path, dtype):
    """ComfyUI's ``t5gemma_b_b_ul2.safetensors``: ``model.encoder.*`` and the tokenizer as ``spiece_model`` bytes."""
    from transformers import T5GemmaConfig, T5GemmaEncoderModel
    from transformers.models.t5gemma.configuration_t5gemma import T5GemmaModuleConfig

    from ..core.model.text import SentencePieceTokens
    from .weights import check_state_dict, read_safetensors

    tensors, _ = read_safetensors(p)
    spiece = tensors.pop("spiece_model", None)
    if spiece is None:
        raise ModelError(f"{p}: no tokenizer inside (no 'spiece_model'). {_T5GEMMA_HINT}")
    sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.encoder.")}
    if "encoder.embed_tokens.weight" not in sd:
        raise ModelError(f"{p}: no T5Gemma encoder weights (model.encoder.*). {_T5GEMMA_HINT}")
    vocab, hidden = sd["encoder.embed_tokens.weight"].shape
    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.layers."))
    hd = _T5GEMMA_BB["head_dim"]
    module = T5GemmaModuleConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, head_dim=hd, query_pre_attn_scalar=hd,
        num_attention_heads=sd["encoder.layers.0.self_attn.q_proj.weight"].shape[0] // hd,
        num_key_value_heads=sd["encoder.layers.0.self_attn.k_proj.weight"].shape[0] // hd,
        intermediate_size=sd["encoder.layers.0.mlp.gate_proj.weight"].shape[0],
        layer_types=["sliding_attention", "full_attention"] * (layers // 2) + ["sliding_attention"] * (layers % 2),
        **{k: v for k, v in _T5GEMMA_BB.items() if k != "head_dim"})
    model = T5GemmaEncoderModel(T5GemmaConfig(encoder=module.to_dict(), decoder=module.to_dict(),
                                              is_encoder_decoder=False))
    check_state_dict(model, sd, name=str(p))
    model.load_state_dict(sd, strict=True)
    return model.to(dtype=dtype), SentencePieceTokens(spiece.to(torch.uint8).numpy().tobytes())
