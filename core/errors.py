"""Error types: every user-facing failure names the file or value at fault and the fix."""


class V2MError(ValueError):
    """Base class for errors the user can act on (bad input, missing weights, bad config)."""


class MediaError(V2MError):
    """A video or audio file cannot be used: missing, empty, truncated, wrong kind of file."""


class CurveError(V2MError):
    """Features or curve parameters that cannot produce an event curve."""


class ModelError(V2MError):
    """Weights that are missing, of the wrong layout, mismatched, truncated or unsafe."""



class WeightsMissing(ModelError):
    """Weights that are not there at all (none found where they are searched for): the one case a configured
    fallback may stand in for; a file that is there but cannot be used is a plain :class:`ModelError`."""
