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
    _ckpt_case("steps", "bad_steps.safetensors: the checkpoint's sampling.steps must be in [1, 1000]; "
                        "got 1000000000.0"),
    _ckpt_case("steps", "bad_steps.safetensors: the checkpoint's sampling.steps", "demo"),
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


# --------------------------------------------------------------------------------------------
# inputs users really have (issue 26): every codec muxed, planned before the work


@pytest.fixture(scope="module")
def codec_videos(tmp_path_factory):
    """{kind: path} of the codec corpus; kinds whose encoder this PyAV lacks map to None (skipped visibly)."""
    root = tmp_path_factory.mktemp("codecs")
    out = {}
    for kind, (name, *_rest) in codec_media.CODEC_VIDEOS.items():
        out[kind] = codec_media.make_codec_video(root / name, kind) if codec_media.encoder_for(kind) else None
    media.write_audio(root / "music.wav", synth.click_track([0.5, 1.0, 1.5], 2.0), SR)
    return root, out


def _codec_video(codec_videos, kind):
    root, videos = codec_videos
    if videos[kind] is None:
        pytest.skip(f"this PyAV has no encoder for {kind} ({codec_media.CODEC_VIDEOS[kind][1]}): case not made")
    return root, videos[kind]


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv"])
@pytest.mark.parametrize("kind", list(codec_media.CODEC_VIDEOS))
def test_every_codec_muxes_planned_before_the_work(kind, ext, codec_videos, tmp_path, monkeypatch, capsys):
    """AV1 (once 'unexpected UnknownCodecError: libdav1d' after the whole job), ProRes and GIF in .mp4 (once a
    ValueError after the job), VP9, HEVC, MJPEG: each muxes into every output container, copied where the
    container takes the stream, else re-encoded with every frame and its time kept, said in one note."""
    root, video = _codec_video(codec_videos, kind)
    monkeypatch.chdir(tmp_path)
    before = _tree(str(root))
    plan = media.plan_mux(video, str(tmp_path / f"o{ext}"))
    rc, out, err = _run_cli(["mux", video, str(root / "music.wav"), "--out", f"o{ext}"], capsys)
    assert rc == 0, err
    notes = [ln for ln in out.splitlines() if ln.startswith("note: ")]
    assert (len(notes) == 1 and "re-encoded as H.264" in notes[0]) == (not plan.copy), (plan, out)
    if (kind, ext) in (("prores", ".mp4"), ("gif", ".mp4")):
        assert not plan.copy and ".mov" in notes[0]  # and where a copy would go
    if kind == "av1" and ext in (".mp4", ".mkv"):
        assert plan.copy  # AV1 is copied (through its codec context: no encoder is named libdav1d)
    src, got = media.probe_video(video), media.probe_video(str(tmp_path / f"o{ext}"))
    assert got.frame_count == src.frame_count and abs(got.duration - src.duration) < 2e-3, (src, got)
    wave, sr = media.decode_audio(str(tmp_path / f"o{ext}"))
    assert abs(wave.shape[1] / sr - src.duration) < 0.03
    assert sorted(os.listdir(tmp_path)) == [f"o{ext}"] and _tree(str(root)) == before


def test_demo_chooses_a_container_that_takes_the_copy(codec_videos, tmp_path, monkeypatch, capsys):
    """demo --video prores.mov: .mp4 cannot hold ProRes, so the video with music is a .mov (a stream copy), said
    before the work; the plan is made before anything is decoded or written."""
    root, video = _codec_video(codec_videos, "prores")
    monkeypatch.chdir(tmp_path)
    rc, out, err = _run_cli(["demo", "--video", video, "--out", "d", "--sonify"], capsys)
    assert rc == 0, err
    assert "written as .mov (stream copy)" in out.splitlines()[0], out
    assert sorted(os.listdir(tmp_path / "d")) == ["curve.json", "curve.png", "demo_with_soundtrack.mov"]
    assert media.plan_mux(str(tmp_path / "d" / "demo_with_soundtrack.mov"), str(tmp_path / "x.mov")).copy


def test_a_video_that_can_be_neither_copied_nor_decoded_is_refused_before_decoding(corpus, tmp_path, monkeypatch):
    from v2m_zero.core.errors import MediaError
    from v2m_zero.core.timing.media import mux

    monkeypatch.setattr(mux, "_copy_problem", lambda inp, ivs, fmt: "not in this container")
    real_codec = mux.av.codec.Codec

    def no_decoder(name, mode="r"):
        if mode == "r":
            raise mux.av.codec.codec.UnknownCodecError(name)
        return real_codec(name, mode)

    monkeypatch.setattr(mux.av.codec, "Codec", no_decoder)
    with pytest.raises(MediaError, match="cannot be copied into .mp4 .* and cannot be decoded"):
        mux.plan_mux(str(corpus / "V.mp4"), str(tmp_path / "o.mp4"))


def test_cover_art_audio_is_still_music(corpus, tmp_path, monkeypatch, capsys):
    """The same mp3 with cover art that is refused as a video is fine as the music."""
    monkeypatch.chdir(tmp_path)
    rc, out, err = _run_cli(["mux", str(corpus / "V.mp4"), str(corpus / "song.mp3"), "--out", "o.mp4"], capsys)
    assert rc == 0 and "muxed" in out, err


# --------------------------------------------------------------------------------------------
# two runs into one --out (issue 26)

_HOLDER = """
import sys, time, os
from v2m_zero.core.outputs import OutputPlan
plan = OutputPlan()
plan.folder(sys.argv[1], "--out")
with plan:
    open(sys.argv[2], "w").close()
    while not os.path.exists(sys.argv[3]):
        time.sleep(0.02)
"""


def test_a_second_run_into_the_same_out_refuses_in_one_line(tmp_path, monkeypatch, capsys):
    """Process A holds --out (an OutputPlan, as every command's); B, another process's run into the same folder,
    refuses at once in one line naming the lock; once A is done nothing of the lock is left and B runs."""
    import subprocess
    import sys
    import time

    monkeypatch.chdir(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path / "same"), str(tmp_path / "ready"),
                               str(tmp_path / "go")], env=env)
    try:
        for _ in range(1000):
            if (tmp_path / "ready").exists() or holder.poll() is not None:
                break
            time.sleep(0.02)
        assert (tmp_path / "ready").exists()
        before = _tree(str(tmp_path))
        rc, out, err = _run_cli(["demo", "--out", "same", "--sonify", "--duration", "1"], capsys)
        assert rc == 2 and err.count("\n") == 1 and out == "", err
        assert f"another v2m-zero run (process {holder.pid}" in err and ".same.v2m-lock" in err
        assert _tree(str(tmp_path)) == before  # the second run wrote nothing
    finally:
        (tmp_path / "go").touch()
        holder.wait(timeout=60)
    assert holder.returncode == 0
    assert not (tmp_path / ".same.v2m-lock").exists()
    rc, out, err = _run_cli(["demo", "--out", "same", "--sonify", "--duration", "1"], capsys)
    assert rc == 0, err
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".v2m-lock")]


def test_a_killed_runs_lock_is_taken_over(corpus, tmp_path, monkeypatch, capsys):
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (tmp_path / ".o.mp4.v2m-lock").write_text(f"{dead.pid} {socket.gethostname()} 2026-01-01 00:00:00\n")
    rc, out, err = _run_cli(["mux", str(corpus / "V.mp4"), str(corpus / "A.wav"), "--out", "o.mp4"], capsys)
    assert rc == 0, err
    assert sorted(os.listdir(tmp_path)) == ["o.mp4"]


# --------------------------------------------------------------------------------------------
# eval: every audio track, paths as given (issue 26)


def test_eval_scores_every_audio_track_and_names_paths_in_full(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    media.mux_audio(str(corpus / "V.mp4"), synth.click_track([1.0, 2.0], 3.0), SR, "a/clip.mp4")
    media.mux_audio(str(corpus / "V.mp4"), synth.click_track([0.4, 1.3], 3.0), SR, "b/clip.mp4")
    shutil.copy(corpus / "two_tracks.mp4", tmp_path / "two.mp4")
    rc, out, err = _run_cli(["eval", "two.mp4", "a/clip.mp4", "b/clip.mp4", "--json", "r.json"], capsys)
    assert rc == 0, err
    assert "note: two.mp4 has 2 audio tracks: each is scored on its own row" in out
    rows = {ln.split("  ")[0]: ln for ln in out.splitlines()}
    assert {"two.mp4 [audio 1]", "two.mp4 [audio 2]", "a/clip.mp4", "b/clip.mp4"} <= set(rows), out
    import json

    doc = json.loads((tmp_path / "r.json").read_text())
    assert [(r["video"], r.get("audio_track")) for r in doc["videos"]] == [
        ("two.mp4", 1), ("two.mp4", 2), ("a/clip.mp4", None), ("b/clip.mp4", None)]
    assert doc["videos"][0]["sch"] != doc["videos"][1]["sch"]  # two different musics, two scores
    rc, out, err = _run_cli(["eval", "two.mp4", "--audio-track", "2"], capsys)
    assert rc == 0 and "track 2 is scored" in out and "two.mp4 [audio 2]" in out, (out, err)


# --------------------------------------------------------------------------------------------
# small ones (issue 26)


def test_audio_out_keeps_float_music(corpus, tmp_path, monkeypatch, capsys):
    import av

    monkeypatch.chdir(tmp_path)
    rc, out, err = _run_cli(["generate", str(corpus / "V.mp4"), "--checkpoint", str(corpus / "tiny.safetensors"),
                             "--out", "o.mp4", "--audio-out", "m.wav", "--steps", "2"], capsys)
    assert rc == 0, err
    assert "(32-bit float WAV)" in out
    with av.open(str(tmp_path / "m.wav")) as c:
        assert c.streams.audio[0].codec_context.name == "pcm_f32le"


def test_no_raw_librosa_warning_on_a_two_frame_video(tmp_path, recwarn):
    import numpy as np

    from v2m_zero.core.eval import sch

    synth.make_cut_clip(str(tmp_path / "two.mp4"), cut_times=[], duration=2 / 60, fps=60, size=(64, 48))
    media.mux_audio(str(tmp_path / "two.mp4"), synth.click_track([0.01], 0.1, sample_rate=16000), 16000,
                    str(tmp_path / "two_a.mp4"))
    wave, sr = media.decode_audio(str(tmp_path / "two_a.mp4"), channels=1)
    assert wave.shape[1] < sch.BEAT_N_FFT
    assert sch.beat_times(wave[0], sr).size == 0
    assert sch.beat_times(np.ones(10, np.float32), sr).size == 0
    assert not [w for w in recwarn if "n_fft" in str(w.message)]


def test_demo_with_a_bad_checkpoint_says_nothing_was_generated(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc, out, err = _run_cli(["demo", "--out", "d", "--checkpoint", str(corpus / "bad_griffin_lim.safetensors")],
                            capsys)
    assert rc == 2 and "griffin_lim_iters" in err
    assert "generated" not in out and not (tmp_path / "d").exists()


def test_mux_audio_node_says_on_the_node_when_it_re_encodes(codec_videos, host):
    """The Mux Audio node plans like the CLI: ProRes cannot go into its .mp4, so it re-encodes and says so in
    its text (drawn on the node); a stream it can copy gets no note."""
    from comfy_api.latest import InputImpl

    from v2m_zero.nodes import audio

    _, prores = _codec_video(codec_videos, "prores")
    out = audio.MuxAudio.execute(InputImpl.VideoFromFile(prores), _audio(2.0), False, "video/V2M")
    assert "re-encoded as H.264" in out.ui["text"][0]
    src, got = media.probe_video(prores), media.probe_video(out.args[0].get_stream_source())
    assert got.frame_count == src.frame_count
    _, hevc = _codec_video(codec_videos, "hevc")
    assert audio.MuxAudio.execute(InputImpl.VideoFromFile(hevc), _audio(2.0), False, "video/V2M").ui is None
