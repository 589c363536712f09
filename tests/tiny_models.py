"""Tiny random models in their real formats, shared by the tests: V2M checkpoints, DINOv2, T5,
the prompt models (Whisper, LLaVA, Gemma 3, Qwen2), and a tiny training config."""

from __future__ import annotations

import torch

from v2m_zero.core.model.dit import V2MDiT, make_model_config
from v2m_zero.model_io.checkpoint import V2M_FORMAT, save_v2m_checkpoint

# A weightless patch codec at a low rate keeps latents short: 16 channels at 100 Hz.
PATCH = {"patch_size": 16, "audio_channels": 1, "sample_rate": 1600}


def tiny_v2m_checkpoint(path: str, *, seed: int = 0, smoothing_seconds: float = 0.5, text_dim: int = 32,
                        text: str = "none", sampling: dict | None = None) -> str:
    torch.manual_seed(seed)
    cfg = make_model_config(io_channels=16, embed_dim=64, depth=2, num_heads=2, cond_token_dim=32, text_dim=text_dim,
                            with_curve=True)
    dit = V2MDiT(cfg, objective="rectified_flow")
    with torch.no_grad():  # non-zero curve weights, so the curve matters in tests
        for p in dit.parameters():
            if p.ndim > 1 and p.abs().sum() == 0:
                p.normal_(0, 0.02)
    meta = {
        "v2m_format": V2M_FORMAT,
        "model_config": cfg,
        "objective": "rectified_flow",
        "latent_rate": PATCH["sample_rate"] / PATCH["patch_size"],
        "sample_rate": PATCH["sample_rate"],
        "curve": {"encoder": "pixels", "smoothing_seconds": smoothing_seconds, "standardise": True},
        "codec": {"type": "patch", "config": PATCH},
        "text": {"type": text},
    }
    if sampling is not None:  # the checkpoint's own sampling defaults
        meta["sampling"] = sampling
    save_v2m_checkpoint(path, dit.state_dict(), meta)
    return path


def tiny_dinov2(folder):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=14,
                       image_size=56)
    import torch

    torch.manual_seed(0)
    model = Dinov2Model(cfg).eval()
    proc = BitImageProcessor(
        size={"shortest_edge": 64},
        crop_size={"height": 56, "width": 56},
        do_center_crop=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        do_convert_rgb=True,
    )
    model.save_pretrained(folder)  # safetensors
    proc.save_pretrained(folder)
    return model, proc


T5_WORDS = "a calm piano piece with soft drums and strings upbeat electronic dance track".split()


def t5_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(T5_WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # T5 appends </s> to every sequence, including the empty one.
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_t5(folder, *, d_model: int = 16):
    """A tiny random T5 encoder + word-level tokenizer saved as a transformers folder."""
    import torch
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    config = T5Config(vocab_size=len(T5_WORDS) + 3, d_model=d_model, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
                      relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1)
    T5EncoderModel(config).eval().save_pretrained(folder, safe_serialization=True)
    t5_tokenizer().save_pretrained(folder)
    return folder


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def byte_vocab() -> dict[str, int]:
    from tokenizers import pre_tokenizers

    return {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}


def byte_tokenizer(extra: dict | None = None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(vocab=byte_vocab(), merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        chat_template=CHAT_TEMPLATE, **(extra or {}),
    )


def tiny_whisper(path: str) -> str:
    import torch
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer)

    specials = ["<|startoftranscript|>", "<|en|>", "<|fr|>", "<|de|>", "<|translate|>", "<|transcribe|>",
                "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
    vocab = byte_vocab()
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = WhisperTokenizer(vocab=vocab, merges=merges)  # adds <|endoftext|>
    tok.add_special_tokens({"additional_special_tokens": specials})
    ids = {s: tok.convert_tokens_to_ids(s) for s in ["<|endoftext|>"] + specials}
    eot = ids["<|endoftext|>"]
    cfg = WhisperConfig(
        vocab_size=len(tok), num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_source_positions=1500, max_target_positions=48, pad_token_id=eot, bos_token_id=eot,
        eos_token_id=eot, decoder_start_token_id=ids["<|startoftranscript|>"],
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(cfg)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=eot, pad_token_id=eot, bos_token_id=eot,
        lang_to_id={k: ids[k] for k in ("<|en|>", "<|fr|>", "<|de|>")},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"], is_multilingual=True, max_length=48,
        begin_suppress_tokens=[eot],
        # random weights would otherwise repeat a special token forever and decode to ""
        suppress_tokens=[ids[s] for s in specials],
    )
    model.save_pretrained(path)
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tok).save_pretrained(path)
    return path


def tiny_llava(path: str) -> str:
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    tok = byte_tokenizer({"extra_special_tokens": {"image_token": "<image>"}})
    proc = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tok, patch_size=8, vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
        image_token="<image>", num_additional_image_tokens=1,
    )
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32,
                                       num_hidden_layers=1, num_attention_heads=2, projection_dim=16),
        text_config=LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                pad_token_id=tok.pad_token_id),
        image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(1)
    LlavaForConditionalGeneration(cfg).save_pretrained(path)
    proc.save_pretrained(path)
    return path


def tiny_gemma3(path: str) -> str:
    """The paper's VLM family (Gemma 3), tiny: SigLIP tower + Gemma 3 text model."""
    import torch
    from transformers import (Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor,
                              Gemma3TextConfig, SiglipVisionConfig)

    template = CHAT_TEMPLATE.replace("<image>", "<start_of_image>")  # Gemma's templates emit the BOI token
    tok = byte_tokenizer({"extra_special_tokens": {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                                                    "image_token": "<image_soft_token>"}})
    tok.chat_template = template
    proc = Gemma3Processor(image_processor=Gemma3ImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok,
                           chat_template=template, image_seq_length=4)
    cfg = Gemma3Config(
        text_config=Gemma3TextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                                     max_position_embeddings=1024, sliding_window=64, bos_token_id=tok.bos_token_id,
                                     eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=SiglipVisionConfig(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2),
        mm_tokens_per_image=4, boi_token_index=tok.boi_token_id,
        eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"), image_token_index=tok.image_token_id,
    )
    torch.manual_seed(3)
    Gemma3ForConditionalGeneration(cfg).save_pretrained(path)
    proc.save_pretrained(path)
    return path


def tiny_llm(path: str) -> str:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = byte_tokenizer()
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(2)
    Qwen2ForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def tiny_train_config(cache, run_dir, **over):
    cfg = {
        "seed": 1,
        "run_dir": str(run_dir),
        "data": {"cache": cache, "val_clips": 2},
        "model": {"from_config": {"embed_dim": 64, "depth": 2, "num_heads": 2, "cond_token_dim": 32}},
        "optim": {"lr": 1e-3, "warmup_steps": 2, "schedule": "cosine"},
        "train": {"batch_size": 2, "grad_accum": 2, "max_steps": 6, "device": "cpu", "accelerate": False},
        "ema": {"decay": 0.9},
        "checkpoint": {"every": 0, "keep_last": 2},
        "validation": {"every": 3, "steps": 3},
        "log": {"every": 1, "tensorboard": False},
    }
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return cfg


def click_music_folder(folder, n: int, seconds: float, *, sample_rate: int, channels: int = 1, hits: int = 5,
                       caption: str | None = "drums {i}") -> list[str]:
    """``n`` click-track songs (``hits`` random onsets each, seeded) with ``<name>.txt`` captions: a tiny
    training set in the layout ``prepare`` reads. Returns the file paths."""
    import os

    import numpy as np

    from v2m_zero.core.eval import synth
    from v2m_zero.core.timing import media

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        t = np.sort(rng.uniform(0.1, seconds - 0.2, hits))
        path = os.path.join(folder, f"m{i}.wav")
        media.write_audio(path, synth.click_track(t, seconds, sample_rate=sample_rate, channels=channels, seed=i),
                          sample_rate, layout="mono" if channels == 1 else "stereo")
        if caption is not None:
            with open(os.path.join(folder, f"m{i}.txt"), "w") as f:
                f.write(caption.format(i=i))
        out.append(path)
    return out
