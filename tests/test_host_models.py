"""Models ComfyUI users already have, in exactly ComfyUI's layouts, through the real loading paths:
Stable Audio Open 1.0 in models/checkpoints/ (a base: curve channel added on load) and the
single-file T5-base in models/text_encoders/ (tokenizer from the host's comfy/text_encoders)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from v2m_zero.core.model.dit import V2MDiT, make_model_config
from v2m_zero.core.model.oobleck import OobleckVAE
from tiny_models import T5_WORDS, t5_tokenizer

# A SAO-1.0-layout file at toy sizes: the DiT (64 wide, 1 head of 64, as SAO's 64-wide heads),
# the seconds conditioners and an Oobleck VAE with 4 latent channels.
VAE = {"channels": 8, "c_mults": [1, 2], "strides": [2, 2], "latent_dim": 4, "audio_channels": 2}
T5_DIM = 64
#: how Load V2M Model lists a file in ComfyUI's models/checkpoints/ (a subfolder, as ComfyUI shows it)
SAO_CHOICE = "checkpoints/" + os.path.join("audio", "stable_audio_open_1.0.safetensors")


def _sao_file(path, seed=0) -> V2MDiT:
    torch.manual_seed(seed)
    base = V2MDiT(make_model_config(io_channels=4, embed_dim=64, depth=2, num_heads=1, cond_token_dim=T5_DIM,
                                    global_cond_dim=2 * T5_DIM))
    vae = OobleckVAE.from_config(VAE)
    sd = dict(base.state_dict())
    sd.update({f"pretransform.model.{k}": v for k, v in vae.state_dict().items()})
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata={"format": "pt"})
    return base


def _t5_file(path, d_model=T5_DIM):
    """google-t5/t5-base's model.safetensors layout (encoder + decoder + shared), renamed t5_base.safetensors."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(1)
    cfg = T5Config(vocab_size=len(T5_WORDS) + 3, d_model=d_model, d_kv=8, d_ff=32, num_layers=2, num_decoder_layers=2,
                   num_heads=2, relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
                   decoder_start_token_id=0)
    model = T5ForConditionalGeneration(cfg).eval()
    sd = {k: v.contiguous() for k, v in model.state_dict().items()
          if k != "lm_head.weight" or not cfg.tie_word_embeddings}
    save_file({k: v.clone() for k, v in sd.items()}, str(path), metadata={"format": "pt"})
    return model


@pytest.fixture
def comfy_models(host):
    import folder_paths

    ckpt_dir = os.path.join(folder_paths.models_dir, "checkpoints")
    te_dir = os.path.join(folder_paths.models_dir, "text_encoders")
    os.makedirs(os.path.join(ckpt_dir, "audio"), exist_ok=True)
    os.makedirs(te_dir, exist_ok=True)
    base = _sao_file(os.path.join(ckpt_dir, "audio", "stable_audio_open_1.0.safetensors"))
    t5 = _t5_file(os.path.join(te_dir, "t5_base.safetensors"))
    # other things people keep there must not be listed
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 2)},
              os.path.join(ckpt_dir, "sd15.safetensors"))
    save_file({"text_model.encoder.layers.0.mlp.fc1.weight": torch.zeros(2, 2)},
              os.path.join(te_dir, "clip_l.safetensors"))
    host.ship_t5_tokenizer(str(host), t5_tokenizer())
    return base, t5


def test_load_model_lists_sao_and_t5_and_the_demo(comfy_models):
    from v2m_zero.nodes import generate

    schema = generate.LoadModel.define_schema()
    opts = {i.id: i for i in schema.inputs}
    ckpts = opts["checkpoint"].options
    assert ckpts[0] == generate.DEMO_CHECKPOINT and opts["checkpoint"].default == generate.DEMO_CHECKPOINT
    assert "demo" in generate.DEMO_CHECKPOINT and "DEMO" in opts["checkpoint"].tooltip
    assert SAO_CHOICE in ckpts
    assert not any("sd15" in c for c in ckpts)
    assert ("text_encoders/t5_base.safetensors" in opts["text_encoder"].options
            and not any("clip_l" in o for o in opts["text_encoder"].options))


def test_sao_base_loads_widened_in_memory_with_a_note(comfy_models, host):
    import folder_paths

    from v2m_zero.nodes import generate

    base, _ = comfy_models
    before = sorted(os.walk(folder_paths.models_dir))
    name = SAO_CHOICE
    out = generate.LoadModel.execute(checkpoint=name, text_encoder="text_encoders/t5_base.safetensors",
                                     codec="from checkpoint", precision="fp32", offload=True)
    gen = out.args[0]
    assert sorted(os.walk(folder_paths.models_dir)) == before  # nothing written into the user's folders
    assert gen.dit.curve_channels == 1 and gen.dit.objective == "v" and gen.latent_rate == pytest.approx(44100 / 2048)
    assert gen.codec.latent_channels == 4 and gen.text is not None and gen.text.dim == T5_DIM
    assert ("fine-tuned" in gen.meta["note"]
            and any(k == "text" and "zero weights" in v for k, v in host.STATE["previews"]))
    # the widened model equals the base on any curve: zero weights
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 12, generator=g)
    kw = dict(cond_tokens=torch.randn(1, 5, T5_DIM, generator=g), seconds_start=0.0, seconds_total=3.0)
    with torch.no_grad():
        torch.testing.assert_close(gen.dit(x, torch.tensor([0.5]), curve=torch.randn(1, 12), **kw),
                                   base(x, torch.tensor([0.5]), **kw), atol=0, rtol=0)


def test_single_file_t5_matches_the_same_weights_as_a_folder(comfy_models, tmp_path):
    import folder_paths

    from v2m_zero.model_io.text import load_t5

    _, t5 = comfy_models
    folder = tmp_path / "t5-folder"
    t5.get_encoder()  # the encoder half of the same weights, as a transformers folder
    from transformers import T5EncoderModel

    enc = T5EncoderModel(t5.config)
    enc.load_state_dict({k: v for k, v in t5.state_dict().items() if k.startswith(("shared.", "encoder."))},
                        strict=False)
    enc.save_pretrained(folder)
    t5_tokenizer().save_pretrained(folder)
    import comfy

    tok_dir = os.path.join(comfy.__path__[0], "text_encoders", "t5_tokenizer")
    one = load_t5(os.path.join(folder_paths.models_dir, "text_encoders", "t5_base.safetensors"), tokenizer=tok_dir)
    two = load_t5(folder)
    a, ma = one.encode(["a calm piano piece with soft drums"])
    b, mb = two.encode(["a calm piano piece with soft drums"])
    assert torch.equal(ma, mb) and ma.sum() == 8
    torch.testing.assert_close(a, b)


def test_single_file_t5_without_a_tokenizer_says_what_to_do(comfy_models, tmp_path):
    import folder_paths

    from v2m_zero.core.errors import ModelError
    from v2m_zero.model_io.text import load_t5

    with pytest.raises(ModelError, match="tokenizer"):
        load_t5(os.path.join(folder_paths.models_dir, "text_encoders", "t5_base.safetensors"), tokenizer=tmp_path)


def test_sao_base_generates_through_the_sampler(comfy_models, host):
    from v2m_zero.core.timing.curves import Curve
    from v2m_zero.nodes import generate

    gen = generate.LoadModel.execute(checkpoint=SAO_CHOICE,
                                     text_encoder="text_encoders/t5_base.safetensors", codec="from checkpoint",
                                     precision="fp32", offload=True).args[0]
    raw = Curve(values=np.zeros(24, np.float32), times=np.arange(24) / 24, duration=1.0,
                spec={"encoder": "dinov2", "encoder_options": {"model": "dinov2-large"}})
    host.STATE["previews"].clear()
    out = generate.Sampler.execute(model=gen, curve=raw, prompt="calm piano", negative_prompt="", steps=2, cfg=2.0,
                                   seed=0, uncond="both")
    text = out.ui["text"][0]
    assert "fine-tuned" in text and "frame encoder" not in text  # dinov2-large: what SAO-based checkpoints expect
    audio = generate.DecodeLatents.execute(model=gen, latent=out.args[0]).args[0]
    assert audio["waveform"].shape == (1, 2, 44100) and audio["sample_rate"] == 44100
