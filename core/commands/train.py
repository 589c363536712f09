"""``v2m-zero train``: fine-tune a V2M DiT on a prepared cache (resumes the run it finds)."""

from __future__ import annotations

import argparse
import signal
import sys
import time

NAME = "train"
HELP = "fine-tune a V2M model on a prepared cache from a TOML config (Ctrl-C saves a resumable state)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="training config (.toml); `--example` prints a complete one")
    p.add_argument("--max-steps", type=int, default=None, help="override train.max_steps")
    p.add_argument("--run-dir", default=None, help="override run_dir")
    p.add_argument("--no-resume", action="store_true", help="start fresh even if the run folder holds a state")
    p.add_argument("--example", action="store_true", help="print an example config and exit (CONFIG is ignored)")


class _Bar:
    """One stderr line with step, loss and ETA (rewritten in a terminal, every 5 s otherwise)."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, info: dict) -> None:
        eta = info.get("eta_seconds")
        eta_s = "?" if eta is None else time.strftime("%H:%M:%S", time.gmtime(max(0, eta)))
        line = (f"step {info['step']}/{info['max_steps']}  loss {info['loss']:.4f}  lr {info['lr']:.2e}  "
                f"epoch {info['epoch']}  ETA {eta_s}")
        now = time.time()
        if self.tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif now - self.last > 5 or info["step"] == info["max_steps"]:
            print(line, file=sys.stderr, flush=True)
            self.last = now

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from ..train import EXAMPLE_TOML, load_config, train

    if args.example:
        print(EXAMPLE_TOML, end="")
        return 0
    if not args.config:
        from ..errors import V2MError

        raise V2MError("give the training config (.toml); `v2m-zero train --example` prints one")
    cfg = load_config(args.config)
    if args.max_steps is not None:
        cfg["train"]["max_steps"] = int(args.max_steps)
    if args.run_dir is not None:
        import os

        cfg["run_dir"] = os.path.abspath(args.run_dir)
    if args.no_resume:
        cfg["resume"] = False
    stop = {"flag": False}
    prev = None

    def on_sigint(signum, frame):
        if stop["flag"]:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        stop["flag"] = True
        print("\nstopping after this step (a resumable state will be saved; Ctrl-C again to abort)",
              file=sys.stderr, flush=True)

    try:
        prev = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread
        prev = None
    bar = _Bar()
    try:
        res = train(cfg, progress=bar, should_stop=lambda: stop["flag"])
    finally:
        bar.close()
        if prev is not None:
            signal.signal(signal.SIGINT, prev)
    what = "stopped" if res.stopped else "finished"
    print(f"{what} at step {res.step}, loss {res.last_loss}; checkpoint {res.checkpoint_path}; state {res.state_dir}")
    return 0
