"""Stage 2 architectures (paper §3.3–3.4): the DiT and its conditioners, rectified flow and samplers,
audio codecs, the text encoder, MusicFM. Architectures never import ``model_io`` (weights are read there).
"""
