"""The figures README.md quotes for the quick start are what the quick start prints (issue 26).

The README is parsed, so its figures and this check cannot drift apart: the quick start's command is
run in-process exactly as the README gives it (``v2m-zero demo --out v2m_out``: seed 0, the bundled
demo checkpoint's own sampling settings) and the printed Scene Cut Hit, chance level and cut count
are compared with the README's quoted lines. About 50 CPU seconds (marked slow; CI runs it).
"""

from __future__ import annotations

import os
import re

import pytest

from v2m_zero.core import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
SCH_LINE = re.compile(r"^Scene Cut Hit: (\d\.\d{3})\s+\(chance level (\d\.\d{3}); cuts: (.+)\)$", re.M)
CUTS_LINE = re.compile(r"^cuts found within one frame: (\d+)/(\d+)$", re.M)


def quick_start_section() -> str:
    text = open(README, encoding="utf-8").read()
    return text[text.index("## Quick start"):text.index("## In ComfyUI")]


def quoted_figures() -> dict:
    """The quick start's printed lines as README quotes them (in its fenced output block)."""
    section = quick_start_section()
    command = re.search(r"&& (v2m-zero demo[^\n`]*)", section)
    sch, cuts = SCH_LINE.search(section), CUTS_LINE.search(section)
    assert command and sch and cuts, "README's quick start no longer quotes its command and printed figures"
    return {"argv": command.group(1).split()[1:], "sch": sch.group(1), "chance": sch.group(2),
            "cuts_from": sch.group(3), "cuts": cuts.groups()}


TEMPLATE_LINE = re.compile(r"`(Scene Cut Hit: \d\.\d{3}  \(chance level \d\.\d{3}, above chance -?\d\.\d{3}\))`")


def template_report_line() -> str:
    """The first line of the quick-start template's Sync Report as README's "First minute" quotes it
    (checked by tests/test_workflows.py when it queues the template)."""
    text = open(README, encoding="utf-8").read()
    start = text.index("**First minute:**")
    section = text[start:text.index("\n\n", start)]  # that paragraph
    m = TEMPLATE_LINE.search(section)
    assert m, "README's First minute no longer quotes the template's Sync Report line"
    return m.group(1)


def test_readme_quotes_the_quick_start():
    q = quoted_figures()
    assert q["argv"] == ["demo", "--out", "v2m_out"]
    assert 0 < float(q["chance"]) < float(q["sch"]) <= 1
    assert "seed 0" in quick_start_section()  # the seed and the machine are stated with the figures


@pytest.mark.slow
def test_quick_start_prints_the_readme_figures(tmp_path, monkeypatch, capsys):
    q = quoted_figures()
    monkeypatch.chdir(tmp_path)
    rc = cli.main(q["argv"])
    out = capsys.readouterr().out
    assert rc == 0, out
    sch, cuts = SCH_LINE.search(out), CUTS_LINE.search(out)
    assert sch and cuts, out
    assert (sch.group(1), sch.group(2), sch.group(3)) == (q["sch"], q["chance"], q["cuts_from"]), (
        f"the quick start prints SCH {sch.group(1)} / chance {sch.group(2)} ({sch.group(3)}); README.md quotes "
        f"{q['sch']} / {q['chance']} ({q['cuts_from']}): update the README's quick start (and say why)")
    assert cuts.groups() == q["cuts"]
