"""The music model bundle: the DiT, its audio codec and its text encoder, with the checkpoint's metadata.

It is what ``model_io.bundle.load_music_model`` returns and what the generation pipeline
(:mod:`core.generate`) samples with. (Named for what it is; it is not a ``torch.Generator``.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..timing.spec import CurveSpec
from .codec import AudioCodec


@dataclass
class MusicModel:
    """Everything needed to turn (curve, prompt) into audio."""

    dit: Any  # core.model.dit.V2MDiT or core.model.sa3.SA3DiT, with .objective and .meta
    codec: AudioCodec
    text: Any | None  # core.model.text.T5TextEncoder / T5GemmaTextEncoder, or None (models without text)
    meta: dict = field(default_factory=dict)
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32
    source: str = ""  # the checkpoint file it was loaded from (named in errors about its recorded values)

    def __repr__(self) -> str:
        """One short line: a host prints its inputs with ``str()`` when a node fails (not the whole network)."""
        name = self.meta.get("name") or self.meta.get("checkpoint")
        name = f"{str(name)[:80]}, " if name else ""
        return (f"MusicModel({name}{type(self.dit).__name__}, codec {type(self.codec).__name__} "
                f"{self.sample_rate} Hz, text {type(self.text).__name__ if self.text is not None else 'none'}, "
                f"{self.device}, {self.dtype})")

    @property
    def latent_rate(self) -> float:
        return float(self.meta.get("latent_rate") or self.codec.latent_rate)

    @property
    def sample_rate(self) -> int:
        return int(self.codec.sample_rate)

    @property
    def curve_spec(self) -> CurveSpec:
        """How the checkpoint's training curves were made (its metadata ``curve``)."""
        return CurveSpec.from_dict(self.meta.get("curve"))

    @property
    def sampling(self) -> dict:
        """The checkpoint's recorded sampling defaults (its metadata ``sampling``; untrusted, bounded where used)."""
        s = self.meta.get("sampling")
        return dict(s) if isinstance(s, dict) else {}

    def to(self, device) -> "MusicModel":
        """Move the DiT, codec and text encoder to ``device`` (in place); returns self."""
        device = torch.device(device)
        for part in (self.dit, self.codec, self.text):
            if part is not None and hasattr(part, "to"):
                part.to(device)
        self.device = device
        return self
