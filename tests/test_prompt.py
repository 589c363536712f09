"""Music prompts from video (issue 6): tiny random Whisper / LLaVA / Llama built offline."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest

from v2m_zero.core import prompt as P
from v2m_zero.core.prompt import pipeline as PL
from v2m_zero.core.errors import MediaError, ModelError, V2MError
from v2m_zero.core.timing.cuts import HistogramCuts
from tiny_models import tiny_gemma3, tiny_llava, tiny_llm, tiny_whisper

pytest.importorskip("torch")
pytest.importorskip("transformers")

CUTS = (2.0, 4.0)
DURATION = 6.0
FPS = 24


# ------------------------------------------------------------------------------------------
# test media


def _write_clip(path: str, *, audio: bool = True) -> str:
    """160×90, 24 fps, 6 s; three flat-colour scenes (with noise) cut at 2 s and 4 s; a tone."""
    import av

    rng = np.random.default_rng(0)
    colours = [(200, 40, 40), (40, 180, 60), (40, 60, 200)]
    with av.open(path, "w") as c:
        vs = c.add_stream("mpeg4", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 160, 90, "yuv420p"
        as_ = None
        if audio:
            as_ = c.add_stream("aac", rate=44100)
            as_.layout = "stereo"
        for i in range(int(DURATION * FPS)):
            scene = sum(i / FPS >= t for t in CUTS)
            img = np.empty((90, 160, 3), np.uint8)
            img[:] = colours[scene]
            img = np.clip(img.astype(int) + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in vs.encode():
            c.mux(pkt)
        if as_ is not None:
            n = int(DURATION * 44100)
            t = np.arange(n) / 44100
            wave = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)
            stereo = np.stack([wave, wave])
            for start in range(0, n, 1024):
                block = np.ascontiguousarray(stereo[:, start : start + 1024])
                fr = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                fr.sample_rate = 44100
                fr.pts = start
                for pkt in as_.encode(fr):
                    c.mux(pkt)
            for pkt in as_.encode():
                c.mux(pkt)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    return _write_clip(str(tmp_path_factory.mktemp("media") / "clip.mp4"))


# ------------------------------------------------------------------------------------------
# tiny random models (real tokenizers/processors, saved and loaded through core.prompt)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("models")
    return {
        "asr": tiny_whisper(str(root / "whisper")),
        "vlm": tiny_llava(str(root / "llava")),
        "llm": tiny_llm(str(root / "qwen2")),
    }


# ------------------------------------------------------------------------------------------
# pacing and frames (no models)


def test_detect_cuts_and_pacing(clip):
    cuts = HistogramCuts().detect(clip)
    duration = cuts.duration
    assert duration == pytest.approx(DURATION, abs=0.1)
    assert len(cuts) == len(CUTS)
    for got, want in zip(cuts, CUTS):
        assert abs(got - want) <= 0.15  # sampled at 8 fps
    pace = P.pacing_from_cuts(cuts, duration)
    assert pace.cuts_per_minute == pytest.approx(20.0, rel=0.03)
    assert pace.bpm == 110 and pace.tempo == "upbeat"
    assert P.pacing_from_cuts([], 10.0).bpm == 60
    assert P.pacing_from_cuts([1.0] * 100, 10.0).bpm == 150  # clipped


def test_sample_frames_even_and_scenes(clip):
    even = P.sample_frames(clip, n=4)
    assert [round(t, 2) for t, _ in even] == [0.75, 2.25, 3.75, 5.25]
    assert all(img.size == (160, 90) and img.mode == "RGB" for _, img in even)
    # the frame at 0.75 s is the red scene, at 2.25 s the green one
    r, g, _ = np.asarray(even[0][1]).reshape(-1, 3).mean(0)
    assert r > 150 > g
    assert np.asarray(even[1][1]).reshape(-1, 3).mean(0)[1] > 130

    scenes = P.sample_frames(clip, n=8, mode="scenes", cut_times=list(CUTS))
    assert [round(t, 2) for t, _ in scenes] == [1.0, 3.0, 5.0]
    assert np.asarray(scenes[2][1]).reshape(-1, 3).mean(0)[2] > 150  # blue scene
    detected = P.sample_frames(clip, n=2, mode="scenes")  # cuts detected; keeps the 2 longest
    assert len(detected) == 2
    with pytest.raises(V2MError):
        P.sample_frames(clip, mode="random")


# ------------------------------------------------------------------------------------------
# errors and fallback


def test_fallback_without_models(clip, tmp_path):
    res = P.MusicPromptPipeline(cache_dir=str(tmp_path / "cache")).run(clip, user_text="  rainy city at night ")
    assert res.fallback_reason.startswith("no ASR/VLM/LLM configured: "
                                          "prompt built from your text and the video's pacing")
    assert "20.0 cuts/min → ~110 BPM" in res.fallback_reason
    assert res.prompt.startswith("Rainy city at night.")
    assert "Upbeat tempo around 110 BPM" in res.prompt
    assert res.used_models == {} and res.captions == [] and res.transcript == ""
    assert not res.cached
    again = P.MusicPromptPipeline(cache_dir=str(tmp_path / "cache")).run(clip, user_text="rainy city at night")
    assert again.cached and again.prompt == res.prompt
    assert P.MusicPromptPipeline().run(clip).prompt.startswith("Instrumental background music for a video.")


def test_missing_folders_and_files(clip, tmp_path):
    missing = tmp_path / "nowhere" / "gemma-3-4b-it"
    with pytest.raises(ModelError, match="VLM model folder not found: .*gemma-3-4b-it"):
        P.MusicPromptPipeline(vlm_dir=str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="has no config.json"):
        P.MusicPromptPipeline(llm_dir=str(empty))
    with pytest.raises(MediaError, match="video file not found"):
        P.MusicPromptPipeline().run(str(tmp_path / "missing.mp4"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "qwen2"}')
    with pytest.raises(ModelError, match="cannot load the LLM model from .*broken"):
        P.load_model("llm", str(broken))


def test_video_without_audio_gives_empty_transcript(models, tmp_path, monkeypatch):
    silent = _write_clip(str(tmp_path / "silent.mp4"), audio=False)
    monkeypatch.setattr(PL, "transcribe", lambda *a, **kw: pytest.fail("no audio, nothing to transcribe"))
    res = P.MusicPromptPipeline(asr_dir=models["asr"]).run(silent, user_text="quiet")
    assert res.transcript == "" and res.used_models == {"asr": models["asr"]}
    assert res.fallback_reason.startswith("no LLM configured: ")


# ------------------------------------------------------------------------------------------
# the stages with tiny models


def test_transcribe_chunks_and_detects_language(models):
    lm = P.load_model("asr", models["asr"])
    calls = []
    generate = lm.model.generate

    def counting(features, **kw):
        calls.append((features.shape[0], kw.get("language")))
        return generate(features, **kw)

    lm.model.generate = counting
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((2, 44100 * 65))).astype(np.float32)  # stereo, 44.1 kHz, 65 s
    out = P.transcribe(audio, 44100, model=lm, batch_size=2)
    assert out["language"] in {"en", "fr", "de"}
    assert isinstance(out["text"], str)
    assert calls == [(2, out["language"]), (1, out["language"])]  # 3 windows of ≤ 30 s, batches of 2
    calls.clear()
    assert P.transcribe(audio[0, : 44100 * 5], 44100, model=lm, language="en")["language"] == "en"
    assert calls == [(1, "en")]
    calls.clear()
    assert P.transcribe(np.zeros(16000 * 5, np.float32), 16000, model=lm) == {"text": "", "language": None}
    assert calls == []  # silence is skipped, no model call


def test_pipeline_end_to_end_and_cache(clip, models, tmp_path, monkeypatch):
    seen = {}

    def spy(name):
        real = getattr(PL, name)

        def wrapper(*a, **kw):
            out = real(*a, **kw)
            seen.setdefault(name, []).append((a, kw, out))
            return out

        monkeypatch.setattr(PL, name, wrapper)

    for name in ("transcribe", "caption_frames", "summarise_captions", "music_prompt"):
        spy(name)
    steps = []
    cache = tmp_path / "cache"
    pipe = P.MusicPromptPipeline(models["asr"], models["vlm"], models["llm"], cache_dir=str(cache), n_frames=3,
                                 caption_tokens=8, summary_tokens=8, prompt_tokens=12)
    res = pipe.run(clip, user_text="a sunny walk", progress=lambda i, n, m: steps.append((i, n)))
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert res.used_models == {"asr": models["asr"], "vlm": models["vlm"], "text": models["llm"]}
    assert not res.cached
    # each stage ran and its output flowed into the next
    (_, _, tr), = seen["transcribe"]
    assert res.transcript == tr["text"] and res.transcript  # the clip's tone, "transcribed"
    assert res.language == tr["language"] in {"en", "fr", "de"}
    (_, _, caps), = seen["caption_frames"]
    assert res.captions == caps and len(caps) == 3 and all(caps)
    assert res.frame_times == [1.0, 3.0, 5.0]
    (args, kw, summary), = seen["summarise_captions"]
    assert args[0] == caps and kw["model"].kind == "llm" and res.summary == summary
    (args, kw, prompt), = seen["music_prompt"]
    assert args == (res.transcript, res.summary) and kw["user_text"] == "a sunny walk"
    assert kw["pacing"].bpm == 110
    assert res.summary and res.prompt  # random weights write garbage, but something
    assert res.prompt == prompt and res.fallback_reason is None

    # second run: cache hit, no model loaded
    def no_load(*a, **kw):
        raise AssertionError("a model was loaded on a cache hit")

    monkeypatch.setattr(PL, "load_model", no_load)
    hit = P.MusicPromptPipeline(models["asr"], models["vlm"], models["llm"], cache_dir=str(cache), n_frames=3,
                                caption_tokens=8, summary_tokens=8,
                                prompt_tokens=12).run(clip, user_text="a sunny walk")
    assert hit.cached and hit.prompt == res.prompt and hit.captions == res.captions
    assert [f for f in os.listdir(cache) if not f.endswith(".json")] == []  # no temp files left
    # a changed setting or text misses the cache
    with pytest.raises(AssertionError, match="loaded on a cache hit"):
        P.MusicPromptPipeline(models["asr"], models["vlm"], models["llm"], cache_dir=str(cache), n_frames=2,
                              caption_tokens=8, summary_tokens=8, prompt_tokens=12).run(clip, user_text="a sunny walk")
    with pytest.raises(AssertionError, match="loaded on a cache hit"):
        pipe.run(clip, user_text="a rainy walk")


def test_vlm_writes_the_text_when_no_llm(clip, models, monkeypatch):
    loads = []
    real = P.load_model

    def counting(kind, path, **kw):
        loads.append(kind)
        return real(kind, path, **kw)

    monkeypatch.setattr(PL, "load_model", counting)
    res = P.MusicPromptPipeline(vlm_dir=models["vlm"], n_frames=2, frame_mode="scenes", caption_tokens=6,
                                summary_tokens=6, prompt_tokens=10).run(clip)
    assert loads == ["vlm"]  # loaded once, kept for the summary and the prompt
    assert res.used_models == {"vlm": models["vlm"], "text": models["vlm"]}
    assert len(res.captions) == 2 and res.frame_times == [1.0, 3.0]  # 2 of the 3 equal scenes
    assert res.prompt and res.transcript == ""

    loads.clear()
    res = P.MusicPromptPipeline(vlm_dir=models["vlm"], n_frames=1, use_vlm_for_text=False, caption_tokens=4).run(clip)
    assert loads == ["vlm"] and len(res.captions) == 1
    assert res.fallback_reason.startswith("no LLM configured (and the VLM is not used for text)")


def test_gemma3_does_all_three_steps(clip, tmp_path):
    gemma = tiny_gemma3(str(tmp_path / "gemma-3-tiny"))
    res = P.MusicPromptPipeline(vlm_dir=gemma, n_frames=2, caption_tokens=6, summary_tokens=6,
                                prompt_tokens=10).run(clip, user_text="a road trip")
    assert res.used_models == {"vlm": gemma, "text": gemma}
    assert len(res.captions) == 2 and all(res.captions) and res.summary and res.prompt
    assert res.fallback_reason is None


def test_empty_llm_answer_falls_back(clip, models, monkeypatch):
    monkeypatch.setattr(PL, "music_prompt", lambda *a, **kw: "")
    res = P.MusicPromptPipeline(llm_dir=models["llm"]).run(clip, user_text="slow piano")
    assert res.used_models == {"text": models["llm"]}
    assert res.fallback_reason.startswith("the text model returned an empty prompt")
    assert res.prompt.startswith("Slow piano.") and "110 BPM" in res.prompt


def test_llm_without_chat_template(models, tmp_path):
    from transformers import AutoTokenizer

    path = tmp_path / "base"
    import shutil

    shutil.copytree(models["llm"], path)
    tok = AutoTokenizer.from_pretrained(str(path))
    tok.chat_template = None
    tok.save_pretrained(str(path))
    for f in ("chat_template.jinja", "chat_template.json"):
        if (path / f).exists():
            (path / f).unlink()
    lm = P.load_model("llm", str(path))
    assert not getattr(lm.processor, "chat_template", None)
    out = P.summarise_captions(["a red room", "a green field"], model=lm, max_new_tokens=5)
    assert isinstance(out, str)


# ------------------------------------------------------------------------------------------
# CLI


def test_cli_fallback(clip, tmp_path, capsys):
    from v2m_zero.core.commands import prompt as cmd

    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    out_json = tmp_path / "out" / "prompt.json"
    args = parser.parse_args([clip, "--text", "dreamy synths", "--json", str(out_json), "-v"])
    assert cmd.run(args) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().startswith("Dreamy synths.") and "110 BPM" in captured.out
    assert "no ASR/VLM/LLM configured" in captured.err and "pacing: 20.0 cuts/min" in captured.err
    data = json.loads(out_json.read_text())
    assert data["prompt"] == captured.out.strip() and data["bpm_hint"] == 110

    args = parser.parse_args([clip, "--llm", str(tmp_path / "missing-llm")])
    with pytest.raises(ModelError, match="missing-llm"):
        cmd.run(args)
