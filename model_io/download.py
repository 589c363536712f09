"""Model downloads, only on request: what each model is, where it goes, and a resumable fetch.

Nothing here runs unless the user asks (``v2m-zero models download NAME``, or a node's "download if
missing" switch). Files come from the Hugging Face Hub (``$HF_ENDPOINT`` when set) through
``huggingface_hub`` (URLs, metadata, authentication with ``HF_TOKEN`` or a saved login, the HTTP
transfer); safetensors and plain files only, no code. Beat This! comes from its authors' server (the URL its package
uses), as a checkpoint read with ``torch.load(weights_only=True)`` and checked before it is kept.
Where they go: a node passes ComfyUI's folders (``models/v2m/<kind>/``, SAO into ``models/checkpoints/``); the command
line uses ``$V2M_MODELS_DIR/<kind>/`` (or ``--dir``).

Each file is written to ``<name>.part`` and renamed when complete (size checked, and its sha256
when the Hub gives one): an interrupted download continues where it stopped on the next run (an
HTTP range request), and a file that is there is not fetched again. Without a network the first
metadata request fails at once (no retries, a short timeout) and the error is one line with the
manual steps. ``HF_HUB_OFFLINE=1`` refuses without trying.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import ModelError

__all__ = ["MODELS", "DownloadError", "HubModel", "UrlModel", "download", "model_status", "target_dir"]

HUB = "https://huggingface.co"
METADATA_TIMEOUT = 10.0  # seconds for the first answer; no retries


class DownloadError(ModelError):
    """A download that could not be done (no network, gated, not found), with the manual steps."""


@dataclass(frozen=True)
class HubModel:
    name: str
    repo: str
    kind: str  # folder kind: encoders, text_encoders, prompt, music_encoders, base (SAO: ComfyUI's models/checkpoints)
    files: tuple[str, ...]  # needed
    optional: tuple[str, ...] = ()  # fetched when the repository has them
    folder: str | None = None  # sub-folder of the kind folder (None: the model's name; "": the kind folder itself)
    rename: Mapping[str, str] = field(default_factory=dict)
    size: str = ""
    used_by: str = ""
    gated: bool = False
    revision: str = "main"

    def dest_name(self, file: str) -> str:
        return self.rename.get(file, file)


@dataclass(frozen=True)
class UrlModel:
    """A model its authors publish outside the Hub: each file from its own URL (``sources``: file name -> URL), into
    ``<kind folder>/<file>``. No checksum is published for these: a file is checked by ``check`` (the name of a
    reader in :data:`CHECKS` that must accept it: bounded, ``weights_only``) before it is renamed into place."""

    name: str
    kind: str
    files: tuple[str, ...]
    sources: Mapping[str, str]
    page: str  # where a person downloads the files by hand
    check: str
    approx_bytes: int = 0  # for the progress bar (the server may not say)
    size: str = ""
    used_by: str = ""
    licence: str = ""
    optional: tuple[str, ...] = ()
    folder: str | None = ""
    rename: Mapping[str, str] = field(default_factory=dict)
    gated: bool = False

    @property
    def repo(self) -> str:
        return self.page

    def dest_name(self, file: str) -> str:
        return file


# Beat This! (CPJKU, MIT): the package's own checkpoint URL (beat_this.inference.CHECKPOINT_URL, beat-this 1.1.0),
# "<name>.ckpt" there, cached by the package as "beat_this-<name>.ckpt" (the names we keep)
BEAT_THIS_URL = "https://cloud.cp.jku.at/public.php/dav/files/7ik4RrBKTS273gp"
BEAT_THIS_PAGE = "https://cloud.cp.jku.at/index.php/s/7ik4RrBKTS273gp"
_BEATS = ("the second beat tracker of the sync reports (eval, demo, align, Sync Report, Align Music): how it "
          "agrees with librosa's beats; needs `pip install --no-deps beat-this==1.1.0 einops rotary-embedding-torch`")


def _beat_this(name: str, ckpt: str, size: str, approx: int) -> UrlModel:
    return UrlModel(name, "beat_trackers", (f"beat_this-{ckpt}.ckpt",), {f"beat_this-{ckpt}.ckpt":
                    f"{BEAT_THIS_URL}/{ckpt}.ckpt"}, BEAT_THIS_PAGE, "beat_this", approx_bytes=approx, size=size,
                    used_by=_BEATS, licence="MIT")


_HF_IMAGE = ("config.json", "preprocessor_config.json", "model.safetensors")
_TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json",
              "merges.txt", "generation_config.json")
# The SA3 repositories' small files: the config (SAME layout, seconds_total's range, sample rate...) and the
# tokenizer of the T5Gemma they bundle (SA3 was trained with it), as the repository ships them. They go
# into a folder named like the weights file, beside it (ComfyUI's checkpoints folder lists only weights):
# checkpoints/stable_audio_3_small_music_base.safetensors + checkpoints/stable_audio_3_small_music_base/...
SA3_TOKENIZER = tuple(f"t5gemma-b-b-ul2/{f}" for f in ("config.json", "generation_config.json",
                                                       "special_tokens_map.json", "tokenizer.json", "tokenizer.model",
                                                       "tokenizer_config.json"))


def _sa3_rename(stem: str) -> dict[str, str]:
    return {"model.safetensors": f"{stem}.safetensors", "model_config.json": f"{stem}/model_config.json",
            **{f: f"{stem}/{f}" for f in SA3_TOKENIZER}}


_ENCODERS = "V2M_EncodeFrames / curve / generate --encoder dinov2 (the paper's video encoder is dinov2-large)"
_PROMPT = "V2M_MusicPrompt / prompt (optional: without it the prompt is your text + a tempo hint)"

MODELS: dict[str, HubModel] = {m.name: m for m in (
    HubModel("dinov2-small", "facebook/dinov2-small", "encoders", _HF_IMAGE, size="88 MB", used_by=_ENCODERS),
    HubModel("dinov2-base", "facebook/dinov2-base", "encoders", _HF_IMAGE, size="346 MB", used_by=_ENCODERS),
    HubModel("dinov2-large", "facebook/dinov2-large", "encoders", _HF_IMAGE, size="1.2 GB", used_by=_ENCODERS),
    HubModel("dinov2-giant", "facebook/dinov2-giant", "encoders", _HF_IMAGE, size="4.5 GB", used_by=_ENCODERS),
    HubModel("t5-base", "google-t5/t5-base", "text_encoders", ("config.json", "model.safetensors"),
             optional=("spiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"),
             size="0.9 GB",
             used_by="V2M_LoadModel / generate with SAO-based checkpoints; train --base sao1 (the prompt encoder)"),
    HubModel("musicfm", "minzwon/MusicFM", "music_encoders", ("pretrained_msd.pt", "msd_stats.json"), size="1.3 GB",
             used_by="prepare / V2M_Train with the sao1 preset (the paper's music curves; log-mel without it)"),
    HubModel("whisper-small", "openai/whisper-small", "prompt", ("config.json", "model.safetensors"),
             optional=("preprocessor_config.json", "normalizer.json") + _TOKENIZER, size="0.97 GB", used_by=_PROMPT),
    HubModel("smolvlm2-256m", "HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "prompt",
             ("config.json", "model.safetensors"),
             optional=("preprocessor_config.json", "processor_config.json", "chat_template.json", "chat_template.jinja")
             + _TOKENIZER, size="0.5 GB", used_by=_PROMPT),
    HubModel("qwen2.5-1.5b-instruct", "Qwen/Qwen2.5-1.5B-Instruct", "prompt", ("config.json", "model.safetensors"),
             optional=_TOKENIZER, size="3.1 GB", used_by=_PROMPT),
    HubModel("sao1", "stabilityai/stable-audio-open-1.0", "base", ("model.safetensors",), folder="",
             rename={"model.safetensors": "stable-audio-open-1.0.safetensors"}, size="4.9 GB", gated=True,
             used_by="init-checkpoint --from sao1 (the base to fine-tune; accept its licence on the Hub and log in)"),
    HubModel("sa3", "stabilityai/stable-audio-3-small-music-base", "base", ("model.safetensors", "model_config.json"),
             optional=SA3_TOKENIZER, folder="", rename=_sa3_rename("stable_audio_3_small_music_base"), gated=True,
             used_by="init-checkpoint --from sa3, or Load V2M Model as a base (the Stable Audio 3 base to fine-tune; "
                     "accept its licence on the Hub and log in)"),
    HubModel("t5gemma-b-b-ul2", "google/t5gemma-b-b-ul2", "text_encoders", ("config.json", "model.safetensors"),
             optional=("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                       "generation_config.json"), gated=True,
             used_by="V2M_LoadModel / generate with SA3-based checkpoints; train --base sa3 (the prompt encoder; "
                     "ComfyUI's text_encoders/t5gemma_b_b_ul2.safetensors works too)"),
    _beat_this("beat-this", "final0", "78 MB", 78_000_000),
    _beat_this("beat-this-small", "small0", "8.1 MB", 8_100_000),
)}

# where a kind lives under $V2M_MODELS_DIR (a ComfyUI host passes its own folders)
STANDALONE_FOLDER = {"base": "checkpoints"}


def get_model(name: str) -> HubModel | UrlModel:
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def target_dir(model: HubModel | UrlModel, *, folders: Mapping[str, str] | None = None,
               root: str | os.PathLike | None = None) -> Path:
    """Where a model's files go: ``folders[kind]`` (a host's folders), else ``<root>/<kind>`` with ``root``
    ``--dir``, else ``$V2M_MODELS_DIR``, else the per-user default (:func:`.folders.default_models_root`)."""
    if folders and model.kind in folders:
        base = Path(folders[model.kind])
    else:
        from .folders import user_models_root

        root = root or user_models_root()[0]
        base = Path(root) / STANDALONE_FOLDER.get(model.kind, model.kind)
    sub = model.name if model.folder is None else model.folder
    return base / sub if sub else base


def model_status(model: HubModel | UrlModel, **where) -> dict:
    """``{"state": installed | partial | missing, "path", "missing": [files]}``."""
    dest = target_dir(model, **where)
    missing = [f for f in model.files if not (dest / model.dest_name(f)).is_file()]
    partial = any((dest / (model.dest_name(f) + ".part")).is_file() for f in model.files)
    state = "installed" if not missing else ("partial" if partial else "missing")
    path = dest / model.dest_name(model.files[0]) if model.folder == "" else dest
    return {"state": state, "path": str(path), "missing": missing}


# --------------------------------------------------------------------------------------------
# fetching


def _manual(model: HubModel, dest: Path, endpoint: str, why: str) -> DownloadError:
    files = " ".join(model.files)
    login = " (accept its licence on the Hub page first and log in: `hf auth login` or HF_TOKEN)" if model.gated else ""
    renames = "".join(f", and rename {a} to {b}" for a, b in model.rename.items() if a in model.files)
    return DownloadError(f"{model.name}: {why}. Manual steps: download {files} from {endpoint}/{model.repo}{login} "
                         f"into {dest} (e.g. `hf download {model.repo} {files} --local-dir {dest}`){renames}, "
                         "then run again")


def _why(exc: BaseException, endpoint: str) -> str:
    from huggingface_hub import errors

    if isinstance(exc, errors.GatedRepoError):
        return "the repository is gated: you have not accepted its licence or gave no token"
    if isinstance(exc, errors.RepositoryNotFoundError):
        return "repository not found (or private/gated and no token given)"
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return f"the Hub answered HTTP {status}"
    return f"cannot reach {endpoint} ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})"


def _not_found(exc: BaseException) -> bool:
    from huggingface_hub import errors

    status = getattr(getattr(exc, "response", None), "status_code", None)
    return isinstance(exc, errors.EntryNotFoundError) or status == 404


class _Counting:
    """A file wrapper that reports every write to ``tick(bytes)`` (progress for any huggingface_hub version)."""

    def __init__(self, f, tick):
        self.f, self.tick = f, tick

    def write(self, b):
        n = self.f.write(b)
        self.tick(len(b))
        return n

    def __getattr__(self, name):
        return getattr(self.f, name)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch(meta, out: Path, headers: dict, tick: Callable[[int], None]) -> None:
    """One file into ``out.part`` (continued from where a previous run stopped), checked, then renamed."""
    from huggingface_hub.file_download import http_get

    part = out.with_name(out.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    if meta.size is not None and have > meta.size:
        part.unlink()
        have = 0
    tick(have)
    with open(part, "ab") as f:
        http_get(meta.location, _Counting(f, tick), resume_size=have, headers=headers, expected_size=meta.size,
                 displayed_filename=out.name)
    size = part.stat().st_size
    if meta.size is not None and size != meta.size:
        raise DownloadError(f"{out.name}: got {size} bytes, expected {meta.size}; run again to continue")
    etag = (meta.etag or "").strip('"')
    if re.fullmatch(r"[0-9a-f]{64}", etag) and _sha256(part) != etag:
        part.unlink()
        raise DownloadError(f"{out.name}: the downloaded file's sha256 differs from the Hub's; "
                            "it was removed, run again")
    os.replace(part, out)


def download(model: HubModel | UrlModel | str, *, folders: Mapping[str, str] | None = None,
             root: str | os.PathLike | None = None, token: str | None = None, endpoint: str | None = None,
             progress: Callable[[int, int], None] | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Fetch a model's files (see the module doc); returns its folder (or file, for single-file models).

    ``progress(done_bytes, total_bytes)`` follows the transfer. Raises :class:`DownloadError` (one line,
    with the manual steps) when it cannot be done.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import (are_progress_bars_disabled, build_hf_headers, disable_progress_bars,
                                       enable_progress_bars)

    model = get_model(model) if isinstance(model, str) else model
    if isinstance(model, UrlModel):
        return _download_url(model, folders=folders, root=root, progress=progress, log=log)
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or HUB).rstrip("/")
    dest = target_dir(model, folders=folders, root=root)
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise _manual(model, dest, endpoint, "HF_HUB_OFFLINE is set, so nothing is downloaded")
    todo = []
    for file in model.files + model.optional:
        out = dest / model.dest_name(file)
        if out.is_file():
            continue
        url = hf_hub_url(model.repo, file, revision=model.revision, endpoint=endpoint)
        try:
            todo.append((get_hf_file_metadata(url, token=token, timeout=METADATA_TIMEOUT), out))
        except Exception as exc:  # network errors have many types across huggingface_hub versions
            if file in model.optional and _not_found(exc):
                continue
            raise _manual(model, dest, endpoint, _why(exc, endpoint)) from None
    dest.mkdir(parents=True, exist_ok=True)
    for _, out in todo:
        out.parent.mkdir(parents=True, exist_ok=True)  # files the repository keeps in sub-folders
    total = sum(int(m.size or 0) for m, _ in todo)
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], total)

    quiet = are_progress_bars_disabled()
    disable_progress_bars()  # ours instead: one bar for the whole model
    try:
        for meta, out in todo:
            if log is not None:
                log(f"{model.name}: {out.name} ({(meta.size or 0) / 1e6:.1f} MB)")
            try:
                _fetch(meta, out, build_hf_headers(token=token), tick)
            except DownloadError:
                raise
            except Exception as exc:
                raise _manual(model, dest, endpoint, _why(exc, endpoint) + f" while fetching {out.name} "
                              "(the part already downloaded is kept: running again continues it)") from None
    finally:
        if not quiet:
            enable_progress_bars()
    return dest / model.dest_name(model.files[0]) if model.folder == "" else dest


def _check_beat_this(path: Path) -> None:
    from .beat_this import read_checkpoint

    read_checkpoint(path)


#: what accepts a downloaded file of a :class:`UrlModel` (raises ``ModelError`` when it does not fit)
CHECKS: dict[str, Callable[[Path], None]] = {"beat_this": _check_beat_this}


def _manual_url(model: UrlModel, dest: Path, why: str) -> DownloadError:
    files = ", ".join(f"{url} as {f}" for f, url in model.sources.items())
    return DownloadError(f"{model.name}: {why}. Manual steps: download {files} (or from {model.page}) into {dest}, "
                         "then run again")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _download_url(model: UrlModel, *, folders=None, root=None, progress=None, log=None) -> Path:
    """:func:`download` for a :class:`UrlModel`: each file into ``<name>.part`` (continued where a previous run
    stopped), accepted by its check, then renamed; a file the check refuses is removed."""
    from huggingface_hub.file_download import http_get

    from ..core.errors import ModelError

    dest = target_dir(model, folders=folders, root=root)
    if _offline():
        raise _manual_url(model, dest, "HF_HUB_OFFLINE is set, so nothing is downloaded")
    todo = [f for f in model.files if not (dest / f).is_file()]
    dest.mkdir(parents=True, exist_ok=True)
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], max(model.approx_bytes, done[0]))

    for f in todo:
        out, url = dest / f, model.sources[f]
        part = out.with_name(out.name + ".part")
        have = part.stat().st_size if part.is_file() else 0
        tick(have)
        if log is not None:
            log(f"{model.name}: {f} from {url}")
        try:
            with open(part, "ab") as fh:
                http_get(url, _Counting(fh, tick), resume_size=have, displayed_filename=f)
        except Exception as exc:
            raise _manual_url(model, dest, _why(exc, url.split("/")[2]) + f" while fetching {f} (the part already "
                              "downloaded is kept: running again continues it)") from None
        try:
            CHECKS[model.check](part)
        except ModelError as exc:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{model.name}: the downloaded {f} is not usable, so it was removed "
                                f"({' '.join(str(exc).split())[:200]}); run again") from None
        os.replace(part, out)
    return dest / model.files[0]


# what each node or command needs: (who, models, note); a group with "any" is satisfied by one of them
NEEDS = (
    ("V2M_EncodeFrames / curve / generate with --encoder dinov2",
     ("dinov2-large", "dinov2-small", "dinov2-base", "dinov2-giant"),
     "any", "the paper uses dinov2-large; the weightless pixels / histogram encoders need nothing"),
    ("V2M_LoadModel / generate with an SAO-based checkpoint", ("t5-base",), "all", ""),
    ("V2M_LoadModel / generate with an SA3-based checkpoint", ("t5gemma-b-b-ul2",), "all",
     "or ComfyUI's models/text_encoders/t5gemma_b_b_ul2.safetensors"),
    ("init-checkpoint --from sao1", ("sao1",), "all", "gated: accept its licence on the Hub and log in first"),
    ("init-checkpoint --from sa3", ("sa3",), "all", "gated: accept its licence on the Hub and log in first"),
    ("prepare / train / V2M_Train with the sao1 preset", ("t5-base", "musicfm"), "all",
     "without musicfm the music curves are log-mel (warned and recorded)"),
    ("prepare / train / V2M_Train with the sa3 preset", ("t5gemma-b-b-ul2", "musicfm"), "all",
     "without musicfm the music curves are log-mel (warned and recorded)"),
    ("V2M_MusicPrompt / prompt", ("whisper-small", "smolvlm2-256m", "qwen2.5-1.5b-instruct"), "all",
     "optional: without them the prompt is your text + a tempo hint"),
    ("the sync reports' second beat tracker (eval, demo, align, Sync Report / Align Music nodes)", ("beat-this",
     "beat-this-small"), "any", "optional: without it the reports use librosa alone, as the paper; the network needs "
     "`pip install --no-deps beat-this==1.1.0 einops rotary-embedding-torch`"),
)


def missing_report(**where) -> list[tuple[str, list[str], str]]:
    """``[(who, missing model names, note)]`` for every entry of :data:`NEEDS`."""
    state = {name: model_status(m, **where)["state"] for name, m in MODELS.items()}
    out = []
    for who, names, mode, note in NEEDS:
        missing = [n for n in names if state[n] != "installed"]
        if mode == "any" and len(missing) < len(names):
            missing = []
        elif mode == "any":
            missing = missing[:1]
        out.append((who, missing, note))
    return out
