"""Procedural multi-instrument music: MIDI arrangements rendered with a General MIDI SoundFont.

Training music for ``benchmarks/zero_pair_music.py`` (issue 16), made by our code and nothing
downloaded but two Debian packages: ``apt-get install -y fluidsynth fluid-soundfont-gm``.

An **arrangement** (:func:`arrange`) is a piece in one style (rock, pop, funk, waltz, swing,
ballad, folk 6/8, dance, 5/4, bossa), key and tempo (70–160 BPM) with four parts — drums, bass,
chords and a lead — in General MIDI instruments. The piece is a chain of *sections* (intro,
verse, chorus, breakdown, bridge) whose boundaries are **hit points**: about half fall on a bar
line, the others at free times (1–4 s apart, as a film composer hits picture cuts): the tempo of
the section before a free hit is nudged so that a whole number of beats fits (the beat grid runs
on through every hit without a jump) and the groove restarts there on a downbeat. Each hit is a crash with
kick, bass and a chord stab; most are led into by a drum fill or a band stop; sections change
instrumentation and dynamics; accents (crash + stab) fall on random beats inside sections.
The caption is written from the arrangement (style, tempo, meter, key, instruments, mood words).

:func:`write_midi` writes the arrangement with pretty_midi; :func:`render` plays a MIDI file with
the ``fluidsynth`` command line and the FluidR3 GM SoundFont. Only the rendered audio is used for
training: its event curves come from our music encoders, not from the note list.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

import numpy as np

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
INSTALL_HINT = "apt-get install -y fluidsynth fluid-soundfont-gm"

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 3), (0, 5, 3, 4), (1, 4, 0, 0), (0, 3, 0, 4), (5, 3, 0, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 0, 3, 4)),
}
KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# GM percussion keys
KICK, RIM, SNARE, CLAP, HAT, PEDAL_HAT, OPEN_HAT, CRASH, RIDE, TOM_LO, TOM_MID, TOM_HI, CRASH2 = (
    36, 37, 38, 39, 42, 44, 46, 49, 51, 45, 47, 50, 57)

# GM programs by role: name -> program
INSTRUMENTS = {
    "bass": {"acoustic bass": 32, "finger bass": 33, "picked bass": 34, "fretless bass": 35, "slap bass": 36,
             "synth bass": 38},
    "chords": {"piano": 0, "electric piano": 4, "organ": 16, "nylon guitar": 24, "steel guitar": 25,
               "clean electric guitar": 27, "overdriven guitar": 29, "strings": 48, "warm pad": 89, "accordion": 21,
               "brass section": 61, "saw synth": 81},
    "lead": {"flute": 73, "trumpet": 56, "alto sax": 65, "tenor sax": 66, "violin": 40, "clarinet": 71,
             "vibraphone": 11, "marimba": 12, "square lead": 80, "distortion guitar": 30, "oboe": 68, "fiddle": 110,
             "whistle": 78, "saw synth": 81},
}

# style -> meter (beats per bar, steps per beat), tempo range, instruments, drum/bass/comp flavour
STYLES = {
    "rock": {"meter": (4, 4), "tempo": (95, 160), "bass": ("picked bass", "finger bass"),
             "chords": ("overdriven guitar", "piano", "organ"), "lead": ("distortion guitar", "square lead"),
             "drums": "rock", "bassline": "eighths", "comp": "sustain"},
    "pop": {"meter": (4, 4), "tempo": (85, 130), "bass": ("finger bass", "synth bass"),
            "chords": ("piano", "electric piano", "steel guitar"), "lead": ("flute", "square lead", "alto sax"),
            "drums": "pop", "bassline": "root_octave", "comp": "offbeat"},
    "funk": {"meter": (4, 4), "tempo": (88, 118), "bass": ("slap bass", "finger bass"),
             "chords": ("clean electric guitar", "electric piano", "brass section"), "lead": ("tenor sax", "trumpet"),
             "drums": "funk", "bassline": "syncopated", "comp": "stabs"},
    "waltz": {"meter": (3, 4), "tempo": (80, 150), "bass": ("acoustic bass", "fretless bass"),
              "chords": ("strings", "accordion", "piano"), "lead": ("violin", "flute", "clarinet"),
              "drums": "waltz", "bassline": "downbeat", "comp": "oompah"},
    "swing": {"meter": (4, 3), "tempo": (100, 160), "bass": ("acoustic bass",),
              "chords": ("piano", "electric piano"), "lead": ("tenor sax", "trumpet", "vibraphone"),
              "drums": "swing", "bassline": "walking", "comp": "charleston"},
    "ballad": {"meter": (4, 4), "tempo": (70, 90), "bass": ("fretless bass", "acoustic bass"),
               "chords": ("piano", "strings", "warm pad"), "lead": ("oboe", "violin", "flute"),
               "drums": "ballad", "bassline": "halves", "comp": "arpeggio"},
    "folk": {"meter": (2, 3), "tempo": (70, 110), "bass": ("acoustic bass", "finger bass"),
             "chords": ("steel guitar", "nylon guitar", "accordion"), "lead": ("fiddle", "whistle", "flute"),
             "drums": "folk", "bassline": "downbeat", "comp": "strum"},
    "dance": {"meter": (4, 4), "tempo": (118, 160), "bass": ("synth bass",),
              "chords": ("warm pad", "saw synth"), "lead": ("square lead", "saw synth"),
              "drums": "dance", "bassline": "offbeat", "comp": "offbeat"},
    "odd": {"meter": (5, 4), "tempo": (100, 150), "bass": ("finger bass", "fretless bass"),
            "chords": ("electric piano", "clean electric guitar"), "lead": ("vibraphone", "marimba"),
            "drums": "odd", "bassline": "eighths", "comp": "stabs"},
    "bossa": {"meter": (4, 4), "tempo": (110, 140), "bass": ("acoustic bass", "fretless bass"),
              "chords": ("nylon guitar", "electric piano"), "lead": ("flute", "alto sax"),
              "drums": "bossa", "bassline": "root_fifth", "comp": "bossa"},
}
METER_NAMES = {(4, 4): "4/4", (3, 4): "3/4", (4, 3): "4/4 swing", (2, 3): "6/8", (5, 4): "5/4"}
SECTIONS = {  # name -> (intensity, drums, lead, comp density)
    "intro": (0.55, False, False, 0.5),
    "verse": (0.75, True, False, 1.0),
    "chorus": (1.0, True, True, 1.0),
    "bridge": (0.8, True, True, 0.7),
    "breakdown": (0.6, False, True, 0.5),
}
NEXT_SECTION = {"intro": ("verse", "chorus"), "verse": ("chorus", "verse", "bridge"),
                "chorus": ("verse", "bridge", "breakdown", "chorus"), "bridge": ("chorus", "verse"),
                "breakdown": ("chorus", "verse")}


@dataclass
class Note:
    part: str  # drums | bass | chords | lead
    pitch: int
    start: float
    end: float
    velocity: int


@dataclass
class Section:
    name: str
    start: float
    end: float
    tempo: float  # beats per minute
    free_start: bool  # started at a free time (not on the previous section's bar line)


@dataclass
class Arrangement:
    style: str
    meter: tuple[int, int]  # (beats per bar, steps per beat)
    tempo: float
    key: int  # pitch class of the tonic
    mode: str  # major | minor
    instruments: dict  # role -> instrument name
    duration: float
    sections: list = field(default_factory=list)
    hits: list = field(default_factory=list)  # section starts after 0 (s)
    accents: list = field(default_factory=list)  # accents inside sections (s)
    notes: list = field(default_factory=list)

    @property
    def meter_name(self) -> str:
        return METER_NAMES[self.meter]

    def caption(self) -> str:
        """A caption from the arrangement: mood words, style, tempo, meter, key, instruments."""
        fast, minor = self.tempo >= 120, self.mode == "minor"
        moods = {(True, False): "upbeat, bright, energetic", (True, True): "driving, tense, dark",
                 (False, False): "warm, relaxed, hopeful", (False, True): "melancholic, moody, calm"}[(fast, minor)]
        inst = ", ".join(self.instruments[r] for r in ("chords", "bass", "lead"))
        return (f"{moods} {self.style} in {self.meter_name} at {self.tempo:.0f} BPM, {KEYS[self.key]} {self.mode}; "
                f"drums, {inst}; {len(self.hits)} hits with fills and section changes")


def _chord(key: int, mode: str, degree: int, seventh: bool = False) -> list[int]:
    """Pitch classes (as semitones above the tonic, may exceed 12) of the triad/seventh on ``degree``."""
    scale = MAJOR if mode == "major" else MINOR
    out = []
    for k in (0, 2, 4, 6) if seventh else (0, 2, 4):
        d = degree + k
        out.append(key + scale[d % 7] + 12 * (d // 7))
    return out


class _Grid:
    """The beat grid of one section: bars from ``start`` at ``tempo``; times of (bar, step)."""

    def __init__(self, start: float, tempo: float, meter: tuple[int, int], swing: bool):
        self.start, self.beats, self.sub = start, meter[0], meter[1]
        self.beat = 60.0 / tempo
        self.step = self.beat / self.sub
        self.bar = self.beat * self.beats
        self.swing = swing

    def time(self, bar: int, step: int) -> float:
        beat, sub = divmod(step, self.sub)
        frac = sub / self.sub
        if self.swing and self.sub == 3:  # swing: steps 0 and 2 of each triplet beat
            frac = (0.0, 1 / 3, 2 / 3)[sub]
        return self.start + bar * self.bar + (beat + frac) * self.beat


def _drum_pattern(kind: str, beats: int, sub: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(step, drum key, velocity) of one bar, steps ``0 .. beats * sub - 1``."""
    n = beats * sub
    out: list[tuple[int, int, int]] = []
    every = lambda k, vel, stride, off=0: [(s, k, vel) for s in range(off, n, stride)]  # noqa: E731
    if kind in ("rock", "pop", "odd"):
        out += every(HAT, 70, 2)
        kicks = [0, 2 * sub] if beats != 5 else [0, 3 * sub]
        if kind == "pop" or rng.random() < 0.5:
            kicks.append(2 * sub + 2 if beats >= 4 else sub + 2)
        out += [(s, KICK, 100) for s in kicks if s < n]
        snares = [sub, 3 * sub] if beats == 4 else [2 * sub, 4 * sub]
        out += [(s, SNARE, 105) for s in snares if s < n]
    elif kind == "funk":
        out += every(HAT, 60, 1)
        out += [(s, KICK, 105) for s in (0, 3, 6, 10) if s < n]
        out += [(s, SNARE, 110) for s in (4, 12)] + [(s, SNARE, 40) for s in (7, 9, 15)]
    elif kind == "waltz":
        out += [(0, KICK, 95)] + [(s, RIM, 60) for s in (sub, 2 * sub)] + every(PEDAL_HAT, 45, sub)
    elif kind == "swing":
        out += [(s, RIDE, 75) for s in range(0, n, sub)] + [(s, RIDE, 55) for s in range(2, n, sub)]
        out += [(s, PEDAL_HAT, 70) for s in (sub, 3 * sub)] + [(s, KICK, 45) for s in range(0, n, sub)]
    elif kind == "ballad":
        out += every(HAT, 50, 2) + [(0, KICK, 85), (2 * sub + 2, KICK, 60), (2 * sub, SNARE, 80)]
    elif kind == "folk":
        out += every(HAT, 55, 1) + [(0, KICK, 95), (sub, SNARE, 90), (2, KICK, 60)]
    elif kind == "dance":
        out += [(s, KICK, 110) for s in range(0, n, sub)] + [(s, CLAP, 95) for s in (sub, 3 * sub)]
        out += [(s, OPEN_HAT, 70) for s in range(2, n, sub)] + every(HAT, 45, 1)
    elif kind == "bossa":
        out += every(HAT, 50, 2) + [(s, RIM, 75) for s in (0, 3, 6, 10, 13) if s < n]
        out += [(s, KICK, 80) for s in (0, 3, 8, 11) if s < n]
    return out


def _fill(rng: np.random.Generator, hit: float, grid: _Grid) -> tuple[list[Note], float]:
    """A fill (toms/snare rolling down) or a stop leading into ``hit``; returns notes and its start."""
    kind = rng.choice(["toms", "snare", "stop", "none"], p=[0.4, 0.25, 0.2, 0.15])
    if kind == "none":
        return [], hit
    length = grid.beat * (2 if rng.random() < 0.4 and kind != "stop" else 1)
    n = int(round(length / grid.step))
    notes = []
    if kind == "stop":
        return notes, hit - length
    for i in range(n):
        t = hit - (n - i) * grid.step
        if kind == "toms":
            key = (TOM_HI, TOM_MID, TOM_LO)[min(2, 3 * i // max(n, 1))]
        else:
            key = SNARE
        vel = int(70 + 45 * i / max(n - 1, 1))
        notes.append(Note("drums", key, t, t + 0.1, vel))
    return notes, hit - length


def _bass_line(kind: str, grid: _Grid, bar: int, root: int, chord: list[int], rng) -> list[tuple[float, float, int]]:
    """(start, length in beats, pitch) of one bar of bass."""
    beats, sub = grid.beats, grid.sub
    low = 36 + (root % 12)
    fifth = low + 7
    if kind == "eighths":
        return [(s / sub, 0.5, low) for s in range(0, beats * sub, max(1, sub // 2))]
    if kind == "root_octave":
        return [(b, 0.9, low + (12 if b % 2 else 0)) for b in range(beats)]
    if kind == "syncopated":
        return [(0, 0.4, low), (0.75, 0.25, low + 12), (1.5, 0.4, low), (2.5, 0.3, fifth), (3.25, 0.5, low + 10)]
    if kind == "downbeat":
        return [(0, beats * 0.45, low)] + ([(beats / 2, beats * 0.45, fifth)] if beats % 2 == 0 else [])
    if kind == "walking":
        tones = [low, 36 + chord[1] % 12, fifth, low + rng.choice([10, 11, 9, 12])]
        return [(b, 0.9, tones[b % 4]) for b in range(beats)]
    if kind == "halves":
        return [(0, beats / 2, low), (beats / 2, beats / 2, fifth if rng.random() < 0.5 else low)]
    if kind == "root_fifth":
        return [(0, 1.4, low), (1.5, 0.4, fifth), (2, 1.4, fifth), (3.5, 0.4, low)]
    if kind == "offbeat":
        return [(b + 0.5, 0.45, low) for b in range(beats)]
    return [(0, beats, low)]


def _comp(kind: str, beats: int, sub: int) -> list[tuple[float, float]]:
    """(start, length) in beats of one bar of chord comping."""
    if kind == "sustain":
        return [(0, beats)]
    if kind == "offbeat":
        return [(b + 0.5, 0.4) for b in range(beats)]
    if kind == "stabs":
        return [(0, 0.25), (1.5, 0.25), (2.75, 0.25)] + ([(3.5, 0.25)] if beats >= 4 else [])
    if kind == "oompah":
        return [(b, 0.6) for b in range(1, beats)]
    if kind == "charleston":
        return [(0, 0.6), (1 + 2 / 3, 0.5)] + ([(3, 0.5)] if beats >= 4 else [])
    if kind == "strum":
        return [(s / sub, 1 / sub) for s in range(beats * sub)]
    if kind == "bossa":
        return [(0, 0.4), (1.5, 0.4), (2.5, 0.4), (3.0, 0.4)]
    return [(0, beats)]  # arpeggio handled by the caller


def fitted_tempo(gap: float, tempo: float) -> float:
    """The tempo nearest ``tempo`` that fits a whole number of beats into ``gap`` seconds.

    A hit then falls on a beat and the beat grid runs on through it without a jump (a composer
    scoring to picture nudges the tempo between hit points the same way)."""
    n = max(1, int(round(gap * tempo / 60.0)))
    while n > 1 and 60.0 * n / gap > 175:
        n -= 1
    while 60.0 * n / gap < 60:
        n += 1
    return 60.0 * n / gap


def _section_plan(rng: np.random.Generator, duration: float, tempo: float, meter, hits=None) -> list[Section]:
    """Section boundaries: half on bar lines (1–4 bars), half at free times 1–4 s apart (the tempo
    fitted so that they fall on a beat); or at the given ``hits``."""
    if hits is not None:  # hit points given (e.g. a video's cuts): one section between each two
        edges = [0.0] + sorted(float(h) for h in hits if 0 < h < duration) + [duration]
        names, out = ["intro"], []
        for k, (a, b) in enumerate(zip(edges, edges[1:], strict=False)):
            bpm = fitted_tempo(b - a, tempo) if k + 2 < len(edges) else tempo
            out.append(Section(names[-1], a, b, bpm, a > 0))
            names.append(str(rng.choice(NEXT_SECTION[names[-1]])))
        return out
    sections, t, name, free_start = [], 0.0, str(rng.choice(["intro", "verse"])), False
    while t < duration - 0.5:
        free = bool(rng.random() < 0.5)
        if free:
            length = float(rng.uniform(1.0, 4.0))
            bpm = fitted_tempo(length, tempo)
        else:
            bpm = tempo
            length = 60.0 / bpm * meter[0] * int(rng.integers(1, 5))
        end = min(duration, t + length)
        sections.append(Section(name, t, end, bpm, free_start))
        t, free_start = end, free
        name = str(rng.choice(NEXT_SECTION[name]))
    return sections


def arrange(rng: np.random.Generator, duration: float, style: str | None = None, hits=None) -> Arrangement:
    """A random arrangement of ``duration`` seconds (see module doc); ``hits`` fixes the hit points."""
    style = style or str(rng.choice(sorted(STYLES)))
    st = STYLES[style]
    meter = st["meter"]
    tempo = float(rng.uniform(*st["tempo"]))
    mode = str(rng.choice(["major", "minor"]))
    key = int(rng.integers(12))
    inst = {role: str(rng.choice(st[role])) for role in ("bass", "chords", "lead")}
    arr = Arrangement(style, meter, tempo, key, mode, inst, duration)
    prog = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
    arr.sections = _section_plan(rng, duration, tempo, meter, hits)
    swing = style == "swing"
    for i, sec in enumerate(arr.sections):
        grid = _Grid(sec.start, sec.tempo, meter, swing)
        intensity, drums_on, lead_on, density = SECTIONS[sec.name]
        nxt = arr.sections[i + 1].start if i + 1 < len(arr.sections) else None
        fill_notes, quiet_from = _fill(rng, nxt, grid) if nxt is not None else ([], sec.end)
        arr.notes += fill_notes
        if i > 0:
            arr.hits.append(sec.start)
        shift = int(rng.integers(len(prog)))  # each section enters the progression somewhere
        _section_notes(arr, rng, sec, grid, prog, shift, quiet_from, intensity, drums_on, lead_on, density, hit=i > 0)
    arr.notes = [n for n in arr.notes if 0 <= n.start < duration and n.end > n.start]
    for n in arr.notes:
        n.end = min(n.end, duration)
    return arr


def _section_notes(arr: Arrangement, rng, sec: Section, grid: _Grid, prog, shift: int, quiet_from: float,
                   intensity: float, drums_on: bool, lead_on: bool, density: float, hit: bool) -> None:
    st = STYLES[arr.style]
    beats, sub = grid.beats, grid.sub
    pattern = _drum_pattern(st["drums"], beats, sub, rng)
    n_bars = int(np.ceil((sec.end - sec.start) / grid.bar)) + 1
    vel = lambda v: int(np.clip(v * (0.6 + 0.4 * intensity) + rng.normal(0, 6), 20, 127))  # noqa: E731
    add = lambda part, p, t, length, v: arr.notes.append(  # noqa: E731
        Note(part, int(p), float(t), float(min(t + length, quiet_from if part != "drums" else t + length)), vel(v)))
    accent_bars = ({int(b) for b in rng.integers(0, max(n_bars - 1, 1), size=int(rng.integers(0, 2)))}
                   if n_bars > 2 else set())
    for bar in range(n_bars):
        degree = prog[(bar + shift) % len(prog)]
        chord = _chord(arr.key, arr.mode, degree, seventh=arr.style in ("swing", "bossa"))
        root = chord[0]
        if drums_on or (bar == 0 and hit):
            for step, key, v in pattern if drums_on else []:
                t = grid.time(bar, step) + rng.normal(0, 0.004)
                if t < quiet_from:
                    add("drums", key, t, 0.1, v)
        for start, length, pitch in _bass_line(st["bassline"], grid, bar, root, chord, rng):
            t = grid.time(bar, 0) + start * grid.beat
            if t < quiet_from:
                add("bass", pitch, t, length * grid.beat * 0.95, 95)
        voicing = [60 + (p % 12) if (p % 12) >= 3 else 72 + (p % 12) for p in chord]
        if st["comp"] == "arpeggio" or (density < 1.0 and st["comp"] in ("strum", "stabs")):
            order = sorted(voicing) + [sorted(voicing)[1]]
            for k in range(beats * 2):
                t = grid.time(bar, 0) + k * grid.beat / 2
                if t < quiet_from:
                    add("chords", order[k % len(order)], t, grid.beat * 1.5, 70)
        else:
            for start, length in _comp(st["comp"], beats, sub):
                t = grid.time(bar, 0) + start * grid.beat
                if t < quiet_from:
                    for p in voicing:
                        add("chords", p, t, length * grid.beat, 72)
        if lead_on:
            _lead_bar(arr, rng, grid, bar, chord, quiet_from, add)
        if bar in accent_bars and bar > 0:  # an accent on a random beat of the bar
            t = grid.time(bar, int(rng.integers(beats)) * sub)
            if t < quiet_from - 0.2:
                arr.accents.append(round(t, 4))
                add("drums", CRASH2, t, 0.1, 110)
                add("drums", KICK, t, 0.1, 110)
                for p in voicing:
                    add("chords", p, t, 0.3, 110)
    if hit:  # the hit point: crash + kick + low root + a chord stab, louder than anything around
        t = sec.start
        degree = prog[shift % len(prog)]
        chord = _chord(arr.key, arr.mode, degree)
        for key in (CRASH, KICK):
            arr.notes.append(Note("drums", key, t, t + 0.2, 122))
        arr.notes.append(Note("bass", 36 + chord[0] % 12, t, min(t + grid.beat, sec.end), 120))
        for p in chord:
            arr.notes.append(Note("chords", 60 + p % 12, t, min(t + 0.5 * grid.beat, sec.end), 118))


def _lead_bar(arr: Arrangement, rng, grid: _Grid, bar: int, chord: list[int], quiet_from: float, add) -> None:
    """One bar of melody: rhythm cells, chord tones on strong beats, scale steps between."""
    scale = MAJOR if arr.mode == "major" else MINOR
    pitches = sorted({arr.key + s + 12 * o for s in scale for o in (5, 6)} | {arr.key + 84})
    pitches = [p for p in pitches if 62 <= p <= 86]
    cells = ((1.0,), (0.5, 0.5), (1.5, 0.5), (0.5, 1.0, 0.5), (2.0,), (0.75, 0.25, 1.0))
    t_beats, total = 0.0, float(grid.beats)
    idx = int(rng.integers(len(pitches)))
    while t_beats < total - 1e-6:
        for length in cells[int(rng.integers(len(cells)))]:
            if t_beats >= total - 1e-6:
                break
            if rng.random() < 0.15:  # rest
                t_beats += length
                continue
            if abs(t_beats - round(t_beats)) < 1e-6:  # strong position: nearest chord tone
                tones = [i for i, p in enumerate(pitches) if p % 12 in {c % 12 for c in chord}]
                idx = min(tones, key=lambda i: abs(i - idx)) if tones else idx
            else:
                idx = int(np.clip(idx + rng.choice([-2, -1, 1, 2]), 0, len(pitches) - 1))
            t = grid.time(bar, 0) + t_beats * grid.beat
            if t < quiet_from:
                add("lead", pitches[idx], t, min(length, total - t_beats) * grid.beat * 0.9, 88)
            t_beats += length


def write_midi(arr: Arrangement, path: str) -> str:
    """The arrangement as a General MIDI file (pretty_midi): one track per part, drums on channel 10."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=float(arr.tempo))
    parts = {"drums": pretty_midi.Instrument(program=0, is_drum=True, name="drums")}
    for role in ("bass", "chords", "lead"):
        parts[role] = pretty_midi.Instrument(program=INSTRUMENTS[role][arr.instruments[role]], name=role)
    for n in arr.notes:
        start = max(0.0, float(n.start))
        parts[n.part].notes.append(pretty_midi.Note(velocity=int(n.velocity), pitch=int(n.pitch), start=start,
                                                    end=max(float(n.end), start + 0.01)))
    pm.instruments.extend(parts.values())
    pm.write(path)
    return path


def find_fluidsynth() -> tuple[str, str]:
    """The ``fluidsynth`` executable and a GM SoundFont, or RuntimeError naming the packages."""
    exe = shutil.which("fluidsynth")
    sf2 = next((p for p in SOUNDFONTS if os.path.isfile(p)), None)
    if exe is None or sf2 is None:
        raise RuntimeError(f"rendering needs FluidSynth and a GM SoundFont: {INSTALL_HINT}")
    return exe, sf2


def render(midi_path: str, sample_rate: int = 16000, gain: float = 0.5) -> np.ndarray:
    """Play a MIDI file through FluidSynth + FluidR3 GM → float32 mono ``[T]`` at ``sample_rate``."""
    import soundfile

    exe, sf2 = find_fluidsynth()
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "out.wav")
        subprocess.run([exe, "-ni", "-q", "-g", str(gain), "-r", str(int(sample_rate)), "-F", wav, sf2, midi_path],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        audio, sr = soundfile.read(wav, dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise RuntimeError(f"fluidsynth wrote {sr} Hz, asked for {sample_rate}")
    return audio.mean(axis=1)


def render_arrangement(arr: Arrangement, sample_rate: int = 16000, peak: float = 0.9) -> np.ndarray:
    """Render an arrangement to exactly ``arr.duration`` seconds of mono audio, peak-normalised."""
    with tempfile.TemporaryDirectory() as tmp:
        audio = render(write_midi(arr, os.path.join(tmp, "a.mid")), sample_rate)
    n = int(round(arr.duration * sample_rate))
    audio = np.pad(audio, (0, max(0, n - len(audio))))[:n]
    top = float(np.max(np.abs(audio), initial=0.0))
    return (audio * (peak / top) if top > 0 else audio).astype(np.float32)
