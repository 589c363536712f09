"""``v2m-zero align VIDEO MUSIC --out OUT.mp4``: retime your own music so its beats land on the cuts."""

from __future__ import annotations

import argparse
import logging

from ._common import AUDIO_OUT, VIDEO_OUT, OutputPlan, Progress, number, plan_video_output, write_json

NAME = "align"
HELP = "retime a music file so its beats land on the video's cuts, and put it into the video"

log = logging.getLogger("v2m_zero.align")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..align.render import STRETCHERS
    from ..align.timemap import EDIT_KINDS, MAX_START_SKIP

    p.add_argument("video", help="input video (never modified); its own soundtrack is replaced")
    p.add_argument("music", help="music file (wav, flac, mp3, ogg, opus, m4a, ... or a video with sound)")
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
    p.add_argument("--end-fade", type=number(float, 0.25, 2.0), default=1.0,
                   help="seconds of fade after the final bar line, 0.25–2 (default 1)")
    p.add_argument("--pad-silence", action="store_true",
                   help="music shorter than the video: pad with silence instead of looping whole bars")
    p.add_argument("--stretcher", choices=STRETCHERS, default="auto",
                   help="time-stretcher: Rubber Band via pedalboard (auto) or librosa's phase vocoder")
    p.add_argument("--audio-out", default=None, help=f"also write the aligned music ({', '.join(AUDIO_OUT)})")
    p.add_argument("--plot", default=None, help="also write a PNG of the hit points against the beats before and after")
    p.add_argument("--json", default=None, help="also write the report as JSON")
    p.add_argument("--cuts", choices=("auto", "scenedetect", "hits"), default="auto",
                   help="cuts the Scene Cut Hit report counts: PySceneDetect's (paper Alg. 1; auto when installed) "
                        "or the hit points the music was aligned to")


def _report_cuts(video, hits, how: str):
    """(cut times, label) for the SCH report."""
    if how == "hits":
        return list(hits), "hit points"
    from ..errors import V2MError
    from ..timing.cuts import detect_cuts

    try:
        return list(detect_cuts(video, "scenedetect")), "scene cuts (PySceneDetect)"
    except V2MError as exc:
        if how == "scenedetect":
            raise
        log.warning("SCH is counted on the hit points: %s", str(exc).split(". ")[0])
        return list(hits), "hit points"


def run(args) -> int:
    from ..align import pipeline
    from ..align.timemap import AlignOptions
    from ..timing import media, plot
    from ..timing.media.write import audio_depth

    plan = OutputPlan()
    plan.input(args.video, "input video")
    plan.input(args.music, "input music")
    out = plan.file(args.out, "--out", extensions=VIDEO_OUT)
    audio_out = plan.file(args.audio_out, "--audio-out", extensions=AUDIO_OUT) if args.audio_out else None
    png = plan.file(args.plot, "--plot", extensions=(".png",)) if args.plot else None
    js = plan.file(args.json, "--json", extensions=(".json",)) if args.json else None
    options = AlignOptions(max_stretch=args.max_stretch, edits=args.edits, slack=args.slack, start=args.start,
                           end_fade=args.end_fade, extend="silence" if args.pad_silence else "loop")
    with plan:
        mux_plan = plan_video_output(args.video, out)  # copy or re-encode, decided before any work
        duration = media.probe_video(args.video).duration
        with Progress("hit points of the video", unit="frames") as bar:
            raw, hits, strengths = pipeline.video_hit_points(args.video, progress=bar)
        wave, sr = media.decode_audio(args.music)
        with Progress("aligning the music", unit="pieces") as bar:
            result = pipeline.align_music(wave, sr, hits, duration, strengths=strengths, options=options,
                                          stretcher=args.stretcher, name=args.music, progress=bar)
        media.mux_audio(args.video, result.audio, sr, out, plan=mux_plan)
        if audio_out:
            layout = "mono" if result.audio.shape[0] == 1 else "stereo"
            audio = result.audio if result.audio.shape[0] <= 2 else result.audio[:2]
            media.write_audio(audio_out, audio, sr, layout=layout, master=True, depth="float")  # float: keep it
        cuts, label = _report_cuts(args.video, hits, args.cuts)
        sync = pipeline.sync_report(cuts, pipeline.unaligned(wave, sr, duration, args.start), result.audio, sr,
                                    duration)
        text = pipeline.format_report(result, sync, cuts_label=label)
        if png:
            plot.save_png(pipeline.report_plot(raw, hits, sync, result, title=text.splitlines()[0]), png)
        if js:
            write_json(js, {"video": args.video, "music": args.music, "out": out, **result.summary(), "sync": sync})
    print(text)
    print(f"aligned {args.music} to {args.video} -> {out}"
          + (f" (music: {audio_out}, {audio_depth(audio_out, 'float')})" if audio_out else ""))
    return 0
