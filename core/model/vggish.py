"""The VGGish network (Hershey et al., ICASSP 2017) in the torchvggish state-dict layout.

An architecture like the others in ``core.model``: :mod:`model_io.vggish` reads its weights and
:mod:`core.eval.vggish` (frontend, embeddings for FAD) uses it, so neither has to import the other's
layer. The layout is torchvggish's (``features.{0,3,6,8,11,13}``, ``embeddings.{0,2,4}``), so the
public ``vggish-10086976.pth`` loads as is; see :mod:`core.eval.vggish` for which embedding FAD uses.
"""

from __future__ import annotations

import torch
from torch import nn

EMBEDDING_SIZE = 128
QUANTIZE_MIN_VAL = -2.0
QUANTIZE_MAX_VAL = 2.0
PCA_EIGEN_VECTORS_NAME = "pca_eigen_vectors"
PCA_MEANS_NAME = "pca_means"


_CONV_PLAN = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")


class Postprocessor(nn.Module):
    """AudioSet release post-processing: PCA (with whitening) then clip to [-2, 2] and quantise
    to 0..255 (returned as float). Buffers: ``pca_eigen_vectors [128, 128]``, ``pca_means [128, 1]``."""

    def __init__(self):
        super().__init__()
        self.register_buffer(PCA_EIGEN_VECTORS_NAME, torch.zeros(EMBEDDING_SIZE, EMBEDDING_SIZE))
        self.register_buffer(PCA_MEANS_NAME, torch.zeros(EMBEDDING_SIZE, 1))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        pca = (self.pca_eigen_vectors @ (emb.T - self.pca_means)).T
        clipped = pca.clamp(QUANTIZE_MIN_VAL, QUANTIZE_MAX_VAL)
        return torch.round((clipped - QUANTIZE_MIN_VAL) * (255.0 / (QUANTIZE_MAX_VAL - QUANTIZE_MIN_VAL)))


class VGGish(nn.Module):
    """VGGish on examples ``[N, 96, 64]`` or ``[N, 1, 96, 64]`` → ``[N, 128]``.

    ``final_relu``: apply torchvggish's last ReLU (off: the pre-activation embedding that
    ``frechet_audio_distance`` uses). ``postprocess``: apply the PCA/quantisation (off for FAD);
    its parameters live in ``self.pproc`` and are not part of the network's state dict.
    """

    def __init__(self, *, final_relu: bool = False, postprocess: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 1
        for v in _CONV_PLAN:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                in_ch = v
        self.features = nn.Sequential(*layers)
        # indices 0/2/4 hold the weights, as torchvggish; its trailing ReLU (index 5) has none.
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, EMBEDDING_SIZE),
        )
        self.final_relu = bool(final_relu)
        self.postprocess = bool(postprocess)
        self.pproc = Postprocessor() if postprocess else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x[:, None]
        x = self.features(x)  # [N, 512, 6, 4]
        # TF flattens NHWC: channel-last order, which the fc weights expect.
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        x = self.embeddings(x)
        if self.final_relu:
            x = torch.relu(x)
        if self.postprocess:
            x = self.pproc(x)
        return x
