"""V2M_AlignMusic on the fake host, and ``v2m-zero align`` on the command line."""

import hashlib
import json
import os

import numpy as np
import pytest
import torch

from v2m_zero.core import cli
from v2m_zero.core.eval import synth
from v2m_zero.core.errors import V2MError
from v2m_zero.core.eval.sch import beat_times
from v2m_zero.core.timing import media

SR = 44100
CUTS = [2.1, 4.0, 6.6]


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    root = tmp_path_factory.mktemp("align_cli")
    clip = synth.make_cut_clip(str(root / "v.mp4"), cut_times=CUTS, duration=8.0, fps=24, size=(96, 54), motion=False,
                               audio=synth.click_track([0.5, 1.5], 8.0), sample_rate=SR)
    wave, _, _ = synth.music_track(12.0, bpm=120, first_beat=0.25, seed=1)
    song = media.write_audio(str(root / "song.wav"), wave, SR)
    return clip, song, wave


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _audio(wave):
    return {"waveform": torch.from_numpy(np.ascontiguousarray(wave))[None], "sample_rate": SR}


def _kw(**kw):
    base = dict(max_stretch=0.08, edits="none", start_seconds=0.0, end_fade=1.0, loop_short_music=True,
                stretcher="auto")
    base.update(kw)
    return base


def test_node_aligns_any_audio_to_a_curve_or_a_video(host, material):
    from comfy_api.latest import InputImpl

    from v2m_zero.core.align import pipeline
    from v2m_zero.nodes import align

    clip, _song, wave = material
    raw, _, _ = pipeline.video_hit_points(clip.path)
    out = align.AlignMusic.execute(audio=_audio(wave), curve=raw, **_kw())
    audio, image, report = out.args
    assert audio["sample_rate"] == SR and tuple(audio["waveform"].shape) == (1, 2, round(clip.duration * SR))
    heard = beat_times(audio["waveform"][0].numpy().mean(axis=0), SR)
    assert all(np.min(np.abs(heard - c)) <= 0.05 for c in clip.cut_times)
    assert "Scene Cut Hit on 3 hit points" in report and "chance level" in report and "tempo change" in report
    assert image.shape[0] == 1 and image.shape[-1] == 3
    import fake_comfy  # on the node: the report as text, and a player for the aligned music

    assert out.ui["text"] == (report,) and any(k == "audio" and v is audio for k, v in fake_comfy.STATE["previews"])

    assert "scene cuts: not measured (connect the video" in report  # a curve alone has no cuts

    mono = _audio(wave.mean(axis=0, keepdims=True))  # a mono AUDIO, hit points straight from the VIDEO
    out2 = align.AlignMusic.execute(audio=mono, video=InputImpl.VideoFromFile(clip.path), **_kw(edits="beats"))
    assert tuple(out2.args[0]["waveform"].shape) == (1, 1, round(clip.duration * SR))
    try:
        import scenedetect  # noqa: F401
    except ImportError:
        assert "not measured" in out2.args[2]
    else:
        assert f"Scene Cut Hit on {len(CUTS)} scene cuts (PySceneDetect) on the delivered audio (44100 Hz)" \
            in out2.args[2]


def test_node_delivers_and_measures_at_the_delivery_rate(host, material):
    """An 11.025 kHz AUDIO is aligned, handed on and measured at 48 kHz, the rate a video will hold."""
    from v2m_zero.core.align import pipeline
    from v2m_zero.core.eval.sch import scene_cut_hit
    from v2m_zero.core.timing.media import resample_audio
    from v2m_zero.nodes import align

    clip, _song, wave = material
    raw, hits, _ = pipeline.video_hit_points(clip.path)
    low = {"waveform": torch.from_numpy(resample_audio(wave, SR, 11025))[None], "sample_rate": 11025}
    audio, _image, report = align.AlignMusic.execute(audio=low, curve=raw, **_kw()).args
    assert audio["sample_rate"] == 48000 and audio["waveform"].shape[-1] == round(clip.duration * 48000)
    heard = scene_cut_hit(hits, beat_times(audio["waveform"][0].numpy().mean(axis=0), 48000))
    assert "delivered audio (48000 Hz)" in report and f"-> {heard:.2f} (" in report


def test_node_needs_hit_points_and_music(host, material):
    from v2m_zero.nodes import align

    _clip, _song, wave = material
    with pytest.raises(V2MError, match="connect a curve"):
        align.AlignMusic.execute(audio=_audio(wave), **_kw())
    from v2m_zero.core.align import pipeline

    raw, _, _ = pipeline.video_hit_points(material[0].path)
    with pytest.raises(V2MError, match="silent"):
        align.AlignMusic.execute(audio=_audio(np.zeros((2, SR * 4), np.float32)), curve=raw, **_kw())


def test_cli_align_writes_video_audio_plot_and_report(tmp_path, material, capsys):
    clip, song, _ = material
    before = (_sha(clip.path), _sha(song))
    out, wav, png, js = (tmp_path / n for n in ("o.mp4", "o.wav", "o.png", "o.json"))
    assert cli.main(["align", clip.path, song, "--out", str(out), "--audio-out", str(wav), "--plot", str(png),
                     "--json", str(js), "--edits", "beats", "--slack", "0.05", "--cuts", "hits"]) == 0
    text = capsys.readouterr().out
    assert "Scene Cut Hit on 3 hit points" in text and str(out) in text
    assert (_sha(clip.path), _sha(song)) == before  # inputs untouched
    info = media.probe_video(str(out))
    assert info.has_audio and info.duration == pytest.approx(clip.duration) and info.frame_count == round(8.0 * 24)
    music, sr = media.decode_audio(str(wav))
    assert music.shape == (2, round(clip.duration * sr))
    report = json.loads(js.read_text())
    assert report["sync"]["hits"]["sch_after"] == 1.0 and report["max_tempo_change"] <= 0.08
    assert report["sync"]["cuts"] is None and "scene cuts: not measured (--cuts hits" in text  # hits are not cuts
    assert os.path.getsize(png) > 1000


def test_cli_report_is_the_delivered_files_at_its_rate(tmp_path, material, capsys):
    """11.025 kHz music into a 48 kHz file: every SCH printed is Algorithm 1's on the file written."""
    pytest.importorskip("scenedetect")
    from v2m_zero.core.eval.report import evaluate_video
    from v2m_zero.core.timing.media import resample_audio

    clip, _song, wave = material
    low = media.write_audio(str(tmp_path / "song11k.wav"), resample_audio(wave, SR, 11025), 11025)
    out, js = tmp_path / "o.mp4", tmp_path / "o.json"
    assert cli.main(["align", clip.path, low, "--out", str(out), "--json", str(js), "--edits", "beats"]) == 0
    text = capsys.readouterr().out
    sync = json.loads(js.read_text())["sync"]
    truth = evaluate_video(str(out))  # paper Algorithm 1 on the delivered mp4
    assert media.decode_audio(str(out))[1] == 48000 and sync["rate"] == 48000
    assert sync["cuts"] == pytest.approx(truth["cuts"]) and len(sync["cuts"]) == len(CUTS)
    assert sync["beats_after"] == pytest.approx(truth["beats"], abs=1e-6)
    assert sync["sch_after"] == pytest.approx(truth["sch"]) and sync["chance_after"] == pytest.approx(
        truth["sch_null"], abs=0.02)
    line = next(x for x in text.splitlines() if x.startswith(f"Scene Cut Hit on {len(CUTS)} scene cuts"))
    assert "delivered audio (48000 Hz)" in line and f"-> {truth['sch']:.2f} (" in line
    hits_line = next(x for x in text.splitlines() if "hit points (event-curve peaks" in x)
    assert f"-> {sync['hits']['sch_after']:.2f} (" in hits_line


def test_the_aligners_own_figure_is_algorithm_1_on_its_output_file(tmp_path, material, capsys, monkeypatch):
    """The listening check hears the file sample for sample: the beats it heard are the beats Algorithm 1
    finds in the written mp4, so the "% heard" it prints is the file's Scene Cut Hit on the hit points."""
    from v2m_zero.core.align import pipeline
    from v2m_zero.core.eval.report import evaluate_video
    from v2m_zero.core.eval.sch import scene_cut_hit
    from v2m_zero.core.timing.media.mux import delivered_audio

    clip, song, wave = material
    real, listened = pipeline.as_encoded, []
    monkeypatch.setattr(pipeline, "as_encoded", lambda a, sr: listened.append(real(a, sr)) or listened[-1])
    out, js = tmp_path / "o.mp4", tmp_path / "o.json"
    assert cli.main(["align", clip.path, song, "--out", str(out), "--json", str(js), "--cuts", "hits"]) == 0
    text = capsys.readouterr().out
    in_file = media.decode_audio(str(out))[0]
    assert any(np.array_equal(x, in_file) for x in listened)  # the kept rendering was heard as the file holds it
    heard = json.loads(js.read_text())["heard"]
    truth = evaluate_video(str(out), cuts=[1.0])  # Algorithm 1's beats of the delivered file
    assert heard["encoded"] and heard["beats"] == pytest.approx(truth["beats"], abs=1e-6)
    _raw, hits, strengths = pipeline.video_hit_points(clip.path)
    file_sch = scene_cut_hit(hits, truth["beats"], weights=strengths)
    assert heard["sch"] == pytest.approx(file_sch, abs=1e-9)
    assert f"{100 * file_sch:.0f} % heard by the beat tracker in an AAC rendering" in text
    # what it listens to is the file's audio sample for sample (the mux's mastering, encoder and decoding)
    music = media.fit_length(wave, round(clip.duration * SR))
    mixed = tmp_path / "m.mp4"
    media.mux_audio(clip.path, music, SR, str(mixed))
    mine, rate = delivered_audio(music, SR, music.shape[1])
    theirs, file_rate = media.decode_audio(str(mixed))
    assert rate == file_rate == SR and np.array_equal(mine, theirs)


def test_the_aligner_listens_on_the_cuts_the_report_counts(tmp_path, material):
    """With PySceneDetect's cuts known, the aligner hears each rendering on them too: its own figure on the
    cuts is the report's Scene Cut Hit (and chance level) on the delivered file."""
    pytest.importorskip("scenedetect")
    clip, song, _wave = material
    out, js = tmp_path / "o.mp4", tmp_path / "o.json"
    assert cli.main(["align", clip.path, song, "--out", str(out), "--json", str(js)]) == 0
    got = json.loads(js.read_text())
    sync, on_cuts = got["sync"], got["heard"]["cuts"]
    assert sync["cuts"] and on_cuts is not None
    assert on_cuts["sch"] == pytest.approx(sync["sch_after"], abs=1e-9)
    assert on_cuts["chance"] == pytest.approx(sync["chance_after"], abs=1e-9)


def test_cli_align_refuses_noise_in_one_line_and_writes_nothing(tmp_path, material, capsys):
    clip, _song, _ = material
    noise = media.write_audio(str(tmp_path / "noise.wav"),
                              (0.3 * np.random.default_rng(0).standard_normal((2, SR * 6))).astype(np.float32), SR)
    out = tmp_path / "o.mp4"
    assert cli.main(["align", clip.path, noise, "--out", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "error" in line]
    assert len(err) == 1 and err[0].startswith("v2m-zero align: error:") and "no steady beat" in err[0]
    assert not out.exists()
    assert cli.main(["align", clip.path, noise, "--out", clip.path]) == 2  # never overwrites an input
    with pytest.raises(SystemExit) as bad:
        cli.main(["align", clip.path, noise, "--out", str(out), "--max-stretch", "0.9"])
    assert bad.value.code == 2
    with pytest.raises(SystemExit) as bad:
        cli.main(["align", clip.path, noise, "--out", str(out), "--slack", "0.5"])
    assert bad.value.code == 2


def test_load_music_offers_the_example_song_and_confines_files(host):
    import folder_paths

    from v2m_zero.core import examples
    from v2m_zero.nodes import align

    schema = align.LoadMusic.define_schema()
    assert examples.DEMO_SONG_NAME in schema.inputs[0].options
    # named and flagged like core Load Audio's combo: the frontend gives exactly that one an upload button
    assert schema.inputs[0].id == "audio" and schema.inputs[0].extra["upload"] == "audio_upload"
    assert align.LoadMusic.validate_inputs(audio=examples.DEMO_SONG_NAME) is True
    out = align.LoadMusic.execute(audio=examples.DEMO_SONG_NAME)
    audio, duration = out.args
    path = os.path.join(folder_paths.get_input_directory(), examples.DEMO_SONG_NAME)
    assert os.path.isfile(path) and duration == pytest.approx(examples.DEMO_SONG["duration"], abs=1e-3)
    assert audio["waveform"].shape[:2] == (1, 2) and audio["sample_rate"] == examples.DEMO_SONG["sample_rate"]
    # a steady groove: the beat tracker hears its tempo (or double / half of it)
    beats = beat_times(audio["waveform"][0].mean(0).numpy(), audio["sample_rate"])
    period = float(np.median(np.diff(beats)))
    assert min(abs(period - 60 / examples.DEMO_SONG["bpm"] * f) for f in (0.5, 1, 2)) < 0.03
    # outside the input folder, or missing: refused with the reason, before the run
    assert "outside" in str(align.LoadMusic.validate_inputs(audio="../../etc/passwd"))
    assert "not found" in str(align.LoadMusic.validate_inputs(audio="nope.wav"))
    with pytest.raises(V2MError, match="audio 'nope.wav' not found"):
        align.LoadMusic.execute(audio="nope.wav")
