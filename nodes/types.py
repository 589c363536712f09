"""Our socket types (``io.Custom``): they carry core objects between our nodes."""

from comfy_api.latest import io

FeaturesType = io.Custom("V2M_FEATURES")  # core.timing.curves.Features
CurveType = io.Custom("V2M_CURVE")  # core.timing.curves.Curve
ModelType = io.Custom("V2M_MODEL")  # the loaded generator bundle (DiT, codec, text encoder)
