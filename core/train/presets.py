"""Base presets: complete, commented training configs and the matching ``prepare`` settings.

``toy`` is a small model from scratch on a weightless codec (the old ``--example``). ``sao1``
fine-tunes Stable Audio Open 1.0 (made into a V2M checkpoint by ``init-checkpoint``) the way the
paper does (§3.3, §3.5): the checkpoint's own Oobleck VAE as codec (44.1 kHz stereo, 2048×,
64 latent channels at 21.53 Hz), MusicFM music curves (log-mel when the MusicFM weights are
missing: a warning, and the fallback is recorded in the cache and the checkpoint), T5-base text,
32 s clips (the paper's; SAO 1.0 was trained on windows up to 47.55 s and is told each clip's
length through its ``seconds_total`` conditioning), LoRA on the DiT's attention and MLP
projections with the new curve-channel weights trained in full. ``sa3`` does the same for Stable
Audio 3 small-music-base (``init-checkpoint --from sa3``): its own SAME-S codec (256 latent
channels at 10.77 Hz), T5Gemma text (256 tokens), its native rectified-flow objective (the paper's
eq. 6 as it is), LoRA rank 16 on the same block projections (:mod:`model_io.sa3`'s preset values; why
not every Linear/Conv1d as stable_audio_3's own LoRA trainer does by default: see ``SA3_LORA_TARGETS``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import V2MError
from ..timing.curves import DEFAULT_SMOOTHING_SECONDS

__all__ = ["PREPARE_PRESETS", "PRESETS", "PreparePreset", "example_toml", "prepare_preset"]

PRESETS = ("toy", "sao1", "sa3")

# stable-audio-tools module names (core/model/blocks.py) of the DiT's attention and MLP projections
LORA_TARGETS = ["self_attn.to_qkv", "self_attn.to_out", "cross_attn.to_q", "cross_attn.to_kv", "cross_attn.to_out",
                "ff.ff.0.proj", "ff.ff.2"]


@dataclass(frozen=True)
class PreparePreset:
    """What ``prepare --preset`` fills in (each can still be overridden on the command line)."""

    codec: str | None  # None: the base checkpoint's own codec (``--checkpoint``)
    music_encoder: str
    fallback_encoder: str | None  # used, with a warning, when the music encoder's weights are missing
    clip_seconds: float
    sample_rate: int | None
    latent_rate: float | None


PREPARE_PRESETS = {
    "toy": PreparePreset(codec="patch", music_encoder="logmel", fallback_encoder=None, clip_seconds=32.0,
                         sample_rate=None, latent_rate=None),
    "sao1": PreparePreset(codec=None, music_encoder="musicfm", fallback_encoder="logmel", clip_seconds=32.0,
                          sample_rate=44100, latent_rate=44100 / 2048),
    "sa3": PreparePreset(codec=None, music_encoder="musicfm", fallback_encoder="logmel", clip_seconds=32.0,
                         sample_rate=44100, latent_rate=44100 / 4096),
}

#: what each fine-tuning preset's base is, for messages: (init-checkpoint --from, file name, text encoder folder)
BASES = {"sao1": ("sao1", "v2m_sao1.safetensors", "t5-base"), "sa3": ("sa3", "v2m_sa3.safetensors", "t5gemma-b-b-ul2")}


def prepare_preset(name: str) -> PreparePreset:
    if name not in PREPARE_PRESETS:
        raise V2MError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PREPARE_PRESETS[name]


_TOY = """\
# A small V2M model trained from scratch on a weightless codec: a toy that runs on a CPU.
# Make the cache first:  v2m-zero prepare MUSIC_DIR --out cache --clip-seconds 8
seed = 0
run_dir = "runs/toy"            # states, checkpoints, logs (relative to this file)
base = "toy"

[data]
cache = "cache"                 # made by `v2m-zero prepare`
val_clips = 2                   # held-out clips (a seeded random choice), not trained on

[model]
# either a V2M checkpoint (e.g. from `v2m-zero init-checkpoint`) ...
# from_checkpoint = "models/v2m/checkpoints/v2m-sao1.safetensors"
# ... or a fresh model from make_model_config fields (io_channels defaults to the cache's):
objective = "rectified_flow"    # for from_config; a checkpoint keeps its own
[model.from_config]
embed_dim = 64
depth = 2
num_heads = 2
cond_token_dim = 64

[text]
encoder = "none"                # or a T5 folder (a path, or a name under models/v2m/text_encoders/)
max_length = 128
"""

_SAO1 = """\
# Fine-tune Stable Audio Open 1.0 into a V2M model (paper §3.3) with LoRA on one GPU.
# Written by `v2m-zero train --example --base sao1`. The road:
#   1. the base, once (adds the event-curve input channel with zero weights):
#        v2m-zero init-checkpoint --from sao1 model.safetensors --out v2m_sao1.safetensors
#   2. the cache, with the same preset (the checkpoint's own VAE, MusicFM curves, 32 s clips):
#        v2m-zero prepare MUSIC_DIR --out cache --preset sao1 --checkpoint v2m_sao1.safetensors
#      (MusicFM weights: `v2m-zero models download musicfm`; without them the curves are log-mel,
#      with a warning, and the checkpoint records it)
#   3. v2m-zero train THIS.toml  -- the cache is checked against the checkpoint before any step
seed = 0
run_dir = "runs/sao1-lora"      # states, adapters, logs (relative to this file)
base = "sao1"                   # the preset: the checks expect SAO 1.0's codec, rates and text

[data]
cache = "cache"                 # made by `v2m-zero prepare ... --preset sao1`
val_clips = 8                   # held-out clips, not trained on

[model]
from_checkpoint = {checkpoint}

[text]
encoder = "t5-base"             # SAO's prompt encoder: a folder name under models/v2m/text_encoders/
                                # (or $V2M_MODELS_DIR/text_encoders/) or a path; `v2m-zero models download t5-base`
max_length = 128
allow_none = false              # SAO is prompt-conditioned: encoder = "none" would train a prompt-deaf model

{curve}
[lora]
enabled = true                  # false = full fine-tuning (all 1.06 B parameters; needs a large GPU)
rank = 32
alpha = 32.0                    # the update is scaled by alpha / rank
dropout = 0.0
targets = {targets}
train_curve_weights = true      # the curve channel's preprocess_conv / project_in weights, trained in full
export_merged = false           # also write base + adapter as one full checkpoint at the end (~4 GB)
"""

# the [curve] table of the fine-tuning presets (formatted with the Hann kernel's length)
_CURVE = """\
[curve]                         # must match the cache (checked before training)
music_encoder = "musicfm"       # the paper's music encoder for training curves
music_encoder_fallback = "logmel"  # accepted (warned, recorded in the checkpoint) when prepare had no MusicFM
smoothing_seconds = {smoothing}  # Hann kernel, the paper's 31 frames at 12.3 Hz
video_encoder = "dinov2-large"  # what inference must use for a video's curve (recorded in the checkpoint)
"""

_SA3 = """\
# Fine-tune Stable Audio 3 small-music-base into a V2M model (paper §3.3) with LoRA on one GPU.
# Written by `v2m-zero train --example --base sa3`. The road:
#   1. the base, once (adds the event-curve input channel with zero weights):
#        v2m-zero init-checkpoint --from sa3 stable_audio_3_small_music_base.safetensors --out v2m_sa3.safetensors
#   2. the cache, with the same preset (the checkpoint's own SAME-S codec, MusicFM curves, 32 s clips):
#        v2m-zero prepare MUSIC_DIR --out cache --preset sa3 --checkpoint v2m_sa3.safetensors
#      (MusicFM weights: `v2m-zero models download musicfm`; without them the curves are log-mel,
#      with a warning, and the checkpoint records it)
#   3. v2m-zero train THIS.toml  -- the cache is checked against the checkpoint before any step
seed = 0
run_dir = "runs/sa3-lora"       # states, adapters, logs (relative to this file)
base = "sa3"                    # the preset: the checks expect SA3's SAME codec, rates and T5Gemma text

[data]
cache = "cache"                 # made by `v2m-zero prepare ... --preset sa3`
val_clips = 8                   # held-out clips, not trained on

[model]
from_checkpoint = {checkpoint}

[text]
encoder = "t5gemma-b-b-ul2"     # SA3's prompt encoder: a folder under models/v2m/text_encoders/, a path, or
                                # ComfyUI's models/text_encoders/t5gemma_b_b_ul2.safetensors
max_length = {max_length}                # SA3's conditioner length
allow_none = false              # SA3 is prompt-conditioned: encoder = "none" would train a prompt-deaf model

{curve}
[lora]
enabled = true                  # false = full fine-tuning (433 M parameters)
rank = {rank}                       # stable_audio_3's LoRA trainer's default rank too (it adapts every Linear and
                                # Conv1d, DoRA; here: each block's attention and MLP projections, plain LoRA)
alpha = {alpha}
dropout = 0.0
targets = {targets}
train_curve_weights = true      # the curve channel's preprocess_conv / project_in weights, trained in full
export_merged = false           # also write base + adapter as one full checkpoint at the end
"""

_COMMON = """
[optim]
lr = {lr}
betas = [0.9, 0.999]
weight_decay = 0.001
eps = 1e-8
warmup_steps = {warmup}
schedule = "{schedule}"{schedule_note}
min_lr_ratio = 0.0
grad_clip = 1.0                 # 0 = off
fused = "auto"                  # fused AdamW kernel: "auto" (on CUDA), true, false

[train]
batch_size = {batch}                  # per process
grad_accum = 1
max_steps = {steps}
precision = "bf16"              # bf16 autocast on CUDA; CPU always runs fp32
gradient_checkpointing = {ckpt}{ckpt_note}
compile = false                 # torch.compile the transformer blocks (CUDA: needs Triton)
attention = "auto"              # attention kernel: "auto", "flash", "efficient", "cudnn", "math"
t_sampling = "logit_normal"     # or "uniform"
p_drop_text = 0.1               # paper: 10 % condition dropout for classifier-free guidance
p_drop_curve = 0.1
accelerate = "auto"             # true / false / "auto"
device = "auto"                 # "cpu", "cuda", "auto"

[ema]
enabled = true
decay = 0.999

[checkpoint]
every = {every}                     # steps between resumable states (+ an exported checkpoint)
keep_last = 3
export = "ema"                  # weights exported: "ema" or "model"

[validation]
every = {every}                     # 0 = off
steps = 10                      # Euler steps for the sampled clips
cfg_scale = 1.0
curve_metric = {curve_metric}            # event-curve correlation of generated vs target clips
{val_note}
[log]
every = 10                      # CSV rows (always) and TensorBoard (if installed)
tensorboard = true
"""


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def example_toml(base: str = "toy", checkpoint: str | os.PathLike | None = None) -> str:
    """A complete, commented training config for a preset (``checkpoint``: the base V2M checkpoint)."""
    if base not in PRESETS:
        raise V2MError(f"unknown base preset {base!r}; known: {', '.join(PRESETS)}")
    if base == "toy":
        head = _TOY
        common = dict(lr="1e-4", warmup=100, schedule="constant",
                      schedule_note='            # or "cosine" (to min_lr_ratio · lr at max_steps)', batch=4,
                      steps=1000, ckpt="false",
                      ckpt_note='  # true/"full" (recompute blocks), "selective" (recompute only cheap ops)',
                      every=500, curve_metric="true", val_note="")
    else:
        ckpt = _toml_str(os.path.abspath(os.fspath(checkpoint))) if checkpoint else \
            f'"models/v2m/checkpoints/{BASES[base][1]}"  # from init-checkpoint (step 1)'
        if base == "sao1":
            targets = "[" + ", ".join(_toml_str(t) for t in LORA_TARGETS) + "]"
            head = _SAO1.format(checkpoint=ckpt, targets=targets,
                                curve=_CURVE.format(smoothing=repr(float(DEFAULT_SMOOTHING_SECONDS))))
        else:
            from ...model_io.sa3 import sa3_train_preset

            p = sa3_train_preset()
            targets = "[" + ", ".join(_toml_str(t) for t in p["lora"]["targets"]) + "]"
            head = _SA3.format(checkpoint=ckpt,
                               curve=_CURVE.format(smoothing=repr(float(p["curve"]["smoothing_seconds"]))),
                               targets=targets, max_length=p["text"]["max_length"], rank=p["lora"]["rank"],
                               alpha=float(p["lora"]["alpha"]))
        common = dict(lr="1e-4", warmup=500, schedule="cosine", schedule_note="", batch=8, steps=20000,
                      ckpt="true", ckpt_note="   # recompute activations: larger batches fit",
                      every=1000, curve_metric="false",
                      val_note='# music_encoder_path = "models/v2m/music_encoders/musicfm/pretrained_msd.pt"  '
                               "# for curve_metric with MusicFM\n")
    return head + _COMMON.format(**common)
