"""Thin bridges to the ComfyUI host, one module per concern:

- :mod:`.models`: ``models/v2m/<kind>/`` folders and dropdown choices, ComfyUI's own model files, downloads;
- :mod:`.files`: input files (confined to the input folder), temp and output paths;
- :mod:`.convert`: IMAGE / AUDIO / VIDEO to and from the library's arrays and files;
- :mod:`.runtime`: progress, interrupts, memory and device placement.

Everything imports ComfyUI modules lazily, inside functions, so that importing a node module needs
only ``comfy_api`` (which ComfyUI, or the tests' fake, provides). The names are also offered here,
for nodes that use several concerns.
"""

from __future__ import annotations

from .convert import (audio_to_numpy, image_tensor, images_to_uint8, numpy_to_audio, video_or_images_file,
                      video_source, video_to_file)
from .files import (confined_input_path, input_audio_choices, input_choices, input_file_path, input_fingerprint,
                    input_video_choices, output_path, remove_files, temp_video_path, validate_input_file)
from .models import (MODEL_KINDS, comfy_model_path, download_folders, download_model, format_choices,
                     host_model_files, host_model_path, host_t5_tokenizer, model_choices, model_path,
                     model_path_or_download, register_model_folders)
from .runtime import Progress, is_offloaded, load_device, placed, release_memory, set_offload

__all__ = [
    "MODEL_KINDS", "Progress", "audio_to_numpy", "comfy_model_path", "confined_input_path",
    "download_folders", "download_model", "format_choices", "host_model_files", "host_model_path", "host_t5_tokenizer",
    "image_tensor", "images_to_uint8", "input_audio_choices", "input_choices", "input_file_path", "input_fingerprint",
    "input_video_choices", "is_offloaded", "load_device", "model_choices", "model_path", "model_path_or_download",
    "numpy_to_audio", "output_path", "placed", "register_model_folders", "release_memory", "remove_files",
    "set_offload",
    "temp_video_path", "validate_input_file", "video_or_images_file", "video_source", "video_to_file",
]
