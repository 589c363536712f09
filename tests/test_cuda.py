"""CUDA checks (skipped without a GPU; run on the lent GPU machine, see benchmarks/RESULTS.md)."""

import os

import pytest
import torch

from tiny_models import tiny_v2m_checkpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_same_seed_same_music_on_cpu_and_cuda(tmp_path):
    import numpy as np

    from v2m_zero.core import generate
    from v2m_zero.core.timing.curves import Curve

    path = tiny_v2m_checkpoint(str(tmp_path / "t.safetensors"))
    raw = Curve(np.r_[np.zeros(20), 5.0, np.zeros(27)], np.arange(1, 49) / 24, 2.0)
    out = {}
    for dev in ("cpu", "cuda"):
        gen = generate.load_music_model(path, device=dev)
        cond = generate.conditioning_curve_for(gen, raw)
        lat = generate.sample_latents(gen, cond, "", generate.SamplingSettings(steps=8, cfg=3.0, seed=11), duration=2.0)
        out[dev] = generate.decode_latents(gen, lat, 2.0)
    assert out["cpu"].shape == out["cuda"].shape
    assert np.abs(out["cpu"] - out["cuda"]).max() < 1e-3  # same noise; only float rounding differs


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_dit_is_close_to_fp32(dtype):
    from v2m_zero.core.model.dit import V2MDiT, make_model_config

    torch.manual_seed(0)
    cfg = make_model_config(io_channels=64, embed_dim=256, depth=4, num_heads=4, cond_token_dim=128, with_curve=True)
    model = V2MDiT(cfg, objective="rectified_flow").cuda().eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, 0, 0.02)
    x = torch.randn(2, 64, 300, device="cuda")
    kw = dict(curve=torch.randn(2, 300, device="cuda"), cond_tokens=torch.randn(2, 16, 128, device="cuda"),
              seconds_start=0.0, seconds_total=14.0)
    with torch.no_grad():
        ref = model(x, torch.tensor([0.3, 0.7], device="cuda"), **kw).float()
        half = model.to(dtype)(x.to(dtype), torch.tensor([0.3, 0.7], device="cuda"),
                               **{k: v.to(dtype) if torch.is_tensor(v) else v for k, v in kw.items()}).float()
    rel = (half - ref).norm() / ref.norm()
    assert torch.isfinite(half).all() and rel < 3e-2


def test_cuda_training_step_lowers_loss():
    from v2m_zero.core.model import flow
    from v2m_zero.core.model.dit import V2MDiT, make_model_config

    torch.manual_seed(0)
    cfg = make_model_config(io_channels=16, embed_dim=128, depth=2, num_heads=2, cond_token_dim=64, with_curve=True)
    model = V2MDiT(cfg, objective="rectified_flow").cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    x0, curve = torch.randn(4, 16, 64, generator=g).cuda(), torch.randn(4, 1, 64, generator=g).cuda()
    t, noise = torch.rand(4, generator=g), torch.randn(4, 16, 64, generator=g)
    kw = dict(curve=curve, t=t, noise=noise, cond_tokens=torch.zeros(4, 1, 64, device="cuda"), seconds_start=0.0,
              seconds_total=3.0)
    losses = []
    for _ in range(3):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = flow.rf_loss(model, x0, **kw)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_cuda_bf16_training_resume_export_and_generate(tmp_path):
    """The trainer on a GPU: bf16 autocast, stop + exact resume, export, then generation on CUDA."""
    import numpy as np

    from tiny_models import tiny_train_config
    from v2m_zero.core import generate
    from v2m_zero.core.eval import synth
    from v2m_zero.core.timing import media
    from v2m_zero.core.train.prepare import prepare_dataset
    from v2m_zero.core.train import train

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        t = np.sort(rng.uniform(0.1, 2.8, 5))
        media.write_audio(str(data / f"m{i}.wav"), synth.click_track(t, 3.0, sample_rate=4000, channels=1, seed=i),
                          4000, layout="mono")
        (data / f"m{i}.txt").write_text(f"drums {i}")
    cache = str(tmp_path / "cache")
    prepare_dataset(data, cache, codec="patch:64:1:4000", clip_seconds=1.0, smoothing_seconds=0.1, device="cuda")
    gpu = {"device": "cuda", "precision": "bf16", "max_steps": 6}
    full = train(tiny_train_config(cache, tmp_path / "full", train=gpu, validation={"every": 0}))
    calls = {"n": 0}

    def stop_after_3():
        calls["n"] += 1
        return calls["n"] == 3

    first = train(tiny_train_config(cache, tmp_path / "split", train=gpu, validation={"every": 0}),
                  should_stop=stop_after_3)
    assert first.stopped and first.step == 3
    rest = train(tiny_train_config(cache, tmp_path / "split", train=gpu, validation={"every": 0}))
    assert rest.step == 6
    got = [loss for _, loss in first.losses + rest.losses]
    want = [loss for _, loss in full.losses]
    assert np.allclose(got, want, rtol=1e-3, atol=1e-4), (got, want)  # GPU kernels need not be bitwise
    assert all(np.isfinite(want))
    gen = generate.load_music_model(full.checkpoint_path, device="cuda", precision="bf16")
    raw_t = np.arange(1, 48) / 24
    from v2m_zero.core.timing.curves import Curve

    cond = generate.conditioning_curve_for(gen, Curve(np.where(np.abs(raw_t - 1.0) < 0.02, 5.0, 0.0), raw_t, 2.0))
    lat = generate.sample_latents(gen, cond, "", generate.SamplingSettings(steps=5, cfg=2.0, seed=0), duration=2.0)
    wave = generate.decode_latents(gen, lat, 2.0)
    assert wave.shape == (1, 8000) and np.isfinite(wave).all()


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_dinov2_encoder_on_cuda_matches_cpu(tmp_path, precision):
    import numpy as np

    from tiny_models import tiny_dinov2
    from v2m_zero.core.timing import encoders

    folder = str(tmp_path / "dinov2-tiny")
    tiny_dinov2(folder)
    frames = np.random.default_rng(0).integers(0, 256, size=(6, 72, 128, 3), dtype=np.uint8)
    ref = encoders.get_encoder("dinov2", model=folder, device="cpu").encode(frames)
    got = encoders.get_encoder("dinov2", model=folder, device="cuda", precision=precision).encode(frames)
    tol = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 5e-2}[precision]
    assert np.abs(got - ref).max() / np.abs(ref).max() < tol


def test_fast_sampler_compiles_with_cuda_graphs_and_matches_eager(tmp_path):
    """The fast path (Inductor + CUDA graphs) on the GPU: eager's latents, warm-up reused by the next run."""
    from v2m_zero.core import generate
    from v2m_zero.core.model import fast

    gen = generate.load_music_model(tiny_v2m_checkpoint(str(tmp_path / "t.safetensors")), device="cuda")
    kw = dict(duration=2.0)
    S = lambda fast: generate.SamplingSettings(steps=8, cfg=3.0, seed=5, fast=fast)  # noqa: E731
    eager = generate.sample_latents(gen, None, "", S("off"), **kw)
    with torch.inference_mode():  # as ComfyUI runs nodes
        got = generate.sample_latents(gen, None, "", S("compile"), **kw)
        fm = fast.fast_model(gen.dit, "compile", device=gen.device)
        assert fm.fast and fm.graphs and fm.calls == 8, fm.failure
        again = generate.sample_latents(gen, None, "", S("compile"), **kw)
    assert fm.calls == 16
    assert (got - eager).abs().max().item() < 1e-3
    assert torch.equal(got, again)  # replayed graphs: the same numbers every run
    assert fast.fast_model(gen.dit, "auto", device=gen.device) is gen.dit  # a tiny model stays eager by default


def test_pil_resize_on_cuda_is_pillow_bit_for_bit():
    import numpy as np
    from PIL import Image

    from v2m_zero.core.timing.preprocess import pil_resize

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    want = np.asarray(Image.fromarray(img).resize((455, 256), 3))
    x = torch.from_numpy(img).permute(2, 0, 1).contiguous().cuda()
    got = pil_resize(x, 256, 455, 3).permute(1, 2, 0).cpu().numpy()
    assert np.array_equal(got, want)


def test_fast_sampler_survives_offload_between_runs(tmp_path):
    """ComfyUI's offload moves the model CPU → GPU → CPU around every run: the CUDA graphs re-record
    (new weight addresses) and give the same latents; reserved memory does not grow run after run."""
    from v2m_zero.core import generate
    from v2m_zero.core.model import fast

    gen = generate.load_music_model(tiny_v2m_checkpoint(str(tmp_path / "t.safetensors")), device="cuda")
    kw = dict(duration=1.0)
    S = lambda fast: generate.SamplingSettings(steps=4, cfg=2.0, seed=2, fast=fast)  # noqa: E731
    want = generate.sample_latents(gen, None, "", S("off"), **kw)
    reserved = []
    for _ in range(4):
        gen.dit.to("cpu")
        torch.cuda.empty_cache()
        gen.dit.to("cuda")
        with torch.inference_mode():
            got = generate.sample_latents(gen, None, "", S("compile"), **kw)
        assert (got - want).abs().max().item() < 1e-3
        reserved.append(torch.cuda.memory_reserved())
    assert fast.fast_model(gen.dit, "compile", device=gen.device).fast
    assert reserved[-1] <= reserved[1] * 1.5 + 64 * 2**20, reserved


def test_offloaded_model_is_on_the_gpu_only_inside_placed(host, tmp_path, monkeypatch):
    """The Load V2M Model node's offload on a real GPU: CPU between runs, the GPU while sampling, CPU again."""
    import comfy.model_management as mm
    import folder_paths

    from v2m_zero.nodes import generate
    from v2m_zero.nodes.host import runtime

    monkeypatch.setattr(mm, "get_torch_device", lambda: torch.device("cuda", 0))
    ckdir = os.path.join(folder_paths.models_dir, "v2m", "checkpoints")
    os.makedirs(ckdir)
    tiny_v2m_checkpoint(os.path.join(ckdir, "t.safetensors"))
    kw = dict(checkpoint="t.safetensors", text_encoder="none", codec="from checkpoint", precision="fp32")
    off = generate.LoadModel.execute(offload=True, **kw).args[0]
    on = generate.LoadModel.execute(offload=False, **kw).args[0]
    assert next(off.dit.parameters()).is_cuda is False and next(on.dit.parameters()).is_cuda
    with runtime.placed(off) as gen:
        assert next(gen.dit.parameters()).is_cuda and gen.device.type == "cuda"
    assert next(off.dit.parameters()).is_cuda is False and off.device.type == "cpu"
    with runtime.placed(on) as gen:
        assert next(gen.dit.parameters()).is_cuda
    assert next(on.dit.parameters()).is_cuda  # loaded on the GPU: stays there
