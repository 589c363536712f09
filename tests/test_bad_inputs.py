"""Bad input, as a new user gives it: every case ends in one clear line and exit status 2 (a node
raises a V2MError), writes no file, leaves no folder behind, and leaves every input byte-identical.

The cases run the real command line in-process (``cli.main``) inside a scratch folder holding the
inputs; before and after, the folder's files are hashed (links included) and compared.
"""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

import codec_media
from tiny_models import tiny_v2m_checkpoint
from v2m_zero.core import cli
from v2m_zero.core.errors import V2MError
from v2m_zero.core.eval import synth
from v2m_zero.core.timing import media

SR = 44100


def _tree(root: str) -> dict[str, str]:
    """{relative path: sha256 (or 'dir'/'link->target')} of everything below ``root``."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(folder, d), root)] = "dir"
        for f in files:
            p = os.path.join(folder, f)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = "link->" + os.readlink(p)
            else:
                with open(p, "rb") as fh:
                    out[rel] = hashlib.sha256(fh.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A folder of inputs, good and bad, that every case starts from (copied per case)."""
    root = tmp_path_factory.mktemp("corpus")
    synth.make_cut_clip(str(root / "V.mp4"), cut_times=[1.0, 2.0], duration=3.0, fps=24, size=(160, 90), motion=False)
    synth.make_cut_clip(str(root / "silent_video.mp4"), cut_times=[1.0], duration=2.0, fps=24, size=(96, 54))
    media.write_audio(root / "A.m4a", synth.click_track([0.5, 1.5], 3.0), SR)
    media.write_audio(root / "A.wav", synth.click_track([0.5, 1.5], 3.0), SR)
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("this is not a video\n")
    (root / "not_audio.wav").write_text("RIFF? no.\n")
    tiny_v2m_checkpoint(str(root / "tiny.safetensors"))
    (root / "pickle.ckpt").write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    (root / "data").mkdir()
    media.write_audio(root / "data" / "m0.wav", synth.click_track([0.3, 0.9], 2.0, sample_rate=1600, channels=1), 1600,
                      layout="mono")
    (root / "outdir").mkdir()
    os.symlink("V.mp4", root / "L.mp4")
    os.link(root / "V.mp4", root / "H.mp4")
    (root / "bad.toml").write_text('[data]\ncache = "no_such_cache"\n[model.from_config]\nembed_dim = 64\n')
    (root / "huge.toml").write_text('[data]\ncache = "no_such_cache"\n[model.from_config]\nembed_dim = 64\n'
                                    '[train]\nbatch_size = 100000000\n')
    (root / "huge_dim.toml").write_text('[data]\ncache = "no_such_cache"\n'
                                        '[model.from_config]\nembed_dim = 1000000000\n')
    # checkpoints whose metadata lies (issue 26): every number is bounded before any work
    for name, key, value in BAD_CHECKPOINTS:
        codec_media.with_metadata(root / "tiny.safetensors", root / f"bad_{name}.safetensors", key, value)
    # audio files with cover art, given where a video belongs
    codec_media.make_song_with_cover(root / "song.mp3", "mp3", "libmp3lame")
    codec_media.make_song_with_cover(root / "song.m4a", "mp4", "aac")
    codec_media.add_audio_tracks(root / "V.mp4", root / "two_tracks.mp4",
                                 [synth.click_track([1.0, 2.0], 3.0), synth.click_track([0.5, 1.4], 3.0)])
    return root


# (file suffix, metadata key, value): bad_<suffix>.safetensors, tiny.safetensors with that one number changed
BAD_CHECKPOINTS = [
    ("steps", "sampling", {"steps": 1e9}),
    ("griffin_lim", "codec", {"type": "mel", "config": {"griffin_lim_iters": 1e9}}),
    ("n_mels", "codec", {"type": "mel", "config": {"n_mels": 10**9}}),
    ("clip", "curve.clip_seconds", 0.001),
    ("smoothing", "curve.smoothing_seconds", 1e9),
    ("curve_length", "curve.length", 10**12),
    ("min_std", "curve.min_std", float("nan")),
    ("embed_dim", "model_config.diffusion.config.embed_dim", 10**9),
    ("depth", "model_config.diffusion.config.depth", 0),
    ("text_tokens", "model_config.conditioning.configs.0.config.max_length", 10**9),
    ("sample_rate", "sample_rate", 10**12),
    ("latent_rate", "latent_rate", 1e9),
    ("text_length", "text.max_length", 0),
]


def _ckpt_case(suffix: str, words: str, command: str = "generate"):
    ckpt = f"bad_{suffix}.safetensors"
    argv = (["generate", "V.mp4", "--checkpoint", ckpt, "--out", "o.mp4"] if command == "generate"
            else ["demo", "--out", "d", "--checkpoint", ckpt])
    return (f"{command}-checkpoint-{suffix}", argv, words)


# (name, argv, words the error line must contain)
CLI_CASES = [
    # numbers read from a checkpoint or config, bounded like the argument they stand for (issue 26)
    _ckpt_case("steps", "sampling.steps"),
    _ckpt_case("steps", "sampling.steps", "demo"),
    _ckpt_case("griffin_lim", "codec.config.griffin_lim_iters = 1000000000.0 is outside [1, 256]"),
    _ckpt_case("griffin_lim", "codec.config.griffin_lim_iters", "demo"),
    _ckpt_case("n_mels", "codec.config.n_mels"),
    _ckpt_case("clip", "curve.clip_seconds = 0.001 is outside [0.1, 600] (prepare --clip-seconds)"),
    _ckpt_case("clip", "curve.clip_seconds", "demo"),
    _ckpt_case("smoothing", "curve.smoothing_seconds = 1000000000.0 is outside [0, 60] (--smoothing-seconds)"),
    _ckpt_case("curve_length", "curve.length"),
    _ckpt_case("min_std", "curve.min_std = nan"),
    _ckpt_case("embed_dim", "bad_embed_dim.safetensors: model_config.diffusion.config.embed_dim = 1000000000"),
    _ckpt_case("depth", "model_config.diffusion.config.depth = 0"),
    _ckpt_case("text_tokens", "model_config.conditioning.configs.0.config.max_length"),
    _ckpt_case("sample_rate", "sample_rate = 1000000000000 is outside [1000, 384000]"),
    _ckpt_case("latent_rate", "latent_rate = 1000000000.0 is outside (0, 1600]"),
    _ckpt_case("text_length", "text.max_length = 0"),
    ("train-embed-dim-huge", ["train", "huge_dim.toml"], "model.from_config.embed_dim = 1000000000 is outside"),
    # an audio file with cover art is not a video (issue 26)
    ("curve-cover-art-mp3", ["curve", "song.mp3", "--out", "c.json"], "no video stream (only an attached picture"),
    ("mux-cover-art-as-video", ["mux", "song.m4a", "A.wav", "--out", "o.mp4"], "only an attached picture"),
    ("demo-cover-art-as-video", ["demo", "--out", "d", "--video", "song.mp3", "--sonify"], "attached picture"),
    ("generate-cover-art-as-video", ["generate", "song.m4a", "--checkpoint", "tiny.safetensors", "--out", "o.mp4"],
     "attached picture"),
    ("eval-audio-track-missing", ["eval", "two_tracks.mp4", "--audio-track", "3"], "has 2 audio track(s)"),
    ("eval-audio-track-typo", ["eval", "two_tracks.mp4", "--audio-track", "first"], "--audio-track"),
    # writing over an input, whatever the path's spelling
    ("curve-out-is-video", ["curve", "V.mp4", "--out", "V.mp4"], "input video"),
    ("curve-out-symlink", ["curve", "V.mp4", "--out", "./L.mp4"], "input video"),
    ("curve-out-hardlink", ["curve", "V.mp4", "--out", "H.mp4"], "input video"),
    ("curve-plot-is-video", ["curve", "V.mp4", "--out", "c.json", "--plot", "V.mp4"], "input video"),
    ("curve-out-absolute", ["curve", "V.mp4", "--out", "{root}/V.mp4"], "input video"),
    ("mux-out-is-audio", ["mux", "V.mp4", "A.m4a", "--out", "A.m4a"], "input audio"),
    ("mux-out-is-video", ["mux", "V.mp4", "A.m4a", "--out", "./V.mp4"], "input video"),
    ("eval-json-is-video", ["eval", "V.mp4", "--json", "V.mp4"], "video 1"),
    ("prompt-json-is-video", ["prompt", "V.mp4", "--json", "V.mp4"], "input video"),
    ("generate-audio-out-is-video", ["generate", "V.mp4", "--checkpoint", "tiny.safetensors", "--out", "o.mp4",
                                     "--audio-out", "V.mp4"], "input video"),
    ("generate-out-is-checkpoint", ["generate", "V.mp4", "--checkpoint", "tiny.safetensors", "--out",
                                    "tiny.safetensors"], "--checkpoint"),
    ("init-out-is-source", ["init-checkpoint", "tiny.safetensors", "--out", "tiny.safetensors"], "source model"),
    ("prepare-out-is-data", ["prepare", "data", "--out", "data"], "data folder"),
    # outputs checked before any work (no first output left behind)
    ("curve-plot-missing-folder", ["curve", "V.mp4", "--out", "c.json", "--plot", "nodir/p.png"], "does not exist"),
    ("generate-two-outputs-same", ["generate", "V.mp4", "--checkpoint", "tiny.safetensors", "--out", "o.mp4",
                                   "--audio-out", "o.mp4"], "same file"),
    ("curve-out-and-plot-same", ["curve", "V.mp4", "--out", "c.json", "--plot", "c.json"], "same file"),
    ("curve-out-is-folder", ["curve", "V.mp4", "--out", "outdir"], "is a folder"),
    ("curve-out-under-a-file", ["curve", "V.mp4", "--out", "V.mp4/c.json"], "does not exist"),
    ("mux-out-webm", ["mux", "V.mp4", "A.m4a", "--out", "o.webm"], "extension"),
    ("mux-out-missing-folder", ["mux", "V.mp4", "A.m4a", "--out", "nodir/o.mp4"], "does not exist"),
    ("demo-out-is-file", ["demo", "--out", "V.mp4"], "is a file"),
    ("prepare-out-is-file", ["prepare", "data", "--out", "V.mp4"], "is a file"),
    # arguments: bounded, finite, the right thing blamed
    ("curve-smoothing-nan", ["curve", "V.mp4", "--out", "c.json", "--smoothing", "nan"], "--smoothing"),
    ("curve-smoothing-huge", ["curve", "V.mp4", "--out", "c.json", "--smoothing", "1e9"], "--smoothing"),
    ("curve-sample-fps-negative", ["curve", "V.mp4", "--out", "c.json", "--sample-fps", "-1"], "--sample-fps"),
    ("curve-size-negative", ["curve", "V.mp4", "--out", "c.json", "--size", "-5"], "--size"),
    ("curve-rate-huge", ["curve", "V.mp4", "--out", "c.json", "--rate", "1e7"], "--rate"),
    ("curve-length-vs-duration", ["curve", "V.mp4", "--out", "c.json", "--length", "100000"], "--length"),
    ("curve-batch-zero", ["curve", "V.mp4", "--out", "c.json", "--batch-size", "0"], "--batch-size"),
    ("curve-unknown-encoder", ["curve", "V.mp4", "--out", "c.json", "--encoder", "nope"], "unknown frame encoder"),
    ("eval-shifts-huge", ["eval", "V.mp4", "--shifts", "100000000"], "--shifts"),
    ("eval-tolerance-negative", ["eval", "V.mp4", "--tolerance", "-1"], "--tolerance"),
    ("mux-bitrate-negative", ["mux", "V.mp4", "A.m4a", "--out", "o.mp4", "--bitrate", "-5"], "--bitrate"),
    ("demo-duration-huge", ["demo", "--out", "d", "--duration", "1e9"], "--duration"),
    ("demo-fps-zero", ["demo", "--out", "d", "--fps", "0"], "--fps"),
    ("generate-steps-zero", ["generate", "V.mp4", "--checkpoint", "tiny.safetensors", "--out", "o.mp4", "--steps", "0"],
     "--steps"),
    ("generate-cfg-nan", ["generate", "V.mp4", "--checkpoint", "tiny.safetensors", "--out", "o.mp4", "--cfg", "nan"],
     "--cfg"),
    ("generate-window-zero",
     ["generate", "V.mp4", "--checkpoint", "tiny.safetensors", "--out", "o.mp4", "--window", "0"], "--window"),
    ("generate-overlap-over-half",
     ["generate", "V.mp4", "--checkpoint", "tiny.safetensors", "--out", "o.mp4", "--window", "4",
                                    "--overlap", "3"], "overlap"),
    ("prompt-frames-zero", ["prompt", "V.mp4", "--frames", "0"], "--frames"),
    ("prepare-clip-zero", ["prepare", "data", "--out", "cache", "--clip-seconds", "0"], "--clip-seconds"),
    ("train-max-steps-zero", ["train", "bad.toml", "--max-steps", "0"], "--max-steps"),
    ("init-smoothing-negative",
     ["init-checkpoint", "tiny.safetensors", "--out", "x.safetensors", "--smoothing-seconds", "-1"],
     "--smoothing-seconds"),
    # unusable inputs
    ("curve-missing-video", ["curve", "missing.mp4", "--out", "c.json"], "missing.mp4"),
    ("curve-empty-video", ["curve", "empty.mp4", "--out", "c.json"], "empty"),
    ("curve-text-as-video", ["curve", "text.mp4", "--out", "c.json"], "text.mp4"),
    ("curve-audio-only", ["curve", "A.m4a", "--out", "c.json"], "no video stream"),
    ("mux-text-as-audio", ["mux", "V.mp4", "not_audio.wav", "--out", "o.mp4"], "not_audio.wav"),
    ("mux-video-without-audio", ["mux", "V.mp4", "silent_video.mp4", "--out", "o.mp4"], "no audio stream"),
    ("generate-pickle-checkpoint", ["generate", "V.mp4", "--checkpoint", "pickle.ckpt", "--out", "o.mp4"], "pickle"),
    ("generate-missing-checkpoint", ["generate", "V.mp4", "--checkpoint", "gone.safetensors", "--out", "o.mp4"],
     "gone.safetensors"),
    ("eval-missing-video", ["eval", "missing.mp4"], "missing.mp4"),
    ("demo-missing-video", ["demo", "--out", "d", "--video", "missing.mp4"], "missing.mp4"),
    ("demo-bad-checkpoint", ["demo", "--out", "d2", "--checkpoint", "text.mp4"], "text.mp4"),
    ("init-missing-source", ["init-checkpoint", "gone.safetensors", "--out", "x.safetensors"], "gone.safetensors"),
    ("prepare-missing-data", ["prepare", "no_data", "--out", "cache"], "no_data"),
    ("train-missing-cache", ["train", "bad.toml"], "no_such_cache"),
    ("train-missing-config", ["train", "gone.toml"], "gone.toml"),
    ("train-batch-huge", ["train", "huge.toml"], "train.batch_size"),
    ("generate-cuda-without-gpu", ["generate", "V.mp4", "--checkpoint", "tiny.safetensors", "--out", "o.mp4",
                                   "--device", "cuda"], "device"),
    ("generate-device-typo", ["generate", "V.mp4", "--checkpoint", "tiny.safetensors", "--out", "o.mp4",
                              "--device", "gpu0"], "device"),
    # the fine-tuning road (issue 12)
    ("generate-lora-strength-huge", ["generate", "V.mp4", "--checkpoint", "tiny.safetensors", "--out", "o.mp4",
                                     "--lora", "tiny.safetensors", "--lora-strength", "9"], "--lora-strength"),
    ("prepare-preset-without-checkpoint", ["prepare", "outdir", "--out", "cache", "--preset", "sao1"], "--checkpoint"),
    ("train-example-base-typo", ["train", "--example", "--base", "sao2"], "invalid choice"),
    ("train-example-checkpoint-missing", ["train", "--example", "--base", "sao1", "--checkpoint", "gone.safetensors"],
     "gone.safetensors"),
    ("models-download-into-a-file", ["models", "download", "t5-base", "--dir", "V.mp4"], "is a file"),
    ("models-download-unknown", ["models", "download", "t5-large"], "invalid choice"),
]


def _run_cli(argv, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.parametrize("name, argv, words", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(name, argv, words, corpus, tmp_path, monkeypatch, capsys):
    root = tmp_path / "work"
    shutil.copytree(corpus, root, symlinks=True)
    os.link(root / "V.mp4", root / "H.mp4.tmp")  # copytree does not keep hard links: make H.mp4 one again
    os.replace(root / "H.mp4.tmp", root / "H.mp4")
    monkeypatch.chdir(root)
    before = _tree(str(root))
    rc, out, err = _run_cli([a.format(root=root) for a in argv], capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, (rc, out, err)
    assert len(lines) == 1, err
    command = argv[0]
    assert lines[0].startswith(f"v2m-zero {command}: error: "), lines[0]
    assert words.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in err + out
    assert _tree(str(root)) == before  # no new or partial file, no folder left, inputs byte-identical


def test_the_corpus_covers_every_command():
    commands = {c[1][0] for c in CLI_CASES}
    assert commands == {"curve", "mux", "eval", "prompt", "generate", "init-checkpoint", "prepare", "demo", "train",
                        "models"}
    assert len(CLI_CASES) >= 40


def test_train_on_a_corrupt_cache_shard_names_it(corpus, tmp_path, monkeypatch, capsys):
    from v2m_zero.core.train import prepare_dataset

    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        media.write_audio(data / f"m{i}.wav",
                          synth.click_track([0.2, 0.6 + 0.1 * i], 1.0, sample_rate=1600, channels=1),
                          1600, layout="mono")
    cache = tmp_path / "cache"
    prepare_dataset(data, cache, codec="patch:16:1:1600", clip_seconds=1.0, smoothing_seconds=0.1)
    shard = cache / "shard-00000.safetensors"
    shard.write_bytes(shard.read_bytes()[:-100])  # truncated
    (tmp_path / "t.toml").write_text(
        f'run_dir = "run"\n[data]\ncache = "{cache}"\nval_clips = 0\n[model.from_config]\nembed_dim = 32\ndepth = 1\n'
        'num_heads = 1\ncond_token_dim = 32\n[train]\ndevice = "cpu"\nmax_steps = 1\naccelerate = false\n')
    monkeypatch.chdir(tmp_path)
    before = _tree(str(tmp_path))
    rc, out, err = _run_cli(["train", str(tmp_path / "t.toml")], capsys)
    assert rc == 2 and err.count("\n") == 1 and "shard-00000.safetensors" in err and "prepare" in err, err
    assert _tree(str(tmp_path)) == before


def test_unexpected_errors_are_one_line_too(corpus, monkeypatch, capsys):
    from v2m_zero.core.commands import mux

    def boom(args):
        raise RuntimeError("something odd\nover two lines")

    monkeypatch.setattr(mux, "run", boom)
    rc, out, err = _run_cli(["mux", str(corpus / "V.mp4"), str(corpus / "A.m4a"), "--out", "x.mp4"], capsys)
    assert rc == 2 and err.strip().count("\n") == 0 and "unexpected RuntimeError: something odd over two lines" in err
    monkeypatch.setenv("V2M_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["mux", str(corpus / "V.mp4"), str(corpus / "A.m4a"), "--out", "x.mp4"])


# --------------------------------------------------------------------------------------------
# nodes (fake host): the same promises


def _node_inputs(host, corpus):
    import folder_paths

    shutil.copy(corpus / "V.mp4", os.path.join(folder_paths.get_input_directory(), "V.mp4"))
    return os.path.join(folder_paths.get_input_directory(), "V.mp4")


def _audio(seconds: float = 1.0, sr: int = SR):
    import torch

    return {"waveform": torch.from_numpy(synth.click_track([0.2], seconds, sample_rate=sr))[None], "sample_rate": sr}


NODE_CASES = ["mux-prefix-escapes", "mux-prefix-absolute", "mux-empty-audio", "encode-model-escapes",
              "encode-model-absolute", "load-video-escapes", "load-model-escapes", "train-overwrites-init"]


@pytest.mark.parametrize("case", NODE_CASES)
def test_node_bad_input(case, host, corpus):
    import folder_paths
    from comfy_api.latest import InputImpl

    from v2m_zero.nodes import audio, generate, train, video

    video_path = _node_inputs(host, corpus)
    ckpts = os.path.join(folder_paths.models_dir, "v2m", "checkpoints")
    os.makedirs(ckpts, exist_ok=True)
    shutil.copy(corpus / "tiny.safetensors", os.path.join(ckpts, "tiny.safetensors"))
    os.makedirs(os.path.join(folder_paths.get_input_directory(), "music"), exist_ok=True)
    shutil.copy(corpus / "data" / "m0.wav", os.path.join(folder_paths.get_input_directory(), "music", "m0.wav"))
    base = os.path.dirname(folder_paths.get_input_directory())
    before = _tree(base)
    vid = InputImpl.VideoFromFile(video_path)
    with pytest.raises(V2MError) as err:
        if case == "mux-prefix-escapes":
            audio.MuxAudio.execute(vid, _audio(), True, "../../escaped/V2M")
        elif case == "mux-prefix-absolute":
            audio.MuxAudio.execute(vid, _audio(), True, "/tmp/V2M")
        elif case == "mux-empty-audio":
            audio.MuxAudio.execute(vid, {"waveform": _audio()["waveform"][..., :0], "sample_rate": SR}, True,
                                   "video/V2M")
        elif case == "encode-model-escapes":
            video.EncodeFrames.execute("dinov2", 0.0, 0, 24.0, "../../../etc", "mean_patch", "fp32", 4, video=vid)
        elif case == "encode-model-absolute":
            video.EncodeFrames.execute("dinov2", 0.0, 0, 24.0, "/etc", "mean_patch", "fp32", 4, video=vid)
        elif case == "load-video-escapes":
            video.LoadVideo.execute("../../V.mp4")
        elif case == "load-model-escapes":
            generate.LoadModel.execute(checkpoint="../checkpoints/../../tiny.safetensors", text_encoder="none",
                                       codec="from checkpoint", precision="fp32", offload=True)
        elif case == "train-overwrites-init":
            train.Train.execute("music", "tiny", "tiny.safetensors", "patch:64:1:4000", "logmel", 1.0, 0.2, 1, "")
    assert str(err.value) and "\n" not in str(err.value)
    assert _tree(base) == before


def test_unwritable_places_are_named(corpus, tmp_path, monkeypatch, capsys):
    """A read-only folder or file (checked with os.access: root passes every real check, so the
    answer is simulated) and a write that fails anyway (an OSError deep in a writer) end in one line."""
    root = tmp_path / "work"
    shutil.copytree(corpus, root, symlinks=True)
    monkeypatch.chdir(root)
    (root / "ro").mkdir()
    (root / "ro.json").write_text("{}")
    real_access = os.access
    locked = {str(root / "ro"), str(root / "ro.json")}
    monkeypatch.setattr(os, "access", lambda p, mode: False if os.path.abspath(p) in locked else real_access(p, mode))
    before = _tree(str(root))
    rc, _, err = _run_cli(["curve", "V.mp4", "--out", "ro/c.json"], capsys)
    assert rc == 2 and "permission denied" in err and err.count("\n") == 1
    rc, _, err = _run_cli(["curve", "V.mp4", "--out", "ro.json"], capsys)
    assert rc == 2 and "read-only" in err and err.count("\n") == 1
    monkeypatch.setattr(os, "access", real_access)

    from v2m_zero.core import atomic

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied", str(root / "c.json"))

    monkeypatch.setattr(atomic, "atomic_path", refuse)
    rc, _, err = _run_cli(["curve", "V.mp4", "--out", "c.json"], capsys)
    # after the encoding stage's line
    errors = [ln for ln in err.splitlines() if ln.startswith("v2m-zero curve: error: ")]
    assert rc == 2 and len(errors) == 1 and "Permission denied" in errors[0] and "c.json" in errors[0]
    assert "Traceback" not in err
    assert _tree(str(root)) == before
