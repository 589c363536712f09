"""Progress on the command line: a tqdm bar on a terminal, one line per stage otherwise; ETAs past a day."""

from __future__ import annotations

import io
import subprocess
import sys

from v2m_zero.core.commands._common import Progress, duration_text
from v2m_zero.core.commands.train import TrainProgress
from v2m_zero.core.eval import synth


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_duration_text_does_not_wrap_at_24_hours():
    assert duration_text(59) == "0:00:59"
    assert duration_text(3600 * 25 + 61) == "1 day, 1:01:01"
    assert duration_text(3600 * 24 * 3) == "3 days, 0:00:00"
    assert duration_text(None) == "?" and duration_text(float("nan")) == "?"


def test_stage_progress_terminal_and_plain():
    plain = io.StringIO()
    with Progress("encoding frames", 10, unit="frames", stream=plain) as bar:
        for i in range(10):
            bar(i + 1)
    lines = plain.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("encoding frames: 10/10 frames done in ")
    tty = _Tty()
    with Progress("encoding frames", 10, unit="frames", stream=tty) as bar:
        for i in range(10):
            bar(i + 1)
    text = tty.getvalue()
    assert "encoding frames" in text and "100%" in text and "10/10" in text


def test_training_progress_terminal_and_plain():
    info = {"step": 1, "max_steps": 3, "loss": 0.5, "lr": 1e-4, "epoch": 0, "eta_seconds": 200_000.0}
    plain = io.StringIO()
    bar = TrainProgress(stream=plain, every=3600)
    for step in (1, 2, 3):
        bar({**info, "step": step})
    bar.close()
    lines = plain.getvalue().splitlines()
    assert len(lines) == 2  # the first line, then (within the hour) only the last step's
    assert lines[0].startswith("step 1/3  loss 0.5000") and "ETA 2 days, 7:33:20" in lines[0]
    assert lines[1].startswith("step 3/3")
    tty = _Tty()
    bar = TrainProgress(stream=tty)
    for step in (1, 2, 3):
        bar({**info, "step": step})
    bar.close()
    assert "training" in tty.getvalue() and "loss=0.5000" in tty.getvalue() and "3/3" in tty.getvalue()


def test_cli_prints_one_line_per_stage_without_a_terminal(tmp_path):
    clip = synth.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[1.0], duration=2.0, fps=24, size=(96, 54))
    done = subprocess.run([sys.executable, "-m", "v2m_zero.core.cli", "curve", clip.path, "--out",
                           str(tmp_path / "c.json")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [l for l in done.stderr.splitlines()
                                        if l.startswith("encoding frames of v.mp4: 48 frames done in ")]
    assert len(done.stderr.splitlines()) == 1
