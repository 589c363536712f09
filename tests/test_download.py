"""Downloads only on request, against a local stand-in for the Hub (HF_ENDPOINT) serving tiny models."""

import json
import os
import socket
import threading

import pytest
from hub_server import HubServer
from tiny_models import tiny_dinov2, tiny_t5


def _folder_bytes(folder):
    return {f: open(os.path.join(folder, f), "rb").read() for f in os.listdir(folder)}


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    tiny_dinov2(str(root / "dinov2"))
    tiny_t5(str(root / "t5"))
    sao = os.urandom(5000)
    return {"facebook/dinov2-small": _folder_bytes(root / "dinov2"), "google-t5/t5-base": _folder_bytes(root / "t5"),
            "stabilityai/stable-audio-open-1.0": {"model.safetensors": sao}}


def _cli(capsys, *argv):
    from v2m_zero.core import cli

    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_download_tiny_models_then_load_them(hub_files, tmp_path, monkeypatch, capsys):
    from v2m_zero.core.timing import encoders
    from v2m_zero.model_io.folders import resolve_model_dir
    from v2m_zero.model_io.text import load_t5

    models = tmp_path / "models"
    monkeypatch.setenv("V2M_MODELS_DIR", str(models))
    with HubServer(hub_files) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        rc, out, err = _cli(capsys, "models", "download", "dinov2-small", "t5-base")
        assert rc == 0, err
        assert f"dinov2-small -> {models / 'encoders' / 'dinov2-small'}" in out
        assert "downloading t5-base" in err  # progress, one line per model when not on a terminal
        # optional files the repository lacks are skipped (404), needed ones are all there
        assert any(p.endswith("t5-base/resolve/main/spiece.model") for _, p, _ in hub.requests)
        n = len(hub.requests)
        rc, out, _ = _cli(capsys, "models", "download", "t5-base")  # already there: no transfer
        assert rc == 0 and not any(m == "GET" for m, _, _ in hub.requests[n:])
    assert _folder_bytes(models / "encoders" / "dinov2-small") == hub_files["facebook/dinov2-small"]
    enc = encoders.get_encoder("dinov2", model="dinov2-small", device="cpu")
    assert enc is not None
    t5 = load_t5(resolve_model_dir("t5-base", "text_encoders"))
    assert t5.dim == 16
    rc, out, _ = _cli(capsys, "models", "list", "--json")
    listing = json.loads(out)
    state = {m["name"]: m["state"] for m in listing["models"]}
    assert state["dinov2-small"] == state["t5-base"] == "installed" and state["sao1"] == "missing"
    missing = {m["for"]: m["missing"] for m in listing["missing"]}
    assert missing["V2M_EncodeFrames / curve / generate with --encoder dinov2"] == []
    assert missing["V2M_LoadModel / generate with an SAO-based checkpoint"] == []
    assert missing["init-checkpoint --from sao1"] == ["sao1"]


def test_download_resumes_a_partial_file(hub_files, tmp_path):
    from v2m_zero.model_io.download import download

    dest = tmp_path / "encoders" / "dinov2-small"
    dest.mkdir(parents=True)
    weights = hub_files["facebook/dinov2-small"]["model.safetensors"]
    half = len(weights) // 2
    (dest / "model.safetensors.part").write_bytes(weights[:half])
    seen = []
    with HubServer(hub_files) as hub:
        download("dinov2-small", root=tmp_path, endpoint=hub.endpoint, progress=lambda d, t: seen.append((d, t)))
    gets = [(p, r) for m, p, r in hub.requests if m == "GET" and p.endswith("model.safetensors")]
    assert gets == [("/facebook/dinov2-small/resolve/main/model.safetensors", f"bytes={half}-")]
    assert (dest / "model.safetensors").read_bytes() == weights and not (dest / "model.safetensors.part").exists()
    assert seen[-1][0] == seen[-1][1] == sum(len(v) for v in hub_files["facebook/dinov2-small"].values())


def test_gated_model_needs_a_token(hub_files, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("V2M_MODELS_DIR", str(tmp_path))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    with HubServer(hub_files, gated=("stabilityai/stable-audio-open-1.0",), token="hf_secret") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        rc, _, err = _cli(capsys, "models", "download", "sao1")
        assert (rc == 2 and err.count("\n") == 1 and "gated" in err and "Manual steps" in err
                and "rename model.safetensors" in err)
        assert not (tmp_path / "checkpoints").exists()  # the folder it would have made is not left behind
        rc, out, err = _cli(capsys, "models", "download", "sao1", "--token", "hf_secret")
        assert rc == 0, err
    got = tmp_path / "checkpoints" / "stable-audio-open-1.0.safetensors"
    assert got.read_bytes() == hub_files["stabilityai/stable-audio-open-1.0"]["model.safetensors"]


def test_offline_refuses_without_trying(hub_files, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("V2M_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with HubServer(hub_files) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        rc, _, err = _cli(capsys, "models", "download", "t5-base")
    assert rc == 2 and err.count("\n") == 1 and "HF_HUB_OFFLINE is set" in err and "Manual steps" in err
    assert hub.requests == []


def test_no_network_fails_at_once_with_one_line(tmp_path, monkeypatch, capsys):
    """A host that drops every connection: one attempt, no back-off sleeps, exit 2, one line with the manual steps."""
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def serve():  # bounded: stops with the test (or after 30 s)
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def no_sleep(seconds):
        raise AssertionError(f"retried with a {seconds} s back-off")

    monkeypatch.setattr(time, "sleep", no_sleep)
    monkeypatch.setenv("V2M_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
    try:
        rc, _, err = _cli(capsys, "models", "download", "dinov2-large")
    finally:
        stop.set()
        thread.join(2)
        listener.close()
    assert rc == 2 and err.count("\n") == 1 and err.startswith("v2m-zero models: error: dinov2-large: cannot reach")
    assert "Manual steps" in err and "hf download facebook/dinov2-large" in err
    assert len(accepted) == 1
    # and with nothing listening at all
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    rc, _, err = _cli(capsys, "models", "download", "musicfm")
    assert rc == 2 and err.count("\n") == 1 and "cannot reach" in err


def test_models_folder_defaults_per_user_and_names_are_checked(monkeypatch, capsys, tmp_path):
    from v2m_zero.model_io.download import MODELS, target_dir
    from v2m_zero.model_io.folders import default_models_root

    monkeypatch.delenv("V2M_MODELS_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    rc, out, err = _cli(capsys, "models", "list")
    default = default_models_root()
    assert rc == 0 and f"models folder: {default} (the per-user default" in out, (out, err)
    assert default.startswith(str(tmp_path)) and "v2m-zero" in default
    assert str(target_dir(MODELS["t5-base"])).startswith(default)
    assert not (tmp_path / "data").exists() and not (tmp_path / "home").exists()  # listing creates nothing
    monkeypatch.setenv("V2M_MODELS_DIR", str(tmp_path / "env"))  # the variable and --dir still override
    rc, out, _ = _cli(capsys, "models", "list")
    assert rc == 0 and f"models folder: {tmp_path / 'env'} ($V2M_MODELS_DIR)" in out
    assert str(target_dir(MODELS["t5-base"])).startswith(str(tmp_path / "env"))
    rc, out, _ = _cli(capsys, "models", "list", "--dir", str(tmp_path / "d"))
    assert rc == 0 and f"models folder: {tmp_path / 'd'}" in out
    rc, _, err = _cli(capsys, "models", "download", "gpt-5")
    assert rc == 2 and "invalid choice" in err and err.count("\n") == 1
    rc, _, err = _cli(capsys, "models", "list", "--comfyui", tmp_path)
    assert rc == 2 and "no models/ folder" in err
    (tmp_path / "models").mkdir()
    rc, out, _ = _cli(capsys, "models", "list", "--comfyui", tmp_path)
    assert rc == 0 and str(tmp_path / "models" / "checkpoints") not in out  # missing models show their repository
    from v2m_zero.core.commands.models import KNOWN
    from v2m_zero.model_io.download import MODELS

    assert set(KNOWN) == set(MODELS)
