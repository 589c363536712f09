"""Headless fine-tuning inside the ComfyUI queue: prepare the music cache, train, export."""

from __future__ import annotations

import os
import re

from comfy_api.latest import io, ui

from ..core.errors import V2MError
from ..core.timing.curves import DEFAULT_SMOOTHING_SECONDS
from ..core.timing.spec import MAX_SMOOTHING_SECONDS
from .host import models, requirements, runtime

CATEGORY = "V2M-Zero/train"
NONE = "none"
# Weightless patch codecs for toy runs (latents at 62.5 Hz): 16 kHz mono, or 4 kHz mono.
PATCH_CODECS = ["patch:256:1:16000", "patch:64:1:4000"]
CUSTOM = "custom"
#: the LoRA presets of core.train.presets.BASES (named here: no training code is imported with the node)
BASE_NAMES = {"sao1": "Stable Audio Open 1.0", "sa3": "Stable Audio 3 small-music-base"}
PRESET_CHOICES = [CUSTOM, *BASE_NAMES]

DEFAULT_CONFIG_TOML = """\
# Overrides of the trainer's defaults (see `v2m-zero train --example`); the node fills in
# [data] cache, run_dir, max_steps and the init checkpoint.
[model.from_config]        # used when no init checkpoint is chosen
embed_dim = 256
depth = 4
num_heads = 4
cond_token_dim = 64
[text]
encoder = "none"
[optim]
lr = 1e-4
warmup_steps = 100
[train]
batch_size = 4
[checkpoint]
every = 200
[validation]
every = 0
"""


#: The built-in demo dataset: synthetic percussion made on first use in input/DEMO_FOLDER.
DEMO_DATASET = "demo: synthetic percussion (made on first use)"
DEMO_FOLDER = "v2m_demo_music"
DEMO_TEXT = ("DEMO run: trained on the built-in synthetic percussion (input/v2m_demo_music: click tracks with random "
             "event patterns, not music); the checkpoint is a toy that shows training on music curves.")


#: music files a dataset folder holds (core.train.dataset_files.AUDIO_EXTENSIONS; not imported: it loads the trainer)
MUSIC_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
_SCAN_LIMIT = 5000  # entries looked at per folder when listing datasets (a huge non-music tree is not walked whole)


def _has_music(folder: str) -> bool:
    """Whether ``folder`` (or a folder under it) holds a music file, looking at most at _SCAN_LIMIT entries."""
    seen = 0
    for _root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if not name.startswith(".") and name.lower().endswith(MUSIC_EXTENSIONS):
                return True
        seen += len(names) + len(dirs)
        if seen > _SCAN_LIMIT:
            return False
    return False


def _dataset_choices() -> list[str]:
    """The demo set and the folders in the input folder that hold music (not ComfyUI's ``3d``, ``clipspace``...)."""
    import folder_paths

    root = folder_paths.get_input_directory()
    found = []
    if os.path.isdir(root):
        found = sorted(d for d in os.listdir(root)
                       if os.path.isdir(os.path.join(root, d)) and not d.startswith(".") and d != DEMO_FOLDER
                       and _has_music(os.path.join(root, d)))
    return [DEMO_DATASET] + found


def _dataset_dir(name: str) -> str:
    import folder_paths

    if name == DEMO_DATASET:
        from ..core.examples import make_demo_dataset

        return make_demo_dataset(os.path.join(folder_paths.get_input_directory(), DEMO_FOLDER))
    base = os.path.realpath(folder_paths.get_input_directory())
    path = os.path.realpath(os.path.join(base, name or ""))
    if not name or os.path.commonpath([base, path]) != base or path == base:
        raise V2MError(f"dataset {name!r} must be a folder inside ComfyUI's input folder ({base})")
    if not os.path.isdir(path):
        raise V2MError(f"dataset folder {name!r} not found in ComfyUI's input "
                       f"folder ({base}): put music files + captions there")
    return path


def _run_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name or ""):
        raise V2MError(f"run name {name!r}: use letters, digits, '.', '_' or '-' (it names a folder and a checkpoint)")
    return name


class Train(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V2M_Train",
            display_name="Train V2M (music curves)",
            category=CATEGORY,
            description="Fine-tune a V2M model on music + captions with music event curves (paper "
                        "§3.3): prepares a cache, trains with exact resume (queue it again to "
                        "continue), and writes a checkpoint into models/v2m/checkpoints/.",
            inputs=[
                io.Combo.Input("dataset", options=_dataset_choices(), default=DEMO_DATASET,
                               tooltip="A folder in ComfyUI's input folder with music files (wav/flac/mp3/ogg/m4a) "
                                       f"and captions (sidecar .txt, or captions.csv/.jsonl). '{DEMO_DATASET}': a DEMO "
                                       "set of synthetic click tracks (12 files × 32 s at 8 kHz) written to "
                                       f"input/{DEMO_FOLDER} on first use, to try training in a few minutes on a CPU."),
                io.String.Input("run_name", default="v2m_run",
                                tooltip="Names the run folder (output/v2m_training/<run>) and the checkpoint."),
                io.Combo.Input("init_checkpoint", options=[NONE] + models.model_choices("checkpoints", folders=False),
                               default=NONE,
                               tooltip="Start from this V2M checkpoint (e.g. made by init-checkpoint "
                                       "from Stable Audio Open); none = a new model from the config."),
                io.Combo.Input("codec", options=PATCH_CODECS + models.model_choices("codecs", folders=False),
                               default=PATCH_CODECS[0],
                               tooltip="Audio codec for the latents: a weightless patch codec "
                                       "(patch:SIZE:CHANNELS:RATE, toy runs) or an autoencoder "
                                       "file from models/v2m/codecs/ (Stable Audio Open's)."),
                io.Combo.Input("music_encoder", options=["logmel", "codec", "musicfm"], default="logmel",
                               tooltip="Encoder for the music event curves (paper: MusicFM; logmel is weightless)."),
                io.Float.Input("clip_seconds", default=8.0, min=1.0, max=120.0, step=0.5,
                               tooltip="Training clip length (paper: 32 s)."),
                io.Float.Input("smoothing_seconds", default=round(DEFAULT_SMOOTHING_SECONDS, 2), min=0.0,
                               max=MAX_SMOOTHING_SECONDS,
                               step=0.05,
                               tooltip="Hann smoothing of the music curves; inference "
                                       "uses the same (stored in the checkpoint)."),
                io.Int.Input("max_steps", default=1000, min=1, max=10_000_000,
                             tooltip="Total optimiser steps of the run (a resumed run continues to this)."),
                io.String.Input("config", default=DEFAULT_CONFIG_TOML, multiline=True,
                                tooltip="Trainer settings as TOML (optimiser, batch, EMA, model size...)."),
                io.Combo.Input("preset", options=PRESET_CHOICES, default=CUSTOM, optional=True,
                               tooltip="sao1: fine-tune Stable Audio Open 1.0 with LoRA (init_checkpoint = "
                                       "its V2M checkpoint from init-checkpoint; its own VAE as codec, "
                                       "MusicFM curves or log-mel with a warning, T5-base text, 32 s clips; "
                                       "your config's changes still apply). sa3: the same for Stable Audio 3 "
                                       "small-music-base (its SAME codec, T5Gemma text). Both write a LoRA "
                                       "into models/v2m/loras/. custom: the widgets and config as they are."),
                io.Boolean.Input("download_if_missing", default=False, optional=True,
                                 tooltip="With the sao1 / sa3 preset: download the text encoder (T5-base "
                                         "/ T5Gemma) and MusicFM from the Hugging Face Hub into "
                                         "models/v2m/ if they are not there. Off: nothing is downloaded."),
            ],
            outputs=[io.String.Output(display_name="checkpoint_path")],
            is_output_node=True,
        )

    REQUIRES = ("librosa", "safetensors")  # modules every run needs beyond ComfyUI's; presets (LoRA) need peft too

    @classmethod
    def validate_inputs(cls, run_name, preset=CUSTOM):
        if preset not in PRESET_CHOICES:  # (named here, so the host leaves this dropdown to us)
            return f"preset {preset!r} is not one of {', '.join(PRESET_CHOICES)}"
        ok = requirements.check(cls.REQUIRES + (("peft",) if preset != CUSTOM else ()))
        if ok is not True:
            return ok
        try:
            _run_name(run_name)
        except V2MError as exc:
            return str(exc)
        return True

    @classmethod
    def execute(cls, dataset, run_name, init_checkpoint, codec, music_encoder, clip_seconds, smoothing_seconds,
                max_steps, config, preset=CUSTOM, download_if_missing=False) -> io.NodeOutput:
        import comfy.model_management as mm
        import folder_paths

        from ..core.train import job

        data_dir = _dataset_dir(dataset)
        run = _run_name(run_name)
        user = _parse_config(config)
        device = str(mm.get_torch_device())
        run_dir = os.path.join(folder_paths.get_output_directory(), "v2m_training", run)
        init = None if init_checkpoint == NONE else models.model_path("checkpoints", init_checkpoint)
        node = {"data": {"cache": os.path.join(run_dir, "cache")}, "run_dir": run_dir,
                "train": {"max_steps": int(max_steps)}}
        if init is not None:
            node["model"] = {"from_checkpoint": init, "from_config": None}
        sao = preset in BASE_NAMES  # a LoRA preset
        if sao:
            cfg, prep = _preset_settings(preset, init_checkpoint, user, download_if_missing, device,
                                         {**node, "curve": {"smoothing_seconds": float(smoothing_seconds)}})
        else:
            cfg = job.training_config(("the node's device", {"train": {"device": device}}), ("the config", user),
                                      ("the node's settings", node))
            prep = {"codec": codec if codec in PATCH_CODECS else models.model_path("codecs", codec),
                    "music_encoder": music_encoder, "clip_seconds": clip_seconds}
        dest = os.path.join(folder_paths.models_dir, "v2m", "loras" if sao else "checkpoints", f"{run}.safetensors")
        bar = runtime.Progress(max_steps)
        result = job.run(
            job.TrainJob(cfg, inputs=[(data_dir, "dataset folder"), (init, "init_checkpoint")], data_dir=data_dir,
                         prepare={**prep, "smoothing_seconds": smoothing_seconds, "device": device}, dest=dest,
                         run_label="run folder"),
            progress=lambda info: bar(int(info.get("step", 0)), max_steps), should_stop=mm.processing_interrupted,
            prepare_progress=lambda done, total, name: runtime.Progress.check_interrupt(), prepare_log=_log,
            on_stopped=mm.throw_exception_if_processing_interrupted)  # the state is saved; re-queue to resume
        runtime.release_memory()
        loss = "n/a" if result.last_loss is None else f"{result.last_loss:.4f}"
        what = (f"LoRA adapter: {dest}\n(use it in Load V2M Model's lora input with {init_checkpoint})" if sao
                else f"checkpoint: {dest}")
        text = f"step {result.step}, last loss {loss}\n{what}\nrun folder: {run_dir}"
        if dataset == DEMO_DATASET:
            text = DEMO_TEXT + "\n" + text
        return io.NodeOutput(dest, ui=ui.PreviewText(text))


def _parse_config(text: str) -> dict:
    import tomllib

    try:
        return tomllib.loads(text or "")
    except tomllib.TOMLDecodeError as exc:
        raise V2MError(f"the config is not valid TOML: {exc}") from None


def _log(message: str) -> None:
    """prepare's messages: warnings (e.g. MusicFM missing, log-mel used) go to ComfyUI's console."""
    import logging

    if message.startswith("warning: "):
        logging.getLogger("v2m_zero").warning(message[len("warning: "):])


def _preset_settings(preset: str, init_checkpoint: str, user_cfg: dict, download: bool, device: str,
                     node: dict) -> tuple[dict, dict]:
    """A LoRA preset's training config (with the user's own changes and the node's settings) and prepare settings."""
    import tomllib

    from ..core.train import job
    from ..core.train.presets import BASES, prepare_preset
    from ..model_io.musicfm import find_musicfm

    source, file, text = BASES[preset]
    if init_checkpoint == NONE:
        raise V2MError(f"the {preset} preset fine-tunes a V2M checkpoint made from {BASE_NAMES[preset]}: choose it as "
                       f"init_checkpoint (`v2m-zero init-checkpoint --from {source} model.safetensors --out "
                       f"models/v2m/checkpoints/{file}`)")
    base = models.model_path("checkpoints", init_checkpoint)
    cfg = job.training_config(("the node's device", {"train": {"device": device}}),
                              (f"the {preset} preset", job.preset_layer(preset, base)),
                              ("the config", job.changed_keys(user_cfg, tomllib.loads(DEFAULT_CONFIG_TOML))),
                              ("the node's settings", node))
    if cfg["text"]["encoder"] == text:  # the preset's own text encoder: from models/v2m/text_encoders/ (or downloaded)
        cfg["text"]["encoder"] = _preset_text_encoder(text, download)
    if download and find_musicfm() is None:
        models.download_model("musicfm")
    p = prepare_preset(preset)
    musicfm = find_musicfm()
    # the log-mel fallback only where the training config allows it (the preset does; a config may say none)
    prep = {"codec": base, "music_encoder": p.music_encoder,
            "music_encoder_fallback": (cfg.get("curve") or {}).get("music_encoder_fallback") or None,
            "encoder_options": {"path": musicfm} if musicfm else {}, "clip_seconds": p.clip_seconds}
    return cfg, prep


def _preset_text_encoder(name: str, download: bool) -> str:
    """The preset's text-encoder folder; for T5Gemma also ComfyUI's own single file when there is no folder."""
    try:
        return models.model_path("text_encoders", name)
    except V2MError:
        if name == "t5gemma-b-b-ul2" and not download:
            files = models.format_choices("text_encoders", "t5gemma")
            if files:
                return models.comfy_model_path(files[0])
        return models.model_path_or_download("text_encoders", name, download)


NODES = [Train]
