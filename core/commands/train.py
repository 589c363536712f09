"""``v2m-zero train``: fine-tune a V2M DiT on a prepared cache (resumes the run it finds)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from ._common import PRESETS, duration_text, number

NAME = "train"
HELP = "fine-tune a V2M model on a prepared cache from a TOML config (Ctrl-C saves a resumable state)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="training config (.toml); `--example` prints a complete one")
    p.add_argument("--max-steps", type=number(int, 1, 10**9), default=None, help="override train.max_steps")
    p.add_argument("--run-dir", default=None, help="override run_dir")
    p.add_argument("--no-resume", action="store_true", help="start fresh even if the run folder holds a state")
    p.add_argument("--example", action="store_true", help="print a complete, commented config "
                                                          "and exit (CONFIG is ignored)")
    p.add_argument("--base", choices=PRESETS, default="toy",
                   help="with --example: the preset; sao1 = fine-tune Stable Audio Open 1.0 with LoRA (its VAE, "
                        "MusicFM curves, T5-base text, 32 s clips); sa3 = Stable Audio 3 small-music-base the "
                        "same way (its SAME codec, T5Gemma text); toy = a small model from scratch (default)")
    p.add_argument("--checkpoint", default=None,
                   help="with --example --base sao1 / sa3: the V2M checkpoint "
                        "made by init-checkpoint (written into the config)")


class TrainProgress:
    """Training progress on stderr: a tqdm bar with loss and lr on a terminal; otherwise one line
    (step, loss, lr, epoch, ETA) every ``every`` seconds and at the last step. The ETA never wraps
    at 24 hours (``1 day, 2:03:04``)."""

    def __init__(self, stream=None, every: float = 5.0):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every, self.last, self.bar = every, 0.0, None

    def __call__(self, info: dict) -> None:
        step, total = int(info["step"]), int(info["max_steps"])
        if self.tty:
            if self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, initial=step - 1, desc="training", unit="step", file=self.stream,
                                dynamic_ncols=True)
            self.bar.set_postfix(loss=f"{info['loss']:.4f}", lr=f"{info['lr']:.2e}", epoch=info["epoch"], refresh=False)
            self.bar.update(step - self.bar.n)
            return
        now = time.time()
        if now - self.last > self.every or step == total:
            print(f"step {step}/{total}  loss {info['loss']:.4f}  lr {info['lr']:.2e}  epoch {info['epoch']}  "
                  f"ETA {duration_text(info.get('eta_seconds'))}", file=self.stream, flush=True)
            self.last = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    from ..train import EXAMPLE_TOML, load_config

    if args.example:
        if args.checkpoint:
            from ...model_io.checkpoint import read_metadata

            read_metadata(args.checkpoint)  # a V2M checkpoint (SAO's own file gets the init-checkpoint hint)
        from ..train.presets import example_toml

        print(EXAMPLE_TOML if args.base == "toy" and not args.checkpoint else example_toml(args.base, args.checkpoint),
              end="")
        return 0
    if not args.config:
        from ..errors import V2MError

        raise V2MError("give the training config (.toml); `v2m-zero train --example` prints one")
    cfg = load_config(args.config)
    if args.max_steps is not None:
        cfg["train"]["max_steps"] = int(args.max_steps)
    if args.run_dir is not None:
        cfg["run_dir"] = os.path.abspath(args.run_dir)
    if args.no_resume:
        cfg["resume"] = False
    from ..train import job

    run_job = job.TrainJob(cfg, inputs=[(args.config, "training config"),
                                        (cfg["data"]["cache"], "cache folder (data.cache)"),
                                        (cfg["model"]["from_checkpoint"], "model.from_checkpoint")])
    run_job.check()  # before the SIGINT handler: a refusal is one line
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
    bar = TrainProgress()
    try:
        res = job.run(run_job, progress=bar, should_stop=lambda: stop["flag"])
    finally:
        bar.close()
        if prev is not None:
            signal.signal(signal.SIGINT, prev)
    what = "stopped" if res.stopped else "finished"
    print(f"{what} at step {res.step}, loss {res.last_loss}; checkpoint {res.checkpoint_path}; state {res.state_dir}")
    return 0
