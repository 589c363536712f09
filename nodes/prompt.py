"""Music prompt from the video (paper Appendix B, Algorithm 2): transcript + captions + LLM."""

from __future__ import annotations

import os

from comfy_api.latest import io, ui

from ..core import prompt
from .host import convert, files, models, requirements, runtime

CATEGORY = "V2M-Zero/prompt"
NONE = "none"


def _choices() -> list[str]:
    return [NONE] + models.model_choices("prompt", folders=True)


def _dir(name: str) -> str | None:
    return None if not name or name == NONE else models.model_path("prompt", name)


class MusicPrompt(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        choices = _choices()
        return io.Schema(
            node_id="V2M_MusicPrompt",
            display_name="Music Prompt from Video (V2M)",
            category=CATEGORY,
            description="Transcribe speech (Whisper), caption sampled frames (a VLM), summarise "
                        "and write a music prompt (an LLM). With no model chosen it returns "
                        "your text plus a tempo hint from the video's cut rate, and says so.",
            inputs=[
                io.Video.Input("video", optional=True, tooltip="The video (or connect images + fps)."),
                io.Image.Input("images", optional=True, tooltip="Frames from a video-generation node; also set fps."),
                io.Audio.Input("audio", optional=True, tooltip="Speech to transcribe, when it is not in the video."),
                io.String.Input("user_text", default="", multiline=True,
                                tooltip="Your own words about the music; kept in the prompt."),
                io.Float.Input("fps", default=24.0, min=0.01, max=1000.0, step=0.01,
                               tooltip="Frame rate of the images input."),
                io.Combo.Input("asr_model", options=choices, default=NONE,
                               tooltip="Whisper folder in models/v2m/prompt/ (none: no transcript)."),
                io.Combo.Input("vlm_model", options=choices, default=NONE,
                               tooltip="Image-text-to-text model folder (paper: Gemma "
                                       "3 4B-it; light: SmolVLM2) for frame captions."),
                io.Combo.Input("llm_model", options=choices, default=NONE,
                               tooltip="LLM folder for the summary and the prompt "
                                       "(none: the VLM writes them, if chosen)."),
                io.Int.Input("frames", default=8, min=1, max=64, tooltip="Frames to caption."),
                io.Combo.Input("frame_mode", options=["even", "scenes"], default="even",
                               tooltip="even: spread over the video; scenes: the middle of each detected scene."),
            ],
            outputs=[io.String.Output(display_name="prompt")],
        )

    REQUIRES = ("transformers", "PIL")  # checked by validate_inputs

    @classmethod
    def validate_inputs(cls, video=None, images=None, audio=None):
        return requirements.check(cls.REQUIRES)

    @classmethod
    def execute(cls, user_text, fps, asr_model, vlm_model, llm_model, frames, frame_mode, video=None, images=None,
                audio=None) -> io.NodeOutput:
        import folder_paths

        temps: list[str] = []
        try:
            path = convert.video_or_images_file(video, images, fps, temps, node="Music Prompt")
            device = "cpu"
            if any(m != NONE for m in (asr_model, vlm_model, llm_model)):
                import comfy.model_management

                device = str(comfy.model_management.get_torch_device())
            cache = os.path.join(folder_paths.get_temp_directory(), "v2m_prompt_cache")
            pipe = prompt.MusicPromptPipeline(
                _dir(asr_model), _dir(vlm_model), _dir(llm_model), device=device, cache_dir=cache, n_frames=frames,
                frame_mode=frame_mode
            )
            bar = runtime.Progress(4)

            def progress(step, total, message=""):
                bar.check_interrupt()
                bar(step, total)

            wave = convert.audio_to_numpy(audio) if audio is not None else None
            result = pipe.run(path, audio=wave, user_text=user_text, progress=progress)
        finally:
            files.remove_files(temps)
            runtime.release_memory()
        shown = [f"prompt: {result.prompt}"]
        if result.fallback_reason:
            shown.append(f"note: {result.fallback_reason}")
        if result.transcript:
            shown.append(f"transcript: {result.transcript}")
        for i, c in enumerate(result.captions or []):
            shown.append(f"caption {i + 1}: {c}")
        if result.summary:
            shown.append(f"summary: {result.summary}")
        return io.NodeOutput(result.prompt, ui=ui.PreviewText("\n".join(shown)))


NODES = [MusicPrompt]
