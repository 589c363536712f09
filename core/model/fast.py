"""The sampler's fast path: the DiT through ``torch.compile`` (Inductor kernels, CUDA graphs on CUDA).

``fast_model(dit, mode)`` returns what :func:`core.model.flow.sample` should call as its model:

* ``"auto"`` (the default) — on CUDA, for models of at least ``AUTO_MIN_PARAMS`` parameters
  (SAO-size DiTs), ``torch.compile(mode="reduce-overhead")``: fused kernels replayed as CUDA
  graphs, which removes the launch overhead that dominates a batch-2 DiT step; otherwise the model
  itself (eager): on a CPU, or for a small model (the demo), compiling costs more than it saves.
* ``"compile"`` — ``torch.compile`` on any device (CUDA graphs on CUDA).
* ``"off"`` — the model itself.

The compiled model is cached on the DiT, so its warm-up (compilation, graph capture) is paid once
per model and latent length and later runs (ComfyUI queue runs, CLI windows) reuse it. When
compiling fails (no Triton, no C++ compiler, an unsupported operation) the model runs eagerly from
then on, after one warning on the ``v2m_zero`` logger; the samples are the same within float
rounding either way.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch

from ..errors import V2MError
from ..sampling import FAST_MODES

AUTO_MIN_PARAMS = 100_000_000
log = logging.getLogger("v2m_zero")


def resolve_mode(mode: str | bool | None, device: torch.device | str | None, params: int | None = None) -> str | None:
    """The ``torch.compile`` mode to use (None: run eagerly) for a fast-sampler setting, device and model size."""
    if mode is None or mode is True:
        mode = "auto"
    if mode is False:
        mode = "off"
    if mode not in FAST_MODES:
        raise V2MError(f"fast sampler must be one of {', '.join(FAST_MODES)}; got {mode!r}")
    cuda = torch.device(device or "cpu").type == "cuda"
    small = params is not None and params < AUTO_MIN_PARAMS
    if mode == "off" or (mode == "auto" and (not cuda or small)):
        return None
    return "reduce-overhead" if cuda else "default"


def compile_unavailable(device: torch.device | str | None) -> str | None:
    """Why ``torch.compile`` cannot work here (a sentence), or None."""
    if not hasattr(torch, "compile"):
        return "this PyTorch has no torch.compile"
    if torch.device(device or "cpu").type == "cuda":
        try:
            from torch.utils._triton import has_triton
        except ImportError:  # pragma: no cover - very old PyTorch
            return "torch.utils._triton is missing"
        if not has_triton():
            return "Triton is not installed (pip install triton, or triton-windows on Windows)"
    return None


class FastModel:
    """``model`` called through ``torch.compile``; eager (with one warning) once compiling has failed.

    Behaves as the model for :mod:`core.model.flow` (same call, same ``objective``). Under CUDA
    graphs each output is copied out of the graph's memory, which the next replay overwrites.
    """

    def __init__(self, model: Callable[..., torch.Tensor], compile_mode: str, *, backend: Any = "inductor"):
        self.model = model
        self.objective = getattr(model, "objective", None)
        self.compile_mode = compile_mode
        self.graphs = compile_mode in ("reduce-overhead", "max-autotune")
        self.failure: str | None = None
        self.calls = 0
        options = {"mode": None if compile_mode == "default" else compile_mode} if backend == "inductor" else {}
        try:
            self.compiled = torch.compile(model, backend=backend, **options)  # lazy: compiles on the first call
        except Exception as exc:  # noqa: BLE001 - e.g. a Python version this PyTorch cannot compile for
            self.compiled = None
            self.fail(_reason(exc))

    @property
    def fast(self) -> bool:
        return self.failure is None

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
            log.warning(f"compiled sampling is not available ({reason}); sampling eagerly. "
                        "Set the fast sampler to 'off' to skip the attempt.")

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.failure is None:
            try:
                if self.graphs:
                    torch.compiler.cudagraph_mark_step_begin()
                out = self.compiled(x, t, **kwargs)
                self.calls += 1
                return out.clone() if self.graphs else out
            except (V2MError, torch.OutOfMemoryError, KeyboardInterrupt):
                raise  # the model's own errors and lack of memory are not compile failures
            except Exception as exc:  # noqa: BLE001 - any compiler error: run eagerly instead
                self.fail(_reason(exc))
        return self.model(x, t, **kwargs)


def _reason(exc: BaseException) -> str:
    """One line naming the root error (compiler errors wrap it, e.g. BackendCompilerFailed)."""
    for _ in range(8):
        inner = getattr(exc, "inner_exception", None) or exc.__cause__
        if inner is None:
            break
        exc = inner
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


_CACHE_ATTR = "_v2m_fast_models"


def fast_model(model, mode: str | bool | None = "auto", *, device=None, backend: Any = "inductor"):
    """The model the sampler should call for this fast-sampler ``mode`` (see the module doc).

    The compiled wrapper is kept on ``model`` (not in its state dict) and reused by later calls,
    so compilation and CUDA-graph capture happen once per model, mode and input shape.
    """
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    if device is None:
        device = params[0].device if params else "cpu"
    compile_mode = resolve_mode(mode, device, sum(p.numel() for p in params) if params else None)
    if compile_mode is None:
        return model
    cache = model.__dict__.setdefault(_CACHE_ATTR, {})
    key = (compile_mode, str(torch.device(device)), backend if isinstance(backend, str) else id(backend))
    fm = cache.get(key)
    if fm is None:
        fm = cache[key] = FastModel(model, compile_mode, backend=backend)
        why = compile_unavailable(device) if backend == "inductor" else None
        if why:
            fm.fail(why)
    return fm


# --------------------------------------------------------------------------------------------
# training: regional compilation and the attention kernel


def compile_blocks(model, *, backend: Any = "inductor", mode: str | None = None) -> None:
    """Compile how the DiT runs a transformer block, in place (training's ``train.compile``).

    Regional compilation: every block has the same code, so one compiled graph (forward and
    backward, gradient checkpointing included) serves all of them and compiling takes seconds,
    not the minutes a whole-model compile takes. Weights, state-dict keys and the optimiser's
    parameters are untouched.
    """
    from .blocks import run_layer

    dit = getattr(model, "dit", model)
    dit.transformer.run_layer = torch.compile(run_layer, backend=backend, mode=mode)


ATTENTION_KERNELS = ("auto", "flash", "efficient", "cudnn", "math")


def attention_kernel(name: str = "auto"):
    """A context restricting PyTorch's scaled-dot-product attention to one kernel ("auto": its own choice)."""
    import contextlib

    if name not in ATTENTION_KERNELS:
        raise V2MError(f"attention kernel must be one of {', '.join(ATTENTION_KERNELS)}; got {name!r}")
    if name == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
               "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}[name]
    return sdpa_kernel([backend])
