"""One training job, the same for the ComfyUI node and the CLI: the config merged in layers, the
outputs planned, the music cache prepared (when the job starts from music files), the model trained,
the checkpoint copied where it belongs.

Every layer of a config (a preset, the user's text, the command line, the node's own settings) is
merged through :func:`.config.merge_config`, so an unknown key is refused at once, naming its layer,
before hours of preparing or training.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..atomic import atomic_path
from ..errors import V2MError
from ..outputs import OutputPlan
from .config import DEFAULT_CONFIG, merge_config, resolve_config

__all__ = ["TrainJob", "changed_keys", "preset_layer", "run", "training_config"]


def training_config(*layers: tuple[str, Mapping[str, Any]]) -> dict:
    """The trainer's defaults with each ``(label, layer)`` merged over them in order; a key the
    trainer does not know is refused with the layer's label (``"the sao1 preset: unknown ..."``)."""
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    for label, layer in layers:
        try:
            cfg = merge_config(cfg, layer)
        except V2MError as exc:
            raise V2MError(f"{label}: {exc}") from None
    return cfg


def preset_layer(preset: str, checkpoint: str | os.PathLike | None = None) -> dict:
    """A preset's complete example config (``v2m-zero train --example --base PRESET``) as a layer."""
    import tomllib

    from .presets import example_toml

    return tomllib.loads(example_toml(preset, checkpoint))


def changed_keys(user: Mapping, default: Mapping) -> dict:
    """What ``user`` changes relative to ``default`` (a widget's default text: only real changes override a preset)."""
    out = {}
    for k, v in user.items():
        if isinstance(v, Mapping) and isinstance(default.get(k), Mapping):
            sub = changed_keys(v, default[k])
            if sub:
                out[k] = sub
        elif default.get(k, object()) != v:
            out[k] = v
    return out


@dataclass
class TrainJob:
    """What one run reads and writes; :func:`run` carries it out."""

    config: dict  # a training config (``training_config`` or ``load_config``): data.cache and run_dir set
    inputs: list[tuple[Any, str]] = field(default_factory=list)  # (path, label): never written
    data_dir: str | None = None  # music files + captions encoded into data.cache first (None: the cache exists)
    prepare: dict | None = None  # prepare_dataset's settings (codec, music_encoder, clip_seconds, ...)
    dest: str | None = None  # where the finished checkpoint is copied (its folder made when writing)
    run_label: str = "run folder (run_dir)"

    def plan(self) -> OutputPlan:
        plan = OutputPlan()  # nothing the run writes may be one of its inputs (the init checkpoint, the music)
        for path, label in self.inputs:
            plan.input(path, label)
        plan.folder(self.config["run_dir"], self.run_label)
        if self.dest:
            plan.file(self.dest, "the trained checkpoint", create_parent=True)
        return plan

    def check(self) -> dict:
        """The resolved config (keys and bounds checked) once the outputs are known to be safe; before any work."""
        self.plan().check()
        return resolve_config(self.config)


def run(job: TrainJob, *, progress: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
        prepare_progress: Callable | None = None, prepare_log: Callable[[str], None] | None = None,
        on_stopped: Callable[[], None] | None = None):
    """Check, prepare (when ``job.prepare``), train (autograd on, even under ComfyUI's inference mode),
    then copy the checkpoint to ``job.dest``; ``on_stopped()`` runs when the trainer stopped early
    (a resumable state saved), before the copy. Returns the trainer's ``TrainResult``."""
    import torch

    from .trainer import train

    job.check()
    run_dir = job.config["run_dir"]
    if job.prepare is not None:
        from .prepare import prepare_dataset

        os.makedirs(run_dir, exist_ok=True)
        prepare_dataset(job.data_dir, job.config["data"]["cache"], **job.prepare, progress=prepare_progress,
                        log=prepare_log)
    with torch.inference_mode(False), torch.enable_grad():
        result = train(job.config, progress=progress, should_stop=should_stop)
    if result.stopped and on_stopped is not None:
        on_stopped()
    if job.dest:
        if not result.checkpoint_path:
            raise V2MError(f"training wrote no checkpoint (run folder {run_dir})")
        os.makedirs(os.path.dirname(job.dest), exist_ok=True)
        with atomic_path(job.dest) as tmp:
            shutil.copyfile(result.checkpoint_path, tmp)
    return result
