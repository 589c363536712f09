"""DINOv2's image processor as batched tensor operations: equal to Hugging Face's, frame for frame and
curve for curve; the decode-ahead thread; the planar downscale."""

import numpy as np
import pytest
import torch

from v2m_zero.core.eval import synth
from v2m_zero.core.timing import encoders, media
from v2m_zero.core.timing.preprocess import ImageTransform, pil_resize


def natural_frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour structure plus noise: every resize filter tap and rounding case gets exercised."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([127 + 100 * np.sin(x / 37.0 + c) * np.cos(y / 23.0 - c) for c in range(3)], -1)
    return np.clip(img + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)


def dinov2_processor():
    from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil

    # facebook/dinov2-*'s preprocessor_config.json
    return BitImageProcessorPil(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=3,
                                image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])


@pytest.mark.parametrize("resample", [1, 2, 3, 4, 5])  # Pillow's LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING
@pytest.mark.parametrize("size", [(37, 61), (90, 160), (13, 300)], ids=str)  # down, up, mixed
def test_pil_resize_is_pillow_bit_for_bit(resample, size):
    from PIL import Image

    img = natural_frame(72, 128, seed=resample)
    h, w = size
    want = np.asarray(Image.fromarray(img).resize((w, h), resample))
    got = pil_resize(torch.from_numpy(img).permute(2, 0, 1).contiguous(), h, w, resample).permute(1, 2, 0).numpy()
    assert got.dtype == np.uint8 and got.shape == want.shape
    assert np.array_equal(got, want)


def test_pil_resize_1080p_to_dinov2_size_is_exact():
    from PIL import Image

    img = natural_frame(1080, 1920)
    want = np.asarray(Image.fromarray(img).resize((455, 256), 3))
    got = pil_resize(torch.from_numpy(img).permute(2, 0, 1).contiguous(), 256, 455, 3).permute(1, 2, 0).numpy()
    assert np.array_equal(got, want)
    with pytest.raises(TypeError):
        pil_resize(torch.zeros(3, 4, 4), 2, 2)


@pytest.mark.parametrize("shape", [(1080, 1920), (1920, 1080), (256, 455), (240, 320)], ids=str)
def test_transform_matches_hf_processor_on_real_sized_frames(shape):
    """1080p landscape and portrait (resize), frames the decoder already scaled (crop only), and a
    small video (upscale): within 1e-3 of the processor (measured: ~1e-6, float rounding)."""
    proc = dinov2_processor()
    tr = ImageTransform.from_processor(proc)
    assert tr == ImageTransform(256, None, 3, (224, 224), 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    frames = np.stack([natural_frame(*shape, seed=s) for s in range(2)])
    want = proc(images=list(frames), return_tensors="pt")["pixel_values"]
    got = tr(torch.from_numpy(frames))
    assert got.shape == want.shape == (2, 3, 224, 224) and got.dtype == torch.float32
    assert (got - want).abs().max().item() <= 1e-3
    assert (got - want).abs().max().item() <= 1e-5  # in fact exact up to float rounding
    # the crop taken before the copy to a device gives the same pixels
    if not tr.needs_resize(*shape):
        x, cropped = tr.crop_first(torch.from_numpy(frames))
        assert cropped and x.shape[1:3] == (224, 224) and torch.equal(tr(x, cropped=True), got)


def test_transform_declines_what_it_does_not_reproduce():
    from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil

    assert ImageTransform.from_processor(BitImageProcessorPil(size={"shortest_edge": 256, "longest_edge": 400})) is None
    assert ImageTransform.from_processor(BitImageProcessorPil(do_pad=True)) is None
    assert ImageTransform.from_processor(BitImageProcessorPil(resample=0)) is None  # NEAREST: not a separable filter
    fixed = ImageTransform.from_processor(BitImageProcessorPil(size={"height": 50, "width": 70}, do_center_crop=False))
    assert fixed.resized(1080, 1920) == (50, 70) and fixed.crop is None


def _dinov2_folder(tmp_path, proc=None):
    from transformers import Dinov2Config, Dinov2Model

    folder = tmp_path / "dinov2-real-processor"
    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             patch_size=14, image_size=224)).save_pretrained(folder)
    (proc or dinov2_processor()).save_pretrained(folder)
    return str(folder)


def test_dinov2_encoder_features_and_curve_equal_the_processor_path(tmp_path):
    """The batched path gives the processor path's features and the same event curve, on 1080p frames and on a video."""
    enc = encoders.get_encoder("dinov2", model=_dinov2_folder(tmp_path), device="cpu", batch_size=3)
    assert enc.transform is not None and enc.prefetch and enc.decode_size == 256
    frames = np.stack([natural_frame(1080, 1920, seed=s) for s in range(4)])
    fast = enc.encode(frames)
    enc.transform = None  # the Hugging Face processor, frame by frame
    slow = enc.encode(frames)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-5)

    clip = synth.make_cut_clip(str(tmp_path / "c.mp4"), cut_times=[0.5, 1.25], duration=2.0, fps=12, size=(480, 270))
    ref = encoders.encode_video_curve(clip.path, enc)
    enc.transform = ImageTransform.from_processor(enc.processor)
    got = encoders.encode_video_curve(clip.path, enc)
    np.testing.assert_allclose(got.times, ref.times)
    np.testing.assert_allclose(got.values, ref.values, rtol=0, atol=1e-4)
    assert len(got) == 23 and got.duration == ref.duration


def test_dinov2_keeps_the_processor_it_cannot_reproduce(tmp_path):
    from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil

    proc = BitImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 80}, crop_size={"height": 56, "width": 56})
    enc = encoders.get_encoder("dinov2", model=_dinov2_folder(tmp_path, proc), device="cpu")
    assert enc.transform is None
    frames = np.stack([natural_frame(72, 128)])
    assert enc.encode(frames).shape == (1, 32)


# --------------------------------------------------------------------------------------------
# decode ahead


def test_prefetch_yields_everything_in_order_and_closes_the_source():
    closed = []

    def source():
        try:
            yield from range(10)
        finally:
            closed.append(True)

    assert list(media.prefetch(source(), 2)) == list(range(10)) and closed == [True]
    assert list(media.prefetch(iter(range(3)), 0)) == [0, 1, 2]

    it = media.prefetch(source(), 1)  # the consumer stops early: the producer stops and closes
    assert next(it) == 0
    it.close()
    assert closed == [True, True]


def test_prefetch_raises_the_producers_error_in_the_consumer():
    def broken():
        yield 1
        raise ValueError("corrupt packet")

    it = media.prefetch(broken(), 2)
    assert next(it) == 1
    with pytest.raises(ValueError, match="corrupt packet"):
        next(it)


def test_prefetched_video_curve_equals_the_plain_one(tmp_path):
    clip = synth.make_cut_clip(str(tmp_path / "c.mp4"), cut_times=[1.0], duration=2.0, fps=24, size=(160, 90))
    enc = encoders.get_encoder("pixels")
    ref = encoders.encode_video_curve(clip.path, enc, batch=5)
    enc.prefetch = 2
    got = encoders.encode_video_curve(clip.path, enc, batch=5)
    np.testing.assert_array_equal(got.values, ref.values)
    np.testing.assert_array_equal(got.times, ref.times)


def test_scaled_decode_goes_through_planar_rgb(tmp_path):
    """Scaled frames come out of swscale as planar RGB (cheaper): bit for bit the packed-RGB pixels
    at odd widths (1080p → 455×256); at even widths swscale's packed output takes a SIMD converter
    that rounds differently (a few levels), planar RGB keeps the one converter at every width."""
    import unittest.mock as mock

    clip = synth.make_cut_clip(tmp_path / "c.mp4", cut_times=[0.05], duration=0.1, fps=24, size=(640, 384))
    assert media.frames._scaled_format() == "gbrp"
    for size, width in ((200, 333), (32, 53), (96, 160)):  # bilinear, the two-stage path, an even width
        got = np.concatenate([b.frames for b in media.iter_frames(clip.path, size=size)])
        with mock.patch.object(media.frames, "_scaled_format", lambda: "rgb24"):
            packed = np.concatenate([b.frames for b in media.iter_frames(clip.path, size=size)])
        assert got.shape == packed.shape == (2, size, width, 3)
        diff = np.abs(got.astype(int) - packed)
        if width % 2:
            assert diff.max() == 0, size
        else:
            assert diff.max() <= 6 and diff.mean() < 2.5, (diff.max(), diff.mean())
    full = next(iter(media.iter_frames(clip.path, size=None))).frames[0].astype(float)  # unscaled: packed rgb24
    small = next(iter(media.iter_frames(clip.path, size=96))).frames[0].astype(float)
    box = full.reshape(96, 4, 160, 4, 3).mean(axis=(1, 3))
    assert np.abs(small - box).mean() < 4.0


def test_an_interrupt_stops_the_decode_ahead_thread(tmp_path):
    import threading

    clip = synth.make_cut_clip(str(tmp_path / "c.mp4"), cut_times=[1.0], duration=2.0, fps=24, size=(160, 90))
    enc = encoders.get_encoder("pixels")
    enc.prefetch = 2
    calls = []

    def interrupt():
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("cancelled in the queue")

    with pytest.raises(KeyboardInterrupt):
        encoders.encode_video_curve(clip.path, enc, batch=4, check_interrupt=interrupt)
    assert not [t for t in threading.enumerate() if t.name == "v2m-decode"]
