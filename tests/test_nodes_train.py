"""V2M_Train on the fake host: dataset from the input folder, resumable, checkpoint usable by the generator nodes."""

import os

import numpy as np
import pytest

from v2m_zero.core.eval import synth
from v2m_zero.core.timing import media
from v2m_zero.core.errors import V2MError

CONFIG = """
[model.from_config]
embed_dim = 64
depth = 1
num_heads = 2
cond_token_dim = 32
[text]
encoder = "none"
[train]
batch_size = 2
[checkpoint]
every = 2
[validation]
every = 0
[log]
tensorboard = false
"""


@pytest.fixture
def dataset(host):
    import folder_paths

    root = os.path.join(folder_paths.get_input_directory(), "music")
    os.makedirs(root)
    rng = np.random.default_rng(0)
    for i in range(3):
        onsets = np.sort(rng.uniform(0, 4, 6))
        media.write_audio(os.path.join(root, f"m{i}.wav"), synth.click_track(onsets, 4.0, sample_rate=4000, channels=1),
                          4000, layout="mono")
        open(os.path.join(root, f"m{i}.txt"), "w").write("sparse percussion")
    return "music"


def _kw(**over):
    kw = dict(dataset="music", run_name="toy", init_checkpoint="none", codec="patch:64:1:4000", music_encoder="logmel",
              clip_seconds=2.0, smoothing_seconds=0.2, max_steps=4, config=CONFIG)
    kw.update(over)
    return kw


def test_train_node_writes_checkpoint_usable_by_generator(host, dataset):
    import folder_paths

    from v2m_zero.nodes import generate, train

    import torch

    assert "music" in train.Train.define_schema().inputs[0].options
    with torch.inference_mode():  # as ComfyUI runs every node
        path = train.Train.execute(**_kw()).args[0]
    assert (path == os.path.join(folder_paths.models_dir, "v2m", "checkpoints", "toy.safetensors")
            and os.path.exists(path))
    assert host.STATE["progress"][-1] == (4, 4)
    model = generate.LoadModel.execute(checkpoint="toy.safetensors", text_encoder="none", codec="from checkpoint",
                                       precision="fp32", offload=False).args[0]
    assert model.curve_spec.smoothing_seconds == pytest.approx(0.2)
    assert model.sample_rate == 4000


def test_train_node_interrupt_then_resume(host, dataset, monkeypatch):
    from v2m_zero.nodes import train

    original = host.ProgressBar.update_absolute

    def press_stop_at_step_2(self, value, total=None, preview=None):
        original(self, value, total, preview)
        if value == 2:
            host.STATE["interrupt"] = True  # the user presses Cancel during step 3

    monkeypatch.setattr(host.ProgressBar, "update_absolute", press_stop_at_step_2)
    with pytest.raises(host.InterruptProcessingException):
        train.Train.execute(**_kw(run_name="resumable", max_steps=6))
    monkeypatch.setattr(host.ProgressBar, "update_absolute", original)
    assert host.STATE["progress"][-1][0] == 2
    host.STATE["progress"].clear()
    train.Train.execute(**_kw(run_name="resumable", max_steps=6))
    steps = [p[0] for p in host.STATE["progress"]]
    assert steps[0] > 1 and steps[-1] == 6  # continued from the saved state, not from step 1


def test_train_node_rejects_bad_inputs(host, dataset):
    from v2m_zero.nodes import train

    with pytest.raises(V2MError, match="inside ComfyUI's input folder"):
        train.Train.execute(**_kw(dataset="../../etc"))
    with pytest.raises(V2MError, match="run name"):
        train.Train.execute(**_kw(run_name="../x"))
    with pytest.raises(V2MError, match="TOML"):
        train.Train.execute(**_kw(config="[train\nbatch_size = "))
