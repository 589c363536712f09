"""Event curves: features → raw curve with hit points → smoothed conditioning curve."""

from __future__ import annotations

from comfy_api.latest import io, ui

from ..core.errors import V2MError
from ..core.sampling import MAX_WINDOW_SECONDS
from ..core.timing import curves, plot
from ..core.timing.spec import MAX_SMOOTHING_SECONDS, CurveSpec
from .host import convert, requirements
from .types import CurveType, FeaturesType, ModelType

CATEGORY = "V2M-Zero/curves"
SAO_LATENT_RATE = curves.SAO_LATENT_RATE
#: The finest conditioning curve a sampler can use: it resamples any curve to its model's latent grid, and no
#: codec of the pack is faster than this (Stable Audio 21.5 Hz, the demo's patch codec 62.5 Hz).
MAX_CURVE_RATE = 100.0
#: latent_length's bound: the longest sampling window (core.sampling.MAX_WINDOW_SECONDS) at MAX_CURVE_RATE.
#: A longer video takes latent_length 0 (the rate).
MAX_LATENT_LENGTH = int(MAX_WINDOW_SECONDS * MAX_CURVE_RATE)


def _plot(label: str, curve: curves.Curve, peaks=(), title: str = ""):
    return convert.image_tensor(plot.plot_curves([(label, curve)], peaks=peaks, title=title))


class EventCurve(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V2M_EventCurve",
            display_name="Event Curve (V2M)",
            category=CATEGORY,
            description="a_k = 1 − cos(f_k, f_k+1), standardised (paper eq. 2–3), at the frames' "
                        "own times; with hit points (cuts and sharp changes) to the frame.",
            inputs=[
                FeaturesType.Input("features", tooltip="Per-frame features from Encode Frames."),
                io.Float.Input("peak_threshold", default=0.0, min=0.0, max=100.0, step=0.1,
                               tooltip="Hit points must exceed this many standard "
                                       "deviations; 0 = automatic (robust to busy videos)."),
                io.Float.Input("min_gap", default=0.25, min=0.0, max=10.0, step=0.05,
                               tooltip="Seconds between two hit points at least."),
            ],
            outputs=[
                CurveType.Output(display_name="curve"),
                io.Image.Output(display_name="plot"),
                io.String.Output(display_name="hit_points"),
            ],
            is_output_node=True,  # its plot is a result: a graph may end here (the event-curve template)
        )

    REQUIRES = ("matplotlib",)  # checked by validate_inputs

    @classmethod
    def validate_inputs(cls, features=None):
        return requirements.check(cls.REQUIRES)

    @classmethod
    def execute(cls, features, peak_threshold, min_gap) -> io.NodeOutput:
        curve = curves.event_curve(features)
        peaks = curves.find_peaks(curve, threshold=peak_threshold or None, min_gap=min_gap)
        options = {k: v for k, v in (features.meta or {}).items() if k != "encoder"}
        curve = curve.replace(spec=dict(curve.spec, encoder_options=options, peaks=[round(float(p), 6) for p in peaks]))
        image = _plot("event curve", curve, peaks, f"event curve ({features.encoder}), {len(peaks)} hit points")
        hits = ", ".join(f"{p:.3f}" for p in peaks)
        return io.NodeOutput(curve, image, hits, ui=ui.PreviewImage(image, cls=cls))


class SmoothCurve(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V2M_SmoothCurve",
            display_name="Smooth Curve (V2M)",
            category=CATEGORY,
            description="Resample the event curve by time to the music latent rate (or a latent "
                        "length) and smooth it with a Hann kernel given in seconds (paper eq. 4).",
            inputs=[
                CurveType.Input("curve", tooltip="An event curve."),
                io.Float.Input("kernel_seconds", default=round(curves.DEFAULT_SMOOTHING_SECONDS, 3), min=0.0,
                               max=MAX_SMOOTHING_SECONDS,
                               step=0.05,
                               tooltip="Hann kernel length in seconds; 2.52 s = the paper's 31 "
                                       "frames at 12.3 Hz. Longer: smoother music, looser timing."),
                io.Float.Input("target_rate", default=round(SAO_LATENT_RATE, 6), min=0.1, max=1000.0, step=0.001,
                               tooltip="Samples per second of the result; 21.533 = "
                                       "Stable Audio latents (44.1 kHz / 2048)."),
                io.Int.Input("latent_length", default=0, min=0, max=MAX_LATENT_LENGTH,
                             tooltip="Exact number of samples (overrides target_rate); "
                                     "0 = from the rate and the duration. At most "
                                     f"{MAX_CURVE_RATE:g} per second of the curve (a sampler resamples to "
                                     "its model's latent grid: more is never used)."),
                io.Float.Input("scale", default=1.0, min=-100.0, max=100.0, step=0.05,
                               tooltip="Multiply the curve (stronger or weaker timing cues)."),
                io.Float.Input("offset", default=0.0, min=-100.0, max=100.0, step=0.05,
                               tooltip="Add to the curve after scaling."),
                ModelType.Input("model", optional=True,
                                tooltip="Follow this V2M model: its latent rate and the smoothing it "
                                        "was trained with replace kernel_seconds and target_rate."),
            ],
            outputs=[CurveType.Output(display_name="curve"), io.Image.Output(display_name="plot")],
            is_output_node=True,  # its plot is a result: a graph may end here (the event-curve template)
        )

    REQUIRES = ("matplotlib",)  # checked by validate_inputs

    @classmethod
    def validate_inputs(cls, curve=None, model=None):
        return requirements.check(cls.REQUIRES)

    @classmethod
    def execute(cls, curve, kernel_seconds, target_rate, latent_length, scale, offset, model=None) -> io.NodeOutput:
        used = _smoothing_used(curve, kernel_seconds, target_rate, latent_length, model)
        kernel_seconds, target_rate = used["kernel_seconds"], used["target_rate"]
        spec = CurveSpec(smoothing_seconds=kernel_seconds)
        smooth = spec.smooth(curve, length=latent_length) if latent_length else spec.smooth(curve, rate=target_rate)
        if scale != 1.0 or offset != 0.0:
            smooth = smooth.replace(values=smooth.values * scale + offset,
                                    spec=dict(smooth.spec, scale=scale, offset=offset))
        text = "\n".join([f"used: {kernel_seconds:.3g} s Hann, {len(smooth)} samples at {smooth.rate:.3f} Hz "
                          f"({curve.duration:.2f} s)"] + used["notes"])
        image = convert.image_tensor(
            plot.plot_curves([("smoothed", smooth), ("raw", curve)], peaks=curve.spec.get("peaks", ()),
                             title=f"smoothed: {kernel_seconds:.3g} s Hann{used['follow']}, "
                                   f"{len(smooth)} samples at {smooth.rate:.3f} Hz")
        )
        return io.NodeOutput(smooth, image, ui={"text": (text,), **_image_ui(image, cls)})


def _smoothing_used(curve, kernel_seconds, target_rate, latent_length, model) -> dict:
    """The smoothing and rate Smooth Curve uses, and one line for each widget a connected model or
    latent_length overrides (drawn on the node: the widgets keep showing their own values)."""
    notes, follow = [], ""
    if model is not None:
        k, r = float(model.curve_spec.smoothing_seconds), float(model.latent_rate)
        notes.append(f"kernel_seconds {kernel_seconds:g} s overridden: the model's smoothing {k:g} s is used")
        if not latent_length:
            notes.append(f"target_rate {target_rate:g} Hz overridden: the model's latent rate {r:g} Hz is used")
        kernel_seconds, target_rate, follow = k, r, ", the model's smoothing"
    if latent_length:
        limit = curves.latent_length(curve.duration, MAX_CURVE_RATE)
        if latent_length > limit:
            raise V2MError(f"latent_length {latent_length} is more than a sampler can use for this "
                           f"{curve.duration:.2f} s curve (at most {limit}, {MAX_CURVE_RATE:g} per second): "
                           "set 0 to follow the rate")
        notes.append(f"target_rate overridden: latent_length {latent_length} is used")
    return {"kernel_seconds": kernel_seconds, "target_rate": target_rate, "notes": notes, "follow": follow}


def _image_ui(image, cls) -> dict:
    preview = ui.PreviewImage(image, cls=cls)
    as_dict = getattr(preview, "as_dict", None)
    return as_dict() if callable(as_dict) else {}


NODES = [EventCurve, SmoothCurve]
