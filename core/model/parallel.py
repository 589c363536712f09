"""Work on two threads: torch's intra-op thread count set for a block, and guidance's two
branches side by side on a CPU (:class:`SideBySide`, used by :mod:`core.model.flow`)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..errors import V2MError

log = logging.getLogger("v2m_zero")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """``torch.set_num_threads(n)`` for the block, the previous count restored after it. The count
    is process-wide for :func:`torch.get_num_threads`, while the OpenMP pool that runs the work
    follows the setting of the OS thread that last set it (a new thread sets its own)."""
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def call(model: Callable[..., torch.Tensor], inputs: dict) -> torch.Tensor:
    kw = dict(inputs)
    return model(kw.pop("x"), kw.pop("t"), **kw)


def branches_in_parallel(device=None, cfg_scale: float = 1.0, model: Any = None) -> int:
    """Intra-op threads per guidance branch when the two branches should run side by side (on a
    CPU, with guidance, torch allowed ≥ 2 threads, and ``model`` not a compiled one), else 0.

    The DiT's GEMMs are small (a window is ~100–500 tokens): torch's second intra-op thread buys
    almost nothing on them, while two forwards of B on two threads run at full speed each
    (``benchmarks/long_video.py --compare-threads``). A compiled model (``core.model.fast``)
    keeps the one forward of 2B: its compiled code is not shared between threads.
    """
    if float(cfg_scale) == 1.0 or torch.device(device if device is not None else "cpu").type != "cpu":
        return 0
    if getattr(model, "compile_mode", None) is not None:
        return 0
    n = torch.get_num_threads()
    return n // 2 if n >= 2 else 0


class _Positional(nn.Module):
    """``model(x, t, *tensors)`` with the keyword inputs by position, the rest fixed: what
    ``torch.jit.trace`` can record."""

    def __init__(self, model: nn.Module, names: tuple[str, ...], fixed: dict):
        super().__init__()
        self.model, self.names, self.fixed = model, names, fixed

    def forward(self, x, t, *tensors):
        return self.model(x, t, **self.fixed, **dict(zip(self.names, tensors, strict=True)))


_PLAIN = (type(None), bool, int, float, str)


@dataclasses.dataclass
class _Recording:
    """One branch's recording for one input signature: ``state`` is "wait" (running the model
    itself, ``calls`` counting up to ``record_after``), "check" (recorded, checked on call
    :data:`_VERIFY_AT`), "ok" or "eager" (recording failed or differed)."""

    state: str = "wait"
    module: Any = None
    calls: int = 0
_VERIFY_AT = 3  # the call on which a recording is checked against the model (after TorchScript's profiling run)
#: Calls of one branch with one input shape that run as the model itself before its forward is
#: recorded: recording and TorchScript's first runs cost about 0.6 s of wall time, which two 32-step
#: windows (a 10 s clip) do not win back; a 3-minute video's 36 windows do, many times over.
RECORD_AFTER = 64


class SideBySide:
    """Guidance's two branches on two threads: :meth:`run` does the unconditional forward on a
    worker thread while the calling thread does the conditional one. Use as a context manager
    (:func:`side_by_side`); this thread and the worker each get ``per_thread`` torch threads
    (torch's thread setting is per OS thread for its OpenMP pool), restored on exit.

    An ``nn.Module`` model in eval mode is run as a TorchScript recording of its forward
    (``torch.jit.trace``, one per branch and input shapes, kept for the job): a recorded forward
    runs without Python's GIL, so the two threads do not wait on each other between the many small
    operations of a forward. Each recording is checked on a later call against the model itself
    with new inputs (bit for bit) and dropped if it differs; a model that cannot be recorded, or a
    PyTorch without ``torch.jit.trace``, runs as itself. A branch is recorded only after
    ``record_after`` calls with the same input shapes (default :data:`RECORD_AFTER`): until then,
    and in a short job, it runs as the model itself, side by side all the same.
    """

    def __init__(self, per_thread: int, record_after: int | None = None):
        self.per_thread = int(per_thread)
        self.record_after = RECORD_AFTER if record_after is None else int(record_after)
        self.recorded: dict[tuple, _Recording] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._threads: contextlib.AbstractContextManager | None = None

    def __enter__(self) -> SideBySide:
        self._threads = torch_threads(self.per_thread)
        self._threads.__enter__()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="v2m-guidance", initializer=torch.set_num_threads,
                                        initargs=(self.per_thread,))
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
        finally:
            self._pool = None
            self.recorded.clear()
            self._threads.__exit__(None, None, None)

    def run(self, model: Callable[..., torch.Tensor], cond: dict, uncond: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if self._pool is None:
            raise V2MError("SideBySide.run outside its with-block")
        fc, fu = self._forward(model, cond, "cond"), self._forward(model, uncond, "uncond")  # recorded here, in turn
        later = self._pool.submit(fu)
        try:
            out_cond = fc()
        finally:
            out_uncond = later.result()
        return out_cond, out_uncond

    def _forward(self, model, inputs: dict, branch: str) -> Callable[[], torch.Tensor]:
        def eager() -> torch.Tensor:
            with torch.no_grad():  # grad mode is per thread: the worker does not inherit the sampler's no_grad
                return call(model, inputs)

        key = self._key(model, inputs, branch)
        if key is None:
            return eager
        _, _, names, fixed, _ = key
        rec = self.recorded.setdefault(key, _Recording())
        if rec.state == "wait":
            if rec.calls < self.record_after:
                rec.calls += 1
                return eager
            rec.state, rec.module, rec.calls = *self._record(model, inputs, names, dict(fixed)), 0
        if rec.state == "eager":
            return eager
        tensors = [inputs["x"], inputs["t"], *(inputs[k] for k in names)]

        def recorded() -> torch.Tensor:
            with torch.no_grad():
                rec.calls += 1
                out = rec.module(*tensors)
                if rec.state == "check" and rec.calls >= _VERIFY_AT:
                    want = call(model, inputs)
                    if torch.equal(out, want):
                        rec.state = "ok"
                    else:
                        rec.state = "eager"
                        log.debug("the recorded forward of the %s branch differs from the model's: running the "
                                  "model itself", branch)
                        out = want
                return out

        return recorded

    @staticmethod
    def _key(model, inputs: dict, branch: str):
        """The recording's key (branch, model, tensor inputs by name with shape/dtype, fixed inputs),
        or None where the forward is not recorded."""
        if not isinstance(model, nn.Module) or model.training or not hasattr(torch.jit, "trace"):
            return None
        if not all(isinstance(inputs[k], torch.Tensor) for k in ("x", "t")):
            return None
        names, fixed = [], []
        for k, v in sorted(inputs.items()):
            if k in ("x", "t"):
                continue
            if isinstance(v, torch.Tensor):
                names.append(k)
            elif isinstance(v, _PLAIN):
                fixed.append((k, v))
            else:
                return None
        shapes = tuple((k, tuple(inputs[k].shape), inputs[k].dtype, inputs[k].device) for k in ("x", "t", *names))
        return branch, id(model), tuple(names), tuple(fixed), shapes

    @staticmethod
    def _record(model, inputs: dict, names: tuple[str, ...], fixed: dict) -> tuple[str, Any]:
        """("check", the recording of ``model`` with the tensor inputs ``names`` by position and
        ``fixed`` bound), or ("eager", None) when it cannot be recorded."""
        module = _Positional(model, names, fixed)
        example = (inputs["x"], inputs["t"], *(inputs[k] for k in names))
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's deprecation and shape-to-bool notes
                return "check", torch.jit.trace(module, example, check_trace=False)
        except Exception as exc:  # noqa: BLE001 - anything the tracer cannot record runs as itself
            log.debug("guidance branch not recorded (%s: %s): running the model itself", type(exc).__name__, exc)
            return "eager", None


@contextlib.contextmanager
def side_by_side(device=None, cfg_scale: float = 1.0, model: Any = None) -> Iterator[SideBySide | None]:
    """A :class:`SideBySide` for a job where :func:`branches_in_parallel` says so, else None."""
    per = branches_in_parallel(device, cfg_scale, model)
    if not per:
        yield None
        return
    with SideBySide(per) as side:
        yield side
