"""Audio out: put music into a video at exactly the video's length."""

from __future__ import annotations

import os

from comfy_api.latest import InputImpl, io, ui

from ..core.timing import media
from ..core.outputs import OutputPlan
from .host import convert, files, requirements

CATEGORY = "V2M-Zero/audio"


class MuxAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V2M_MuxAudio",
            display_name="Mux Audio into Video (V2M)",
            category=CATEGORY,
            description="Replace a video's soundtrack: the video stream is copied (every frame kept), "
                        "the audio is AAC-encoded and padded or trimmed to exactly the video's duration.",
            inputs=[
                io.Video.Input("video", tooltip="The video to put the music into."),
                io.Audio.Input("audio", tooltip="The music; it is fitted to the video's duration."),
                io.Boolean.Input("save_mp4", default=True,
                                 tooltip="Also save the result in the output folder "
                                         "(otherwise it lives in the temp folder)."),
                io.String.Input("filename_prefix", default="video/V2M",
                                tooltip="Prefix for the saved file, as in Save Video."),
            ],
            outputs=[io.Video.Output(display_name="video")],
            is_output_node=True,
        )

    REQUIRES = ("av", "librosa", "soxr", "pedalboard")  # checked by validate_inputs

    @classmethod
    def validate_inputs(cls, video=None, audio=None):
        return requirements.check(cls.REQUIRES)

    @classmethod
    def execute(cls, video, audio, save_mp4, filename_prefix) -> io.NodeOutput:
        wave, sr = convert.audio_to_numpy(audio)
        if save_mp4:
            out, file, subfolder = files.output_path(filename_prefix, "mp4")
        else:
            out = files.temp_video_path("v2m-mux-")
        src, temporary = convert.video_to_file(video)
        try:
            mux = media.plan_mux(src, out)  # copy, or re-encode said in a note; impossible: refused before the work
            plan = OutputPlan()
            plan.input(src, "input video")
            plan.file(out, "the muxed video", extensions=(".mp4",), create_parent=True)
            with plan:
                media.mux_audio(src, wave, sr, out, plan=mux)
        finally:
            if temporary and os.path.exists(src):
                os.unlink(src)
        preview = ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)]) if save_mp4 else None
        if mux.note:  # the re-encode said on the node (web/v2m_zero.js draws "text"), the video preview kept
            as_dict = getattr(preview, "as_dict", None)
            preview = {**(as_dict() if callable(as_dict) else {}), "text": (mux.note,)}
        return io.NodeOutput(InputImpl.VideoFromFile(out), ui=preview)


NODES = [MuxAudio]
