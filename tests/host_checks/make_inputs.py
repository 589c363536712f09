"""Inputs for the API prompts in this folder, which check a real ComfyUI by hand (not run in CI).

    python tests/host_checks/make_inputs.py <ComfyUI input folder>
    python /tmp/v2mhost/queue_all.py --url http://127.0.0.1:8191 tests/host_checks --only trim_core

trim_core / trim_ours_negative need ComfyUI 0.33+ (core Trim Video, node id "Video Slice"); core_video_364
runs on 0.3.64 too; dotdot and latent_length_big must be refused at queue time with one line.
Writes long12.mp4: 12 s, 24 fps, cuts at 2, 5 and 9 s, a stereo 48 kHz click track (clicks at 1 and 6 s).
"""

import os
import sys
import tempfile

from v2m_zero.core import examples
from v2m_zero.core.eval import synth
from v2m_zero.core.timing import media


def main(input_dir: str) -> str:
    out = os.path.join(input_dir, "long12.mp4")
    with tempfile.TemporaryDirectory() as tmp:
        silent = examples.make_cut_clip(os.path.join(tmp, "v.mp4"), cut_times=[2.0, 5.0, 9.0], duration=12.0,
                                        fps=24, size=(128, 72)).path
        media.mux_audio(silent, synth.click_track([1.0, 6.0], 12.0, sample_rate=48000), 48000, out)
    return out


if __name__ == "__main__":
    print(main(sys.argv[1]))
