"""The ComfyUI-free V2M-Zero library, one sub-package per stage of the paper.

``timing``   §3.2: media I/O, frame encoders, event curves, the curve spec, cut detection, plots
``model``    §3.3–3.4: the DiT and its conditioners, rectified flow + samplers, codecs, text, MusicFM
``generate`` the inference pipeline: checkpoint → conditioning curve → sample → decode
``train``    §3.3: training without pairs: music → cache → fine-tuning → checkpoint
``eval``     §4.2: Scene Cut Hit and its chance level, beat scores, FAD, CLAP; test media
``prompt``   Appendix B: a music prompt from the video (ASR + frame captions + LLM)
``commands`` the ``v2m-zero`` command line (``cli``)

Weights are found, read, converted and written only by the sibling package ``model_io``.
"""
