"""Training data order: a seeded per-epoch permutation, and the train/validation split."""

from __future__ import annotations

import numpy as np

from ..errors import V2MError


class DataOrder:
    """Deterministic order: epoch e visits the training clips in ``permutation(seed, e)``."""

    def __init__(self, train_ids: np.ndarray, seed: int, epoch: int = 0, index: int = 0):
        self.ids, self.seed, self.epoch, self.index = np.asarray(train_ids), int(seed), int(epoch), int(index)
        self._perm_epoch, self._perm = None, None

    def _permutation(self) -> np.ndarray:
        if self._perm_epoch != self.epoch:
            rng = np.random.default_rng([self.seed, self.epoch, 0x5EED])
            self._perm, self._perm_epoch = rng.permutation(len(self.ids)), self.epoch
        return self._perm

    def take(self, n: int) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            perm = self._permutation()
            k = min(n - len(out), len(perm) - self.index)
            out.extend(int(x) for x in self.ids[perm[self.index:self.index + k]])
            self.index += k
            if self.index >= len(perm):
                self.epoch, self.index = self.epoch + 1, 0
        return out


def split_clips(n: int, val_clips: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    val_clips = max(0, int(val_clips))
    if n - val_clips < 1:
        raise V2MError(f"the cache has {n} clip(s); with data.val_clips = {val_clips} none is left to train on")
    perm = np.random.default_rng([int(seed), 0xCA11]).permutation(n)
    return np.sort(perm[val_clips:]), np.sort(perm[:val_clips])
