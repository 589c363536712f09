"""Windowed generation (issue 13): plans, inpainting, exact length, seeds, one-window = one pass."""

import numpy as np
import pytest
import torch

from tiny_models import PATCH, tiny_v2m_checkpoint
from v2m_zero.core import generate, windows
from v2m_zero.core.errors import V2MError
from v2m_zero.core.model import flow
from v2m_zero.core.sampling import SamplingSettings
from v2m_zero.core.timing.curves import Curve

RATE = PATCH["sample_rate"] / PATCH["patch_size"]  # 100 latent frames per second
WIN = dict(window_seconds=1.0, overlap_seconds=0.25)  # 100-frame windows keep the tiny DiT fast


def _planned(model, raw, duration, **settings):
    """(conditioning curve, window plan) of the job for ``raw`` with the 1-s windows."""
    job = generate.plan_job(model, raw, SamplingSettings(**WIN, **settings), duration=duration)
    return job.latent_curve, job.plan


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    path = tiny_v2m_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"))
    return generate.load_music_model(path, device="cpu")


def _raw_curve(duration, fps=24.0, cuts=()):
    t = np.arange(1, int(round(duration * fps))) / fps
    v = np.full(len(t), -0.2)
    for c in cuts:
        v[np.argmin(np.abs(t - c))] = 5.0
    return Curve(v, t, duration)


def _covers(plan):
    w = plan.windows
    assert w[0].start == 0 and w[0].known == 0 and w[-1].stop == plan.total
    for a, b in zip(w, w[1:]):
        assert a.start < b.start < b.join <= a.stop  # each window hands over inside its predecessor
        assert b.known >= plan.overlap and b.join - b.fade >= a.join


# ---------------------------------------------------------------------------- plans


def test_short_video_is_one_window_of_its_own_length():
    plan = windows.plan_windows(80, 100, 25, rate=RATE)
    assert plan.windows == (windows.Window(0, 80),) and plan.joins == []
    plan = windows.plan_windows(100, 100, 25, rate=RATE)
    assert len(plan) == 1


@pytest.mark.parametrize("total", [101, 150, 333, 1000, 1234])
def test_windows_have_the_training_length_and_cover_the_video(total):
    plan = windows.plan_windows(total, 100, 25, rate=RATE)
    assert all(w.length == 100 for w in plan.windows)
    _covers(plan)


def test_joins_land_in_curve_minima_away_from_hit_points():
    total, rate, period = 2000, RATE, 0.5
    t = np.arange(total) / rate
    curve = np.cos(2 * np.pi * t / period)  # valleys at (k + 1/2)·period
    valleys = (np.arange(40) + 0.5) * period
    plan0 = windows.plan_windows(total, 300, 60, rate=rate, curve=curve, fade=10, joins="calm")
    hits = [valleys[np.argmin(np.abs(valleys - j))] for j in plan0.joins[:3]]  # the valleys it chose are now hits
    plan = windows.plan_windows(total, 300, 60, rate=rate, curve=curve, hits=hits, fade=10, joins="calm")
    for p in (plan0, plan):
        _covers(p)
        for w in p.windows[1:]:
            mid = (w.join - w.fade / 2) / rate  # the crossfade's centre sits in a valley
            assert np.cos(2 * np.pi * mid / period) < -0.8, mid
    guard = windows.HIT_GUARD_SECONDS
    for w in plan.windows[1:]:
        fade = (w.join - w.fade) / rate, w.join / rate
        assert all(h < fade[0] - guard or h >= fade[1] + guard for h in hits)
    assert plan.joins[:3] != plan0.joins[:3]


def test_a_join_lands_on_a_hit_only_when_the_search_range_has_nothing_else():
    total, rate = 500, RATE
    hits = list(np.arange(0.05, 5.0, 0.1))  # a hit every 0.1 s: nowhere to hide
    plan = windows.plan_windows(total, 200, 50, rate=rate, hits=hits, joins="calm")
    _covers(plan)


def _slack(prev):
    """The join search range after window ``prev``: the last half of its own music (the module's rule)."""
    return prev.stop - max(1, (prev.stop - prev.join) // 2), prev.stop


@pytest.mark.parametrize("fade", [9, 10])
def test_joins_move_onto_cuts_within_the_slack_and_nowhere_else(fade):
    total, rate, window, overlap = 3000, RATE, 300, 60
    rng = np.random.default_rng(3)
    cuts = np.sort(rng.uniform(0.5, total / rate - 0.5, 9))  # sparse: some joins find a cut, some do not
    calm = windows.plan_windows(total, window, overlap, rate=rate, fade=fade, joins="calm")
    plan = windows.plan_windows(total, window, overlap, rate=rate, hits=cuts, fade=fade)
    assert plan == windows.plan_windows(total, window, overlap, rate=rate, hits=cuts, fade=fade)  # deterministic
    _covers(plan)
    assert all(w.length == window for w in plan.windows) and plan.windows[-1].stop == total  # exact length
    assert len(plan) <= len(calm) + 2
    guard = windows.HIT_GUARD_SECONDS
    on_cut = 0
    for prev, w in zip(plan.windows, plan.windows[1:]):
        lo, hi = _slack(prev)
        assert lo <= w.join <= hi  # never beyond the slack
        fits = [c for c in cuts if lo / rate + guard <= c < (hi + 1) / rate + guard]
        if fits:  # the new window takes over guard before the latest cut in range, to one latent frame
            assert abs(w.join / rate + guard - max(fits)) <= 1 / rate, (w.join / rate, fits)
            assert w.join <= max(fits) * rate  # its own music starts before the cut
            on_cut += 1
        else:  # no cut in range: the calm rule (the crossfade away from every cut)
            centre = (w.join - w.fade / 2) / rate
            assert min(abs(centre - c) for c in cuts) > guard
    assert on_cut >= 2 and on_cut < len(plan) - 1  # both cases were exercised


def test_a_plan_without_cuts_is_the_calm_plan():
    curve = np.cos(np.arange(1500) / 17.0)
    a = windows.plan_windows(1500, 300, 60, rate=RATE, curve=curve)
    assert a == windows.plan_windows(1500, 300, 60, rate=RATE, curve=curve, joins="calm")
    with pytest.raises(V2MError, match="joins"):
        windows.plan_windows(1500, 300, 60, rate=RATE, joins="bars")


def test_every_road_gets_the_same_per_window_conditioning(gen):
    """A curve smoothed beforehand (Smooth Curve, the ComfyUI road) is planned and conditioned as its raw
    curve (the CLI road): same joins, same per-window standardisation, same window curves; with Smooth
    Curve's scale and offset kept; a smoothed curve without its raw samples keeps the whole video's."""
    from v2m_zero.core.timing.spec import CurveSpec

    raw = _raw_curve(4.0, cuts=(0.6, 1.5, 2.3, 3.1))
    raw = raw.replace(values=raw.values + np.where(raw.times > 2.0, 1.5, 0.0).astype(np.float32))  # busier half
    smooth = CurveSpec(smoothing_seconds=gen.curve_spec.smoothing_seconds).smooth(raw, rate=gen.latent_rate)
    assert smooth.source is raw
    settings = SamplingSettings(**WIN)
    a, b = generate.plan_job(gen, raw, settings), generate.plan_job(gen, smooth, settings)
    assert len(a.plan) > 2 and a.plan == b.plan and a.norms is not None
    np.testing.assert_array_equal(a.norms, b.norms)
    assert np.ptp(a.norms[:, 0]) > 0.5  # the windows really are standardised differently
    for k, w in enumerate(a.plan.windows):
        ca = windows.window_curve(a.latent_curve.values, w, a.norms[k])
        cb = windows.window_curve(b.latent_curve.values, w, b.norms[k])
        torch.testing.assert_close(ca, cb, atol=1e-3, rtol=0)
    scaled = smooth.replace(values=smooth.values * 2.0 + 0.5, spec=dict(smooth.spec, scale=2.0, offset=0.5))
    c = generate.plan_job(gen, scaled, settings)
    for k, w in enumerate(a.plan.windows):
        want = windows.window_curve(a.latent_curve.values, w, a.norms[k]) * 2.0 + 0.5
        torch.testing.assert_close(windows.window_curve(c.latent_curve.values, w, c.norms[k]), want, atol=2e-3, rtol=0)
    from v2m_zero.core.timing.curves import Curve as C

    assert generate.plan_job(gen, C.from_dict(smooth.to_dict()), settings).norms is None  # raw samples unknown


def test_plan_refuses_bad_overlaps():
    with pytest.raises(V2MError, match="overlap"):
        windows.plan_windows(500, 100, 60, rate=RATE)
    with pytest.raises(V2MError, match="overlap"):
        windows.plan_windows(500, 100, 0, rate=RATE)


def test_window_length_from_metadata():
    assert windows.training_window_seconds({"curve": {"clip_seconds": 8.0}}) == 8.0
    sao = {"model_config": {"sample_size": 2097152, "sample_rate": 44100}}
    assert windows.training_window_seconds(sao) == pytest.approx(47.55, abs=0.01)
    assert windows.training_window_seconds({}) == windows.DEFAULT_WINDOW_SECONDS
    # a checkpoint is untrusted: a recorded length outside the window bounds is not believed
    assert windows.training_window_seconds({"curve": {"clip_seconds": 1e9}, **sao}) == pytest.approx(47.55, abs=0.01)
    assert windows.training_window_seconds({"curve": {"clip_seconds": float("nan")}}) == windows.DEFAULT_WINDOW_SECONDS
    assert (windows.auto_overlap_seconds(8.0) == 2.0
            and windows.auto_overlap_seconds(47.55) == windows.MAX_AUTO_OVERLAP_SECONDS)


def test_window_seeds_are_one_stream():
    assert windows.window_seed(7, 0) == 7
    seeds = [windows.window_seed(7, k) for k in range(1, 50)]
    assert len(set(seeds)) == 49 and all(0 <= s < 2**63 for s in seeds)
    assert seeds == [windows.window_seed(7, k) for k in range(1, 50)]
    assert windows.window_seed(8, 1) != windows.window_seed(7, 1)


# ---------------------------------------------------------------------------- inpainting


def test_inpainting_holds_the_known_frames_exactly():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 20)
    known = torch.randn(1, 3, 20)
    mask = torch.zeros(1, 1, 20)
    mask[..., :8] = 1.0
    mask[..., 8:12] = torch.tensor([0.8, 0.6, 0.4, 0.2])

    def local(x, t, **_):  # a frame-local velocity field: free frames do not see the known ones
        return torch.tanh(x) - 0.3 * x

    ts = flow.rf_timesteps(10)
    got = flow.sample_euler_inpaint(local, x, ts, known=known, mask=mask)
    plain = flow.sample_euler(local, x, ts, disable=True)
    assert torch.equal(got[..., :8], known[..., :8])
    assert torch.equal(got[..., 12:], plain[..., 12:])
    ramp = got[..., 8:12]
    assert not torch.equal(ramp, known[..., 8:12]) and not torch.equal(ramp, plain[..., 8:12])


def test_windowed_overlap_reproduces_the_previous_window_exactly(gen):
    d = 3.0
    cond, plan = _planned(gen, _raw_curve(d, cuts=(0.7, 1.9)), d)
    assert len(plan) >= 3
    lat = generate.sample_latents(gen, cond, "", SamplingSettings(steps=4, cfg=3.0, seed=5), duration=d, plan=plan)
    # window 0 alone, as a one-pass generation of its own length and seconds
    w0, w1 = plan.windows[0], plan.windows[1]
    c0 = torch.from_numpy(cond.values[w0.start:w0.stop].copy())[None, None]
    alone = flow.sample(gen.dit, (1, 16, w0.length), flow.rf_timesteps(4), seed=5, cfg_scale=3.0,
                        cond=gen.dit.conditioning(seconds=w0.length / RATE), curve=c0)
    held = w1.join - w1.fade
    assert torch.equal(lat[..., :held], alone[..., :held])
    assert not torch.equal(lat[..., held:w0.stop], alone[..., held:w0.stop])  # crossfade + window 1's own music


@pytest.mark.parametrize("fps", [12, 24, 25, 30000 / 1001, 60])
def test_exact_length_at_any_fps(gen, fps):
    duration = 77 / fps  # 1.3 … 6.4 s: one to eight windows of 1 s
    wave, job = generate.music_for_curve(gen, _raw_curve(duration, fps, cuts=(0.5,)), "",
                                         SamplingSettings(steps=2, cfg=1.0, seed=1, **WIN))
    assert wave.shape == (1, round(duration * PATCH["sample_rate"]))
    assert len(job.latent_curve) == generate.latent_frames(gen, duration) and np.isfinite(wave).all()


def test_deterministic_per_seed(gen):
    d = 2.5
    cond, plan = _planned(gen, _raw_curve(d, cuts=(1.0,)), d)
    kw = dict(duration=d, plan=plan)
    a = generate.sample_latents(gen, cond, "", SamplingSettings(steps=3, cfg=3.0, seed=11), **kw)
    b = generate.sample_latents(gen, cond, "", SamplingSettings(steps=3, cfg=3.0, seed=11), **kw)
    c = generate.sample_latents(gen, cond, "", SamplingSettings(steps=3, cfg=3.0, seed=12), **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)
    last = plan.windows[-1]
    assert not torch.equal(a[..., last.join:], c[..., last.join:])


def test_one_window_video_is_bit_identical_to_the_single_pass(gen):
    d = 0.9  # shorter than the 1 s window
    raw = _raw_curve(d, cuts=(0.4,))
    cond = generate.conditioning_curve_for(gen, raw)
    # the pipeline as it was before windows: one flow.sample over the video's latent length
    n = generate.latent_frames(gen, d)
    before = flow.sample(gen.dit, (1, 16, n), flow.rf_timesteps(5), seed=4, cfg_scale=3.0, uncond="both",
                         cond=gen.dit.conditioning(seconds=d), curve=torch.from_numpy(cond.values.copy())[None, None])
    _, plan = _planned(gen, raw, d)
    assert len(plan) == 1
    now = generate.sample_latents(gen, cond, "", SamplingSettings(steps=5, cfg=3.0, seed=4), duration=d, plan=plan)
    assert torch.equal(now, before.float())
    wave, _ = generate.music_for_curve(gen, raw, "", SamplingSettings(steps=5, cfg=3.0, seed=4, **WIN))
    assert np.array_equal(wave, generate.decode_latents(gen, before.float(), d))


def test_what_the_model_is_told_short_video_native_length_long_video_training_windows(gen, monkeypatch):
    """Issue 12 item 6 (benchmarks/short_clips.py): a video shorter than the window is one pass at
    its own latent length with seconds_total = its duration (padding to the window measured no
    better); every window of a longer video has the training length and seconds_total = that."""
    seen = []
    real = type(gen.dit).forward

    def spy(self, x, t, *a, seconds_total=None, **kw):
        seen.append((x.shape[-1], round(float(torch.as_tensor(seconds_total).reshape(-1)[0]), 5)))
        return real(self, x, t, *a, seconds_total=seconds_total, **kw)

    monkeypatch.setattr(type(gen.dit), "forward", spy)
    for d in (0.45, 2.5):
        seen.clear()
        generate.music_for_curve(gen, _raw_curve(d, cuts=(0.2,)), "", SamplingSettings(steps=1, cfg=1.0, **WIN))
        n = generate.latent_frames(gen, d)
        assert set(seen) == ({(n, 0.45)} if d < 1 else {(100, 1.0)})


def test_progress_over_the_whole_job_and_interrupt_between_steps(gen):
    d = 2.5
    cond, plan = _planned(gen, _raw_curve(d), d)
    seen = []
    generate.sample_latents(gen, cond, "", SamplingSettings(steps=3, cfg=1.0), duration=d, plan=plan,
                            callback=lambda s: seen.append((s["window"], s["windows"], s["step"], s["total"])))
    n = len(plan)
    assert [s[2] for s in seen] == list(range(3 * n)) and {s[3] for s in seen} == {3 * n}
    assert [s[0] for s in seen[::3]] == list(range(n)) and {s[1] for s in seen} == {n}

    class Stop(Exception):
        pass

    def stop(state):
        if state["step"] == 4:
            raise Stop

    with pytest.raises(Stop):
        generate.sample_latents(gen, cond, "", SamplingSettings(steps=3, cfg=1.0), duration=d, plan=plan, callback=stop)


def test_window_inputs_are_checked(gen):
    with pytest.raises(V2MError, match="overlap"):
        generate.window_frames(gen, 1.0, 0.8)
    with pytest.raises(V2MError, match="window length"):
        generate.window_frames(gen, float("nan"))
    assert generate.window_frames(gen, 1.0, 0.25) == (100, 25)
    assert generate.window_frames(gen) == (3200, 500)  # no clip length recorded: 32 s, overlap 5 s


# ---------------------------------------------------------------------------- decoding in chunks


def test_iter_decode_patch_codec_is_exact(gen):
    lat = torch.randn(1, 16, 537)
    full = gen.codec.decode(lat).numpy()[0]
    for n in (537 * 16, 537 * 16 - 5, 537 * 16 + 40):
        parts = list(windows.iter_decode(gen.codec, lat, n, chunk=100))
        got = np.concatenate(parts, axis=1)
        assert got.shape == (1, n) and max(p.shape[1] for p in parts) <= 1600
        m = min(n, full.shape[1])
        assert np.array_equal(got[:, :m], full[:, :m]) and not got[:, m:].any()


def test_iter_decode_oobleck_matches_a_full_decode():
    from v2m_zero.core.model.oobleck import OobleckVAE

    torch.manual_seed(0)
    vae = OobleckVAE.from_config({"channels": 8, "c_mults": [1, 2], "strides": [2, 2], "latent_dim": 4,
                                  "audio_channels": 2}).eval()
    lat = torch.randn(1, 4, 300)
    with torch.no_grad():
        full = vae.decode(lat).numpy()[0]
    vae.decode_context_frames = 40  # this tiny decoder sees further (in latent frames) than SAO's
    got = np.concatenate(list(windows.iter_decode(vae, lat, full.shape[1], chunk=64)), axis=1)
    assert got.shape == full.shape
    np.testing.assert_allclose(got, full, atol=1e-5)


# ---------------------------------------------------------------------------- flat-memory decode, CLI, node


def test_decode_to_spool_equals_decode_latents(gen):
    torch.manual_seed(1)
    for scale in (0.01, 0.5):  # quiet, and hot (limited to -1 dBTP, never clipped)
        lat = torch.randn(1, 16, 420) * scale
        d = 4.17
        ref = generate.decode_latents(gen, lat, d)
        with generate.decode_to_spool(gen, lat, d) as spool:
            got = spool.to_array()
        assert got.shape == ref.shape == (1, round(d * PATCH["sample_rate"]))
        np.testing.assert_allclose(got, ref, atol=1e-6)
    assert np.abs(ref).max() < 1.0 < np.abs(gen.codec.decode(lat).numpy()).max()


def test_generate_command_in_windows(tmp_path, capsys):
    from v2m_zero.core import cli
    from v2m_zero.core.eval import synth
    from v2m_zero.core.timing import media

    ck = tiny_v2m_checkpoint(str(tmp_path / "tiny.safetensors"))
    clip = synth.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[0.7, 1.6], duration=2.5, fps=25, size=(64, 36))
    argv = ["generate", clip.path, "--checkpoint", ck, "--steps", "2", "--cfg", "2", "--window", "1", "--overlap",
            "0.25", "--out", str(tmp_path / "g.mp4"), "--audio-out", str(tmp_path / "g.wav")]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "windows: 3 windows of 1.00 s" in err or "windows: 4 windows of 1.00 s" in err, err
    wave, sr = media.decode_audio(str(tmp_path / "g.wav"))
    assert sr == 1600 and wave.shape[1] == round(clip.duration * 1600)
    info = media.probe_video(str(tmp_path / "g.mp4"))
    assert info.has_audio and info.duration == pytest.approx(clip.duration)


def test_sampler_node_draws_windows_and_counts_steps_over_the_job(host, tmp_path, monkeypatch):
    import os

    import folder_paths

    from v2m_zero.core.timing import plot
    from v2m_zero.nodes import generate as nodes

    ckdir = os.path.join(folder_paths.models_dir, "v2m", "checkpoints")
    os.makedirs(ckdir)
    tiny_v2m_checkpoint(os.path.join(ckdir, "tiny.safetensors"))
    model = nodes.LoadModel.execute(checkpoint="tiny.safetensors", text_encoder="none", codec="from checkpoint",
                                    precision="fp32", offload=False).args[0]
    seen = {}
    real = plot.plot_curves

    def spy(curves, **kw):
        seen.update(kw)
        return real(curves, **kw)

    monkeypatch.setattr(plot, "plot_curves", spy)
    curve = _raw_curve(2.5, cuts=(0.7, 1.6))
    schema = nodes.Sampler.define_schema()
    ids = [i.id for i in schema.inputs]
    assert ids[ids.index("window_seconds"):] == ["window_seconds", "overlap_seconds", "only_window", "previous"]
    host.STATE["progress"].clear()
    latent, _ = nodes.Sampler.execute(model=model, curve=curve, prompt="", negative_prompt="", steps=2, cfg=1.0, seed=0,
                                      uncond="both", window_seconds=1.0, overlap_seconds=0.25).args
    _, plan = _planned(model, curve, 2.5)
    assert latent["samples"].shape[-1] == plan.total and len(plan) > 1
    assert host.STATE["progress"][-1] == (2 * len(plan), 2 * len(plan))
    marks = dict(seen["marks"])
    assert marks["joins"] == plan.joins and marks["windows"] == plan.starts
    # only_window + previous: window 1 again with another seed, every other frame bit-identical
    redo, _ = nodes.Sampler.execute(model=model, curve=curve, prompt="", negative_prompt="", steps=2, cfg=1.0, seed=3,
                                    uncond="both", window_seconds=1.0, overlap_seconds=0.25, only_window=1,
                                    previous=latent).args
    a, b = plan.own(1)
    old, new = latent["samples"], redo["samples"]
    assert torch.equal(old[..., :a], new[..., :a]) and torch.equal(old[..., b:], new[..., b:])
    assert not torch.equal(old[..., a:b], new[..., a:b])
    with pytest.raises(V2MError, match="previous"):
        nodes.Sampler.execute(model=model, curve=curve, prompt="", negative_prompt="", steps=2, cfg=1.0, seed=3,
                              uncond="both", window_seconds=1.0, overlap_seconds=0.25, only_window=1)
    # the defaults (0 = the checkpoint's length: 32 s here) keep a 2.5 s curve in one pass, no marks
    nodes.Sampler.execute(model=model, curve=curve, prompt="", negative_prompt="", steps=2, cfg=1.0, seed=0,
                          uncond="both", window_seconds=0.0, overlap_seconds=0.0)
    assert seen["marks"] == []


# ---------------------------------------------------------------------------- per-window curves, redo


def test_each_window_is_standardised_on_its_own_like_a_training_clip(gen):
    d = 4.0
    raw = _raw_curve(d, cuts=(0.6, 1.4, 2.2, 3.3))
    job = generate.plan_job(gen, raw, SamplingSettings(**WIN), duration=d)
    assert len(job.plan) >= 3 and job.norms.shape == (len(job.plan), 2) and job.norms[:, 1].any()
    for k, w in enumerate(job.plan.windows):
        inside = raw.values[(raw.times >= w.start / RATE) & (raw.times < w.stop / RATE)]
        if inside.std() < 1e-6:  # no cut inside: flat, the zero curve
            assert not job.norms[k].any()
            assert not windows.window_curve(job.latent_curve.values, w, job.norms[k]).any()
            continue
        assert job.norms[k] == pytest.approx([inside.mean(), inside.std()], abs=1e-6)
        c = windows.window_curve(job.latent_curve.values, w, job.norms[k]).numpy().reshape(-1)
        np.testing.assert_allclose(c, (job.latent_curve.values[w.start:w.stop] - inside.mean()) / inside.std(),
                                   rtol=1e-5, atol=1e-5)
    assert generate.plan_job(gen, raw, SamplingSettings(**WIN), duration=d, norm="video").norms is None
    flat = _raw_curve(d)  # no cut at all: a flat raw curve is the zero curve, as training makes it
    assert not generate.plan_job(gen, flat, SamplingSettings(**WIN), duration=d).norms[:, 1].any()
    # one window: exactly the single pass (the whole clip is the window)
    assert generate.plan_job(gen, _raw_curve(0.9, cuts=(0.4,)), SamplingSettings(**WIN), duration=0.9).norms is None


@pytest.mark.parametrize("k", [0, 2, -1])
def test_redo_one_window_leaves_every_other_window_bit_identical(gen, tmp_path, k):
    d = 4.4
    raw = _raw_curve(d, cuts=(0.6, 1.4, 2.2, 3.3))
    first = generate.sample_music(gen, raw, "", SamplingSettings(steps=3, cfg=3.0, seed=5, **WIN))
    plan = first.job.plan
    assert len(plan) >= 4
    k = k % len(plan)
    path = generate.save_redo(str(tmp_path / "run.mp4") + generate.REDO_SUFFIX, gen, first)
    back = generate.load_redo(path, gen)
    assert torch.equal(back.latents, first.latents) and back.job.plan == plan
    assert np.array_equal(back.job.norms, first.job.norms) and back.job.sampling == first.job.sampling
    steps = []
    redo = generate.redo_window(gen, back, k, seed=99, progress=lambda done, total: steps.append((done, total)))
    assert steps[-1] == (3, 3)  # one window's steps
    a, b = plan.own(k)
    new, old = redo.latents, first.latents
    assert 0 <= a < b <= plan.total
    assert torch.equal(new[..., :a], old[..., :a]) and torch.equal(new[..., b:], old[..., b:])
    assert not torch.equal(new[..., a:b], old[..., a:b])
    # the same seed again: the same redo (deterministic); the audio outside the redone chunks is unchanged too
    again = generate.redo_window(gen, back, k, seed=99)
    assert torch.equal(again.latents, new)
    # and so is their audio (before mastering, whose limiter acts on the whole track)
    w_old, w_new = gen.codec.decode(old).numpy()[0], gen.codec.decode(new).numpy()[0]
    hop = gen.codec.downsampling_ratio
    assert np.array_equal(w_old[:, :a * hop], w_new[:, :a * hop])
    assert np.array_equal(w_old[:, b * hop:], w_new[:, b * hop:])


def test_redo_refuses_a_foreign_or_damaged_file(gen, tmp_path):
    d = 2.5
    first = generate.sample_music(gen, _raw_curve(d, cuts=(1.0,)), "", SamplingSettings(steps=2, cfg=1.0, **WIN))
    with pytest.raises(V2MError, match="no redo file"):
        generate.load_redo(str(tmp_path / "missing") + generate.REDO_SUFFIX, gen)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(V2MError, match="not a readable redo file"):
        generate.load_redo(str(bad), gen)
    path = generate.save_redo(str(tmp_path / "ok.safetensors"), gen, first)
    with pytest.raises(V2MError, match="windows 0"):
        generate.redo_window(gen, generate.load_redo(path, gen), 99, seed=1)
    plan = first.job.plan.to_dict()
    plan["windows"][1][0] = 10**6  # a window outside the video
    with pytest.raises(V2MError, match="inconsistent"):
        windows.WindowPlan.from_dict(plan)


def test_generate_command_redoes_one_window(tmp_path, capsys):
    from safetensors.torch import load_file

    from v2m_zero.core import cli
    from v2m_zero.core.commands._common import REDO_SUFFIX
    from v2m_zero.core.eval import synth
    from v2m_zero.core.timing import media

    assert REDO_SUFFIX == generate.REDO_SUFFIX
    ck = tiny_v2m_checkpoint(str(tmp_path / "tiny.safetensors"))
    clip = synth.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[0.7, 1.6, 2.4], duration=3.5, fps=25,
                               size=(64, 36))
    out = str(tmp_path / "g.mp4")
    argv = ["generate", clip.path, "--checkpoint", ck, "--steps", "2", "--cfg", "2", "--window", "1", "--overlap",
            "0.25", "--out", out, "--audio-out", str(tmp_path / "g.wav")]
    assert cli.main(argv) == 0
    before = load_file(out + REDO_SUFFIX)["latents"]
    wav0, sr = media.decode_audio(str(tmp_path / "g.wav"))
    capsys.readouterr()
    assert cli.main(argv + ["--only-window", "1", "--seed", "7"]) == 0
    assert "redo: window 1 of" in capsys.readouterr().err
    after = load_file(out + REDO_SUFFIX)["latents"]
    plan = generate.load_redo(out + REDO_SUFFIX, generate.load_music_model(ck, device="cpu")).job.plan
    a, b = plan.own(1)
    assert torch.equal(before[..., :a], after[..., :a]) and torch.equal(before[..., b:], after[..., b:])
    assert not torch.equal(before[..., a:b], after[..., a:b])
    wave, sr = media.decode_audio(str(tmp_path / "g.wav"))
    assert wave.shape[1] == round(clip.duration * sr)
    # the written samples: bit-identical outside the redone window's own frames (this codec decodes frame by frame)
    hop = sr / plan.rate
    assert windows.decode_context_frames(generate.load_music_model(ck, device="cpu").codec) == 0
    changed = np.flatnonzero(np.any(wave != wav0, axis=0))
    assert changed.size and a * hop <= changed.min() and changed.max() < b * hop
    # a redo of a video of another length is refused in one line
    other = synth.make_cut_clip(str(tmp_path / "w.mp4"), cut_times=[0.7], duration=2.0, fps=25, size=(64, 36))
    assert cli.main(["generate", other.path] + argv[2:] + ["--only-window", "1"]) != 0


def test_demo_command_redoes_one_window_of_a_video(tmp_path, capsys):
    """``demo --video V --only-window K --seed S`` (the CLI road of the quick start): the other windows'
    latents are bit-identical, the muxed soundtrack keeps its exact length and, before the redone window,
    its samples up to the whole-track mastering gain (the AAC encoder is causal; what follows the change
    may differ by its lookahead)."""
    from safetensors.torch import load_file

    from v2m_zero.core import cli
    from v2m_zero.core.eval import synth
    from v2m_zero.core.timing import media

    ck = tiny_v2m_checkpoint(str(tmp_path / "tiny.safetensors"))
    clip = synth.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[0.7, 1.6, 2.4], duration=3.5, fps=25,
                               size=(64, 36))
    argv = ["demo", "--video", clip.path, "--checkpoint", ck, "--steps", "2", "--cfg", "2", "--window", "1",
            "--overlap", "0.25", "--out", str(tmp_path / "out")]
    muxed = str(tmp_path / "out" / "demo_with_music.mp4")
    assert cli.main(argv) == 0
    before = load_file(muxed + generate.REDO_SUFFIX)["latents"]
    audio0, sr = media.decode_audio(muxed)
    plan = generate.load_redo(muxed + generate.REDO_SUFFIX, generate.load_music_model(ck, device="cpu")).job.plan
    k = len(plan) - 2
    capsys.readouterr()
    assert cli.main(argv + ["--only-window", str(k), "--seed", "11"]) == 0
    assert f"redo: window {k} of {len(plan)}" in capsys.readouterr().err
    assert generate.load_redo(muxed + generate.REDO_SUFFIX,
                              generate.load_music_model(ck, device="cpu")).job.plan == plan  # the same plan
    after = load_file(muxed + generate.REDO_SUFFIX)["latents"]
    a, b = plan.own(k)
    assert torch.equal(before[..., :a], after[..., :a]) and torch.equal(before[..., b:], after[..., b:])
    assert not torch.equal(before[..., a:b], after[..., a:b])
    audio1, sr1 = media.decode_audio(muxed)
    assert sr1 == sr and audio0.shape == audio1.shape and audio1.shape[1] == round(clip.duration * sr)
    # before the change (half a second: beyond the AAC encoder's lookahead) the soundtrack is the same up to the
    # mastering, whose true-peak gain is the whole track's: equal to float rounding, not bit for bit
    keep = int((a / plan.rate - 0.5) * sr)
    assert keep > 0
    np.testing.assert_allclose(audio1[:, :keep], audio0[:, :keep], rtol=0, atol=1e-5)
    late = slice(int(a / plan.rate * sr), int(b / plan.rate * sr))
    assert np.max(np.abs(audio1[:, late] - audio0[:, late])) > 1e-3  # the redone window is new music


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_windowed_generation_on_cuda_matches_the_cpu(tmp_path):
    path = tiny_v2m_checkpoint(str(tmp_path / "tiny.safetensors"))
    raw = _raw_curve(2.5, cuts=(0.7, 1.6))
    waves = []
    for device in ("cpu", "cuda"):
        g = generate.load_music_model(path, device=device)
        waves.append(generate.music_for_curve(g, raw, "", SamplingSettings(steps=3, cfg=3.0, seed=2, **WIN))[0])
        with generate.decode_to_spool(g,
                                      generate.sample_latents(g, generate.conditioning_curve_for(g, raw), "",
                                                              SamplingSettings(steps=3, cfg=3.0, seed=2), duration=2.5,
                                                              plan=_planned(g, raw, 2.5)[1]),
                                      2.5) as spool:
            waves.append(spool.to_array())
    for w in waves[1:]:
        np.testing.assert_allclose(w, waves[0], atol=1e-3)
