"""Beat This! as the optional second beat tracker: a tiny random network saved in the authors' exact checkpoint layout
(their class, their state-dict keys under ``model.``, their LightningModule's hyper-parameter keys), read by our loader
and by theirs; our torchaudio-free log-mel and chunked inference against the package's own; one-line errors for bad
files; the agreement line only when the tracker is there; ``models download beat-this`` only on request, atomic,
with the network mocked (never reached)."""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
TINY = {"transformer_dim": 16, "ff_mult": 1, "n_layers": 1, "head_dim": 8, "stem_dim": 8}


# --------------------------------------------------------------------------------------------
# what needs no beat_this package


def test_f_measure_pairs_beats_one_to_one_within_70_ms():
    from v2m_zero.core.eval.beats import beat_f_measure, beats_tempo

    grid = np.arange(0.5, 10.0, 0.5)
    assert beat_f_measure(grid, grid) == 1.0
    assert beat_f_measure(grid, grid + 0.06) == 1.0
    assert beat_f_measure(grid, grid + 0.08) == 0.0
    double = np.arange(0.5, 10.0, 0.25)  # every beat of grid found, half of the others extra: P 0.5, R 1
    assert beat_f_measure(grid, double) == pytest.approx(2 * 0.5 * 1.0 / 1.5, abs=0.02)
    assert beat_f_measure(grid, []) == 0.0 and beat_f_measure([], grid) == 0.0
    # one beat may pair once only: two estimates near one reference beat count once
    assert beat_f_measure([1.0], [0.97, 1.03]) == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert beats_tempo(grid) == pytest.approx(120.0) and beats_tempo([1.0]) is None


def test_no_second_tracker_without_weights_and_nothing_is_fetched(tmp_path, monkeypatch):
    """Without weights in the models folder: no tracker, no agreement, no extra line; no download attempted."""
    import huggingface_hub.file_download
    import torch.hub

    from v2m_zero.core import examples
    from v2m_zero.core.eval import beats, report

    def no_network(*a, **k):
        raise AssertionError("the network was reached")

    monkeypatch.setattr(huggingface_hub.file_download, "http_get", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setenv("V2M_MODELS_DIR", str(tmp_path / "models"))
    assert beats.second_tracker() is None
    assert beats.tracker_agreement(np.zeros(44100, np.float32), 44100) is None and beats.agreement_line(None) == ""
    clip = examples.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[1.0, 2.0], duration=3.0, fps=24, motion=False,
                                  audio=examples.click_track(np.arange(0.5, 3.0, 0.5), 3.0))
    r = report.evaluate_video(clip.path, cut_detector="histogram")
    assert "trackers" not in r and "beat trackers" not in report.format_table([r])
    with pytest.raises(Exception, match="no Beat This! checkpoint"):
        beats.get_tracker("beat-this")


# --------------------------------------------------------------------------------------------
# the tiny checkpoint in the authors' layout

HAVE_PACKAGE = all(importlib.util.find_spec(p) is not None for p in ("beat_this", "einops", "rotary_embedding_torch"))
needs_package = pytest.mark.skipif(not HAVE_PACKAGE, reason="pip install --no-deps beat-this==1.1.0 einops "
                                   "rotary-embedding-torch (.ci/run does)")


def _init_defaults(module_file: str, cls: str) -> dict:
    """The keyword defaults of ``cls.__init__`` in the installed package's source (read, not imported: the
    LightningModule and the data module import pytorch_lightning, which the pack does not need)."""
    tree = ast.parse(Path(module_file).read_text(encoding="utf-8"))
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls)
    init = next(f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    args = init.args.args[1:]
    return {a.arg: ast.literal_eval(d) for a, d in zip(args[len(args) - len(init.args.defaults):], init.args.defaults)}


def save_tiny_checkpoint(path, *, compiled: bool = False, seed: int = 0, **overrides) -> Path:
    """A random Beat This! network of small dims, saved as the authors' stripped Lightning checkpoint: ``state_dict``
    (PLBeatThis's: ``model.`` + BeatThis keys; ``model.frontend._orig_mod.`` when ``compiled``), ``hyper_parameters``
    (every PLBeatThis argument), ``datamodule_hyper_parameters`` (BeatDataModule's, less ``data_dir``, as their
    clean_checkpoints.py) and ``pytorch-lightning_version``."""
    import torch

    import beat_this
    from beat_this.model.beat_tracker import BeatThis

    pkg = Path(beat_this.__file__).parent
    hp = _init_defaults(pkg / "model" / "pl_module.py", "PLBeatThis")
    dm = _init_defaults(pkg / "dataset" / "dataset.py", "BeatDataModule")
    hp.update(TINY)
    torch.manual_seed(seed)
    net = BeatThis(**{k: hp[k] for k in ("spect_dim", "transformer_dim", "ff_mult", "n_layers", "head_dim",
                                            "stem_dim", "dropout", "sum_head", "partial_transformers")})
    sd = {}
    for k, v in net.state_dict().items():
        if compiled and k.startswith("frontend."):
            k = "frontend._orig_mod." + k[len("frontend."):]
        sd["model." + k] = v
    hp.update(overrides)
    torch.save({"state_dict": sd, "hyper_parameters": hp, "datamodule_hyper_parameters": dm,
                "pytorch-lightning_version": "2.3.3"}, str(path))
    return Path(path)


@pytest.fixture
def theirs(monkeypatch):
    """The package's own ``beat_this.inference`` (its loader and chunking), loaded under another name with a stand-in
    for ``beat_this.preprocessing`` (which imports torchaudio); removed again after the test."""
    import beat_this

    stub = types.ModuleType("beat_this.preprocessing")
    stub.LogMelSpect = stub.load_audio = None
    monkeypatch.setitem(sys.modules, "beat_this.preprocessing", stub)
    spec = importlib.util.spec_from_file_location("_beat_this_inference_oracle",
                                                  Path(beat_this.__file__).parent / "inference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@needs_package
@pytest.mark.parametrize("compiled", [False, True])
def test_tiny_checkpoint_loads_as_the_authors_loader_reads_it(tmp_path, theirs, compiled):
    import torch

    from v2m_zero.core.eval import beat_this as ours
    from v2m_zero.model_io.beat_this import load_beat_this

    path = save_tiny_checkpoint(tmp_path / "beat_this-final0.ckpt", compiled=compiled)
    model, info = load_beat_this(path)
    assert info["name"] == "final0" and info["hyper_parameters"]["transformer_dim"] == 16
    ref = theirs.load_model(str(path))  # their loader accepts the same file: the layout is theirs
    for (k, a), (k2, b) in zip(model.state_dict().items(), ref.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    if compiled:
        return  # the same network; its inference is checked once, below
    spect = torch.randn(1700, 128, generator=torch.Generator().manual_seed(1))  # 2 chunks of 1500 frames, overlapping
    with torch.inference_mode():
        want = theirs.split_predict_aggregate(spect, 1500, 6, "keep_first", ref)
    beat, down = ours.frame_logits(model, spect)
    assert torch.allclose(beat, want["beat"], atol=1e-6) and torch.allclose(down, want["downbeat"], atol=1e-6)
    for n in (1, 40, 1488, 1489, 1500, 1501, 2977):  # short pieces and the chunk edges
        assert ours.chunk_starts(n) == [int(s) for s in theirs.split_piece(torch.zeros(n, 1), 1500, 6)[1]], n


def test_log_mel_is_the_packages_own():
    """``log_mel`` against beat_this.preprocessing.LogMelSpect's output (torchaudio 2.11.1; tests/fixtures/
    make_beat_this_logmel.py made it)."""
    sys.path.insert(0, str(FIXTURES))
    try:
        import make_beat_this_logmel as fixture
    finally:
        sys.path.remove(str(FIXTURES))
    from v2m_zero.core.eval.beat_this import log_mel

    ref = np.load(fixture.OUT)["logmel"]
    ours = log_mel(fixture.signal()).numpy()
    assert ours.shape == ref.shape == (61, 128)
    assert np.abs(ours - ref).max() < 2e-4 * max(1.0, float(ref.max()))


@needs_package
def test_tracker_finds_the_weights_in_the_models_folder_and_reports_agreement(tmp_path, monkeypatch):
    from v2m_zero.core import examples
    from v2m_zero.core.eval import beats, report

    models = tmp_path / "models"
    monkeypatch.setenv("V2M_MODELS_DIR", str(models))
    assert beats.second_tracker() is None
    save_tiny_checkpoint((models / "beat_trackers").mkdir(parents=True) or models / "beat_trackers" /
                         "beat_this-final0.ckpt")
    tracker = beats.second_tracker()
    assert tracker is not None and tracker.name == "Beat This! final0"
    assert isinstance(beats.get_tracker(), beats.LibrosaTracker)  # Scene Cut Hit keeps librosa's beats
    assert beats.get_tracker("beat-this").path == tracker.path

    music = examples.click_track(np.arange(0.5, 4.0, 0.5), 4.0)
    clip = examples.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[1.0, 2.0, 3.0], duration=4.0, fps=24,
                                  motion=False, audio=music)
    r = report.evaluate_video(clip.path, cut_detector="histogram")
    plain = report.evaluate_video(clip.path, cut_detector="histogram", second_tracker=None)
    assert r["sch"] == plain["sch"] and r["beats"] == plain["beats"]  # SCH is librosa's either way
    a = r["trackers"]
    assert a["tracker"] == "Beat This! final0" and a["beats"]["librosa"] == len(r["beats"]) and not a["truncated"]
    # the figures are those of the two beat lists: the tiny random network's beats, tracked again here
    mono, sr = report.load_mono(clip.path)
    again = tracker.beats(mono, sr)
    assert a["beats"]["second"] == len(again)
    assert a["f_measure"] == pytest.approx(beats.beat_f_measure(r["beats"], again))
    line = report.format_table([r]).splitlines()[-1]
    assert line.startswith(f"{clip.path}: beat trackers agree: F-measure {a['f_measure']:.2f} (±70 ms) between "
                           f"librosa ({len(r['beats'])} beats")
    assert "Beat This! final0" in line and "beat trackers" not in report.format_table([plain])


@needs_package
def test_the_eval_command_and_the_sync_report_node_print_the_line_only_when_present(tmp_path, monkeypatch, capsys,
                                                                                  host):
    from comfy_api.latest import InputImpl

    from v2m_zero.core import cli, examples
    from v2m_zero.nodes import evaluate

    models = tmp_path / "models"
    monkeypatch.setenv("V2M_MODELS_DIR", str(models))
    clip = examples.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[1.0, 2.0], duration=3.0, fps=24, motion=False,
                                  audio=examples.click_track(np.arange(0.5, 3.0, 0.5), 3.0))

    def runs():
        assert cli.main(["eval", clip.path]) == 0
        text = capsys.readouterr().out
        node = evaluate.SyncReport.execute(video=InputImpl.VideoFromFile(clip.path), fps=24.0, tolerance=0.1,
                                           shifts=50).args[0]
        return text, node

    text, node = runs()
    assert "beat trackers" not in text and "beat trackers" not in node
    (models / "beat_trackers").mkdir(parents=True)
    save_tiny_checkpoint(models / "beat_trackers" / "beat_this-small0.ckpt")
    text, node = runs()
    assert sum("beat trackers agree: F-measure" in ln and "Beat This! small0" in ln for ln in text.splitlines()) == 1
    assert sum(ln.startswith("beat trackers agree: F-measure") for ln in node.splitlines()) == 1


def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


@needs_package
@pytest.mark.parametrize("case, expect", [
    ("missing", "no Beat This! checkpoint"),
    ("garbage", "not readable with torch.load(weights_only=True)"),
    ("truncated", "not readable with torch.load(weights_only=True)"),
    ("unsafe", "not readable with torch.load(weights_only=True)"),
    ("not_a_checkpoint", "not a Beat This! checkpoint"),
    ("n_layers", "hyper_parameters['n_layers'] = 1000, expected an integer in [1, 48]"),
    ("spect_dim", "hyper_parameters['spect_dim'] = 64, expected 128"),
    ("fps", "hyper_parameters['fps'] = 100, expected 50"),
    ("transformer_dim", "hyper_parameters['transformer_dim'] = '16', expected an integer"),
    ("head_dim", "must be multiples of head_dim 12"),
    ("sum_head", "hyper_parameters['sum_head'] = 1, expected true or false"),
    ("nan", "holds NaN or Inf"),
    ("missing_key", "weights do not fit BeatThis: 1 missing keys: frontend.linear.weight"),
    ("foreign_key", "unexpected keys: <not under model.>.beat_loss.pos_weight"),
])
def test_bad_checkpoints_are_refused_in_one_line(tmp_path, case, expect):
    import torch

    from v2m_zero.model_io.beat_this import load_beat_this

    path = tmp_path / "beat_this-final0.ckpt"
    if case != "missing":
        save_tiny_checkpoint(path)
    ckpt = torch.load(str(path), weights_only=True) if path.is_file() else None
    if case == "garbage":
        path.write_bytes(os.urandom(3000))
    elif case == "truncated":
        path.write_bytes(path.read_bytes()[:20000])
    elif case == "unsafe":
        torch.save({"state_dict": {}, "hyper_parameters": {"x": types.SimpleNamespace(a=1)}}, str(path))
    elif case == "not_a_checkpoint":
        torch.save({"weights": ckpt["state_dict"]}, str(path))
    elif case in ("n_layers", "spect_dim", "fps", "transformer_dim", "head_dim", "sum_head"):
        ckpt["hyper_parameters"][case] = {"n_layers": 1000, "spect_dim": 64, "fps": 100, "transformer_dim": "16",
                                          "head_dim": 12, "sum_head": 1}[case]
        torch.save(ckpt, str(path))
    elif case == "nan":
        k = next(k for k in ckpt["state_dict"] if k.endswith("linear.weight"))
        ckpt["state_dict"][k][0, 0] = float("nan")
        torch.save(ckpt, str(path))
    elif case == "missing_key":
        del ckpt["state_dict"][next(k for k in ckpt["state_dict"] if k.endswith("linear.weight"))]
        torch.save(ckpt, str(path))
    elif case == "foreign_key":
        ckpt["state_dict"]["beat_loss.pos_weight"] = torch.ones(1)
        torch.save(ckpt, str(path))
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(Exception) as exc:
        load_beat_this(path)
    text = _one_line(exc)
    assert expect in text and "beat_this-final0.ckpt" in text, text
    assert "models download beat-this" in text or case in ("missing_key", "foreign_key")
    assert (path.read_bytes() if path.is_file() else None) == before  # the input is never modified


@needs_package
def test_a_missing_package_is_one_line(tmp_path, monkeypatch):
    from v2m_zero.core.eval import beats
    from v2m_zero.model_io.beat_this import load_beat_this

    save_tiny_checkpoint(tmp_path / "beat_this-final0.ckpt")
    monkeypatch.setitem(sys.modules, "rotary_embedding_torch", None)
    with pytest.raises(Exception) as exc:
        load_beat_this(tmp_path)
    assert "needs the package(s) rotary_embedding_torch" in _one_line(exc)
    monkeypatch.setenv("V2M_MODELS_DIR", str(tmp_path))
    assert beats.second_tracker() is None  # not installed: the reports stay librosa's alone


# --------------------------------------------------------------------------------------------
# models download beat-this: only on request, into the models folder, atomic, network mocked


@pytest.fixture
def fake_server(monkeypatch):
    """Stand-in for huggingface_hub's http_get (the transfer ``download`` uses): serves ``files[url]``, honouring
    resume_size; records each request and whether the final file existed while the transfer ran."""
    import huggingface_hub.file_download

    server = types.SimpleNamespace(files={}, requests=[], final_seen=[])

    def http_get(url, temp_file, *, resume_size=0, headers=None, expected_size=None, displayed_filename=None, **kw):
        server.requests.append((url, resume_size))
        if url not in server.files:
            raise OSError("Connection refused")
        target = Path(temp_file.f.name)
        server.final_seen.append(target.with_suffix("").exists())  # beat_this-final0.ckpt.part -> .ckpt
        temp_file.write(server.files[url][resume_size:])

    monkeypatch.setattr(huggingface_hub.file_download, "http_get", http_get)
    return server


@needs_package
def test_models_download_beat_this_writes_atomically_then_the_tracker_finds_it(tmp_path, monkeypatch, capsys,
                                                                              fake_server):
    from v2m_zero.core import cli
    from v2m_zero.core.eval import beats
    from v2m_zero.model_io.download import BEAT_THIS_URL

    blob = save_tiny_checkpoint(tmp_path / "src.ckpt").read_bytes()
    url = f"{BEAT_THIS_URL}/final0.ckpt"
    fake_server.files[url] = blob
    models = tmp_path / "models"
    monkeypatch.setenv("V2M_MODELS_DIR", str(models))
    target = models / "beat_trackers" / "beat_this-final0.ckpt"
    # a part left by an interrupted run is continued
    target.parent.mkdir(parents=True)
    (target.parent / "beat_this-final0.ckpt.part").write_bytes(blob[:1000])
    assert cli.main(["models", "download", "beat-this"]) == 0
    out = capsys.readouterr()
    assert f"beat-this -> {target}" in out.out and target.read_bytes() == blob
    assert fake_server.requests == [(url, 1000)] and fake_server.final_seen == [False]
    assert not (target.parent / "beat_this-final0.ckpt.part").exists()
    assert beats.second_tracker().path == str(target)
    assert cli.main(["models", "download", "beat-this"]) == 0 and len(fake_server.requests) == 1  # there: no fetch
    assert cli.main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert any(ln.split()[:2] == ["beat-this", "installed"] for ln in listing.splitlines())
    assert any(ln.split()[:2] == ["beat-this-small", "missing"] for ln in listing.splitlines())


@needs_package
def test_a_download_that_is_not_a_checkpoint_is_removed_and_offline_refuses(tmp_path, monkeypatch, capsys,
                                                                           fake_server):
    from v2m_zero.core import cli
    from v2m_zero.model_io.download import BEAT_THIS_URL

    fake_server.files[f"{BEAT_THIS_URL}/small0.ckpt"] = b"<html>maintenance</html>"
    folder = tmp_path / "m" / "beat_trackers"
    assert cli.main(["models", "download", "beat-this-small", "--dir", str(tmp_path / "m")]) != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "beat-this-small: the downloaded beat_this-small0.ckpt is not usable, so it was removed" in err
    assert not any(folder.glob("*")) if folder.is_dir() else True
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    n = len(fake_server.requests)
    assert cli.main(["models", "download", "beat-this", "--dir", str(tmp_path / "m")]) != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "HF_HUB_OFFLINE is set, so nothing is downloaded. Manual steps: download " in err
    assert f"{BEAT_THIS_URL}/final0.ckpt as beat_this-final0.ckpt" in err and len(fake_server.requests) == n
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert cli.main(["models", "download", "beat-this", "--dir", str(tmp_path / "m")]) != 0  # no server: one line
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "cannot reach cloud.cp.jku.at" in err and "Manual steps" in err


@needs_package
def test_align_command_and_node_report_the_agreement_on_the_delivered_audio(tmp_path, monkeypatch, capsys, host):
    import json

    import torch

    from v2m_zero.core import cli
    from v2m_zero.core.eval import beats, synth
    from v2m_zero.core.timing import media
    from v2m_zero.nodes import align

    sr = 44100
    clip = synth.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[2.1, 4.0], duration=6.0, fps=24, size=(96, 54),
                               motion=False, audio=synth.click_track([0.5], 6.0), sample_rate=sr)
    wave, _, _ = synth.music_track(8.0, bpm=120, first_beat=0.25, seed=1)
    song = media.write_audio(str(tmp_path / "song.wav"), wave, sr)
    models = tmp_path / "models"
    monkeypatch.setenv("V2M_MODELS_DIR", str(models))
    (models / "beat_trackers").mkdir(parents=True)
    save_tiny_checkpoint(models / "beat_trackers" / "beat_this-final0.ckpt")
    out, js = tmp_path / "o.mp4", tmp_path / "o.json"
    assert cli.main(["align", clip.path, song, "--out", str(out), "--json", str(js), "--cuts", "hits"]) == 0
    text = capsys.readouterr().out
    sync = json.loads(js.read_text())["sync"]
    a = sync["trackers"]
    assert a["beats"]["librosa"] == len(sync["beats_after"])  # librosa's beats of the delivered file
    delivered, rate = media.decode_audio(str(out))
    assert a["beats"]["second"] == len(beats.second_tracker().beats(delivered.mean(axis=0), rate))
    assert beats.agreement_line(a) in text.splitlines()

    raw_audio = {"waveform": torch.from_numpy(np.ascontiguousarray(wave))[None], "sample_rate": sr}
    from v2m_zero.core.align import pipeline

    raw, _, _ = pipeline.video_hit_points(clip.path)
    report = align.AlignMusic.execute(audio=raw_audio, curve=raw, max_stretch=0.08, edits="none", start_seconds=0.0,
                                      end_fade=1.0, loop_short_music=True, stretcher="auto").args[2]
    assert report.splitlines()[-1].startswith("beat trackers agree: F-measure ")


@needs_package
@pytest.mark.parametrize("scenedetect", [True, False])
def test_demo_report_prints_the_agreement(tmp_path, monkeypatch, capsys, scenedetect):
    from v2m_zero.core import examples
    from v2m_zero.core.commands import demo
    from v2m_zero.core.eval.beats import agreement_line

    if scenedetect:
        pytest.importorskip("scenedetect")
    else:
        monkeypatch.setitem(sys.modules, "scenedetect", None)
    models = tmp_path / "models"
    monkeypatch.setenv("V2M_MODELS_DIR", str(models))
    music = examples.click_track(np.arange(0.5, 3.0, 0.5), 3.0)
    clip = examples.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[1.0, 2.0], duration=3.0, fps=24, motion=False,
                                  audio=music)
    assert "trackers" not in demo.score(clip.path, music, 44100, 3.0, [1.0, 2.0], "known")
    (models / "beat_trackers").mkdir(parents=True)
    save_tiny_checkpoint(models / "beat_trackers" / "beat_this-final0.ckpt")
    result = demo.score(clip.path, music, 44100, 3.0, [1.0, 2.0], "known")
    demo._report(result, [1.0, 2.0], None, 24.0, [])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("Scene Cut Hit: ") and lines[2] == agreement_line(result["trackers"])


@needs_package
def test_eval_can_score_with_beat_this_beats_on_request_only(tmp_path, monkeypatch, capsys):
    from v2m_zero.core import cli, examples
    from v2m_zero.core.eval import beats, report

    models = tmp_path / "models"
    monkeypatch.setenv("V2M_MODELS_DIR", str(models))
    clip = examples.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[1.0, 2.0], duration=3.0, fps=24, motion=False,
                                  audio=examples.click_track(np.arange(0.5, 3.0, 0.5), 3.0))
    assert cli.main(["eval", clip.path, "--beat-tracker", "beat-this"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no Beat This! checkpoint" in err and "models download beat-this" in err
    (models / "beat_trackers").mkdir(parents=True)
    save_tiny_checkpoint(models / "beat_trackers" / "beat_this-final0.ckpt")
    r = report.evaluate_video(clip.path, cut_detector="histogram", beat_tracker="beat-this")
    mono, sr = report.load_mono(clip.path)
    theirs = beats.second_tracker().beats(mono, sr)
    assert r["beats"] == pytest.approx(theirs.tolist()) and r["beat_tracker"] == "Beat This! final0"
    assert "beats from Beat This! final0, not librosa" in r["note"]
    assert r["trackers"]["beats"]["librosa"] == len(beats.LibrosaTracker().beats(mono, sr))
    default = report.evaluate_video(clip.path, cut_detector="histogram")
    assert "beat_tracker" not in default and default["beats"] == pytest.approx(beats.LibrosaTracker().beats(mono, sr))


@needs_package
def test_the_sync_report_node_can_be_interrupted_while_beat_this_runs(tmp_path, monkeypatch, host):
    from comfy_api.latest import InputImpl

    from v2m_zero.core import examples
    from v2m_zero.core.eval import beat_this
    from v2m_zero.nodes import evaluate
    from v2m_zero.nodes.host import runtime

    class Stop(Exception):
        pass

    models = tmp_path / "models"
    monkeypatch.setenv("V2M_MODELS_DIR", str(models))
    (models / "beat_trackers").mkdir(parents=True)
    save_tiny_checkpoint(models / "beat_trackers" / "beat_this-final0.ckpt")
    clip = examples.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[1.0], duration=2.0, fps=24, motion=False,
                                  audio=examples.click_track([0.5, 1.0, 1.5], 2.0))
    chunks = []
    real = beat_this.frame_logits
    monkeypatch.setattr(beat_this, "frame_logits", lambda model, spect, check=None: chunks.append(check) or
                        real(model, spect, check))

    def interrupted():
        raise Stop

    monkeypatch.setattr(runtime.Progress, "check_interrupt", staticmethod(interrupted))
    with pytest.raises(Stop):
        evaluate.SyncReport.execute(video=InputImpl.VideoFromFile(clip.path), fps=24.0, tolerance=0.1, shifts=20)
    assert chunks == [interrupted]  # stopped inside the network's chunk loop, not before or after it
