"""What an alignment did, for people: Scene Cut Hit before → after on the delivered audio (on the scene cuts
and, labelled apart, on the hit points, each with its chance level), a few report lines, and the plot."""

from __future__ import annotations

import numpy as np

from ..timing import curves


def sync_report(cuts, before: np.ndarray, after: np.ndarray, sample_rate: int, duration: float, *,
                hits=None, cuts_label: str = "scene cuts (PySceneDetect)", cuts_note: str | None = None,
                tolerance: float = 0.1, shifts: int = 200) -> dict:
    """Scene Cut Hit of the music before and after alignment, each with its chance level (``sch_null``).

    Measured on the waves given, at ``sample_rate``: give the audio as delivered (the decoded output
    file, or the AUDIO a node hands on) and the unaligned music at the same rate. ``cuts``: the
    video's cuts (PySceneDetect, paper Algorithm 1), or None when they could not be found
    (``cuts_note`` says why); ``hits``: the hit points the music was aligned to, reported
    separately (``sync["hits"]``) — they include motion peaks, so they are not cuts.
    Keys: ``rate``, ``cuts`` (list or None), ``cuts_label``, ``cuts_note``, ``sch_before``,
    ``sch_after``, ``chance_before``, ``chance_after`` (None without cuts), ``beats_before``,
    ``beats_after``, ``tolerance``, and ``hits`` (the same four scores on the hit points, or None).
    """
    from ..eval.sch import beat_times, sch_null, scene_cut_hit

    out: dict = {"rate": int(sample_rate), "cuts": None if cuts is None else [float(c) for c in cuts],
                 "cuts_label": cuts_label, "cuts_note": cuts_note, "tolerance": tolerance}
    beats = {}
    for key, wave in (("before", before), ("after", after)):
        w = np.asarray(wave, dtype=np.float32)
        beats[key] = beat_times(w.mean(axis=0) if w.ndim == 2 else w, sample_rate)
        out[f"beats_{key}"] = [float(b) for b in beats[key]]

    def scores(points) -> dict:
        r = {}
        for key in ("before", "after"):
            r[f"sch_{key}"] = scene_cut_hit(points, beats[key], tolerance)
            r[f"chance_{key}"] = sch_null(points, beats[key], duration, tolerance, n_shifts=shifts)
        return r

    out.update(scores(out["cuts"] if out["cuts"] is not None else []))
    if hits is not None:
        h = [float(t) for t in np.asarray(hits, dtype=np.float64).reshape(-1)]
        out["hits"] = {"times": h, **scores(h)}
    else:
        out["hits"] = None
    return out


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _sch_line(what: str, r: dict, tolerance: float) -> str:
    return (f"{what}: {_fmt(r['sch_before'])} -> {_fmt(r['sch_after'])} (chance level {_fmt(r['chance_before'])} -> "
            f"{_fmt(r['chance_after'])}, tolerance ±{tolerance} s)")


def format_report(result, sync: dict | None = None) -> str:  # result: pipeline.Alignment
    """A few lines for people: SCH before → after on the cuts and, labelled apart, on the hit points
    (both with chance levels, on the audio as delivered), tempo change, edits, ending."""
    s, t = result.summary(), result.tmap
    lines = []
    if sync is not None:
        where = f"on the delivered audio ({sync['rate']} Hz)"
        if sync["cuts"] is None:
            lines.append(f"Scene Cut Hit on scene cuts: not measured ({sync['cuts_note'] or 'no cuts given'})")
        elif not sync["cuts"]:
            lines.append(f"Scene Cut Hit on {sync['cuts_label']}: undefined, no cut found"
                         + (f" ({sync['cuts_note']})" if sync["cuts_note"] else ""))
        else:
            lines.append(_sch_line(f"Scene Cut Hit on {len(sync['cuts'])} {sync['cuts_label']} {where}", sync,
                                   sync["tolerance"]))
        if sync.get("hits") is not None and sync["hits"]["times"]:
            lines.append(_sch_line(f"Scene Cut Hit on {len(sync['hits']['times'])} hit points (event-curve peaks, "
                                   f"not only cuts) {where}", sync["hits"], sync["tolerance"]))
    heard = s["heard"] or {"sch": 0.0, "chance": 0.0}
    aac = " in an AAC rendering" if heard.get("encoded") else ""
    lines.append(f"hit points on a beat: {s['hits_on_beats']}/{s['hits']} planned, {100 * heard['sch']:.0f} % heard "
                 f"by the beat tracker{aac} (strength-weighted; chance {100 * heard['chance']:.0f} %); music "
                 f"{s['tempo_bpm']:.1f} BPM{', bars of ' + str(s['meter']) if s['meter'] else ', bars not detectable'}")
    lines.append(f"largest tempo change: {100 * s['max_tempo_change']:.1f} %; edits: "
                 + (", ".join(f"{e['kind']} {e['unit']} at {e['at']:.2f} s" for e in t.edits) or "none"))
    loops = len(t.seams) - len(t.edits)
    lines.append(f"music {s['music_duration']:.2f} s for a {s['duration']:.2f} s video"
                 + (f", looped ({loops} loop seam{'s' if loops != 1 else ''})" if loops > 0 else "")
                 + f"; ending: {_ENDINGS[t.ending]}; stretcher: {s['stretcher']}; {s['seconds']:.1f} s")
    if s["intro_skipped"] is not None:
        lines.append(f"the track's first {s['intro_skipped']:.1f} s have no beat the beat tracker hears under the "
                     f"cuts: the music starts {s['music_start']:.2f} s in, at its first heard beat (keep the intro: "
                     "--keep-intro, or skip_intro off)")
    return "\n".join(lines)


_ENDINGS = {"bar": "on a bar line with a fade", "natural": "the music's own ending", "fade": "a fade"}


def report_plot(curve: curves.Curve | None, hits, sync: dict | None, result, *, title: str = "",
                width: int | None = None, height: int | None = None) -> np.ndarray:
    """Hit points against the music's beats before and after (and the event curve when given)."""
    from ..timing import plot

    marks = [("hits", list(hits))]
    if sync is not None:
        marks += [("before", sync["beats_before"]), ("after", sync["beats_after"])]
    else:
        marks += [("after", list(result.tmap.beats_out))]
    shown = curve if curve is not None else curves.Curve(values=np.zeros(2),
                                                          times=np.array([0.0, result.tmap.duration]),
                                                          duration=result.tmap.duration)
    return plot.plot_curves([("event curve", shown)], peaks=list(hits), marks=marks, width=width or plot.PREVIEW_WIDTH,
                            height=height or plot.PREVIEW_HEIGHT, title=title)
