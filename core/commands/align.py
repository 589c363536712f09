"""``v2m-zero align VIDEO MUSIC --out OUT.mp4``: retime your own music so its beats land on the cuts.

``v2m-zero align VIDEO --generate-with CHECKPOINT --out OUT.mp4``: generate the music first (a Stable Audio
base, or any V2M checkpoint) with a prompt that asks for a tempo the cuts fit, then align it."""

from __future__ import annotations

import argparse
import logging

from ._common import (AUDIO_OUT, VIDEO_OUT, OutputPlan, Progress, add_sampling_arguments, number, plan_video_output,
                      sampling_settings, write_json)

NAME = "align"
HELP = "retime a music file so its beats land on the video's cuts, and put it into the video"

log = logging.getLogger("v2m_zero.align")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..align.render import STRETCHERS
    from ..align.timemap import EDIT_KINDS, MAX_START_SKIP

    p.add_argument("video", help="input video (never modified); its own soundtrack is replaced")
    p.add_argument("music", nargs="?", default=None,
                   help="music file (wav, flac, mp3, ogg, opus, m4a, ... or a video with sound); "
                        "or leave it out and give --generate-with")
    p.add_argument("--out", required=True, help=f"output video ({', '.join(VIDEO_OUT)}); written atomically")
    p.add_argument("--max-stretch", type=number(float, 0, 0.25), default=0.08,
                   help="largest local tempo change as a fraction, 0–0.25 (default 0.08 = ±8 %%)")
    p.add_argument("--edits", choices=EDIT_KINDS, default="beats",
                   help="also drop or repeat a beat or a bar at a quiet point where stretching alone cannot reach "
                        "a cut (default beats; none = stretch only)")
    p.add_argument("--slack", type=number(float, 0, 0.1), default=0.04,
                   help="seconds a beat may land from its cut, 0–0.1 (default 0.04; Scene Cut Hit counts ±0.1): "
                        "more reaches more cuts with smaller tempo changes")
    p.add_argument("--start", type=number(float, 0, 36_000), default=0.0,
                   help="seconds into the music where the output starts "
                        f"(default 0; it may start up to {MAX_START_SKIP:g} s later, on a beat)")
    p.add_argument("--keep-intro", action="store_true",
                   help="keep a beatless opening: by default, when the track's first heard beat comes more than "
                        f"{MAX_START_SKIP:g} s after --start, cuts fall before it and no alignment from --start "
                        "lands on them, the music may start at that first beat")
    p.add_argument("--end-fade", type=number(float, 0.25, 2.0), default=1.0,
                   help="seconds of fade after the final bar line, 0.25–2 (default 1)")
    p.add_argument("--pad-silence", action="store_true",
                   help="music shorter than the video: pad with silence instead of looping whole bars")
    p.add_argument("--stretcher", choices=STRETCHERS, default="auto",
                   help="time-stretcher: Rubber Band via pedalboard (auto) or librosa's phase vocoder")
    p.add_argument("--audio-out", default=None, help=f"also write the aligned music ({', '.join(AUDIO_OUT)})")
    p.add_argument("--plot", default=None, help="also write a PNG of the hit points against the beats before and after")
    p.add_argument("--json", default=None, help="also write the report as JSON")
    g = p.add_argument_group("generate, then align (instead of MUSIC)")
    g.add_argument("--generate-with", metavar="CHECKPOINT", default=None,
                   help="generate the music with this checkpoint first (a Stable Audio Open 1.0 / Stable Audio 3 "
                        "base from models/checkpoints, or a V2M checkpoint), for the video's length, then align it")
    g.add_argument("--prompt", default="", help="what the music should sound like; the tempo the cuts fit is added "
                                                "(e.g. 'Steady beat at 120 BPM')")
    g.add_argument("--negative-prompt", default="", help="what to steer away from")
    g.add_argument("--text-encoder", default=None, help="text encoder for the checkpoint (a T5 folder for Stable "
                                                        "Audio Open, T5Gemma for Stable Audio 3)")
    g.add_argument("--codec", default=None, help="audio codec file, if the checkpoint does not carry one")
    g.add_argument("--music-out", default=None, help=f"also write the generated music before alignment "
                                                     f"({', '.join(AUDIO_OUT)})")
    g.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"), help="generator precision")
    g.add_argument("--device", default=None, help="torch device for the generator (default: cuda if available)")
    add_sampling_arguments(g)
    p.add_argument("--cuts", choices=("auto", "scenedetect", "hits"), default="auto",
                   help="cuts the Scene Cut Hit report counts and the aligner listens on: PySceneDetect's (paper "
                        "Alg. 1; auto: when installed, else not measured) or none (hits); the hit points the music was "
                        "aligned to are always reported on their own line")


def _report_cuts(video, how: str):
    """(cut times or None, label, note) for the SCH report: PySceneDetect's cuts, or why there are none."""
    label = "scene cuts (PySceneDetect)"
    if how == "hits":
        return None, label, "--cuts hits: counted on the hit points only"
    from ..errors import V2MError
    from ..timing.cuts import detect_cuts

    try:
        return list(detect_cuts(video, "scenedetect")), label, None
    except V2MError as exc:
        if how == "scenedetect":
            raise
        first = str(exc).split(". ")[0].split(": pip")[0]
        log.warning("Scene Cut Hit on the cuts is not measured: %s", first)
        return None, label, f"{first}: pip install scenedetect"


def _generated(args, raw, hits, strengths, duration):
    """(music [C, T], rate, label) generated for the video: the prompt asks for the tempo its cuts fit."""
    from .. import generate
    from ..align.tempo import fitting_tempo, tempo_prompt
    from ..prompt.pacing import pacing_from_cuts

    gen = generate.load_music_model(args.generate_with, text_encoder=args.text_encoder, codec=args.codec,
                                    device=args.device, precision=args.precision)
    settings = generate.resolve_sampling(gen, sampling_settings(args))
    bpm = fitting_tempo(hits, duration, hint=pacing_from_cuts(list(hits), duration).bpm, strengths=strengths)
    prompt = tempo_prompt(args.prompt, bpm)
    for note in generate.model_notes(gen):
        log.warning("%s", note)
    print(f"generating {duration:.2f} s of music with {args.generate_with}: {prompt!r}")
    with Progress("generating the music", unit="steps") as bar:
        lat = generate.sample_music(gen, raw, prompt, settings, negative_prompt=args.negative_prompt,
                                    progress=bar).latents
    wave = generate.decode_latents(gen, lat, duration)
    return wave, gen.sample_rate, f"music generated by {args.generate_with} ({bpm} BPM asked)"


def run(args) -> int:
    from ..align import pipeline, reporting
    from ..align.timemap import AlignOptions
    from ..eval.beats import agreement_line, tracker_agreement
    from ..timing import media, plot
    from ..timing.media.write import audio_depth

    from ..errors import V2MError

    if (args.music is None) == (args.generate_with is None):
        raise V2MError("give either a MUSIC file or --generate-with CHECKPOINT (not both, not neither)")
    plan = OutputPlan()
    plan.input(args.video, "input video")
    for path, label in ((args.music, "input music"), (args.generate_with, "--generate-with"),
                        (args.text_encoder, "--text-encoder"), (args.codec, "--codec")):
        if path is not None:
            plan.input(path, label)
    out = plan.file(args.out, "--out", extensions=VIDEO_OUT)
    music_out = plan.file(args.music_out, "--music-out", extensions=AUDIO_OUT) if args.music_out else None
    audio_out = plan.file(args.audio_out, "--audio-out", extensions=AUDIO_OUT) if args.audio_out else None
    png = plan.file(args.plot, "--plot", extensions=(".png",)) if args.plot else None
    js = plan.file(args.json, "--json", extensions=(".json",)) if args.json else None
    options = AlignOptions(max_stretch=args.max_stretch, edits=args.edits, slack=args.slack, start=args.start,
                           end_fade=args.end_fade, extend="silence" if args.pad_silence else "loop",
                           skip_intro=not args.keep_intro)
    with plan:
        mux_plan = plan_video_output(args.video, out)  # copy or re-encode, decided before any work
        duration = media.probe_video(args.video).duration
        with Progress("hit points of the video", unit="frames") as bar:
            raw, hits, strengths = pipeline.video_hit_points(args.video, progress=bar)
        if args.generate_with is not None:
            wave, sr, args.music = _generated(args, raw, hits, strengths, duration)
            if music_out:
                media.write_audio(music_out, wave if wave.shape[0] <= 2 else wave[:2], sr,
                                  layout="mono" if wave.shape[0] == 1 else "stereo", master=True, depth="float")
        else:
            wave, sr = media.decode_audio(args.music)
        cuts, label, note = _report_cuts(args.video, args.cuts)  # the cuts the report counts, heard on while aligning
        with Progress("aligning the music", unit="pieces") as bar:
            result = pipeline.align_music(wave, sr, hits, duration, strengths=strengths, options=options,
                                          stretcher=args.stretcher, name=args.music, cuts=cuts, progress=bar)
        rate = result.sample_rate  # the rate the file holds (pipeline.delivery_rate)
        media.mux_audio(args.video, result.audio, rate, out, plan=mux_plan)
        if audio_out:
            layout = "mono" if result.audio.shape[0] == 1 else "stereo"
            audio = result.audio if result.audio.shape[0] <= 2 else result.audio[:2]
            media.write_audio(audio_out, audio, rate, layout=layout, master=True, depth="float")  # float: keep it
        # the report is the file's: its audio decoded back (AAC, mastered), at the rate it holds
        delivered, file_rate = media.decode_audio(out)
        sync = reporting.sync_report(cuts, pipeline.unaligned(wave, sr, duration, args.start, output_rate=file_rate),
                                    delivered, file_rate, duration, hits=hits, cuts_label=label, cuts_note=note)
        text = reporting.format_report(result, sync)
        # Beat This! installed with its weights: how it agrees with librosa's beats on the delivered file
        agreement = tracker_agreement(delivered.mean(axis=0), file_rate, sync["beats_after"])
        if agreement:
            sync["trackers"] = agreement
            text += "\n" + agreement_line(agreement)
        if png:
            plot.save_png(reporting.report_plot(raw, hits, sync, result, title=text.splitlines()[0]), png)
        if js:
            write_json(js, {"video": args.video, "music": args.music, "out": out, **result.summary(), "sync": sync})
    print(text)
    print(f"aligned {args.music} to {args.video} -> {out}"
          + (f" (music: {audio_out}, {audio_depth(audio_out, 'float')})" if audio_out else ""))
    return 0
