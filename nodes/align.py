"""Bring your own music: retime any AUDIO so its beats land on the video's hit points."""

from __future__ import annotations

from comfy_api.latest import io, ui

from ..core import examples
from ..core.align import pipeline, reporting
from ..core.align.render import STRETCHERS
from ..core.align.timemap import EDIT_KINDS, AlignOptions
from ..core.errors import V2MError
from ..core.eval.beats import agreement_line, tracker_agreement
from ..core.timing import media
from .host import convert, files, requirements, runtime
from .types import CurveType

CATEGORY = "V2M-Zero/audio"


class LoadMusic(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V2M_LoadAudio",
            display_name="Load Music (V2M)",
            category=CATEGORY,
            description="Load a music file from ComfyUI's input folder as AUDIO (its "
                        "own sample rate and channels), or the pack's example song.",
            inputs=[
                # named `audio` like core Load Audio's: the frontend gives its upload button and player only
                # to an audio_upload combo of that name (earlier prompts' `file` is renamed: host/legacy.py)
                io.Combo.Input("audio", options=files.input_audio_choices(), upload=io.UploadType.audio,
                               tooltip="An audio file in ComfyUI's input folder (upload one with the button). "
                                       f"{examples.DEMO_SONG_NAME}: the pack's example song (16 s, 96 BPM, made "
                                       "by the pack's own code), written into the input folder on first use."),
            ],
            outputs=[io.Audio.Output(display_name="audio"), io.Float.Output(display_name="duration")],
        )

    @classmethod
    def execute(cls, audio) -> io.NodeOutput:
        path = files.input_file_path(audio, "audio")
        wave, sr = media.decode_audio(path)
        out = convert.numpy_to_audio(wave, sr)
        return io.NodeOutput(out, float(wave.shape[-1] / sr), ui=ui.PreviewAudio(out, cls=cls))

    @classmethod
    def fingerprint_inputs(cls, audio):
        return files.input_fingerprint(audio, "audio")

    @classmethod
    def validate_inputs(cls, audio):
        ok = requirements.check(("av",))
        return files.validate_input_file(audio, "audio") if ok is True else ok


MUSIC_FROM = ("file", "audio input")


class MusicSource(io.ComfyNode):
    """Music from any source for Align Music: a file (the example song on a fresh host), or a connected AUDIO."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V2M_MusicSource",
            display_name="Music Source (V2M)",
            category=CATEGORY,
            description="Where the music to align comes from: a file from ComfyUI's input folder (the pack's "
                        "example song until you upload one), or any connected AUDIO: Decode Latents after the "
                        "Sampler on a Stable Audio base, ComfyUI's own Stable Audio nodes (VAE Decode Audio), Load "
                        "Audio. 'file' never runs what is connected to 'audio'.",
            inputs=[
                io.Combo.Input("music_from", options=list(MUSIC_FROM), default="file",
                               tooltip="file: the file below; audio input: the connected AUDIO (generated music)."),
                io.Combo.Input("file", options=files.input_audio_choices(), upload=io.UploadType.audio,
                               tooltip="An audio file in ComfyUI's input folder. "
                                       f"{examples.DEMO_SONG_NAME}: the pack's example song (16 s, 96 BPM)."),
                io.Audio.Input("audio", optional=True, lazy=True,
                               tooltip="Music from another node; used when music_from is 'audio input'."),
            ],
            outputs=[io.Audio.Output(display_name="audio")],
        )

    @classmethod
    def check_lazy_status(cls, music_from, file, audio=None):
        return ["audio"] if music_from == "audio input" and audio is None else []

    @classmethod
    def execute(cls, music_from, file, audio=None) -> io.NodeOutput:
        if music_from == "audio input":
            if audio is None:
                raise V2MError("Music Source: music_from is 'audio input' but no AUDIO is connected: connect Decode "
                               "Latents (or any AUDIO), or choose 'file'")
            return io.NodeOutput(audio, ui={"text": ("music: the connected audio",)})
        wave, sr = media.decode_audio(files.input_file_path(file, "audio"))
        return io.NodeOutput(convert.numpy_to_audio(wave, sr), ui={"text": (f"music: {file}",)})

    @classmethod
    def fingerprint_inputs(cls, music_from, file, audio=None):
        return files.input_fingerprint(file, "audio") if music_from == "file" else None

    @classmethod
    def validate_inputs(cls, music_from, file, audio=None):
        return files.validate_input_file(file, "audio") if music_from == "file" else True


class AlignMusic(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V2M_AlignMusic",
            display_name="Align Music to Cuts (V2M)",
            category=CATEGORY,
            description="Retime your own music (any AUDIO: Load Audio, Stable Audio, Decode Latents) so its beats, "
                        "bar lines and strong onsets land on the video's hit points: bounded tempo changes, a beat "
                        "dropped or repeated at a quiet point where stretching cannot reach a cut, looping at bar "
                        "lines when the music is short, an ending on a bar line. The result lasts exactly the "
                        "video's duration. Needs no model weights.",
            inputs=[
                io.Audio.Input("audio", tooltip="The music to align (mono or stereo; its channels are kept)."),
                CurveType.Input("curve", optional=True, tooltip="The video's event curve (Event Curve node): its hit "
                                "points and their strengths. Or connect the video instead."),
                io.Video.Input("video", optional=True, tooltip="The video, when no curve is connected: hit points from "
                               "its event curve (weightless pixels encoder)."),
                io.Float.Input("max_stretch", default=0.08, min=0.0, max=0.25, step=0.01,
                               tooltip="Largest local tempo change (0.08 = ±8 %)."),
                io.Combo.Input("edits", options=list(EDIT_KINDS), default="beats",
                               tooltip="Drop or repeat a beat (or a bar) at a quiet point where "
                                       "stretching alone cannot reach a cut; none = tempo changes only."),
                io.Float.Input("start_seconds", default=0.0, min=0.0, max=36000.0, step=0.1,
                               tooltip="Where in the music the output starts (it may start up to 4 s later so that a "
                                       "beat lands on the first cut)."),
                io.Float.Input("end_fade", default=1.0, min=0.25, max=2.0, step=0.05,
                               tooltip="Seconds of fade after the final bar line."),
                io.Boolean.Input("loop_short_music", default=True, tooltip="Music shorter than the video is looped "
                                 "at bar lines; off: padded with silence."),
                io.Combo.Input("stretcher", options=list(STRETCHERS), default="auto",
                               tooltip="auto = Rubber Band (pedalboard); phase-vocoder = librosa, no extra package."),
                io.Boolean.Input("skip_intro", default=True, optional=True,
                                 tooltip="When the music's opening has no beat the beat tracker hears (its first "
                                         "beat more than 4 s after the start), cuts fall in it and no alignment "
                                         "from the start lands on them, the music may start at its first heard "
                                         "beat. Off: keep the opening."),
            ],
            outputs=[
                io.Audio.Output(display_name="audio"),
                io.Image.Output(display_name="plot"),
                io.String.Output(display_name="report"),
            ],
            is_output_node=True,
        )

    REQUIRES = ("librosa", "soxr", "pedalboard", "matplotlib")  # checked by validate_inputs

    @classmethod
    def validate_inputs(cls, audio=None, curve=None, video=None):
        return requirements.check(cls.REQUIRES)

    @classmethod
    def execute(cls, audio, max_stretch, edits, start_seconds, end_fade, loop_short_music, stretcher,
                curve=None, video=None, skip_intro=True) -> io.NodeOutput:
        wave, sr = convert.audio_to_numpy(audio)
        raw, hits, strengths, cuts, note = _hit_points_and_cuts(curve, video)
        options = AlignOptions(max_stretch=max_stretch, edits=edits, start=start_seconds, end_fade=end_fade,
                               extend="loop" if loop_short_music else "silence", skip_intro=bool(skip_intro))
        bar = runtime.Progress(1)
        result = pipeline.align_music(wave, sr, hits, raw.duration, strengths=strengths, options=options,
                                      stretcher=stretcher, cuts=cuts, progress=bar,
                                      check_interrupt=runtime.Progress.check_interrupt)
        rate = result.sample_rate  # the AUDIO handed on is at this rate, and measured at it
        before = pipeline.unaligned(wave, sr, raw.duration, start_seconds, output_rate=rate)
        sync = reporting.sync_report(cuts, before, result.audio, rate, raw.duration, hits=hits, cuts_note=note)
        report = reporting.format_report(result, sync)
        agreement = tracker_agreement(result.audio.mean(axis=0), rate, sync["beats_after"],
                                      check_interrupt=runtime.Progress.check_interrupt)
        if agreement:  # Beat This! installed with its weights: how it agrees with librosa's beats
            report += "\n" + agreement_line(agreement)
        image = convert.image_tensor(reporting.report_plot(raw, hits, sync, result, title=report.splitlines()[0]))
        out = convert.numpy_to_audio(result.audio, rate)  # handed on at the rate measured
        shown = {"text": (report,), **_ui(ui.PreviewImage(image, cls=cls)), **_ui(ui.PreviewAudio(out, cls=cls))}
        return io.NodeOutput(out, image, report, ui=shown)


def _ui(preview) -> dict:
    as_dict = getattr(preview, "as_dict", None)
    return as_dict() if callable(as_dict) else {}


def _scene_cuts(path):
    """(PySceneDetect's cut times, None), or (None, why not)."""
    from ..core.timing.cuts import detect_cuts

    try:
        return list(detect_cuts(path, "scenedetect")), None
    except V2MError as exc:
        return None, str(exc).split(". ")[0].split(": pip")[0] + ": pip install scenedetect"


def _hit_points_and_cuts(curve, video):
    """(curve, hit times, strengths, scene cuts or None, why no cuts) from a connected curve and/or the video."""
    if curve is None and video is None:
        raise V2MError("Align Music needs the video's hit points: connect a curve (Event Curve) or the video")
    if video is None:
        t, s = pipeline.curve_hit_points(curve)
        return curve, t, s, None, "connect the video too to count PySceneDetect's cuts"
    path, temporary = convert.video_to_file(video)
    try:
        if curve is not None:
            raw = curve
            t, s = pipeline.curve_hit_points(curve)
        else:
            raw, t, s = pipeline.video_hit_points(path, check_interrupt=runtime.Progress.check_interrupt)
        cuts, note = _scene_cuts(path)
    finally:
        if temporary:
            files.remove_files([path])
    return raw, t, s, cuts, note


NODES = [LoadMusic, AlignMusic, MusicSource]
