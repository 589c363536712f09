"""The host bridge (nodes/host): output paths are planned without touching folders; placement of
an offloaded model on ComfyUI's device and back."""

import gc
import os

import pytest
import torch

from tiny_models import tiny_v2m_checkpoint


@pytest.fixture
def no_folder_changes(monkeypatch):
    """Fail on any folder made or removed through ``os``."""
    calls = []
    for name in ("mkdir", "makedirs", "rmdir", "removedirs"):
        monkeypatch.setattr(os, name, lambda *a, _n=name, **k: calls.append((_n, a)))
    return calls


def test_output_path_creates_and_removes_no_folders(host, no_folder_changes):
    import folder_paths

    from v2m_zero.nodes.host import files

    out = folder_paths.get_output_directory()
    before = sorted(os.listdir(out)) if os.path.isdir(out) else None
    path, file, subfolder = files.output_path("video/new/V2M", "mp4")
    assert path == os.path.join(out, "video", "new", "V2M_00001_.mp4") and file == "V2M_00001_.mp4"
    assert subfolder == os.path.join("video", "new")
    assert no_folder_changes == [] and not os.path.exists(os.path.join(out, "video"))
    assert (sorted(os.listdir(out)) if os.path.isdir(out) else None) == before


def test_output_path_counts_on_from_comfyuis_counter(host):
    import folder_paths

    from v2m_zero.nodes.host import files

    folder = os.path.join(folder_paths.get_output_directory(), "video")
    os.makedirs(folder)
    open(os.path.join(folder, "V2M_00001_.mp4"), "wb").close()
    assert files.output_path("video/V2M", "mp4")[1] == "V2M_00002_.mp4"
    path, _, subfolder = files.output_path("v_%year%/V2M", "mp4")  # ComfyUI's filename variables, expanded
    assert "%" not in path and subfolder.startswith("v_2") and not os.path.exists(os.path.dirname(path))


def test_mux_into_a_new_folder_makes_it_once_when_writing(host, tmp_path, monkeypatch):
    import folder_paths

    from v2m_zero.core.eval import synth
    from v2m_zero.nodes import audio

    clip = synth.make_cut_clip(str(tmp_path / "c.mp4"), cut_times=[0.5], duration=1.0, fps=24, size=(32, 18))
    from comfy_api.latest import InputImpl

    made, removed = [], []
    real_mkdir, real_rmdir = os.mkdir, os.rmdir
    monkeypatch.setattr(os, "mkdir", lambda p, *a, **k: (made.append(p), real_mkdir(p, *a, **k))[1])
    monkeypatch.setattr(os, "rmdir", lambda p, *a, **k: (removed.append(p), real_rmdir(p, *a, **k))[1])
    wave = torch.zeros(1, 2, 44100)
    audio.MuxAudio.execute(video=InputImpl.VideoFromFile(clip.path), audio={"waveform": wave, "sample_rate": 44100},
                           save_mp4=True, filename_prefix="fresh/deeper/V2M")
    target = os.path.join(folder_paths.get_output_directory(), "fresh", "deeper")
    assert os.path.isfile(os.path.join(target, "V2M_00001_.mp4"))
    assert [p for p in made if p.startswith(folder_paths.get_output_directory())] == [os.path.dirname(target), target]
    assert removed == []


class _Recorder:
    """Anything with ``.to(device)``, as ``placed`` needs."""

    def __init__(self):
        self.moves = []

    def to(self, device):
        self.moves.append(str(device))
        return self


def test_placement_moves_an_offloaded_model_to_the_device_and_back(host, monkeypatch):
    import comfy.model_management as mm

    from v2m_zero.nodes.host import runtime

    freed = []
    monkeypatch.setattr(mm, "get_torch_device", lambda: torch.device("cuda", 0), raising=False)
    monkeypatch.setattr(mm, "free_memory", lambda need, device, **k: freed.append((need, str(device))), raising=False)
    model = _Recorder()
    runtime.set_offload(model, True)
    with runtime.placed(model) as got:
        assert got is model and model.moves == ["cuda:0"]
    assert model.moves == ["cuda:0", "cpu"] and freed == [(0, "cuda:0")]  # ComfyUI asked to make room first
    with pytest.raises(RuntimeError), runtime.placed(model):
        raise RuntimeError("sampling failed")
    assert model.moves[-1] == "cpu"  # back on the CPU after a failure too

    kept = _Recorder()  # loaded on the device (offload off): used where it is
    runtime.set_offload(kept, False)
    with runtime.placed(kept):
        pass
    assert kept.moves == [] and not runtime.is_offloaded(kept)


def test_offload_choice_lives_beside_the_model_not_in_its_metadata(host, tmp_path):
    import folder_paths

    from v2m_zero.nodes import generate
    from v2m_zero.nodes.host import runtime

    ckdir = os.path.join(folder_paths.models_dir, "v2m", "checkpoints")
    os.makedirs(ckdir)
    tiny_v2m_checkpoint(os.path.join(ckdir, "tiny-v2m.safetensors"))
    kw = dict(checkpoint="tiny-v2m.safetensors", text_encoder="none", codec="from checkpoint", precision="fp32")
    off = generate.LoadModel.execute(offload=True, **kw).args[0]
    on = generate.LoadModel.execute(offload=False, **kw).args[0]
    assert runtime.is_offloaded(off) and not runtime.is_offloaded(on)
    assert not any(k.startswith("_") for k in off.meta)  # the checkpoint's metadata is the checkpoint's
    with runtime.placed(off) as gen:
        assert next(gen.dit.parameters()).device.type == "cpu"  # the fake host's device is the CPU
    assert off.device.type == "cpu"
    n = len(runtime._OFFLOADED)
    del off, gen
    gc.collect()
    assert len(runtime._OFFLOADED) == n - 1  # forgotten with the model


def test_one_extension_table_and_one_same_file_check(tmp_path):
    from v2m_zero.core import outputs
    from v2m_zero.core.commands import _common
    from v2m_zero.core.timing.media import write

    assert _common.VIDEO_OUT is outputs.VIDEO_OUT and _common.AUDIO_OUT is outputs.AUDIO_OUT
    assert set(outputs.VIDEO_OUT) | set(outputs.AUDIO_OUT) == set(outputs.CONTAINERS)
    assert all(write._CONTAINER_FORMATS[e] == outputs.CONTAINERS[e] for e in outputs.VIDEO_OUT)
    a = tmp_path / "a.wav"
    a.write_bytes(b"x")
    os.link(a, tmp_path / "hard.wav")
    os.symlink(a, tmp_path / "soft.wav")
    assert outputs.same_file(a, tmp_path / "hard.wav") and outputs.same_file(str(tmp_path / "soft.wav"), a)
    assert outputs.same_file(a, tmp_path / "." / "a.wav") and not outputs.same_file(a, tmp_path / "b.wav")
    assert write._same_file(str(tmp_path / "hard.wav"), str(a)) and not write._same_file(object(), str(a))
