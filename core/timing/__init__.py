"""Stage 1 of the paper (§3.2): when and how much a video (or music) changes.

PyAV media I/O (`media`), frame encoders (`encoders`), event curves (`curves`), cut detection
(`cuts`) and curve pictures (`plot`).
"""
