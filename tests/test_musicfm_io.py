"""MusicFM's weights as shipped: the one-time conversion of a pickled ``pretrained_msd.pt`` that
``torch.load(weights_only=True)`` refuses, errors that stop (one line naming the file and the fix), and the
log-mel fallback only when no weights are found and the preset/config allows it."""

from __future__ import annotations

import argparse
import hashlib
import json
import os

import numpy as np
import pytest
import torch

from test_prepare import _save_public_layout, _tiny_musicfm
from v2m_zero.core import cli
from v2m_zero.core.errors import ModelError, WeightsMissing
from v2m_zero.core.train.music_encoders import MusicFMEncoder
from v2m_zero.model_io.musicfm import find_musicfm, load_musicfm

STATS = {"melspec_2048_mean": 6.77, "melspec_2048_std": 18.4}


class _Hyper:
    """Stands for what a Lightning checkpoint pickles beside the weights (hyper-parameters, callbacks)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this with a plain torch.load would create the marker file
        return (open, (self.marker, "w"))


def _lightning_checkpoint(path, model, marker):
    _save_public_layout(model, path)
    ckpt = torch.load(path, weights_only=True)
    ckpt.update({"hyper_parameters": argparse.Namespace(lr=1e-4), "callbacks": {"x": _Hyper(str(marker))},
                 "pytorch-lightning_version": "1.9.0"})
    torch.save(ckpt, path)


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_convert_musicfm_command_reads_tensors_only(tmp_path, capsys):
    src, cfg = _tiny_musicfm()
    folder = tmp_path / "music_encoders" / "musicfm"
    folder.mkdir(parents=True)
    pt, marker = folder / "pretrained_msd.pt", tmp_path / "ran"
    _lightning_checkpoint(pt, src, marker)
    (folder / "msd_stats.json").write_text(json.dumps(STATS))
    before = _sha(pt)
    with pytest.raises(ModelError) as err:
        load_musicfm(pt)
    msg = str(err.value)
    assert "\n" not in msg and str(pt) in msg and "v2m-zero models convert-musicfm" in msg
    assert cli.main(["models", "convert-musicfm", str(pt)]) == 0
    assert "pretrained_msd.safetensors" in capsys.readouterr().out
    assert not marker.exists() and _sha(pt) == before  # nothing in the pickle ran; the input is untouched
    out = folder / "pretrained_msd.safetensors"
    model = load_musicfm(out, conformer_config=cfg)
    x = torch.randn(1, 960 * 12) * 0.1
    with torch.no_grad():
        for a, b in zip(src.hidden_states(x), model.hidden_states(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the converted file is what the models folder offers first
    os.environ["V2M_MODELS_DIR"] = str(tmp_path)
    try:
        assert find_musicfm() == str(out)
    finally:
        del os.environ["V2M_MODELS_DIR"]
    # a file that is not MusicFM's is refused, and nothing is written
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, other)
    assert cli.main(["models", "convert-musicfm", str(other)]) == 2
    assert "not MusicFM's" in capsys.readouterr().err and not (tmp_path / "other.safetensors").exists()


def test_fallback_only_when_no_weights_are_found(tmp_path):
    from v2m_zero.core.train.prepare import _music_encoder

    said = []
    enc, record = _music_encoder("musicfm", "logmel", None, {"path": None, "layer": 7}, said.append)
    assert enc.id == "logmel" and record["wanted"] == "musicfm" and record["used"] == "logmel"
    assert "no musicfm weights found" in said[0] and "allows the fallback" in said[0]
    # absent and no fallback configured: the error, not log-mel
    with pytest.raises(WeightsMissing, match="no MusicFM checkpoint found"):
        _music_encoder("musicfm", None, None, {"path": None}, said.append)
    # present but unusable: always an error, one line naming the file and the fix
    broken = tmp_path / "pretrained_msd.pt"
    broken.write_bytes(b"not a checkpoint")
    (tmp_path / "msd_stats.json").write_text(json.dumps(STATS))
    with pytest.raises(ModelError) as err:
        _music_encoder("musicfm", "logmel", None, {"path": str(broken)}, said.append)
    assert not isinstance(err.value, WeightsMissing) and str(broken) in str(err.value) and "\n" not in str(err.value)
    assert len(said) == 1


def test_feature_layer_is_recorded():
    src, _ = _tiny_musicfm()
    enc = MusicFMEncoder(model=src, layer=1)
    f = enc.encode(np.zeros((1, 24000), np.float32), 24000)
    assert enc.describe()["layer"] == 1 and f.meta["layer"] == 1
    import inspect

    # the default: MusicFM's README example (get_latent(wav, layer_ix=7)); the paper names no layer
    assert inspect.signature(MusicFMEncoder).parameters["layer"].default == 7
