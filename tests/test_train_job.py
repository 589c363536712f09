"""core/train/job.py: one training job for the node and the CLI; every config layer merged through merge_config."""

import os
from types import SimpleNamespace

import pytest

from v2m_zero.core.errors import V2MError
from v2m_zero.core.train import job
from v2m_zero.core.train.config import DEFAULT_CONFIG


def test_layers_merge_through_merge_config_and_unknown_keys_are_refused_naming_the_layer():
    cfg = job.training_config(("the sao1 preset", job.preset_layer("sao1", "/m/v2m_sao1.safetensors")),
                              ("the config", {"optim": {"lr": 3e-5}}))
    assert cfg["optim"]["lr"] == 3e-5 and cfg["lora"]["enabled"] is True and cfg["base"] == "sao1"
    assert set(cfg) == set(DEFAULT_CONFIG)  # the defaults underneath every layer
    with pytest.raises(V2MError, match=r"^the config: unknown training config key 'optim\.lrr'; known: ") as err:
        job.training_config(("the sao1 preset", job.preset_layer("sao1", "/m/x.safetensors")),
                            ("the config", {"optim": {"lrr": 1}}))
    assert "\n" not in str(err.value)
    with pytest.raises(V2MError, match=r"^the toy preset: unknown training config key 'colour'"):
        job.training_config(("the toy preset", {**job.preset_layer("toy"), "colour": "red"}))


def test_changed_keys_are_what_the_user_changed():
    default = {"optim": {"lr": 1e-4, "warmup_steps": 100}, "train": {"batch_size": 4}}
    user = {"optim": {"lr": 1e-4, "warmup_steps": 10}, "train": {"batch_size": 4}, "log": {"every": 1}}
    assert job.changed_keys(user, default) == {"optim": {"warmup_steps": 10}, "log": {"every": 1}}


def test_a_job_is_refused_before_any_work(tmp_path, monkeypatch):
    import v2m_zero.core.train.prepare as prepare

    monkeypatch.setattr(prepare, "prepare_dataset", lambda *a, **k: pytest.fail("prepared before the checks"))
    music = tmp_path / "music"
    music.mkdir()
    cfg = job.training_config(("the config",
                               {"data": {"cache": str(tmp_path / "run" / "cache")}, "run_dir": str(tmp_path / "run"),
                                              "model": {"from_config": {"embed_dim": 64}}, "train": {"batch_size": 0}}))
    with pytest.raises(V2MError, match="train.batch_size"):
        job.run(job.TrainJob(cfg, data_dir=str(music), prepare={}))
    cfg = job.training_config(("the config", {"data": {"cache": str(music)}, "run_dir": str(music),
                                              "model": {"from_config": {"embed_dim": 64}}}))
    with pytest.raises(V2MError, match="is the music folder"):
        job.run(job.TrainJob(cfg, inputs=[(str(music), "music folder")], data_dir=str(music), prepare={}))
    assert not os.path.exists(tmp_path / "run")


@pytest.fixture
def reached(monkeypatch):
    seen = []

    def fake_run(train_job, **kw):
        seen.append(train_job)
        return SimpleNamespace(stopped=False, step=0, last_loss=None, checkpoint_path=None, state_dir=None)

    monkeypatch.setattr(job, "run", fake_run)
    return seen


def test_the_node_goes_through_the_job(host, reached):
    import folder_paths

    from v2m_zero.nodes import train

    os.makedirs(os.path.join(folder_paths.get_input_directory(), "music"))
    kw = dict(dataset="music", run_name="r", init_checkpoint="none", codec="patch:64:1:4000", music_encoder="logmel",
              clip_seconds=2.0, smoothing_seconds=0.2, max_steps=4, config=train.DEFAULT_CONFIG_TOML)
    train.Train.execute(**kw)
    (j,) = reached
    assert j.config["train"]["max_steps"] == 4 and j.config["train"]["device"] == "cpu"
    assert j.config["model"]["from_config"]["embed_dim"] == 256 and j.prepare["codec"] == "patch:64:1:4000"
    assert j.dest == os.path.join(folder_paths.models_dir, "v2m", "checkpoints", "r.safetensors")
    with pytest.raises(V2MError, match=r"^the config: unknown training config key 'optim\.lrr'"):
        train.Train.execute(**{**kw, "config": train.DEFAULT_CONFIG_TOML.replace("lr = 1e-4", "lrr = 1e-4")})
    assert len(reached) == 1  # refused before the job


def test_the_cli_goes_through_the_job(tmp_path, reached):
    from v2m_zero.core import cli

    cache = tmp_path / "cache"
    cache.mkdir()
    (tmp_path / "t.toml").write_text('run_dir = "run"\n[data]\ncache = "cache"\n[model.from_config]\nembed_dim = 64\n')
    assert cli.main(["train", str(tmp_path / "t.toml"), "--max-steps", "3"]) == 0
    (j,) = reached
    assert j.config["train"]["max_steps"] == 3 and j.config["run_dir"] == str(tmp_path / "run") and j.dest is None
