"""Where training runs: one process (CPU or one GPU) or several under Accelerate (DDP/FSDP).

Accelerate is imported only when used (``train.accelerate = "auto"`` uses it when launched by
accelerate or torchrun, ``true`` always, ``false`` never).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from ..errors import V2MError


class Runtime:
    def __init__(self, cfg: Mapping):
        t = cfg["train"]
        want = t["accelerate"]
        launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 or any(k.startswith("ACCELERATE_") for k in os.environ)
        use = want is True or (want == "auto" and launched)
        self.acc = None
        dev_cfg = t["device"]
        if use:
            try:
                from accelerate import Accelerator
            except ImportError:
                if want is True:
                    raise V2MError("train.accelerate = true but accelerate is not "
                                   "installed. Fix: pip install accelerate") from None
                use = False
        if use:
            cuda_ok = torch.cuda.is_available() and dev_cfg != "cpu"
            mp = "bf16" if (t["precision"] == "bf16" and cuda_ok) else "no"
            self.acc = Accelerator(mixed_precision=mp, gradient_accumulation_steps=int(t["grad_accum"]),
                                   cpu=not cuda_ok)
            self.device = self.acc.device
            self.rank, self.world, self.is_main = (self.acc.process_index, self.acc.num_processes,
                                                   self.acc.is_main_process)
        else:
            from ..precision import torch_device

            self.device = torch_device(dev_cfg)
            self.rank, self.world, self.is_main = 0, 1, True
        self.bf16 = t["precision"] == "bf16" and self.device.type == "cuda"
        self.attention = t.get("attention", "auto")
        fused = cfg["optim"].get("fused", "auto")
        self.fused_optimizer = self.device.type == "cuda" if fused == "auto" else bool(fused)

    def autocast(self):
        """The forward's context: bf16 autocast (without Accelerate, which does its own) and the attention kernel."""
        import contextlib

        from ..model.fast import attention_kernel

        stack = contextlib.ExitStack()
        if self.acc is None and self.bf16:
            stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16))
        stack.enter_context(attention_kernel(self.attention))
        return stack

    def wait(self) -> None:
        if self.acc is not None:
            self.acc.wait_for_everyone()

    def unwrap(self, model):
        return self.acc.unwrap_model(model) if self.acc is not None else model

    def state_dict(self, model) -> dict:
        if self.acc is not None:
            return self.acc.get_state_dict(model)
        return model.state_dict()

    def full_parameters(self, model):
        """A context giving ``[(name, parameter)]`` of the (prepared) model by the unwrapped model's names
        (:func:`plain_name`), each whole: under FSDP the shards are gathered for the duration (read only,
        every rank takes part); elsewhere the parameters themselves."""
        import contextlib

        if _is_fsdp(model):
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            @contextlib.contextmanager
            def gathered():
                with FSDP.summon_full_params(model, writeback=False):
                    yield [(plain_name(n), p) for n, p in model.named_parameters()]

            return gathered()
        return contextlib.nullcontext([(plain_name(n), p) for n, p in self.unwrap(model).named_parameters()])


#: what wrappers put into parameter names (FSDP, activation checkpointing, torch.compile)
_WRAPPER_PARTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def plain_name(name: str) -> str:
    """A parameter's name in the unwrapped model (what checkpoints, the EMA and LoRA are keyed by)."""
    for part in _WRAPPER_PARTS:
        name = name.replace(part, "")
    return name


def _is_fsdp(model) -> bool:
    return any(type(m).__name__ == "FullyShardedDataParallel" for m in model.modules())


# --------------------------------------------------------------------------------------------
