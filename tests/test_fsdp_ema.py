"""FSDP with EMA: two CPU processes (gloo) train a few steps wrapped as the FSDP config wraps
(``fsdp_harness.py``); the exported checkpoint must hold the EMA (keyed by the unwrapped names, updated
from the whole parameters), not the base weights nor the last trained ones."""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from tiny_models import click_music_folder, tiny_train_config, tiny_v2m_checkpoint
from v2m_zero.core.train.prepare import prepare_dataset
from v2m_zero.model_io.weights import read_safetensors

dist = pytest.importorskip("torch.distributed")
pytestmark = [pytest.mark.slow,  # two processes start torch: ~12 s of CPU
              pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                 reason="torch.distributed with gloo is needed")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fsdp_exports_the_ema(tmp_path):
    click_music_folder(tmp_path / "data", 3, 3.0, sample_rate=1600)
    prepare_dataset(tmp_path / "data", tmp_path / "cache", codec="patch:16:1:1600", clip_seconds=1.0,
                    smoothing_seconds=0.1, device="cpu")
    base = tiny_v2m_checkpoint(str(tmp_path / "base.safetensors"))
    cfg = tiny_train_config(str(tmp_path / "cache"), str(tmp_path / "run"), train={"max_steps": 3, "grad_accum": 1},
                            validation={"every": 0}, model={"from_checkpoint": base})
    cfg["model"].pop("from_config", None)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([here] + sys.path)}
    procs = [subprocess.Popen([sys.executable, os.path.join(here, "fsdp_harness.py"), str(tmp_path / "cfg.json")],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in range(2)]
    try:
        outs = [p.communicate(timeout=300)[0] for p in procs]
    finally:  # bounded: a hung rank is ended, never left behind
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    exported, _ = read_safetensors(tmp_path / "run" / "checkpoints" / "v2m-final.safetensors")
    base_sd, _ = read_safetensors(base)
    state = sorted(glob.glob(str(tmp_path / "run" / "state" / "step-*")))[-1]
    ema, _ = read_safetensors(os.path.join(state, "ema.safetensors"))
    trained, _ = read_safetensors(os.path.join(state, "model.safetensors"))
    assert ema and set(ema) <= set(exported) and set(ema) <= set(base_sd)
    assert all(not k.count("_fsdp_wrapped_module") for k in ema)  # the unwrapped names
    for k, v in ema.items():
        assert exported[k].shape == base_sd[k].shape and torch.equal(exported[k], v.to(exported[k].dtype)), k
    moved = [k for k in ema if not torch.equal(exported[k], base_sd[k])]
    assert len(moved) == len(ema)  # every trained parameter's EMA left the base weights
    assert any(not torch.equal(exported[k], trained[k]) for k in ema)  # and is not simply the last weights
