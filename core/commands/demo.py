"""``v2m-zero demo``: the main job end to end, offline, with no user weights.

It writes a short clip with known cuts (or takes ``--video``), computes its event curve,
generates music on that curve, muxes it into the clip at exactly the clip's length, and scores
the result with Scene Cut Hit next to its chance level.

Without ``--checkpoint`` the music comes from the bundled **demo checkpoint**
(``demo/v2m-zero-demo-music.safetensors``, 9 MB): a 4.6 M-parameter DiT that
``benchmarks/zero_pair_music.py`` trained on a CPU on procedurally arranged General MIDI music
(drums, bass, chords, lead) rendered with FluidSynth, with *music* event curves only, on the
weightless mel codec (16 kHz mono, Griffin-Lim phase). It shows zero-pair timing transfer with
pitched multi-instrument music; it is a demo, not a real music model. ``--sonify`` skips
generation and makes the curve audible instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import threading

import numpy as np

from ...model_io.folders import DEMO_CHECKPOINT  # the bundled demo model
from ..precision import PRECISIONS
from ._common import REDO_SUFFIX, OutputPlan, Progress, add_sampling_arguments, number, resolve_sampling, write_json
from ._pipeline import curve_document, redo_with_progress, sample_with_progress

NAME = "demo"
HELP = ("run the main job on a generated clip: video -> event curve "
        "-> music (bundled demo model) -> mux -> SCH (offline)")

DEMO_CUTS = (1.5, 3.0, 4.25, 6.0, 7.5, 8.0, 10.0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="v2m_out", help="output folder (default ./v2m_out; made if missing)")
    p.add_argument("--video", default=None, help="use this video instead of a generated clip")
    p.add_argument("--checkpoint", default=None, help="a V2M checkpoint (default: the bundled demo checkpoint)")
    p.add_argument("--text-encoder", default=None, help="T5 folder, for checkpoints conditioned on text")
    p.add_argument("--prompt", default="", help="music prompt (text-conditioned checkpoints only)")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help="generator precision (default fp32): bf16 samples about 1.4x faster on CPUs with AVX-512 "
                        "BF16 or AMX (slower without) for music within float rounding of fp32's; fp16 for GPUs")
    add_sampling_arguments(p)
    p.add_argument("--fps", type=number(float, 1, 240), default=24.0, help="frame rate of the generated clip (1–240)")
    p.add_argument("--duration", type=number(float, 0.5, 600), default=12.0,
                   help="length of the generated clip in seconds (0.5–600)")
    p.add_argument("--sonify", action="store_true", help="no generation: make the curve audible (hits at hit points)")
    p.add_argument("--only-window", type=number(int, 0, 1_000_000), default=None, metavar="K",
                   help="redo window K only (from 0; --seed gives its new noise) of the last run in --out, from its "
                        "latents (demo_with_music.mp4" + REDO_SUFFIX + "): every other window stays bit-identical")


#: Samples per block of the streamed sonification.
SONIFY_BLOCK = 1 << 16
_TONES = (110.0, 146.83, 196.0, 220.0, 293.66, 329.63, 440.0)


def _sonify_hit(i: int, sample_rate: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hit ``i``: (wave [n], per-channel gains [2]) — a decaying noise burst and tone, drawn from its own
    random stream so any block can be made without the others."""
    rng = np.random.default_rng([seed, i])
    t = np.arange(int(0.3 * sample_rate)) / sample_rate
    noise = rng.standard_normal(t.size) * np.exp(-t / 0.025)
    tone = np.sin(2 * np.pi * _TONES[rng.integers(len(_TONES))] * t) * np.exp(-t / 0.08)
    return 0.6 * noise / max(1e-9, np.abs(noise).max()) + 0.5 * tone, 0.75 + 0.25 * rng.random(2)


def sonify(smooth, peaks, duration: float, sample_rate: int = 44100, *, folder: str | None = None):
    """A stereo soundtrack that makes the curve audible — hits at ``peaks``, a pad following ``smooth`` —
    written block by block to an :class:`~..timing.media.stream.AudioSpool` (flat memory at any length;
    the caller closes it). Two passes: the first finds the hits' peak (scaled to at most 0.9, as
    ``examples.click_track``), the second writes."""
    from ..timing.media.stream import AudioSpool

    n = int(round(duration * sample_rate))
    knots = smooth.times + 0.5 / smooth.rate
    inside = (knots >= 0) & (knots <= n / sample_rate)  # the interpolated pad's extremes are at knots or ends
    ends = np.interp([0.0, max(0, n - 1) / sample_rate], knots, smooth.values)
    vals = np.concatenate([np.asarray(smooth.values, np.float64)[inside], ends])
    lo, span = float(vals.min()), float(np.ptp(vals)) or 1.0
    hit_len = int(0.3 * sample_rate)
    starts = [int(round(float(p) * sample_rate)) for p in peaks]
    starts = sorted((s0, i) for i, s0 in enumerate(starts) if 0 <= s0 < n)
    first = np.asarray([s0 for s0, _ in starts], np.int64)

    def hits(a: int, b: int) -> np.ndarray:
        out = np.zeros((2, b - a))
        for s0, i in starts[int(np.searchsorted(first, a - hit_len, side="right")):]:
            if s0 >= b:
                break
            if s0 + hit_len > a:
                wave, gains = _sonify_hit(i, sample_rate)
                x, y = max(a, s0), min(b, s0 + hit_len)
                out[:, x - a:y - a] += gains[:, None] * wave[None, x - s0:y - s0]
        return out

    blocks = [(a, min(n, a + SONIFY_BLOCK)) for a in range(0, n, SONIFY_BLOCK)]
    peak = max((float(np.abs(hits(a, b)).max()) for a, b in blocks if starts), default=0.0)
    scale = 0.9 / peak if peak > 0.9 else 1.0
    spool = AudioSpool(2, sample_rate, folder=folder)
    try:
        for a, b in blocks:
            t = np.arange(a, b) / sample_rate
            env = (np.interp(t, knots, smooth.values) - lo) / span
            pad = 0.12 * (0.25 + 0.75 * env) * (np.sin(2 * np.pi * 110 * t) + 0.5 * np.sin(2 * np.pi * 164.8 * t))
            spool.append((hits(a, b) * (0.8 * scale) + pad[None]).astype(np.float32))
    except BaseException:
        spool.close()
        raise
    return spool


#: Import the scoring's beat tracker on a second thread while the music is sampled (see :func:`warm_up_scoring`).
WARM_UP_SCORING = True


def warm_up_scoring() -> threading.Thread:
    """Start importing ``librosa.beat`` on another thread and return it (join before scoring).

    librosa compiles its beat tracker's numba kernels on every import (``guvectorize`` with
    ``cache=False``: ≈ 3.7 CPU s, fixed), work that needs nothing from the music: done while the
    music is sampled on one torch thread, it runs on the second core of a 2-core CPU instead of
    after sampling (``benchmarks/long_video.py``, RESULTS "Where the CPU time goes"). An import error is
    left to the scoring's own import, which reports it."""

    def run() -> None:
        try:
            import librosa.beat  # noqa: F401
        except Exception:  # noqa: BLE001 - the scoring's import says what is wrong
            pass

    thread = threading.Thread(target=run, name="v2m-warm-up-scoring", daemon=True)
    thread.start()
    return thread


NO_SCENEDETECT = "PySceneDetect is not installed, so not Algorithm 1's detector; pip install scenedetect for that"


def score(video: str, wave, sr: int, duration: float, known_cuts, cuts_from: str) -> dict:
    """Scene Cut Hit and its chance level: PySceneDetect cuts when installed (paper Algorithm 1),
    else ``known_cuts`` (the generated clip's true cut times, or our event-curve hit points), and the
    result says which (``cuts_from``). ``wave`` is the soundtrack: ``[C, T]`` or an
    :class:`~..timing.media.stream.AudioSpool` (then beats are tracked from a stream: flat memory)."""
    from ..eval import beats as beats_mod, report, sch

    try:
        import scenedetect  # noqa: F401

        r = report.evaluate_video(video)
        r["cuts_from"] = "PySceneDetect AdaptiveDetector (Algorithm 1)"
        return r
    except ImportError:
        pass
    if isinstance(wave, np.ndarray):
        beats = sch.beat_times(wave.mean(axis=0), sr)
    else:
        beats = sch.beat_times_stream(lambda: (c.mean(axis=0) for c in wave.chunks()), sr, len(wave))
    cuts = list(known_cuts)
    hit = sch.scene_cut_hit(cuts, beats)
    null = sch.sch_null(cuts, beats, duration) if cuts else None
    out = {"sch": hit, "sch_null": null, "sch_minus_null": None if hit is None or null is None else hit - null,
           "cuts": cuts, "beats": list(beats), "cuts_from": f"{cuts_from} ({NO_SCENEDETECT})"}
    tracker = beats_mod.second_tracker()  # Beat This! when installed with its weights (evaluate_video does the same)
    if tracker is not None:
        mono, rate = (wave.mean(axis=0), sr) if isinstance(wave, np.ndarray) else report.first_seconds(video)
        out["trackers"] = beats_mod.tracker_agreement(mono, rate, beats if rate == sr else None, tracker=tracker)
    return out


def _report(result: dict, peaks, truth, fps: float, files) -> None:
    print(f"hit points ({len(peaks)}): " + ", ".join(f"{p:.3f}" for p in peaks))
    if truth is not None:
        matched = sum(any(abs(p - c) <= 1.0 / fps + 1e-6 for p in peaks) for c in truth)
        print(f"cuts found within one frame: {matched}/{len(truth)}")
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    print(f"Scene Cut Hit: {fmt(result['sch'])}  (chance level {fmt(result['sch_null'])}; cuts: {result['cuts_from']})")
    if result.get("trackers"):
        from ..eval.beats import agreement_line

        print(agreement_line(result["trackers"]))
    print("results:")
    for label, path in files:
        print(f"  {label:18s} {path}")


def _choose_container(video: str, stem: str):
    """(mux plan, extension) for muxing ``video`` into ``stem`` + .mp4, .mov or .mkv: the first that takes a
    stream copy, said in the plan's note when it is not .mp4; .mp4 with a re-encode when none does."""
    from ..timing import media

    first = media.plan_mux(video, stem + ".mp4")
    if first.copy:
        return first, ".mp4"
    for ext in (".mov", ".mkv"):
        other = media.plan_mux(video, stem + ext)
        if other.copy:
            note = (f"{os.path.basename(video)}: {other.codec} video cannot be copied into .mp4, "
                    f"so the video with music is written as {ext} (stream copy)")
            return dataclasses.replace(other, note=note), ext
    return first, ".mp4"


def run(args) -> int:
    from .. import examples, generate
    from ..timing import curves, encoders, media, plot
    from ..timing.spec import CurveSpec

    plan = OutputPlan()
    plan.input(args.video, "--video")
    plan.input(args.checkpoint, "--checkpoint")
    out = plan.folder(args.out, "--out")
    video = args.video or plan.file(os.path.join(out, "demo_clip.mp4"), "the demo clip", create_parent=True)
    curve_json = plan.file(os.path.join(out, "curve.json"), "the curve JSON", create_parent=True)
    png = plan.file(os.path.join(out, "curve.png"), "the curve plot", create_parent=True)
    stem = "demo_with_soundtrack" if args.sonify else "demo_with_music"
    # a video of the user's: the container its stream can be copied into (.mp4 first), said when not .mp4
    mux_plan, ext = (_choose_container(args.video, os.path.join(out, stem)) if args.video else (None, ".mp4"))
    muxed = plan.file(os.path.join(out, stem + ext), "the video with music", create_parent=True)
    sidecar = None if args.sonify else plan.file(muxed + REDO_SUFFIX, "the redo file", create_parent=True)
    with plan:
        gen = None
        if not args.sonify:  # the model first: a bad checkpoint fails before anything is written
            ckpt = args.checkpoint or DEMO_CHECKPOINT
            gen = generate.load_music_model(ckpt, text_encoder=args.text_encoder, precision=args.precision)
            settings = resolve_sampling(gen, args)  # bad settings fail before any work, naming the file
            notes = generate.model_notes(gen)
        if mux_plan is not None and mux_plan.note:
            print(f"note: {mux_plan.note}")
        truth = None
        if not args.video:
            clip = examples.make_cut_clip(video, cut_times=[c for c in DEMO_CUTS if c < args.duration],
                                          duration=args.duration, fps=args.fps, size=(320, 180))
            truth = clip.cut_times
            print(f"generated {video}: {args.duration:g} s at {args.fps:g} fps with cuts at "
                  + ", ".join(f"{c:.3f}" for c in truth))
        if gen is not None:
            print(f"model: {ckpt}" + "".join(f"\n  note: {n}" for n in notes))
        spec = gen.curve_spec if gen else CurveSpec(encoder="pixels", rate=curves.SAO_LATENT_RATE)
        with Progress("encoding frames", unit="frames") as bar:
            raw = encoders.encode_video_curve(video, encoders.get_encoder(spec.encoder), progress=bar)
        peaks = curves.find_peaks(raw)
        marks = []
        if gen is None:
            latent_curve = CurveSpec(rate=curves.SAO_LATENT_RATE).smooth(raw)
            wave, sr = sonify(latent_curve, peaks, raw.duration), 44100  # a spool: closed after scoring
            media.mux_audio(video, wave, sr, muxed, plan=mux_plan)
        else:
            warm = warm_up_scoring() if WARM_UP_SCORING else None
            if args.only_window is None:
                sampled = sample_with_progress(gen, raw, settings, prompt=args.prompt)
            else:
                sampled = redo_with_progress(gen, sidecar, video, args.only_window, settings.seed, prompt=args.prompt)
            lat, latent_curve, windows = sampled.latents, sampled.job.latent_curve, sampled.job.plan
            sr = gen.sample_rate
            if len(windows) > 1:
                marks = [("windows", windows.starts), ("joins", windows.joins)]
            spool = generate.decode_to_spool(gen, lat, raw.duration)  # closed (deleted) after scoring
            media.mux_audio(video, spool, sr, muxed, plan=mux_plan)
            generate.save_redo(sidecar, gen, sampled)
            del sampled, lat  # on disk now: the latents (115 MB an hour for the demo model) are not held while scoring
            wave = spool  # scored as a stream
        write_json(curve_json, curve_document(video, raw, latent_curve, peaks))
        plot.save_png(plot.plot_curves([("conditioning curve", latent_curve), ("event curve", raw)],
                                       peaks=peaks, marks=marks,
                                       title=f"event curve of {os.path.basename(video)}"), png)
        if gen is not None and warm is not None:
            warm.join()
        try:
            with Progress("scoring"):
                result = score(muxed, wave, sr, raw.duration, truth if truth is not None else peaks,
                               "the clip's known cut times" if truth is not None else "event-curve hit points")
        finally:
            wave.close()
    files = [("curve JSON", curve_json), ("curve plot", png), ("video + music" if gen else "video + soundtrack", muxed)]
    _report(result, peaks, truth, args.fps, files + ([("redo file", sidecar)] if sidecar else []))
    if gen is None:
        print("note: the soundtrack is a sonification of the curve (hits at hit points), not generated music")
    return 0
