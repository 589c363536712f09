"""Music without captions: prepare generates one from tags and measured properties, marked in the manifest."""

import json

import av
import numpy as np
from v2m_zero.core.eval import synth
from v2m_zero.core.timing import media
from v2m_zero.core.train.dataset_files import generated_caption, measured_properties
from v2m_zero.core.train.prepare import prepare_dataset

SR = 16000


def _flac_with_tags(path, wave, tags):
    with av.open(str(path), "w") as c:
        for k, v in tags.items():
            c.metadata[k] = v
        s = c.add_stream("flac", rate=SR, layout="mono")
        frame = av.AudioFrame.from_ndarray((wave * 32767).astype(np.int16), format="s16", layout="mono")
        frame.sample_rate = SR
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def _clips(cache):
    return {c["file"]: c for c in json.loads((cache / "manifest.json").read_text())["clips"]}


def test_prepare_generates_captions_for_files_without_one(tmp_path):
    data = tmp_path / "music"
    data.mkdir()
    beats = np.arange(0.25, 12, 0.5)  # 120 BPM
    _flac_with_tags(data / "tagged.flac", synth.click_track(beats, 12.0, sample_rate=SR, channels=1),
                    {"title": "Night Drive", "artist": "The Testers", "genre": "Synthwave"})
    media.write_audio(str(data / "bare.wav"), synth.click_track(beats, 12.0, sample_rate=SR, channels=1), SR,
                      layout="mono")
    media.write_audio(str(data / "side.wav"), synth.click_track(beats, 12.0, sample_rate=SR, channels=1), SR,
                      layout="mono")
    (data / "side.txt").write_text("a calm piano piece")
    cache = tmp_path / "cache"
    res = prepare_dataset(data, cache, codec="patch:32:1:16000", clip_seconds=4.0, smoothing_seconds=0.2, device="cpu")
    assert res.generated_captions == 2 and res.uncaptioned == 2
    assert any("captions generated from their tags" in m for m in res.messages)
    clips = _clips(cache)
    tagged, bare, side = clips["tagged.flac"], clips["bare.wav"], clips["side.wav"]
    assert side["caption"] == "a calm piano piece" and side["caption_source"] == "sidecar"
    assert tagged["caption_source"] == bare["caption_source"] == "generated"
    assert tagged["caption"].startswith('synthwave, "Night Drive" by The Testers, ')
    bpm = int(bare["caption"].split(" BPM")[0].split(", ")[-1])
    assert 110 <= bpm <= 130, bare["caption"]
    assert " major" in bare["caption"] or " minor" in bare["caption"]
    # a re-run keeps the generated captions without encoding again; a caption written later wins
    (data / "bare.txt").write_text("drums only")
    again = prepare_dataset(data, cache, codec="patch:32:1:16000", clip_seconds=4.0, smoothing_seconds=0.2,
                            device="cpu")
    assert again.new_clips == 0 and again.generated_captions == 1
    clips = _clips(cache)
    assert clips["bare.wav"]["caption"] == "drums only" and clips["bare.wav"]["caption_source"] == "sidecar"
    assert clips["tagged.flac"]["caption"] == tagged["caption"]
    off = prepare_dataset(data, tmp_path / "plain", codec="patch:32:1:16000", clip_seconds=4.0, smoothing_seconds=0.2,
                          device="cpu", generate_captions=False)
    assert off.generated_captions == 0 and _clips(tmp_path / "plain")["tagged.flac"]["caption"] == ""


def test_measured_properties_and_caption_words():
    t = np.arange(SR * 6) / SR
    a_minor = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 261.63, 329.63)).astype(np.float32) * 0.2
    props = measured_properties(a_minor[None], SR)
    assert props["key"] == "A minor" and props["brightness_hz"] < 1200 and -20 < props["loudness_dbfs"] < -5
    assert generated_caption({}, props).startswith("in A minor, dark")
    assert measured_properties(np.zeros((1, SR * 2), np.float32), SR) == {"loudness_dbfs": -180.0}
    assert generated_caption({}, {}) == "music"
