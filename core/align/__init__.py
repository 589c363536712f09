"""Align music to a video: retime a track so its beats land on the cuts (see align.pipeline)."""
