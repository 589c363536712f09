"""Evaluation metrics: Scene Cut Hit (Algorithm 1), its chance level, LORIS beat scores, tempo
deviation, curve/cut correlation, Fréchet distance, CLAP/FAD skipping and the ``eval`` CLI."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from v2m_zero.core import eval as metrics
from v2m_zero.core.timing import cuts as cut_detection
from v2m_zero.core.eval import synth
from v2m_zero.core.timing import media
from v2m_zero.core.errors import MediaError, V2MError

SR = 44100
DURATION = 8.0
BEAT = 0.5  # 120 BPM click grid
CLICKS = np.arange(0.5, DURATION, BEAT)
CUTS_ON = [2.0, 3.5, 5.0, 6.5]  # on clicks
CUTS_OFF = [2.25, 3.75, 5.25, 6.25]  # half a beat away from every click


# ----------------------------------------------------------------------------------------
# generated media


def click_track(onsets, duration, *, sample_rate=SR, channels=2, seed=0):
    return synth.click_track(onsets, duration, sample_rate=sample_rate, channels=channels, seed=seed)


def cut_clip(path, cuts, duration=DURATION, audio=None):
    # motion=False: synth's slow pan wraps around after 2-5 s, a jump PySceneDetect may call a cut.
    clip = synth.make_cut_clip(
        path, cut_times=cuts, duration=duration, fps=24, size=(160, 90), motion=False, audio=audio, sample_rate=SR
    )
    assert clip.cut_times == list(cuts)
    return clip.path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("metrics_clips")
    clicks = click_track(CLICKS, DURATION)
    return {
        "on": cut_clip(d / "on_beat.mp4", CUTS_ON, audio=clicks),
        "off": cut_clip(d / "off_beat.mp4", CUTS_OFF, audio=clicks),
        "static": cut_clip(d / "static.mp4", [], duration=4.0, audio=click_track(np.arange(0.5, 4.0, BEAT), 4.0)),
        "mute": cut_clip(d / "no_audio.mp4", CUTS_ON),
        "silent": cut_clip(d / "silent.mp4", CUTS_ON, audio=np.zeros((2, int(DURATION * SR)), np.float32)),
        "ref": cut_clip(d / "reference.mp4", [], audio=click_track(CLICKS, DURATION, seed=1)),
    }


# ----------------------------------------------------------------------------------------
# import hygiene


def test_module_imports_without_heavy_libraries():
    code = (
        "import sys; import v2m_zero.core.eval, v2m_zero.core.timing.cuts, v2m_zero.core.commands.eval; "
        "bad = [m for m in ('torch', 'numpy', 'librosa', 'scenedetect', 'transformers') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# ----------------------------------------------------------------------------------------
# Scene Cut Hit on generated clips


def test_detect_cuts_finds_the_generated_cuts(clips):
    cuts = cut_detection.detect_cuts(clips["on"])
    assert len(cuts) == len(CUTS_ON)
    np.testing.assert_allclose(cuts, CUTS_ON, atol=1.5 / 24)


@pytest.mark.parametrize("backend", ["opencv", "pyav"])
def test_detect_cuts_on_a_variable_frame_rate_clip(tmp_path, backend):
    clip = synth.make_cut_clip(tmp_path / "vfr.mp4", cut_times=[1.5, 3.0, 4.6], duration=6.0, vfr=True, motion=False)
    np.testing.assert_allclose(cut_detection.detect_cuts(clip.path, backend=backend), clip.cut_times, atol=1e-3)


def test_detect_cuts_on_a_static_clip_is_empty(tmp_path):
    clip = synth.make_static_clip(tmp_path / "static.mp4", duration=3.0, fps=24, size=(160, 90))
    assert cut_detection.detect_cuts(clip.path) == []


def test_timecode_shim_for_scenedetect_06_and_07():
    class Timecode06:  # 0.6 FrameTimecode: get_seconds() only
        def get_seconds(self):
            return 1.25

    class Timecode07:  # 0.7: `seconds` property, get_seconds() deprecated
        @property
        def seconds(self):
            return 2.5

        def get_seconds(self):
            raise AssertionError("deprecated call")

    assert cut_detection._seconds(Timecode06()) == 1.25
    assert cut_detection._seconds(Timecode07()) == 2.5


def test_detect_cuts_with_a_06_style_detect_without_backend(monkeypatch, clips):
    import scenedetect

    real = scenedetect.detect

    def detect06(video_path, detector, stats_file_path=None, show_progress=False, start_time=None, end_time=None,
                 start_in_scene=False):
        return real(video_path, detector)

    monkeypatch.setattr(scenedetect, "detect", detect06)
    # the default backend calls detect(path, AdaptiveDetector()) as Algorithm 1 ...
    np.testing.assert_allclose(cut_detection.detect_cuts(clips["on"]), CUTS_ON, atol=1e-6)
    # ... another backend goes through open_video(backend=) + SceneManager, which 0.6 has too
    np.testing.assert_allclose(cut_detection.detect_cuts(clips["on"], backend="pyav"), CUTS_ON, atol=1e-6)


def test_sch_is_one_when_cuts_are_on_the_beat(clips):
    r = metrics.evaluate_video(clips["on"])
    assert r["n_cuts"] == 4 and r["n_beats"] >= 10
    assert r["sch"] == 1.0
    # Chance level for a 0.5 s grid and ±0.1 s: 2·0.1/0.5 = 0.4 (here n_beats·0.2/duration).
    assert abs(r["sch_null"] - 0.4) < 0.05
    assert r["sch_minus_null"] == pytest.approx(r["sch"] - r["sch_null"])
    assert r["note"] is None
    assert r["duration"] == pytest.approx(DURATION, abs=0.05)
    for key in ("video", "sch", "sch_null", "sch_minus_null", "cuts", "beats", "duration"):
        assert key in r


def test_sch_is_zero_when_cuts_are_half_a_beat_off(clips):
    r = metrics.evaluate_video(clips["off"])
    assert r["n_cuts"] == 4
    assert r["sch"] == 0.0
    assert r["sch_minus_null"] < -0.3


def test_sch_is_none_without_cuts(clips):
    r = metrics.evaluate_video(clips["static"])
    assert r["cuts"] == [] and r["sch"] is None and r["sch_null"] is None
    assert "no scene cuts" in r["note"]


def test_audio_less_video_gives_a_result_with_a_note(clips):
    r = metrics.evaluate_video(clips["mute"])
    assert r["sch"] is None and r["n_cuts"] == 4
    assert "no audio track" in r["note"]


def test_silent_track_scores_zero_with_a_note(clips):
    r = metrics.evaluate_video(clips["silent"])
    assert r["beats"] == [] and r["sch"] == 0.0 and r["sch_null"] == 0.0
    assert "silent" in r["note"]


def test_missing_or_corrupt_file_is_a_clear_error(tmp_path):
    with pytest.raises(MediaError, match="nope.mp4"):
        metrics.evaluate_video(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 100)
    with pytest.raises(MediaError, match="bad.mp4"):
        metrics.evaluate_video(bad)
    with pytest.raises(MediaError, match="bad.mp4"):
        cut_detection.detect_cuts(bad)


def test_beat_scores_against_reference_music(clips):
    r = metrics.evaluate_video(clips["on"], reference_music=clips["ref"])
    # Same click grid (different noise): every onset bin matches, same tempo.
    assert r["bcs"] > 0.9 and r["bhs"] > 0.9
    assert r["td"] < 1.0
    assert r["reference_music"] == clips["ref"]


# ----------------------------------------------------------------------------------------
# SCH arithmetic and chance level


def test_scene_cut_hit_counts_cuts_with_a_beat_within_tolerance():
    beats = [1.0, 2.0, 3.0]
    assert metrics.scene_cut_hit([1.05, 2.1, 2.5, 3.2], beats, 0.1) == 0.5  # 2.1 is a hit (≤ tol)
    assert metrics.scene_cut_hit([], beats) is None
    assert metrics.scene_cut_hit([1.0], []) == 0.0
    assert metrics.scene_cut_hit([1.0, 1.02], [1.01]) == 1.0  # one beat may serve two cuts


def test_sch_null_matches_the_analytic_value_for_a_steady_grid():
    rng = np.random.default_rng(3)
    duration, tol = 60.0, 0.1
    for period in (0.5, 0.3, 0.15):
        beats = np.arange(0.0, duration, period)
        cuts = np.sort(rng.uniform(0, duration, size=150))
        expected = min(1.0, 2 * tol / period)
        got = metrics.sch_null(cuts, beats, duration, tol, n_shifts=200, seed=0)
        assert abs(got - expected) < 0.05, (period, got, expected)
    assert metrics.sch_null([], [1.0], 10.0) is None
    assert metrics.sch_null([1.0], [], 10.0) == 0.0
    # deterministic for a seed
    assert metrics.sch_null(cuts, beats, duration, seed=4) == metrics.sch_null(cuts, beats, duration, seed=4)


def test_beat_times_of_silence_is_empty():
    assert metrics.beat_times(np.zeros(22050 * 2, np.float32), 22050).size == 0
    assert metrics.onset_times(np.zeros(22050, np.float32), 22050).size == 0


# ----------------------------------------------------------------------------------------
# Beat scores (LORIS) and tempo deviation


def test_beat_scores_hand_computed():
    gen = [0.05, 0.15, 0.45, 1.01]  # bins 0, 0, 2, 5 → {0, 2, 5}
    ref = [0.1, 0.5, 0.9, 1.3]  # bins 0, 2, 4, 6 → {0, 2, 4, 6}
    s = metrics.beat_scores(gen, ref, bin_size=0.2)
    assert (s["hits"], s["gen_bins"], s["ref_bins"]) == (2, 3, 4)
    assert s["bcs"] == pytest.approx(2 / 3) and s["bhs"] == pytest.approx(2 / 4)
    # Bins cover the generated length (1.2 s → 6 bins): the reference onset at 1.3 s drops out.
    s = metrics.beat_scores(gen, ref, bin_size=0.2, duration=1.2)
    assert s["ref_bins"] == 3 and s["bhs"] == pytest.approx(2 / 3)
    # 0.6 s is bin 3, as LORIS's trunc(0.6 · 5)
    assert metrics.beat_scores([0.6], [0.61])["hits"] == 1
    # zero denominators give 0 (LORIS)
    assert metrics.beat_scores([], [0.1]) == {"bcs": 0.0, "bhs": 0.0, "hits": 0, "gen_bins": 0, "ref_bins": 1}


def test_f1_of_means():
    assert metrics.f1_of_means([1 / 3, 2 / 3], [0.5, 0.5]) == pytest.approx(0.5)
    assert metrics.f1_of_means([0.6], [0.3]) == pytest.approx(2 * 0.18 / 0.9)
    assert metrics.f1_of_means([0.0], [0.0]) == 0.0
    assert metrics.f1_of_means([], []) is None


def test_tempo_deviation_between_100_and_120_bpm():
    sr = 22050
    a = click_track(np.arange(0.0, 10.0, 60 / 100), 10.0, sample_rate=sr, channels=1)[0]
    b = click_track(np.arange(0.0, 10.0, 60 / 120), 10.0, sample_rate=sr, channels=1)[0]
    assert metrics.tempo_deviation(a, b, sr) == pytest.approx(20.0, abs=3.0)
    assert metrics.tempo_deviation(a, a, sr) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    v1, v2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = metrics.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-9)
    # invariant under a common rotation (exercises the non-diagonal path)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    rot = metrics.frechet_distance(q @ mu1, q @ np.diag(v1) @ q.T, q @ mu2, q @ np.diag(v2) @ q.T)
    assert rot == pytest.approx(expected, rel=1e-7)
    # identical Gaussians → 0, also for a singular covariance
    a = rng.standard_normal((d, 3))
    assert metrics.frechet_distance(mu1, a @ a.T, mu1, a @ a.T) == pytest.approx(0.0, abs=1e-8)


def test_fad_from_embeddings_and_embed_fn(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4000, 4))
    y = rng.standard_normal((4000, 4)) * 2.0 + 1.0
    # N(0, I) vs N(1, 4I): 4·1 + 4·(1 − 2)² = 8
    assert metrics.fad_from_embeddings(x, y) == pytest.approx(8.0, rel=0.05)
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(b"")
    fake = {str(tmp_path / "a.wav"): x[:2000], str(tmp_path / "b.wav"): x[2000:]}
    out = metrics.fad(tmp_path, [str(tmp_path / "a.wav"), str(tmp_path / "b.wav")], embed_fn=lambda p: fake[p])
    assert out["skipped"] is None and out["value"] == pytest.approx(0.0, abs=1e-9)


def test_clap_and_fad_skip_without_weights(tmp_path):
    audio = tmp_path / "x.wav"
    audio.write_bytes(b"")
    for weights in (None, tmp_path / "missing", tmp_path):
        if weights == tmp_path:
            weights = tmp_path / "empty"
            weights.mkdir()
        clap = metrics.clap_score([audio], ["upbeat drums"], weights_dir=weights)
        fad = metrics.fad([audio], [audio], weights_dir=weights)
        for res in (clap, fad):
            assert res["value"] is None and res["skipped"]
    assert "empty" in clap["skipped"] and "empty" in fad["skipped"]
    # weights present but no offline VGGish: still skipped, with the reason
    full = tmp_path / "vggish"
    full.mkdir()
    (full / "vggish.pth").write_bytes(b"x")
    assert "VGGish" in metrics.fad([audio], [audio], weights_dir=full)["skipped"]


def _tiny_clap(folder):
    """A random 2-layer CLAP saved as a local transformers folder (config, weights, processor)."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    folder.mkdir()
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    vocab.update({ch: 5 + i for i, ch in enumerate("abcdefghijklmnopqrstuvwxyz\u0120")})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = RobertaTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    features = ClapFeatureExtractor(
        feature_size=16, sampling_rate=48000, hop_length=1000, max_length_s=1, fft_window_size=1024,
        truncation="rand_trunc",
    )
    ClapProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(folder)
    text = dict(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                max_position_embeddings=64, projection_dim=8)
    audio = dict(num_mel_bins=16, spec_size=32, patch_size=4, patch_stride=(4, 4), patch_embeds_hidden_size=8,
                 hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2], window_size=2, projection_dim=8,
                 enable_fusion=False)
    ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=8)).save_pretrained(folder)
    return folder


def test_clap_score_from_a_local_folder(tmp_path):
    pytest.importorskip("transformers")
    weights = _tiny_clap(tmp_path / "clap")
    wav = media.write_audio(tmp_path / "a.wav", click_track([0.2, 0.6], 0.8, sample_rate=48000), 48000)
    out = metrics.clap_score([wav, wav], ["drums", "soft piano"], weights_dir=weights)
    assert out["skipped"] is None and len(out["per_item"]) == 2
    assert all(-1.0 <= v <= 1.0 for v in out["per_item"])
    assert out["value"] == pytest.approx(np.mean(out["per_item"]))
    again = metrics.clap_score([wav], ["soft piano"], weights_dir=weights)
    assert again["value"] == pytest.approx(out["per_item"][1], abs=1e-5)
    with pytest.raises(V2MError, match="one text per audio"):
        metrics.clap_score([wav], [], weights_dir=weights)


# ----------------------------------------------------------------------------------------
# summary, table, CLI


def test_summarise_and_table():
    rows = [
        {"video": "/a/x.mp4", "duration": 8.0, "n_cuts": 4, "n_beats": 15, "sch": 1.0, "sch_null": 0.4,
         "sch_minus_null": 0.6, "bcs": 0.5, "bhs": 1.0, "td": 2.0, "note": None},
        {"video": "/a/y.mp4", "duration": 4.0, "n_cuts": 0, "n_beats": 7, "sch": None, "sch_null": None,
         "sch_minus_null": None, "bcs": 0.5, "bhs": 0.0, "td": 4.0, "note": "no scene cuts detected"},
    ]
    s = metrics.summarise_results(rows)
    assert s["n_videos"] == 2 and s["n_sch"] == 1 and s["sch"] == 1.0 and s["n_no_cuts"] == 1
    assert s["bcs"] == 0.5 and s["bhs"] == 0.5 and s["td"] == 3.0 and s["f1"] == pytest.approx(0.5)
    table = metrics.format_table(rows)
    assert "x.mp4" in table and "no scene cuts" in table and "mean" in table and "BCS" in table


def _cli_args(argv):
    from v2m_zero.core.commands import eval as eval_cmd

    p = argparse.ArgumentParser()
    eval_cmd.add_arguments(p)
    return eval_cmd, p.parse_args(argv)


def test_cli_writes_json(clips, tmp_path, capsys):
    out = tmp_path / "scores.json"
    cmd, args = _cli_args([clips["on"], clips["mute"], "--json", str(out), "--shifts", "50"])
    assert cmd.NAME == "eval" and cmd.HELP
    assert cmd.run(args) == 0
    printed = capsys.readouterr().out
    assert "on_beat.mp4" in printed and "mean" in printed
    data = json.loads(out.read_text())
    assert set(data) == {"videos", "mean"}
    assert [v["sch"] for v in data["videos"]] == [1.0, None]
    for key in ("video", "sch", "sch_null", "sch_minus_null", "cuts", "beats", "duration", "note"):
        assert key in data["videos"][0]
    assert data["mean"]["sch"] == 1.0 and data["mean"]["n_videos"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".eval-")]  # no temp left


def test_cli_with_reference_music(clips, tmp_path):
    out = tmp_path / "ref.json"
    cmd, args = _cli_args([clips["on"], "--reference-music", clips["ref"], "--json", str(out)])
    assert cmd.run(args) == 0
    data = json.loads(out.read_text())
    assert data["videos"][0]["bcs"] > 0.9 and data["mean"]["f1"] > 0.9


def test_cli_errors_name_the_problem(clips, tmp_path):
    cmd, args = _cli_args([clips["on"], clips["off"], "--reference-music", clips["ref"]])
    with pytest.raises(V2MError, match="one file per video"):
        cmd.run(args)
    cmd, args = _cli_args([str(tmp_path / "gone.mp4")])
    with pytest.raises(V2MError, match="gone.mp4"):
        cmd.run(args)


def test_sch_null_matches_brute_force_and_scales():
    import numpy as np

    rng = np.random.default_rng(3)
    cuts, beats, dur = np.sort(rng.uniform(0, 30, 12)), np.sort(rng.uniform(0, 30, 50)), 30.0
    got = metrics.sch_null(cuts, beats, dur, n_shifts=64, seed=5)
    u = np.random.default_rng(5).random()
    shifts = (np.arange(64) + u) * (dur / 64)
    brute = np.mean([[np.min(np.abs(np.mod(beats + s, dur) - c)) <= 0.1 + 1e-9 for c in cuts] for s in shifts])
    assert got == pytest.approx(brute, abs=1e-12)
    assert metrics.sch_null([5.0], [7.0], 10.0, n_shifts=10) is not None  # a single beat works
    long_cuts, long_beats = np.sort(rng.uniform(0, 1800, 600)), np.arange(0, 1800, 0.5)
    assert 0.3 < metrics.sch_null(long_cuts, long_beats, 1800.0, n_shifts=50) < 0.5  # 30 min, ≈ 0.4, small memory


def test_scene_cut_hit_weighted_by_hit_strength():
    from v2m_zero.core.eval.sch import scene_cut_hit

    cuts, beats = [1.0, 2.0, 3.0, 4.0], [1.05, 2.5, 3.0]
    assert scene_cut_hit(cuts, beats) == pytest.approx(0.5)  # the paper's fraction: cuts 1 and 3 hit
    assert scene_cut_hit(cuts, beats, weights=[1, 1, 1, 1]) == pytest.approx(0.5)
    assert scene_cut_hit(cuts, beats, weights=[3, 1, 0, 1]) == pytest.approx(3 / 5)  # strong hit 1 counts more
    assert scene_cut_hit([], beats, weights=[]) is None and scene_cut_hit(cuts, [], weights=[1, 1, 1, 1]) == 0.0
