"""One rank of an FSDP training run on CPU (gloo), for tests/test_fsdp_ema.py.

Accelerate turns FSDP off on CPU (``Accelerator(cpu=True)`` runs DDP), so this stands in for its FSDP
road with the same wrapping as the documented config (``core/train/trainer.py``): torch's
``FullyShardedDataParallel`` with ``TRANSFORMER_BASED_WRAP`` on ``TransformerBlock``, ``FULL_SHARD``,
``use_orig_params`` (Accelerate's default) and ``FULL_STATE_DICT`` on rank 0 for saving, behind the few
``Accelerator`` methods the trainer calls. Run: ``python fsdp_harness.py CONFIG.json`` with RANK,
WORLD_SIZE, MASTER_ADDR and MASTER_PORT set.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys

import torch
import torch.distributed as dist


class FSDPAccelerator:
    """The ``Accelerator`` methods the trainer uses, over torch FSDP (what Accelerate's FSDP plugin does)."""

    def __init__(self):
        dist.init_process_group("gloo")
        self.process_index, self.num_processes = dist.get_rank(), dist.get_world_size()
        self.is_main_process = self.process_index == 0
        self.device = torch.device("cpu")
        self.sync_gradients = True

    def prepare(self, model, opt):
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP, ShardingStrategy
        from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

        from v2m_zero.core.model.blocks import TransformerBlock

        policy = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={TransformerBlock})
        wrapped = FSDP(model, auto_wrap_policy=policy, sharding_strategy=ShardingStrategy.FULL_SHARD,
                       use_orig_params=True, device_id=self.device)
        g = opt.param_groups[0]  # one group (a full fine-tune): the same settings over the wrapped parameters
        new = torch.optim.AdamW([p for p in wrapped.parameters() if p.requires_grad], lr=g["lr"], betas=g["betas"],
                                eps=g["eps"], weight_decay=g["weight_decay"])
        return wrapped, new

    def unwrap_model(self, model):
        return getattr(model, "module", model)

    def get_state_dict(self, model):
        from torch.distributed.fsdp import FullStateDictConfig, FullyShardedDataParallel as FSDP, StateDictType

        cfg = FullStateDictConfig(offload_to_cpu=False, rank0_only=True)  # on CPU there is nothing to offload
        with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT, cfg):
            return model.state_dict()

    def wait_for_everyone(self):
        dist.barrier()

    def accumulate(self, model):
        return contextlib.nullcontext()

    def backward(self, loss):
        loss.backward()

    def clip_grad_norm_(self, params, clip):
        return torch.tensor(0.0)

    def reduce(self, v, reduction="mean"):
        dist.all_reduce(v)
        return v / self.num_processes if reduction == "mean" else v


def main(config_path: str) -> None:
    from v2m_zero.core.train import runtime, trainer

    class FSDPRuntime(runtime.Runtime):
        def __init__(self, cfg):
            super().__init__({**cfg, "train": {**cfg["train"], "accelerate": False}})
            self.acc = FSDPAccelerator()
            self.rank, self.world, self.is_main = (self.acc.process_index, self.acc.num_processes,
                                                   self.acc.is_main_process)

    trainer.Runtime = FSDPRuntime
    with open(config_path) as f:
        result = trainer.train(json.load(f))
    print("rank", dist.get_rank(), "steps", result.step, "checkpoint", result.checkpoint_path)
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main(sys.argv[1])
