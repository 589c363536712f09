"""Measure sync: Scene Cut Hit with its chance level, as a report and a picture."""

from __future__ import annotations


from comfy_api.latest import io, ui

from ..core.timing import encoders, media, plot
from ..core.eval import report as metrics_report
from ..core.eval.beats import agreement_line
from .host import convert, files, requirements, runtime

CATEGORY = "V2M-Zero/evaluate"


class SyncReport(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V2M_SyncReport",
            display_name="Sync Report (V2M)",
            category=CATEGORY,
            description="Scene Cut Hit (paper Algorithm 1: PySceneDetect cuts, librosa beats, ±tolerance) next to its "
                        "chance level from circularly shifted beats, with a plot of cuts, beats and the event curve.",
            inputs=[
                io.Video.Input("video", optional=True,
                               tooltip="A video with its music (or connect images + fps + audio)."),
                io.Image.Input("images", optional=True, tooltip="Frames, when there is no VIDEO; needs fps and audio."),
                io.Audio.Input("audio", optional=True,
                               tooltip="Music to evaluate; replaces the video's own soundtrack when connected."),
                io.Float.Input("fps", default=24.0, min=0.01, max=1000.0, step=0.01,
                               tooltip="Frame rate of the images input."),
                io.Float.Input("tolerance", default=0.1, min=0.01, max=1.0, step=0.01,
                               tooltip="A cut is hit when a beat lies within this many seconds (paper: 0.1)."),
                io.Int.Input("shifts", default=200, min=10, max=5000,
                             tooltip="Circular beat shifts averaged for the chance level (sch_null)."),
            ],
            outputs=[io.String.Output(display_name="report"), io.Image.Output(display_name="plot")],
            is_output_node=True,
        )

    REQUIRES = ("librosa", "soxr", "pedalboard", "matplotlib")  # checked by validate_inputs

    @classmethod
    def validate_inputs(cls, video=None, images=None, audio=None):
        return requirements.check(cls.REQUIRES)

    @classmethod
    def execute(cls, fps, tolerance, shifts, video=None, images=None, audio=None) -> io.NodeOutput:
        temps: list[str] = []
        try:
            path = _file_to_evaluate(video, images, audio, fps, temps)
            result = metrics_report.evaluate_video(path, tolerance=tolerance, n_shifts=shifts, **_cut_detector(),
                                                   check_interrupt=runtime.Progress.check_interrupt)
            raw = encoders.encode_video_curve(path, encoders.get_encoder("pixels"),
                                              check_interrupt=runtime.Progress.check_interrupt)
        finally:
            files.remove_files(temps)
        if _cut_detector():
            result["note"] = "; ".join(n for n in (result.get("note"), NO_SCENEDETECT) if n)
        report = _report(result)
        image = convert.image_tensor(
            plot.plot_curves(
                [("event curve", raw)],
                marks=[("cuts", result["cuts"]), ("beats", result["beats"])],
                title=f"SCH {_fmt(result['sch'])}  chance {_fmt(result['sch_null'])}",
                height=360,
            )
        )
        return io.NodeOutput(report, image, ui={"text": (report,), **_image_ui(image, cls)})


NO_SCENEDETECT = ("cuts from the built-in colour-histogram detector (every frame): PySceneDetect is not installed, "
                  "so this is not exactly the paper's Algorithm 1 (pip install scenedetect for that)")


def _cut_detector() -> dict:
    """Algorithm 1's PySceneDetect when installed (an optional extra), else our histogram detector on every frame."""
    try:
        import scenedetect  # noqa: F401

        return {}
    except ImportError:
        return {"cut_detector": "histogram", "detector_options": {"sample_fps": None}}


def _image_ui(image, cls) -> dict:
    preview = ui.PreviewImage(image, cls=cls)
    as_dict = getattr(preview, "as_dict", None)
    return as_dict() if callable(as_dict) else {}


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _report(r: dict) -> str:
    lines = [
        f"Scene Cut Hit: {_fmt(r['sch'])}  (chance level "
        f"{_fmt(r['sch_null'])}, above chance {_fmt(r['sch_minus_null'])})",
        f"cuts: {r['n_cuts']}  beats: {r['n_beats']}  tolerance: "
        f"±{r['tolerance']} s  duration: {_fmt(r['duration'])} s",
        "cut times: " + ", ".join(f"{c:.2f}" for c in r["cuts"]),
    ]
    if r.get("trackers"):  # Beat This! installed with its weights: how it agrees with librosa's beats
        lines.append(agreement_line(r["trackers"]))
    if r.get("note"):
        lines.append(f"note: {r['note']}")
    return "\n".join(lines)


def _file_to_evaluate(video, images, audio, fps, temps: list[str]) -> str:
    """A file holding the frames and the music to evaluate (temporary ones go in ``temps``)."""
    path = convert.video_or_images_file(video, images, fps, temps, node="Sync Report")
    if audio is not None:
        wave, sr = convert.audio_to_numpy(audio)
        muxed = files.temp_video_path("v2m-eval-")
        temps.append(muxed)
        media.mux_audio(path, wave, sr, muxed)
        path = muxed
    return path


NODES = [SyncReport]
