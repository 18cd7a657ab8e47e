"""The one checkpoint contract for every model of the project (vocoder generators here; stage one
and the evaluation classifier in ``specgan`` use the same two functions).

Two files per training run:

* ``model.safetensors`` — for inference. Tensors plus string metadata::

      format       "specgan-model/2"
      kind         "vocoder" | "stage-one" | "classifier"
      version      package version that wrote it
      name         registered constructor name ("istft", "specgan", ...)
      kwargs       JSON: the constructor's keyword arguments, verbatim
      mel          JSON: the MelConfig the model consumes or produces (absent for none)
      stats        JSON: normalisation statistics, where the model uses them
      step         training step
      fingerprint  hash of the config that shaped the model (architecture, mel, data)
      extra        JSON: anything else (labels, metrics, recipe name)

  Written by :func:`save_model` only, read by :func:`load_model` only. Loading reads the header
  first, builds the module on the ``meta`` device (no memory), compares every tensor shape and
  the parameter count against the header, and only then allocates: a crafted file cannot make
  the loader allocate what its metadata claims. Nothing in it is ever unpickled.

* ``state.pt`` — for resuming only (everything: weights, optimisers, schedulers, every rank's
  RNG). Read with ``weights_only=True``; the previous one is kept as ``state.prev.pt``.

Order of writes: ``model.safetensors`` first, then ``state.pt`` (the commit point). A kill
between the two leaves a model at least as new as the state, and a resumed run rewrites both.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from vocoder.mel import MelConfig

__all__ = ["FORMAT", "CheckpointError", "ModelFile", "ModelFileError", "atomic_write", "changed_keys", "fingerprint", "load",
           "load_model", "load_training_state", "read_header", "save_generator", "save_model", "save_training_state",
           "trim_history"]

FORMAT = "specgan-model/2"
_V1 = {"specgan-vocoder/1": "vocoder", "specgan-generator/1": "stage-one", "specgan-classifier/1": "classifier"}
MAX_HEADER_BYTES = 64 << 20      # a safetensors header is JSON; anything larger is not a model of ours
MAX_PARAMETERS = 2_000_000_000   # refuse to build more than this (8 GB of float32)

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A training checkpoint that cannot be read (and no usable previous one)."""


class ModelFileError(ValueError):
    """A model file that cannot be used; the message is one line naming the file and the problem."""


# -- atomic files ---------------------------------------------------------------------------
def _keep_previous(path: Path) -> None:
    """``path`` → ``<stem>.prev<suffix>`` while ``path`` itself stays in place: a hard link where
    the filesystem has them, else a copy (exFAT, FUSE object stores, some network mounts).
    """
    prev = path.with_name(f"{path.stem}.prev{path.suffix}")
    tmp = path.with_name(f".{prev.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS,
                           errno.EACCES):
            raise
        shutil.copyfile(path, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    os.replace(tmp, prev)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], object], keep_previous: bool = False) -> Path:
    """Write ``path`` so that it is never seen half-written: ``write(tmp)`` into a temporary file in
    the same folder, fsync it, rename it over ``path``, fsync the folder. With ``keep_previous``
    the file it replaces stays as ``<stem>.prev<suffix>`` (a hard link, or a copy where the
    filesystem has no hard links). A crash at any point leaves the old file or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        try:
            write(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        except OSError as e:
            if e.filename is None:  # name the file being written (a full disk says only "No space left")
                raise OSError(e.errno, e.strerror or str(e), str(path)) from e
            raise
        except RuntimeError as e:  # torch.save's writer reports a failed write this way, errno lost
            if "write" in str(e) and "fail" in str(e):
                full = shutil.disk_usage(path.parent).free < (64 << 20)
                raise OSError(errno.ENOSPC if full else errno.EIO,
                              "No space left on device" if full else " ".join(str(e).split())[:160],
                              str(path)) from e
            raise
        os.chmod(tmp, 0o666 & ~_umask())  # some writers create 0600 temporaries
        if keep_previous and path.exists():
            _keep_previous(path)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def trim_history(path: str | Path, step: int) -> None:
    """Drop ``history.jsonl`` lines logged after ``step`` (a resumed or rolled-back run logs them
    again), so the history stays one line per logged step, steps increasing.
    """
    path = Path(path)
    if not path.is_file():
        return
    keep = []
    lines = path.read_text().splitlines()
    for ln in lines:
        try:
            if ln.strip() and json.loads(ln).get("step", 0) <= step:
                keep.append(ln)
        except json.JSONDecodeError:  # a line cut by a kill mid-write
            continue
    if len(keep) != len(lines):
        atomic_write(path, lambda tmp: tmp.write_text("".join(ln + "\n" for ln in keep)))


# -- training state -------------------------------------------------------------------------
def save_training_state(state: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` a training state atomically, keeping the previous one as ``state.prev.pt``."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp), keep_previous=True)


def load_training_state(path: str | Path, device: str | torch.device = "cpu", report: bool = True) -> dict[str, Any]:
    """Load ``state.pt`` with ``weights_only=True`` (tensors and plain containers only: nothing in
    the file can run code). If it is truncated or corrupt, say so and use ``state.prev.pt``
    (``report=False``: say nothing, for a look before the load that resumes, which says it once).
    """
    path = Path(path)
    prev = path.with_name(f"{path.stem}.prev{path.suffix}")
    errors = []
    for candidate in (path, prev):
        if not candidate.is_file():
            errors.append(f"{candidate}: not found")
            continue
        try:
            state = torch.load(candidate, map_location=device, weights_only=True)
        except Exception as e:  # noqa: BLE001 (zip, pickle and EOF errors all mean: unreadable)
            errors.append(f"{candidate}: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
            if report:
                log.error("checkpoint %s is unreadable (truncated or corrupt: %s); trying the previous one",
                          candidate, type(e).__name__)
            continue
        if candidate is prev and report:
            log.warning("resuming from the previous checkpoint %s (step %s)", prev, state.get("step"))
        return state
    raise CheckpointError("no usable training checkpoint: " + "; ".join(errors))


# -- fingerprints -----------------------------------------------------------------------------
def _flatten(blob: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(blob, Mapping):
        out: dict[str, Any] = {}
        for k, v in blob.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: blob}


def fingerprint(shape: Mapping[str, Any]) -> str:
    """A short hash of what shaped a model (``{"model": kwargs, "mel": ..., "data": ...}``)."""
    import hashlib

    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:16]


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted key paths whose values differ between two fingerprint inputs (added and removed too)."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


# -- model files ------------------------------------------------------------------------------
def _version() -> str:
    from vocoder import __version__

    return __version__


def save_model(path: str | Path, module: torch.nn.Module | Mapping[str, torch.Tensor], *, kind: str, name: str,
               kwargs: Mapping[str, Any], step: int, mel: MelConfig | None = None,
               stats: Mapping[str, Any] | None = None, shape: Mapping[str, Any] | None = None,
               extra: Mapping[str, Any] | None = None, half: bool = False, version: str | None = None) -> Path:
    """Write ``module``'s weights and everything needed to rebuild it (atomically): the one writer
    of model files (trainers' exports, :func:`save_generator`, the float16 copies for shipping).

    Args:
        path: Output ``.safetensors`` file.
        module: The model, exactly as the registered constructor builds it from ``kwargs``
            (callers fold weight norm first where the loader builds without it), or its tensors
            by name (a copy of another file).
        kind: ``"vocoder"``, ``"stage-one"`` or ``"classifier"``.
        name: Registered constructor name.
        kwargs: Constructor keyword arguments, JSON-serialisable.
        step: Training step.
        mel: The mel definition the model consumes or produces.
        stats: Normalisation statistics (``MelStats.to_dict()``), where the model uses them.
        shape: Fingerprint inputs (what shaped the model); stored with their hash.
        extra: Anything else JSON-serialisable.
        half: Store float16 (loaded back as float32); a tensor float16 cannot hold (|w| > 65504)
            is refused, naming it, before anything is written.
        version: The package version to record (a copy keeps its source's); default: this one.
    """
    state = module.state_dict() if isinstance(module, torch.nn.Module) else dict(module)
    tensors = {}
    for key, v in state.items():
        v = v.detach()
        if half and v.is_floating_point():
            if v.numel() and float(v.abs().max()) > torch.finfo(torch.float16).max:
                raise ValueError(f"tensor {key} exceeds the float16 range")
            v = v.half()
        tensors[key] = v.cpu().contiguous()
    meta = {"format": FORMAT, "kind": kind, "version": version or _version(), "name": name,
            "kwargs": json.dumps(dict(kwargs)), "step": str(int(step)), "extra": json.dumps(dict(extra or {}))}
    if mel is not None:
        meta["mel"] = json.dumps(mel.to_dict())
    if stats is not None:
        meta["stats"] = json.dumps(dict(stats))
    if shape is not None:
        meta["shape"] = json.dumps(dict(shape), default=str)
        meta["fingerprint"] = fingerprint(shape)
    from safetensors.torch import save_file

    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def read_header(path: str | Path) -> tuple[dict[str, str], dict[str, tuple[str, tuple[int, ...]]]]:
    """(metadata, {tensor name: (dtype, shape)}) from a safetensors file, checked against its size.

    Reads only the header (bounded); raises :class:`ModelFileError` for a missing, truncated or
    non-safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: not found")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ModelFileError(f"{path}: not a safetensors file ({size} bytes)")
        n = struct.unpack("<Q", head)[0]
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise ModelFileError(f"{path}: not a safetensors file (header length {n} in a {size}-byte file)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ModelFileError(f"{path}: not a safetensors file (unreadable header)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: not a safetensors file (header is not a table)")
    meta = header.pop("__metadata__", None) or {}
    shapes: dict[str, tuple[str, tuple[int, ...]]] = {}
    end = 0
    for key, info in header.items():
        try:
            dtype, shape, (lo, hi) = info["dtype"], tuple(int(s) for s in info["shape"]), info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise ModelFileError(f"{path}: not a safetensors file (bad entry {key!r})") from None
        if dtype in _DTYPE_BYTES and hi - lo != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise ModelFileError(f"{path}: tensor {key} has {hi - lo} bytes for shape {list(shape)} {dtype}")
        shapes[key] = (dtype, shape)
        end = max(end, int(hi))
    if 8 + n + end > size:
        raise ModelFileError(f"{path}: truncated ({size} bytes, the header describes {8 + n + end})")
    return meta, shapes


class ModelFile:
    """The parsed metadata of a model file (see the module docstring)."""

    def __init__(self, path: Path, meta: dict[str, str]):
        self.path = path
        fmt = meta.get("format")
        if fmt in _V1:
            meta = _upgrade_v1(meta, _V1[fmt])
        elif fmt != FORMAT:
            raise ModelFileError(f"{path}: not a specgan model (format {fmt!r}, expected {FORMAT})")
        try:
            self.kind = meta["kind"]
            self.name = meta["name"]
            self.kwargs = json.loads(meta["kwargs"])
            self.step = int(meta.get("step", 0))
            self.mel = MelConfig.from_dict(json.loads(meta["mel"])) if meta.get("mel") else None
            self.stats = json.loads(meta["stats"]) if meta.get("stats") else None
            self.shape = json.loads(meta["shape"]) if meta.get("shape") else None
            self.fingerprint = meta.get("fingerprint")
            self.extra = json.loads(meta.get("extra") or "{}")
            self.version = meta.get("version", "?")
        except (KeyError, ValueError, TypeError) as e:
            raise ModelFileError(f"{path}: damaged metadata ({type(e).__name__}: {e})") from None
        if not isinstance(self.kwargs, dict):
            raise ModelFileError(f"{path}: damaged metadata (kwargs is not a table)")

    def as_dict(self) -> dict[str, Any]:
        """What ``generator.checkpoint_meta`` shows (``generator`` is the registry spec)."""
        return {"kind": self.kind, "name": self.name, "generator": {"name": self.name, **self.kwargs},
                "mel": self.mel, "stats": self.stats, "step": self.step, "fingerprint": self.fingerprint,
                "shape": self.shape, "extra": self.extra, "version": self.version}


def _upgrade_v1(meta: dict[str, str], kind: str) -> dict[str, str]:
    """Translate the three version-1 layouts (before the one contract) to version 2's keys."""
    out = {"format": FORMAT, "kind": kind, "version": "0.1.0"}
    if kind == "vocoder":
        spec = json.loads(meta["generator"])
        extra = json.loads(meta.get("extra", "{}"))
        out.update(name=spec.pop("name"), kwargs=json.dumps(spec), mel=meta["mel"], step=str(extra.get("step", 0)),
                   extra=json.dumps(extra))
        if "stats" in extra:
            out["stats"] = json.dumps(extra["stats"])
    elif kind == "stage-one":
        extra = json.loads(meta["meta"])
        out.update(name="specgan", kwargs=meta["g_kwargs"], mel=json.dumps(extra["mel"]),
                   stats=json.dumps(extra["stats"]), step=meta["step"],
                   extra=json.dumps({"vocab": json.loads(meta["vocab"]), "label": extra.get("label"),
                                     "recipe": extra.get("recipe")}))
    else:
        out.update(name="classifier", kwargs=json.dumps({"n_classes": len(json.loads(meta["vocab"])),
                                                         "width": int(meta["width"])}),
                   extra=json.dumps({"vocab": json.loads(meta["vocab"]), "shape": json.loads(meta["shape"])}))
    return out


def load_model(path: str | Path, build: Callable[[ModelFile], torch.nn.Module], kind: str,
               device: str | torch.device = "cpu",
               rename: Callable[[ModelFile], Callable[[str], str] | None] | None = None
               ) -> tuple[torch.nn.Module, ModelFile]:
    """Rebuild a model written by :func:`save_model` (strict: every tensor and shape must match).

    Args:
        path: The ``.safetensors`` file.
        build: ``ModelFile → module`` (the caller's registry lookup). Called once on the meta
            device to check shapes without allocating, then once for real.
        kind: The kind expected (a vocoder file given as a stage-one model is refused).
        device: Where the module goes.
        rename: ``ModelFile → (tensor name in the file → the module's name for it)``, for models
            whose tensors were renamed since the file was written (None: names as they are).

    Returns:
        (module in eval mode, its :class:`ModelFile`). Every failure is a :class:`ModelFileError`
        with one line naming the file.
    """
    path = Path(path)
    meta, shapes = read_header(path)
    info = ModelFile(path, meta)
    if info.kind != kind:
        raise ModelFileError(f"{path}: a {info.kind} model, not a {kind} model")
    new_name = (rename(info) if rename is not None else None) or (lambda key: key)
    shapes = {new_name(k): v for k, v in shapes.items()}
    try:
        with torch.device("meta"):
            skeleton = build(info)
    except (ValueError, TypeError, KeyError) as e:
        raise ModelFileError(f"{path}: cannot rebuild {kind} {info.name!r} from its metadata: "
                             f"{' '.join(str(e).split())}") from None
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    del skeleton
    missing, unexpected = sorted(set(expected) - set(shapes)), sorted(set(shapes) - set(expected))
    if missing or unexpected:
        raise ModelFileError(f"{path}: tensors do not match {kind} {info.name!r} "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    wrong = [k for k in expected if shapes[k][1] != expected[k]]
    if wrong:
        k = wrong[0]
        raise ModelFileError(f"{path}: tensor {k} has shape {list(shapes[k][1])}, the metadata implies "
                             f"{list(expected[k])} ({len(wrong)} tensors differ)")
    n_params = sum(math.prod(s) for s in expected.values())
    if n_params > MAX_PARAMETERS:
        raise ModelFileError(f"{path}: {n_params} parameters is more than this loader builds ({MAX_PARAMETERS})")
    from safetensors.torch import load_file

    module = build(info)
    try:
        tensors = load_file(str(path))
    except Exception as e:  # noqa: BLE001 (safetensors raises its own error types)
        raise ModelFileError(f"{path}: unreadable ({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
    own = module.state_dict()
    tensors = {new_name(k): v for k, v in tensors.items()}
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()}, strict=True)
    return module.to(device).eval(), info


def _build_vocoder(info: ModelFile) -> torch.nn.Module:
    from vocoder.registry import build_generator

    if info.mel is None:
        raise ValueError("no mel config")
    return build_generator({"name": info.name, **info.kwargs}, info.mel).remove_weight_norm()


def save_generator(path: str | Path, generator, spec: Mapping[str, Any], step: int,
                   stats: Mapping[str, Any] | None = None, shape: Mapping[str, Any] | None = None,
                   extra: Mapping[str, Any] | None = None, half: bool = False) -> Path:
    """:func:`save_model` for a vocoder generator: rebuilt from ``spec`` (which also proves the spec
    reproduces the architecture; deepcopy breaks weight-norm parametrisations), weight norm folded.
    """
    from vocoder.registry import build_generator

    g = build_generator(spec, generator.mel_cfg)
    g.load_state_dict({k: v.detach().cpu() for k, v in generator.state_dict().items()})
    g.remove_weight_norm()
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    return save_model(path, g, kind="vocoder", name=spec["name"], kwargs=kwargs, step=step, mel=generator.mel_cfg,
                      stats=stats, shape=shape, extra=extra, half=half)


def load(path: str | Path, device: str | torch.device = "cpu", kwargs: Mapping[str, Any] | None = None):
    """A vocoder generator from ``model.safetensors``, in eval mode, weight norm folded;
    ``generator.checkpoint_meta`` holds the metadata (:meth:`ModelFile.as_dict`).

    ``kwargs`` overrides constructor arguments recorded in the file for this load only (inference
    settings such as the ``phase`` vocoder's ``pghi_mode`` or ``refine_iter``); one that would change
    a tensor's shape is refused like any mismatch, naming the file.
    """
    if not kwargs:
        build = _build_vocoder
    else:
        def build(info: ModelFile) -> torch.nn.Module:
            import copy

            changed = copy.copy(info)
            changed.kwargs = {**info.kwargs, **kwargs}
            return _build_vocoder(changed)
    g, info = load_model(path, build, "vocoder", device)
    g.checkpoint_meta = info.as_dict()
    if kwargs:  # what this generator runs with
        g.checkpoint_meta["generator"] = {**g.checkpoint_meta["generator"], **kwargs}
    return g
