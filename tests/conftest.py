import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def host(tmp_path):
    """The fake ComfyUI host with fresh input/output/temp/models folders under tmp_path."""
    import fake_comfy

    fake_comfy.install(str(tmp_path / "comfy"))
    return fake_comfy
