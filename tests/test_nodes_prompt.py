"""V2M_MusicPrompt on the fake host: the documented fallback, and tiny real models from models/v2m/prompt/."""

import os

import pytest

from v2m_zero.core.eval import synth


@pytest.fixture
def clip(tmp_path):
    return synth.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[1.0, 2.0, 3.0], duration=4.0, fps=24,
                               motion=False).path


def test_music_prompt_fallback_without_models(host, clip):
    from comfy_api.latest import InputImpl

    from v2m_zero.nodes import prompt as node

    out = node.MusicPrompt.execute(video=InputImpl.VideoFromFile(clip), user_text="warm synth pop", fps=24.0,
                                   asr_model="none", vlm_model="none", llm_model="none", frames=4, frame_mode="even")
    text = out.args[0]
    assert "warm synth pop" in text.lower() and "BPM" in text
    kind, shown = host.STATE["previews"][-1]
    assert kind == "text" and "no ASR/VLM/LLM configured" in shown


def test_music_prompt_with_tiny_models_from_models_folder(host, clip):
    import folder_paths
    import tiny_models as tp
    from comfy_api.latest import InputImpl

    from v2m_zero.nodes import prompt as node

    root = os.path.join(folder_paths.models_dir, "v2m", "prompt")
    tp.tiny_whisper(os.path.join(root, "whisper-tiny-random"))
    tp.tiny_llava(os.path.join(root, "vlm-tiny-random"))
    tp.tiny_llm(os.path.join(root, "llm-tiny-random"))
    options = node.MusicPrompt.define_schema().inputs[5].options
    assert {"none", "whisper-tiny-random", "vlm-tiny-random", "llm-tiny-random"} <= set(options)
    out = node.MusicPrompt.execute(video=InputImpl.VideoFromFile(clip), user_text="", fps=24.0,
                                   asr_model="whisper-tiny-random",
                                   vlm_model="vlm-tiny-random", llm_model="llm-tiny-random", frames=2,
                                   frame_mode="even")
    assert isinstance(out.args[0], str) and out.args[0].strip()
    shown = host.STATE["previews"][-1][1]
    assert "caption 1:" in shown and "caption 2:" in shown
    with pytest.raises(Exception, match="models/v2m/prompt|invalid model name"):
        node.MusicPrompt.execute(video=InputImpl.VideoFromFile(clip), user_text="", fps=24.0, asr_model="../../etc",
                                 vlm_model="none", llm_model="none", frames=2, frame_mode="even")
