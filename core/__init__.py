"""The ComfyUI-free V2M-Zero library: media, event curves, encoders, generator, metrics, CLI."""
