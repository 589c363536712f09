"""`models download sa3` fetches what the model needs besides its weights (model_config.json, the
bundled T5Gemma's tokenizer files as the repository ships them), against a local stand-in for the
Hub; loading then honours that config (SAME layout, seconds_total's range, sample rate)."""

from __future__ import annotations

import json
import os

import pytest
from hub_server import HubServer
from tiny_sa3 import SAME_PRETRANSFORM, tiny_sa3_file

REPO = "stabilityai/stable-audio-3-small-music-base"


def _cli(capsys, *argv):
    from v2m_zero.core import cli

    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_download_sa3_fetches_its_config_and_tokenizer_and_loading_honours_them(tmp_path, monkeypatch, capsys):
    from v2m_zero.core.model.same import SAMECodec
    from v2m_zero.model_io.codec import make_codec
    from v2m_zero.model_io.sa3 import bundled_text_encoder_dir, sa3_v2m_parts

    src = tmp_path / "hub"
    src.mkdir()
    config = {"sample_rate": 44100, "model": {"pretransform": SAME_PRETRANSFORM, "conditioning": {"configs": [
        {"id": "prompt", "type": "t5gemma", "config": {"max_length": 96, "padding_mode": "learned"}},
        {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 190}}]}}}
    weights = tiny_sa3_file(str(src / "model.safetensors"), config=False)
    repo = {"model.safetensors": open(weights, "rb").read(), "model_config.json": json.dumps(config).encode(),
            "t5gemma-b-b-ul2/tokenizer_config.json": b'{"add_bos_token": false}',
            "t5gemma-b-b-ul2/tokenizer.model": os.urandom(3000),
            "t5gemma-b-b-ul2/model.safetensors": b"big weights: never fetched by this model"}
    models = tmp_path / "models"
    monkeypatch.setenv("V2M_MODELS_DIR", str(models))
    with HubServer({REPO: repo}, gated=(REPO,), token="hf_secret") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        rc, out, err = _cli(capsys, "models", "download", "sa3", "--token", "hf_secret")
        assert rc == 0, err
        got = [p for m, p, _ in hub.requests if m == "GET"]
    ckpt = models / "checkpoints"
    side = ckpt / "stable_audio_3_small_music_base"
    assert (ckpt / "stable_audio_3_small_music_base.safetensors").read_bytes() == repo["model.safetensors"]
    assert json.loads((side / "model_config.json").read_text()) == config
    assert (side / "t5gemma-b-b-ul2" / "tokenizer.model").read_bytes() == repo["t5gemma-b-b-ul2/tokenizer.model"]
    assert (side / "t5gemma-b-b-ul2" / "tokenizer_config.json").is_file()
    assert not any(p.endswith("t5gemma-b-b-ul2/model.safetensors") for p in got)  # weights are not "small files"
    assert not any(f.endswith(".part") for _, _, fs in os.walk(models) for f in fs)
    path = ckpt / "stable_audio_3_small_music_base.safetensors"
    assert bundled_text_encoder_dir(path) == side / "t5gemma-b-b-ul2"
    rc, out, _ = _cli(capsys, "models", "list", "--json")
    assert {m["name"]: m["state"] for m in json.loads(out)["models"]}["sa3"] == "installed"
    # loading honours it: SAME as the config says (chunked, kernel-3 decoder map), seconds_total's range, text length
    codec = make_codec(str(path))
    assert isinstance(codec, SAMECodec) and (codec.cfg.sliding_window, codec.cfg.chunk_size) == (0, 32)
    assert codec.cfg.decoder_conv_mapping and not codec.cfg.encoder_conv_mapping
    _, meta = sa3_v2m_parts(path)
    cfgs = {c["id"]: c["config"] for c in meta["model_config"]["conditioning"]["configs"]}
    assert cfgs["seconds_total"]["max_val"] == 190 and cfgs["prompt"]["max_length"] == 96
    assert meta["codec"]["config"]["chunk_midpoint_shift"] is True and meta["sample_rate"] == 44100
    # without its config the tiny SAME cannot be read (its attention layout is in no weight): one line, the fix
    os.remove(side / "model_config.json")
    from v2m_zero.core.errors import ModelError

    with pytest.raises(ModelError, match="model_config.json beside the file"):
        make_codec(str(path))
    rc, out, _ = _cli(capsys, "models", "list", "--json")
    assert {m["name"]: m["state"] for m in json.loads(out)["models"]}["sa3"] != "installed"
