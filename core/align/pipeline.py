"""Bring your own music: retime a track so that its beats land on a video's hit points.

``align_music(wave, sr, hits, duration)`` analyses the music (beats, bars, onsets), extends it by
looping whole bars when it is shorter than the video, plans the time map (bounded tempo change,
optional beat or bar edits, a musical ending) and renders it (Rubber Band, crossfades at quiet
points, channels kept, true peak limited as the mux path does). The result lasts exactly the
video's duration (``round(duration · sr)`` samples).

Hit points come from the video's event curve (:func:`video_hit_points`, or :func:`curve_hit_points`
for a curve already computed): the peaks of ``curves.find_peaks``, each with the curve's value
there as its strength, so hard cuts outweigh small motion.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from ..timing import curves
from .analysis import AlignError, MusicAnalysis, bpm_of, front_end, read_beats
from .render import choose_stretcher, join_pieces, stretch_pieces
from .timeline import build_timeline
from .timemap import AlignOptions, TimeMap, plan


@dataclass
class Alignment:
    audio: np.ndarray  # float32 [C, round(duration · sr)]
    sample_rate: int
    tmap: TimeMap
    analysis: MusicAnalysis
    hits: np.ndarray
    strengths: np.ndarray
    stretcher: str
    seconds: float  # wall time of analysis + planning + rendering
    heard: dict | None = None  # heard_sync() of the result
    attempts: int = 1  # renderings heard (readings of the beats tried)
    tries: list | None = None  # per rendering heard: its reading, the music's tempo on it, what was heard
    intro_skipped: float | None = None  # the track's first heard beat, where the music begins (skip_intro)

    def summary(self) -> dict:
        t = self.tmap
        return {
            "duration": t.duration, "music_duration": self.analysis.duration,
            "tempo_bpm": round(self.analysis.tempo, 2),
            "meter": self.analysis.meter, "hits": len(self.hits), "hits_on_beats": len(t.anchors),
            "heard": self.heard, "tempo_readings_tried": self.attempts,
            "max_tempo_change": round(t.max_tempo_change, 4), "edits": t.edits, "seams": t.seams,
            "loop_seams": len(t.seams) - len(t.edits), "ending": t.ending, "stretcher": self.stretcher,
            "seconds": round(self.seconds, 3),
            "anchors": t.anchors, "music_start": round(float(t.pieces[0].src_a), 3) if t.pieces else 0.0,
            "intro_skipped": self.intro_skipped,
        }


def curve_hit_points(curve: curves.Curve, *, threshold: float | None = None, min_gap: float = 0.25):
    """(hit times, strengths) of an event curve: its stored peaks (``spec["peaks"]``) or ``find_peaks``."""
    peaks = curve.spec.get("peaks") if isinstance(curve.spec, dict) else None
    t = np.asarray(peaks if peaks is not None else curves.find_peaks(curve, threshold=threshold, min_gap=min_gap),
                   dtype=np.float64)
    if t.size == 0 or len(curve) == 0:
        return t, np.zeros(0)
    i = np.clip(np.searchsorted(curve.times, t - 1e-9), 0, len(curve) - 1)
    return t, np.maximum(curve.values[i].astype(np.float64), 0.0)


def video_hit_points(video, *, encoder: str = "pixels", progress=None, check_interrupt=None):
    """(raw event curve, hit times, strengths) of a video file with a weightless frame encoder."""
    from ..timing import encoders

    enc = encoders.get_encoder(encoder)
    try:
        raw = encoders.encode_video_curve(video, enc, progress=progress, check_interrupt=check_interrupt)
    finally:
        enc.close()
    t, s = curve_hit_points(raw)
    return raw, t, s


def needed_music(duration: float, options: AlignOptions) -> float:
    """Seconds of music the planner may need for a video of ``duration`` seconds."""
    return duration * (1.0 + options.max_stretch) * 1.1 + 2.0 + 2 * options.end_fade + 4.0


#: Score a plan that loops gives up against one that plays the music straight through.
LOOP_PENALTY = 0.5


def _best_plan(analysis: MusicAnalysis, hits, strengths, duration: float, options: AlignOptions) -> TimeMap:
    """The plan on the music as it is when it is long enough, else (or when clearly better) on a looped chain."""
    needed = needed_music(duration, options)
    straight = None
    if analysis.duration - options.start >= duration * (1.0 - options.max_stretch) + 0.5:
        tl = build_timeline(analysis, start=options.start, needed=0.0, extend=options.extend)
        try:
            straight = plan(analysis, tl, hits, duration, strengths=strengths, options=options)
        except AlignError:
            straight = None
        if straight is not None and analysis.duration - options.start >= needed:
            return straight
    tl = build_timeline(analysis, start=options.start, needed=needed, extend=options.extend)
    chained = plan(analysis, tl, hits, duration, strengths=strengths, options=options)
    if straight is not None and straight.score >= chained.score - LOOP_PENALTY:
        return straight
    return chained


#: A result is kept without trying other readings of the beat when the beat tracker hears at
#: least this share of the hit points (strength-weighted) ...
GOOD_SCH = 0.8
#: ... this far above its chance level ...
MARGIN = 0.35
#: ... and at least this share of what was planned.
CONFIRM = 0.9
#: Most renderings one alignment may listen to (each costs one Rubber Band pass); one more when the scene cuts
#: are known and some hit points are not cuts (the plan on the cuts alone, :func:`_cut_hits`).
MAX_ATTEMPTS = 8
#: Plans tried on the best reading so far when no reading was heard well (the last renderings
#: :data:`MAX_ATTEMPTS` allows): a steadier tempo (half the tempo bound: the beat tracker assumes one
#: tempo, and hears a steadier one better) and beats landed closer to the hit points (half the slack).
VARIANTS = (("steadier", {"max_stretch": 0.5}), ("closer", {"slack": 0.5}))
#: A rendering with smooth joins that is not heard well is replaced by the same pieces joined plainly
#: when those are heard well, or heard better by more than this margin (chance levels of two
#: renderings heard alike differ by about 0.01: the smooth joins are not given up for that).
PLAIN_BY = 0.02
#: Circular shifts for the chance level on the scene cuts (as the sync report and the benchmark count it).
CUT_SHIFTS = 200


def as_encoded(audio: np.ndarray, sample_rate: int, bitrate: int = 192_000) -> np.ndarray:
    """``audio`` exactly as a video file written by :func:`~..timing.media.mux_audio` holds it, decoded back:
    mastered and AAC-encoded by the mux's own audio path (:func:`~..timing.media.mux.delivered_audio`,
    sample for sample the file's audio), at the mux rate.

    The beat tracker can hear an AAC rendering at another tempo than the samples before encoding
    (on a 123 BPM track: 128 BPM before, 245 after), and a listening copy encoded any other way
    (another bitrate, another container's priming) can be heard at yet another: so the listening
    check listens to exactly this."""
    from ..timing.media.mux import delivered_audio

    w = np.asarray(audio, dtype=np.float32)
    y, sr = delivered_audio(w, int(sample_rate), w.shape[1], bitrate=bitrate)
    if int(sr) != int(sample_rate):  # only for rates the mux does not write (align_music delivers at mux_rate)
        from ..timing import media

        y = media.fit_length(media.resample_audio(y, int(sr), int(sample_rate)), w.shape[1])
    return np.asarray(y, dtype=np.float32)


def heard_sync(audio: np.ndarray, sample_rate: int, hits, strengths, duration: float,
               tolerance: float = 0.1, *, encoded: bool = False, cuts=None) -> dict:
    """How the result sounds to Scene Cut Hit's beat tracker, on the hit points themselves
    (``encoded``: after an AAC round trip, :func:`as_encoded`: what a video file holds).

    ``sch``: the strength-weighted share of hit points with a tracked beat within ``tolerance``;
    ``chance``: its chance level (``sch_null``, 50 shifts); ``bpm``: the tempo the tracker hears;
    ``beats``: the tracked beat times (output seconds). With ``cuts`` (the video's scene cuts, as
    the sync report counts them), ``heard["cuts"]`` is Scene Cut Hit on them as the report measures it
    (plain share, chance with :data:`CUT_SHIFTS` shifts): ``{"sch", "chance", "margin"}``.
    """
    from ..eval.sch import beat_times, scene_cut_hit, sch_null

    if encoded:
        audio = as_encoded(audio, sample_rate)
    beats = beat_times(audio.mean(axis=0), sample_rate)
    hits = np.asarray(hits, dtype=np.float64)
    on_cuts = None
    if cuts is not None and np.size(cuts):
        c = np.asarray(cuts, dtype=np.float64).reshape(-1)
        if beats.size < 2:
            on_cuts = {"sch": 0.0, "chance": 0.0, "margin": 0.0}
        else:
            c_sch = float(scene_cut_hit(c, beats, tolerance))
            c_chance = float(sch_null(c, beats, duration, tolerance, n_shifts=CUT_SHIFTS) or 0.0)
            on_cuts = {"sch": c_sch, "chance": c_chance, "margin": c_sch - c_chance}
    if beats.size < 2 or hits.size == 0:
        return {"sch": 0.0, "chance": 0.0, "bpm": 0.0, "margin": 0.0, "beats": beats, "cuts": on_cuts}
    sch = scene_cut_hit(hits, beats, tolerance, weights=strengths)
    chance = float(sch_null(hits, beats, duration, tolerance, n_shifts=50) or 0.0)
    return {"sch": sch, "chance": chance, "bpm": bpm_of(beats), "margin": sch - chance, "beats": beats,
            "cuts": on_cuts}


def _tempo_readings(first_bpm: float, heard_bpm: float) -> list[float]:
    """Other tempi to track the beats at: what the tracker heard in the result, double or half."""
    out = []
    for bpm in (heard_bpm, first_bpm * 2 if first_bpm < 110 else first_bpm / 2 if first_bpm > 140 else None):
        if bpm and 40 <= bpm <= 240 and all(abs(np.log(bpm / b)) > 0.1 for b in [first_bpm, *out]):
            out.append(float(bpm))
    return out


def source_beats(tmap: TimeMap, beats) -> np.ndarray:
    """Output times ``beats`` mapped back to the source through ``tmap`` (sorted, one per 50 ms)."""
    out = []
    for t in np.asarray(beats, dtype=np.float64).reshape(-1):
        for p in tmap.pieces:
            if p.out_a <= t < p.out_b:
                out.append(p.src_a + (t - p.out_a) * p.rate)
                break
    src = np.sort(np.asarray(out, dtype=np.float64))
    return src[np.concatenate([[True], np.diff(src) > 0.05])] if src.size else src


def _on_goal(score: dict | None) -> bool:
    """The issue's goal on one set of points: heard on at least :data:`GOOD_SCH` of them, :data:`MARGIN` above
    chance (True when there is nothing to score)."""
    return score is None or (score["sch"] >= GOOD_SCH - 1e-9 and score["margin"] >= MARGIN - 1e-9)


def _good(heard: dict, planned: float) -> bool:
    """Heard well: on the hit points (and as much as was planned) and, when the scene cuts are known, on them."""
    return (heard["sch"] >= GOOD_SCH and heard["margin"] >= MARGIN
            and heard["sch"] >= CONFIRM * planned - 1e-9 and _on_goal(heard.get("cuts")))


def _rank(heard: dict) -> tuple:
    """How good a rendering is heard, larger is better. Without the scene cuts: the margin over chance on the
    hit points. With them, the goal first: renderings that reach it on the cuts before those that do not; among
    those that do, the margin on the hit points; among those that do not, how close they come on the cuts (the
    smaller of SCH − :data:`GOOD_SCH` and margin − :data:`MARGIN`)."""
    c = heard.get("cuts")
    if c is None:
        return (0, heard["margin"])
    if _on_goal(c):
        return (1, heard["margin"])
    return (0, min(c["sch"] - GOOD_SCH, c["margin"] - MARGIN))


def _better(a: dict, b: dict, by: float = 1e-9) -> bool:
    """``a`` ranks above ``b`` (:func:`_rank`), by more than ``by`` within the same goal class."""
    ra, rb = _rank(a), _rank(b)
    return ra[0] > rb[0] or (ra[0] == rb[0] and ra[1] > rb[1] + by)


_DEFAULT_OPTIONS = AlignOptions()  # frozen, so one shared default is safe


def delivery_rate(sample_rate: int) -> int:
    """The rate aligned music is delivered at: the rate the mux writes (44.1 or 48 kHz; others become 48 kHz)."""
    from ..timing.media.stream import mux_rate

    return mux_rate(int(sample_rate))


#: Output rates :func:`align_music` accepts (Hz).
OUTPUT_RATES = (8000, 192000)


def align_music(wave: np.ndarray, sample_rate: int, hits, duration: float, *, strengths=None,
                options: AlignOptions = _DEFAULT_OPTIONS, stretcher: str = "auto", name: str = "the music",
                output_rate: int | None = None, listen_encoded: bool = True, cuts=None, progress=None,
                check_interrupt=None) -> Alignment:
    """Retime ``wave`` ``[C, T]`` so its beats land on ``hits`` (s) in a ``duration``-second video.

    The music is first resampled to ``output_rate`` (default :func:`delivery_rate`: the rate the
    video file will hold), so that its beats are planned, rendered and *heard* at the rate it is
    delivered at: the beat tracker hears other beats in an 11 kHz track than in the same track at
    48 kHz. ``Alignment.sample_rate`` is that rate. ``listen_encoded``: every rendering is listened to
    after an AAC round trip (:func:`as_encoded`), as the video file will hold it.

    The result is listened to with the beat tracker Scene Cut Hit uses (:func:`heard_sync`, on the
    hit points): beats planned on the hit points only count when a listener hears them there.
    Music can be heard at more than one tempo (94 or 126 BPM, 79 or 157 BPM) and a stretched track
    can be heard off its planned beats, so the music is aligned on several *readings* of its beats,
    best first, until one is heard well (:func:`_good`) or :data:`MAX_ATTEMPTS` renderings were
    heard; the one heard best (``margin`` over chance) is kept. The readings: Scene Cut Hit's own
    tracker on the track; librosa's tracker on a mel front end; after each, the beats the tracker
    heard in that result mapped back to the track (:func:`source_beats`: where the beats are heard
    once stretched); then the tempo heard in the first result, and double or half the first tempo;
    when none was heard well, the best reading's plan again with half the tempo bound and with half
    the slack (:data:`VARIANTS`). Every rendering is heard as it is delivered: true-peak limited, and
    (``listen_encoded``) through the mux's own AAC path (:func:`as_encoded`), so the figure kept in
    ``Alignment.heard`` (with the beats heard) is the delivered file's, sample for sample.
    Each rendering's joins are first made smooth (``render.join_pieces``: joins where the loudness
    steps least, the music's own loudness restored around them); when that rendering is not heard
    well, the same stretched pieces joined plainly are heard too and kept if the tracker hears them
    well, or better by more than :data:`PLAIN_BY` (``heard["seams"]`` says which was kept): smoothing
    a join can move what the tracker hears.

    ``cuts``: the video's scene cuts when known (PySceneDetect, as the sync report counts them). Then every
    rendering is also heard on the cuts (``heard["cuts"]``), a rendering is heard well only when it reaches the
    goal there too (SCH ≥ :data:`GOOD_SCH`, :data:`MARGIN` above chance), the renderings are ranked goal first
    (:func:`_rank`; the plain joins replace the smooth ones by the same rank), and when some hit points are not
    cuts (motion peaks), the best reading is also planned on the cuts alone. Without ``cuts``, as before.

    A beatless opening (``options.skip_intro``, :func:`_intro_start`): when Scene Cut Hit's tracker first hears a
    beat in the track more than ``MAX_START_SKIP`` after ``options.start`` (a quiet intro, out of the plan's
    reach), cuts (or hit points) fall within that stretch, and no reading was heard well, the music from its
    first heard beat is aligned too (its own reading, and the beats heard in it), ranked with the others;
    ``Alignment.intro_skipped`` says when it was kept.
    """
    from ..timing.media.levels import limit_true_peak
    from .timemap import MAX_START_SKIP

    t0 = time.perf_counter()
    if not duration > 0:
        raise AlignError(f"the video's duration must be positive, got {duration}")
    w = np.asarray(wave, dtype=np.float32)
    w = w[None] if w.ndim == 1 else w
    rate = delivery_rate(sample_rate) if output_rate is None else int(output_rate)
    if not OUTPUT_RATES[0] <= rate <= OUTPUT_RATES[1]:
        raise AlignError(f"output_rate {rate} Hz is outside {OUTPUT_RATES[0]}–{OUTPUT_RATES[1]} Hz")
    if rate != int(sample_rate) and w.size:
        from ..timing.media import resample_audio

        w = np.ascontiguousarray(resample_audio(w, int(sample_rate), rate), dtype=np.float32)
    sample_rate = rate
    how = choose_stretcher(stretcher)
    hits = np.asarray(hits, dtype=np.float64).reshape(-1)
    s = np.ones_like(hits) if strengths is None else np.asarray(strengths, dtype=np.float64).reshape(-1)
    until = options.start + needed_music(duration, options) + MAX_START_SKIP
    front = front_end(w, sample_rate, name=name, until=until)  # once: every reading shares it
    queue: list[dict] = [{"tracker": "sch"}, {"tracker": "mel"}]
    cuts = None if cuts is None else np.asarray(cuts, dtype=np.float64).reshape(-1)
    only_cuts = _cut_hits(hits, s, cuts)
    best, attempts, tries, varied, limit, first_heard = None, 0, [], False, MAX_ATTEMPTS, None
    while queue and attempts < limit:
        reading = queue.pop(0)
        try:
            analysis = reading["analysis"] if "analysis" in reading else read_beats(
                reading.get("front", front), **{k: reading[k] for k in _READ_KEYS if k in reading})
        except AlignError:  # too few beats in this reading
            if best is None and not queue:
                raise
            continue
        if reading == {"tracker": "sch"}:  # where the listener first hears a beat in the track
            first_heard = float(analysis.beats[0])
        attempts += 1
        on = reading.get("hits", hits), reading.get("strengths", s)  # what the plan lands beats on
        tmap = _best_plan(analysis, on[0], on[1], duration, reading.get("options", options))
        tracks = stretch_pieces(w, sample_rate, tmap, stretcher=how, progress=progress,
                                check_interrupt=check_interrupt)
        # as handed on: what is heard is what is delivered
        out = limit_true_peak(join_pieces(tracks, w, sample_rate, tmap, "smooth"), int(sample_rate))
        if not hits.size:
            best = ({"sch": 0.0, "chance": 0.0, "bpm": analysis.tempo, "margin": 0.0}, analysis, tmap, out)
            break
        planned = _planned_share(tmap, hits, s)
        heard = {**heard_sync(out, int(sample_rate), hits, s, duration, encoded=listen_encoded, cuts=cuts),
                 "seams": "smooth"}
        if not _good(heard, planned):  # the plain joins, when the tracker hears them better
            plain = limit_true_peak(join_pieces(tracks, w, sample_rate, tmap, "plain"), int(sample_rate))
            heard_plain = {**heard_sync(plain, int(sample_rate), hits, s, duration, encoded=listen_encoded,
                                        cuts=cuts), "seams": "plain"}
            if _good(heard_plain, planned) or _better(heard_plain, heard, PLAIN_BY):
                out, heard = plain, heard_plain
        del tracks
        tries.append({"reading": reading.get("tracker") or f"{reading['bpm']:.0f} BPM", "tempo": analysis.tempo,
                      "plan": reading.get("plan", "as asked"), "seams": heard["seams"],
                      "sch": heard["sch"], "chance": heard["chance"], "heard_bpm": heard["bpm"],
                      "cuts": heard.get("cuts"), "music_start": round(float(tmap.pieces[0].src_a), 3)})
        if best is None or _better(heard, best[0]):
            best, best_reading, best_try = (heard, analysis, tmap, out), tries[-1]["reading"], tries[-1]
        if _good(heard, planned):
            break
        if "beats" not in reading and "analysis" not in reading and heard["beats"].size >= 4:
            queue.insert(0, {**{k: reading[k] for k in ("front", "options", "plan") if k in reading},
                             "beats": source_beats(tmap, heard["beats"]), "tracker": "heard"})
        if attempts == 1:
            queue += [{"bpm": b} for b in _tempo_readings(analysis.tempo, heard["bpm"])]
        if not varied and (not queue or attempts >= MAX_ATTEMPTS - len(VARIANTS)):
            varied = True
            extra = []  # plans for what the readings cannot change; each gets a rendering of its own
            if only_cuts is not None:  # the plan that lands beats on the scene cuts alone
                extra.append({"analysis": best[1], "tracker": best_reading, "plan": "on the cuts",
                              "hits": only_cuts[0], "strengths": only_cuts[1]})
            limit += len(extra)
            later = _intro_start(first_heard, options, hits, cuts)
            if later is not None:  # the music from its first heard beat: its reading and what it is heard as
                extra.append({"tracker": "sch", "plan": "after the intro", "options": replace(options, start=later),
                              "front": front_end(w, sample_rate, name=name, until=later + needed_music(
                                  duration, options) + MAX_START_SKIP)})
                limit += 2
            queue[:0] = extra + [{"analysis": best[1], "tracker": best_reading, "plan": what, "options": replace(
                options, **{k: getattr(options, k) * f for k, f in change.items()})} for what, change in VARIANTS]
    heard, analysis, tmap, out = best
    heard = {**heard, "beats": [float(b) for b in heard.get("beats", ())],
             "encoded": bool(listen_encoded and hits.size)}
    intro = first_heard if hits.size and best_try["plan"] == "after the intro" else None
    return Alignment(audio=np.ascontiguousarray(out, dtype=np.float32), sample_rate=int(sample_rate), tmap=tmap,
                     analysis=analysis, hits=hits, strengths=s, stretcher=how, seconds=time.perf_counter() - t0,
                     heard=heard, attempts=attempts, tries=tries, intro_skipped=intro)


#: Keys of a reading that :func:`~.analysis.read_beats` takes.
_READ_KEYS = ("tracker", "bpm", "beats")


def _intro_start(first_heard: float | None, options: AlignOptions, hits: np.ndarray, cuts) -> float | None:
    """Where the music may begin instead of ``options.start`` (:attr:`AlignOptions.skip_intro`): at its first
    heard beat, when the opening before it has no beat the tracker hears (it begins more than
    ``MAX_START_SKIP`` after the start, out of the plan's reach) and hit points or cuts fall within that
    stretch of the video, where no beat could be heard on them; else None."""
    from .timemap import MAX_START_SKIP

    if not options.skip_intro or first_heard is None or first_heard <= options.start + MAX_START_SKIP:
        return None
    points = hits if cuts is None or not np.size(cuts) else np.asarray(cuts, dtype=np.float64)
    return first_heard if np.any(points < first_heard - options.start) else None


#: A hit point within this many seconds of a scene cut is that cut's.
CUT_MATCH = 0.05


def _cut_hits(hits: np.ndarray, strengths: np.ndarray, cuts) -> tuple[np.ndarray, np.ndarray] | None:
    """(hit points that are scene cuts, their strengths) when some hit points are not cuts (motion peaks), else
    None: a plan on these alone cannot be pulled off the cuts by a strong motion peak between two of them."""
    if cuts is None or not np.size(cuts) or not hits.size:
        return None
    near = np.abs(hits[:, None] - np.asarray(cuts, dtype=np.float64)[None, :]).min(axis=1) <= CUT_MATCH
    if near.all() or not near.any():
        return None
    return hits[near], strengths[near]


def _planned_share(tmap: TimeMap, hits: np.ndarray, strengths: np.ndarray) -> float:
    """Strength-weighted share of the hit points the plan put a beat on."""
    if hits.size == 0:
        return 0.0
    landed = {round(a["hit"], 9) for a in tmap.anchors}
    on = np.array([round(float(h), 9) in landed for h in hits])
    return float(np.sum(strengths * on) / max(np.sum(strengths), 1e-12))


def unaligned(wave: np.ndarray, sample_rate: int, duration: float, start: float = 0.0, *,
              output_rate: int | None = None) -> np.ndarray:
    """The music as it would play without alignment: from ``start``, cut (or padded) to ``duration``;
    resampled to ``output_rate`` when given (then ``[C, round(duration · output_rate)]``)."""
    from ..timing.media import fit_length, resample_audio

    w = np.asarray(wave, dtype=np.float32)
    if w.ndim == 1:
        w = w[None]
    if output_rate is not None and int(output_rate) != int(sample_rate):
        w = np.asarray(resample_audio(w, int(sample_rate), int(output_rate)), dtype=np.float32)
        sample_rate = int(output_rate)
    return fit_length(w[:, int(round(start * sample_rate)):], int(round(duration * sample_rate)))
