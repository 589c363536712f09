"""The built wheel (not the editable install) carries the whole package: install it into a fresh
environment and run the main job from it.

The fresh environment gets only the wheel (``--no-deps``); its dependencies are borrowed from the
test environment's site-packages through a ``.pth`` line, which adds that folder to ``sys.path``
without running its ``.pth`` files, so the editable install of this checkout stays invisible.
The command runs from an empty folder, so the checkout itself is not importable either.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import venv

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_wheel_installs_and_runs_the_demo(tmp_path):
    pytest.importorskip("setuptools")
    # a clean copy of the source: an in-tree build/ folder from an earlier build must not leak into the wheel
    src = tmp_path / "src"
    shutil.copytree(ROOT, src,
                    ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                                              ".pytest_cache", "v2m_out", ".whl", ".gl"))
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist),
         str(src)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    wheels = glob.glob(str(dist / "v2m_zero-*.whl"))
    assert len(wheels) == 1, os.listdir(dist)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)  # ensurepip: offline
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    py = str(bindir / ("python.exe" if os.name == "nt" else "python"))
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(site, "_borrowed_dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-index", wheels[0]],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    probe = subprocess.run([py, "-c", "import v2m_zero, os; print(os.path.dirname(v2m_zero.__file__))"],
                           capture_output=True, text=True, cwd=run_dir, check=True)
    assert os.path.realpath(probe.stdout.strip()) == os.path.realpath(os.path.join(site, "v2m_zero"))

    script = str(bindir / ("v2m-zero.exe" if os.name == "nt" else "v2m-zero"))  # the wheel's console script
    demo = subprocess.run([script, "demo", "--out", "out", "--duration", "4"], capture_output=True, text=True,
                          cwd=run_dir, timeout=600, env={**os.environ, "PYTHONPATH": ""})
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "Scene Cut Hit" in demo.stdout and (run_dir / "out" / "demo_with_music.mp4").is_file()
