"""Stage 3 of the paper (§3.3): training without paired data: music → cache (codec latents + music
event curves) → fine-tuning with eq. 6 → a V2M checkpoint that carries its curve spec.
"""

from .cache import ClipCache
from .config import EXAMPLE_TOML, load_config, lr_at, resolve_config
from .prepare import PrepareResult, prepare_dataset
from .state import latest_state
from .trainer import TrainResult, train

__all__ = [
    "ClipCache",
    "EXAMPLE_TOML",
    "PrepareResult",
    "TrainResult",
    "latest_state",
    "load_config",
    "lr_at",
    "prepare_dataset",
    "resolve_config",
    "train",
]
