"""Stable Audio 3 as a V2M backbone end to end, with tiny models in the real layouts:
``init-checkpoint --from sa3``, generation through the CLI and the nodes at exact length (the base
file straight from ComfyUI's models/checkpoints/ too), the checkpoint's sampling defaults, and a
short training run on SAME latents with T5Gemma captions that lowers the loss."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("sentencepiece")

from tiny_sa3 import tiny_sa3_file, tiny_t5gemma_comfy_file  # noqa: E402
from v2m_zero.core import cli, generate  # noqa: E402
from v2m_zero.core.eval import synth  # noqa: E402
from v2m_zero.core.model import flow  # noqa: E402
from v2m_zero.core.timing import media  # noqa: E402
from v2m_zero.model_io.checkpoint import read_metadata  # noqa: E402
from v2m_zero.core.sampling import SamplingSettings

SR = 44100


def run(*argv):
    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sa3")
    base = tiny_sa3_file(str(root / "stable_audio_3_small_music_base.safetensors"))
    text = str(root / "t5gemma_b_b_ul2.safetensors")
    tiny_t5gemma_comfy_file(text)
    return {"root": root, "base": base, "text": text}


def test_init_checkpoint_from_sa3_command(files, tmp_path, capsys):
    out = tmp_path / "v2m_sa3.safetensors"
    assert run("init-checkpoint", "--from", "sa3", files["base"], "--out", out, "--smoothing-seconds", "1.5") == 0
    text = capsys.readouterr().out
    assert ("wrote" in text and "8+1 (curve)" in text and "objective rectified_flow" in text
            and "50 steps, cfg 7.0" in text)
    meta = read_metadata(out)
    assert meta["curve"]["smoothing_seconds"] == 1.5 and meta["base"]["name"] == "stable-audio-3-small-music-base"
    assert meta["sampling"]["steps"] == 50 and meta["sampling"]["schedule"]["type"] == "logsnr"
    assert run("init-checkpoint", "--from", "sa3", files["text"], "--out", tmp_path / "bad.safetensors") == 2
    assert "not a Stable Audio 3 single file" in capsys.readouterr().err
    assert not (tmp_path / "bad.safetensors").exists()


def test_generate_command_exact_length_with_t5gemma(files, tmp_path, capsys):
    out = tmp_path / "v2m.safetensors"
    assert run("init-checkpoint", "--from", "sa3", files["base"], "--out", out, "--curve-encoder", "pixels") == 0
    clip = synth.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[0.6], duration=1.3, fps=24, size=(64, 36))
    assert run("generate", clip.path, "--checkpoint", out, "--text-encoder", files["text"], "--prompt", "calm piano",
               "--steps", "3", "--cfg", "2", "--out", tmp_path / "g.mp4", "--audio-out", tmp_path / "g.wav") == 0
    wave, sr = media.decode_audio(str(tmp_path / "g.wav"))
    duration = media.probe_video(clip.path).duration
    assert sr == SR and wave.shape == (2, round(duration * SR)) and np.abs(wave).max() > 0
    assert media.probe_video(str(tmp_path / "g.mp4")).has_audio
    capsys.readouterr()
    # the text encoder is required, and must be the kind the checkpoint was trained with
    assert run("generate", clip.path, "--checkpoint", out, "--steps", "2", "--out", tmp_path / "h.mp4") == 2
    assert "t5gemma" in capsys.readouterr().err


def test_sampling_follows_the_checkpoints_schedule(files, monkeypatch):
    gen = generate.load_music_model(files["base"], text_encoder=files["text"])  # the base file, initialised in memory
    assert gen.meta["sampling"]["schedule"]["type"] == "logsnr" and gen.latent_rate == pytest.approx(SR / 512)
    seen = []
    real = flow.sample
    monkeypatch.setattr(flow, "sample", lambda *a, **k: seen.append(a[2]) or real(*a, **k))
    lat = generate.sample_latents(gen, None, "calm piano", SamplingSettings(steps=4, cfg=1.0), duration=0.5)
    assert lat.shape == (1, 8, generate.latent_frames(gen, 0.5))
    torch.testing.assert_close(seen[0], flow.logsnr_timesteps(4))


def test_nodes_list_sa3_base_files_and_generate_exact_length(host, files):
    import folder_paths

    from v2m_zero.nodes import audio, curves, generate as gen_nodes, video

    for kind, name in (("checkpoints", files["base"]), ("text_encoders", files["text"])):
        folder = os.path.join(folder_paths.models_dir, kind)
        os.makedirs(folder, exist_ok=True)
        folder_paths.add_model_folder_path(kind, folder)
        shutil.copy(name, folder)
    # its model_config.json where `models download sa3` puts it (the tiny SAME's attention layout is in no weight)
    side = os.path.join(folder_paths.models_dir, "checkpoints", "stable_audio_3_small_music_base")
    os.makedirs(side, exist_ok=True)
    shutil.copy(os.path.join(os.path.dirname(files["base"]), "model_config.json"), side)
    with open(os.path.join(folder_paths.models_dir, "checkpoints", "sd15.safetensors"), "wb") as f:
        f.write(b"not an SA3 file")
    schema = gen_nodes.LoadModel.define_schema()
    ckpts, texts = schema.inputs[0].options, schema.inputs[1].options
    assert "checkpoints/stable_audio_3_small_music_base.safetensors" in ckpts and not any("sd15" in c for c in ckpts)
    assert "text_encoders/t5gemma_b_b_ul2.safetensors" in texts
    synth.make_cut_clip(os.path.join(folder_paths.get_input_directory(), "c.mp4"), cut_times=[0.5], duration=1.1,
                               fps=30000 / 1001, size=(64, 36))
    vid, _, duration, frames = video.LoadVideo.execute(file="c.mp4").args
    feats = video.EncodeFrames.execute(video=vid, encoder="pixels", sample_fps=0.0, size=0, fps=24.0,
                                       dinov2_model="dinov2-large",
                                       pooling="mean_patch", precision="fp32", batch_size=16).args[0]
    curve = curves.EventCurve.execute(features=feats, peak_threshold=0.0, min_gap=0.25).args[0]
    model = gen_nodes.LoadModel.execute(checkpoint="checkpoints/stable_audio_3_small_music_base.safetensors",
                                        text_encoder="text_encoders/t5gemma_b_b_ul2.safetensors",
                                        codec="from checkpoint", precision="fp32", offload=True).args[0]
    latent, _ = gen_nodes.Sampler.execute(model=model, curve=curve, prompt="upbeat", negative_prompt="", steps=3,
                                          cfg=3.0, seed=1, uncond="both").args
    aud = gen_nodes.DecodeLatents.execute(model=model, latent=latent).args[0]
    assert (aud["sample_rate"] == SR and aud["waveform"].shape[-1] == round(duration * SR)
            and aud["waveform"].shape[1] == 2)
    out = audio.MuxAudio.execute(video=vid, audio=aud, save_mp4=True, filename_prefix="video/V2M").args[0]
    assert media.probe_video(out.get_stream_source()).frame_count == frames
    with pytest.raises(Exception, match="not in ComfyUI's models/checkpoints"):
        gen_nodes.LoadModel.execute(checkpoint="checkpoints/gone.safetensors", text_encoder="none",
                                    codec="from checkpoint", precision="fp32", offload=True)


def test_short_training_run_lowers_the_loss(files, tmp_path):
    from tiny_models import tiny_train_config
    from v2m_zero.core.train import ClipCache, train
    from v2m_zero.core.train.prepare import prepare_dataset
    from v2m_zero.model_io.checkpoint import build_dit_from_checkpoint

    data = tmp_path / "music"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        t = np.sort(rng.uniform(0.1, 1.8, 4))
        media.write_audio(str(data / f"m{i}.wav"), synth.click_track(t, 2.0, sample_rate=SR, channels=2, seed=i), SR)
        (data / f"m{i}.txt").write_text(f"calm piano {i}")
    cache = tmp_path / "cache"
    prepare_dataset(data, cache, codec=files["base"], clip_seconds=1.0, smoothing_seconds=0.2, device="cpu")
    assert ClipCache(str(cache)).spec["codec"]["type"] == "same"
    v2m = tmp_path / "v2m.safetensors"
    assert run("init-checkpoint", "--from", "sa3", files["base"], "--out", v2m) == 0
    cfg = tiny_train_config(str(cache), tmp_path / "run", data={"cache": str(cache), "val_clips": 0},
                            model={"from_checkpoint": str(v2m)}, text={"encoder": files["text"]},
                            train={"max_steps": 6, "batch_size": 2, "grad_accum": 1},
                            optim={"lr": 3e-3, "warmup_steps": 0}, validation={"every": 0}, ema={"enabled": False})
    cfg["model"].pop("from_config")
    result = train(cfg)
    meta = read_metadata(result.checkpoint_path)
    assert meta["text"] == {"type": "t5gemma", "max_length": 256} and meta["codec"]["type"] == "same"
    assert meta["model_config"]["architecture"] == "stable_audio_3"

    data_ = ClipCache(str(cache))
    batch = data_.batch(list(range(len(data_))))
    from v2m_zero.model_io.text import load_text_encoder

    enc = load_text_encoder(files["text"])
    losses = []
    for ckpt in (v2m, result.checkpoint_path):
        model = build_dit_from_checkpoint(ckpt)
        cond = model.conditioning(text=enc.encode(batch["captions"]), seconds=batch["seconds"],
                                  batch=len(batch["captions"]))
        t = torch.linspace(0.1, 0.9, len(batch["captions"]))
        with torch.no_grad():
            losses.append(float(flow.rf_loss(model, batch["latents"], curve=batch["curves"], t=t,
                                             noise=flow.make_noise(batch["latents"].shape, 7), **cond)))
    assert losses[1] < 0.9 * losses[0], losses
