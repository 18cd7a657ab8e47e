"""Stage 4: noise (+ label) → stage-one log-mels → a vocoder → WAV files; and copy synthesis.

Which models: the recipe's own trained ones when its work dir has them, else the shipped ones
named in ``pretrained:`` — so ``specgan synth --recipe recipes/music.yaml`` works on a fresh
clone. The vocoder is one flag (``--vocoder``) or one key (``synth.vocoder``): ``auto``,
``griffinlim`` (no training), a vocoder registry name with no weights, or a ``model.safetensors``
path / run folder. Both are found and loaded by :func:`specgan.checkpoints.load_pair` (which
refuses a vocoder whose MelConfig differs from the stage-one model's, naming the fields).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from specgan.recipe import Recipe
from vocoder.checkpoint import atomic_write

__all__ = ["Edge", "SynthResult", "edge_repair", "synth", "synth_plan", "vocode_files", "vocode_protected", "wav_name"]

log = logging.getLogger(__name__)

MAX_CLIPS = 100_000  # per synth call


@dataclass
class SynthResult:
    """What one synth call wrote: the folder, its WAVs, and each clip's label and seed."""

    out: Path
    wavs: list[Path]
    labels: list
    seeds: list[int]
    stage_one: str
    vocoder: str
    #: WAV name → {"gain_db": < 0, "clipped": samples still clamped (when any)} for each clip
    #: :func:`protect_peak` scaled
    scaled: dict = field(default_factory=dict)


#: |sample| at or above this counts as at full scale (clipped) in what is written
FULL_SCALE = 1.0 - 1e-4
#: The largest |sample| synth writes: a clip whose rebuild goes past it is scaled down as a whole ...
PEAK = 0.98
#: ... by at most this much: a clip that needs more holds a burst (a blotch stage one drew); scaling
#: the whole note down for it would silence the note, so the burst is clamped and counted instead
MAX_CUT_DB = 6.0


def protect_peak(wav: np.ndarray, peak: float = PEAK, max_cut_db: float = MAX_CUT_DB) -> tuple[np.ndarray, float, int]:
    """``wav`` kept under full scale: scaled down as a whole so that its largest |sample| is ``peak``
    when it would be more, by at most ``max_cut_db``; what still exceeds full scale after that is
    clamped. Returns (the samples, the gain applied in dB (0.0 when none), the samples clamped).

    A vocoder rebuilds a generated mel's magnitude, not its crest factor: the rebuilt phase can put
    a loud note's peaks past full scale, where a clamp alone would clip them (audible clicks). A
    generated clip's level is the generator's draw, so a small gain is the better loss.
    """
    top = float(np.max(np.abs(wav))) if wav.size else 0.0
    if top <= peak:
        return wav, 0.0, 0
    gain = max(peak / top, 10 ** (-max_cut_db / 20))
    out = np.clip(wav * gain, -1.0, 1.0).astype(wav.dtype)
    return out, float(20 * np.log10(gain)), int((np.abs(out) >= FULL_SCALE).sum())


#: The fade synth puts at a clip's end when it repairs the cut edge (:func:`edge_repair`)
EDGE_FADE_SECONDS = 0.03


@dataclass(frozen=True)
class Edge:
    """How a generated clip's end is rendered (:func:`edge_repair`): frames from ``hold_from`` on
    take the value of the frame before it, and the waveform's last ``fade`` samples fade to zero.
    ``Edge()`` changes nothing.
    """

    hold_from: int | None = None
    fade: int = 0


def edge_repair(recipe: Recipe, mel_cfg, mode: str | None = None) -> Edge:
    """What to do at a generated clip's end, by ``synth.edge`` (or ``mode``).

    A model trained on clips cut from longer sounds (``data.preprocess.clip_seconds`` without
    ``fade_out``: the first second of a held note) learnt the cut as part of every clip: the
    STFT's frames whose window reaches past the clip's end see a broadband stripe (up to 4-6 nats
    in every band), which a vocoder renders as a burst (of 48 default music notes, 17 peaked past
    2x full scale). ``hold`` gives those frames the last value whose window lies inside the clip
    and fades the last 30 ms of the waveform (the note ends as a fade, not a click). ``auto``
    holds exactly for such models; ``raw`` renders the frames as drawn.
    """
    mode = mode or recipe.synth.edge
    pre = recipe.data.preprocess
    if mode == "raw" or pre.clip_seconds is None or (mode == "auto" and pre.fade_out is not None):
        return Edge()
    clip = int(round(pre.clip_seconds * mel_cfg.sample_rate))
    # frame t is centred on t * hop; its window reaches past the clip's end when t*hop + n_fft/2 > clip
    hold_from = max(1, (clip - mel_cfg.n_fft // 2) // mel_cfg.hop_length + 1) if mel_cfg.center else \
        max(1, (clip - mel_cfg.n_fft) // mel_cfg.hop_length + 1)
    return Edge(hold_from, int(round(EDGE_FADE_SECONDS * mel_cfg.sample_rate)))


def vocode_protected(voc, logmel, length: int, edge: Edge = Edge()) -> tuple[np.ndarray, float, int]:
    """One generated log-mel (1, n_mels, T) through ``voc`` unclamped, cut to ``length`` samples and
    kept under full scale by :func:`protect_peak`: (samples, gain in dB, samples still clamped). What
    synth, :func:`specgan.generate`, augment and the report write for a generated clip. ``edge``
    (:func:`edge_repair`) holds the frames that straddle the training clip's cut and fades the end.
    """
    if edge.hold_from is not None and edge.hold_from < logmel.shape[-1]:
        logmel = logmel.clone()
        logmel[..., edge.hold_from :] = logmel[..., edge.hold_from - 1 : edge.hold_from]
    clip_output = getattr(voc, "clip_output", True)
    voc.clip_output = False  # the peak is protected by a gain below, not by the generator's clamp
    try:
        with torch.inference_mode():
            wav = voc(logmel.float())
    finally:
        voc.clip_output = clip_output
    wav = wav.reshape(-1)[:length].float().cpu().numpy()
    if edge.fade:
        from specgan.audio import fade_out

        wav = fade_out(wav, edge.fade)
    return protect_peak(wav)


def wav_name(label, seed: int | None, prefix: str = "") -> str:
    """``<prefix><label>_seed00042.wav`` (label made file-name safe, several labels' values joined by
    ``-``: ``60-violin_seed00003.wav``; no seed part when None).
    """
    parts = [prefix] if prefix else []
    text = "-".join(map(str, label.values())) if isinstance(label, dict) else str(label)
    parts += [] if label is None else ["".join(c if c.isalnum() or c in "-." else "-" for c in text)]
    parts += [] if seed is None else [f"seed{seed:05d}"]
    return "_".join(parts) + ".wav"


def synth_plan(chosen: list, n: int, seed: int) -> list[tuple[object, int]]:
    """What synth draws: clip i is (label ``chosen[i % len(chosen)]``, noise seed ``seed + i``); with
    several labels a request may leave keys out, which :meth:`StageOne.resolve` fills from the seed.

    The report (:mod:`specgan.report`) shows clips of the same plan, so a clip heard there is the
    file ``wav_name(label, seed)`` of ``specgan synth`` with the same ``--seed``.
    """
    return [(chosen[i % len(chosen)], seed + i) for i in range(n)]


def default_labels(model) -> list:
    """What synth draws without ``--label``: every label in turn; with several labels, every value
    of the first in turn, the others drawn per clip (``[{"pitch": 36}, {"pitch": 37}, ...]``).
    """
    space = model.labels
    if not space.multi:
        return list(model.vocab)
    return [{space.name(0): v} for v in space.vocabs[0]]


_SET_FILES = ("synth.json", "mels.npy", "grid.png")


def _check_replaceable(out: Path) -> None:
    """``out`` is replaced as a whole by a synth call: refuse anything but a missing or empty folder,
    or one holding a previous synth set (its synth.json, WAVs, mels.npy, grid.png; no sub-folders).
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"--out {out}: exists and is not a folder")
    entries = list(out.iterdir())
    if not entries:
        return
    foreign = [p.name for p in entries if p.is_dir() or not (p.suffix == ".wav" or p.name in _SET_FILES)]
    if not (out / "synth.json").exists() or foreign:
        what = f"holds {', '.join(sorted(foreign)[:3])}" if foreign else "holds no synth.json"
        raise FileExistsError(f"--out {out}: {what}; synth replaces its output folder as a whole, so give it a "
                              f"new or empty folder, or one a previous synth call wrote")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recover(out: Path) -> None:
    """Tidy what a killed synth call left beside ``out``: its unfinished ``.<name>.tmp-<pid>`` set is
    removed; a set moved aside for the swap (``.<name>.old-<pid>``) is put back if ``out`` is gone.
    """
    for p in sorted(out.parent.glob(f".{out.name}.*-*")):
        kind, _, pid = p.name[len(out.name) + 2 :].rpartition("-")
        if kind not in ("tmp", "old") or not pid.isdigit() or _pid_alive(int(pid)) or not p.is_dir():
            continue
        if kind == "old" and not out.exists():
            p.rename(out)
            log.warning("synth: restored %s from an interrupted swap (%s)", out, p.name)
        else:
            shutil.rmtree(p)
            log.info("synth: removed %s left by an interrupted call", p)


def _swap_in(stage: Path, out: Path) -> None:
    """Replace the folder ``out`` by ``stage`` (two renames; :func:`_recover` mends a kill between them)."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        stage.rename(out)
        shutil.rmtree(old)
    else:
        stage.rename(out)


def _grid_png(path: Path, mels: np.ndarray, titles: list[str], suptitle: str, mel_cfg=None) -> None:
    """Up to 32 log-mels, 8 per row, each with time (s) and frequency (Hz) ticks; ``suptitle`` names
    the models (also written into the PNG's ``Title``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from specgan.plotting import mel_axes, save_figure

    n = min(len(mels), 32)
    cols = min(n, 8)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 1.8 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            ax.imshow(mels[i], origin="lower", aspect="auto", cmap="magma")
            ax.set_title(titles[i], fontsize=7)
            # labels on the left column and the bottom row only; ticks everywhere
            mel_axes(ax, mel_cfg, mels[i].shape[-1], labels=False)
            if i % cols == 0:
                ax.set_ylabel("frequency (Hz)" if mel_cfg is not None else "mel bin", fontsize=5, labelpad=1)
            if i >= n - cols:
                ax.set_xlabel("time (s)" if mel_cfg is not None else "frame", fontsize=5, labelpad=1)
        else:
            ax.axis("off")
    fig.suptitle(suptitle, fontsize=8, wrap=True)
    fig.tight_layout()
    save_figure(fig, path, suptitle)
    plt.close(fig)


def synth(recipe: Recipe, n: int | None = None, labels: list | None = None, seed: int | None = None,
          vocoder_name: str | None = None, out: str | Path | None = None, duration: float | None = None,
          interpolate: tuple[int, int] | None = None, points: int = 8, device: str = "auto",
          progress: bool = True, extra: dict | None = None) -> SynthResult:
    """Generate ``n`` clips (or a latent walk) and write WAVs, ``mels.npy``, ``grid.png`` and
    ``synth.json`` (what made each file, plus ``extra``) into ``out`` (default ``<work>/synth``).

    One call writes one complete set: everything goes into a sibling ``.<out>.tmp-<pid>`` folder
    that replaces ``out`` only when finished, so ``out`` holds either the previous set or this one,
    never a mix, and an interrupted call (exception, Ctrl-C) leaves the previous set untouched.
    ``out`` must therefore be new, empty, or a previous synth set (anything else is refused).
    """
    from specgan.checkpoints import load_pair
    from specgan.training import pick_device

    sc = recipe.synth
    n = sc.n if n is None else n
    seed = sc.seed if seed is None else seed
    dev = pick_device(device)
    if interpolate is None and n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    if interpolate is None and n > MAX_CLIPS:
        raise ValueError(f"--n {n} is more than {MAX_CLIPS} clips in one call; run several calls with --seed "
                         f"offsets (clip i uses seed + i) and different --out folders")
    if interpolate is not None and not 2 <= points <= MAX_CLIPS:
        raise ValueError(f"--points must be 2 to {MAX_CLIPS} for a latent walk, got {points}")
    pair = load_pair(recipe, vocoder_name or sc.vocoder, dev)
    model, g_path, voc, voc_desc = pair.stage_one, pair.stage_one_path, pair.vocoder, pair.vocoder_desc
    mel_cfg = model.mel_cfg
    span = model.generator.frames * mel_cfg.hop_length
    duration = duration if duration is not None else sc.duration
    if duration is None:
        duration = recipe.data.preprocess.clip_seconds
    length = span if duration is None else int(round(duration * mel_cfg.sample_rate))
    if not 0 < length <= span:
        raise ValueError(f"--duration {duration}: this model generates 1 to {span} samples "
                         f"({span / mel_cfg.sample_rate:.3f} s) per clip")

    conditional = model.conditional
    if labels is None:
        labels = sc.labels
    if not conditional and labels:
        raise ValueError(f"{g_path} is unconditional: --label is not accepted")
    for lab in labels or []:
        model.label_index(lab)  # unknown label → clear error before any work
    out = Path(os.path.abspath(out if out is not None else recipe.work / "synth"))
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _recover(out)
    # WAV data + headers (44 bytes; a file takes whole blocks) + mels.npy rows, grid.png and
    # synth.json, then a 10 % margin: a disk filled to the last byte fails the next write anyway.
    clips = points if interpolate is not None else n
    need = clips * (2 * length + 4096 + mel_cfg.n_mels * model.generator.frames * 4 + 200) + (2 << 20)
    need = int(need * 1.1)
    free = shutil.disk_usage(out.parent).free
    if need > free:
        raise ValueError(f"{out}: {human_bytes(need)} needed for the WAVs and mels, {human_bytes(free)} free on "
                         f"its disk")
    stage = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    with _out_lock(out):
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir()
        try:
            result = _write_set(recipe, model, g_path, voc, voc_desc, stage, out, n, labels, seed, length,
                                interpolate, points, dev, progress, extra)
            _swap_in(stage, out)
        finally:
            if stage.exists():
                shutil.rmtree(stage)
    return result


@contextlib.contextmanager
def _out_lock(out: Path):
    """One synth per output folder at a time (an exclusive ``flock`` on ``.<name>.lock`` beside it,
    released however the process ends): a second call into the same ``--out`` is refused at once
    instead of silently replacing the first's set.
    """
    import fcntl

    from specgan.workdir import WorkDirBusy

    path = out.with_name(f".{out.name}.lock")
    f = open(path, "a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip() or "another process"
            raise WorkDirBusy(f"--out {out}: another synth is writing it ({who}); wait for it or give another "
                              f"--out") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        try:
            yield
        finally:  # done with the folder: the lock file goes too (a later call makes a new one)
            path.unlink(missing_ok=True)
    finally:
        f.close()


def _write_set(recipe, model, g_path, voc, voc_desc, stage: Path, out: Path, n, labels, seed, length,
               interpolate, points, dev, progress, extra) -> SynthResult:
    """The body of :func:`synth`: sample, vocode and write the set into ``stage`` (paths in the
    result are the final ones under ``out``).
    """
    from tqdm import tqdm

    from specgan.audio import write as write_audio

    mel_cfg = model.mel_cfg
    conditional = model.conditional
    # One clip per forward pass, in stage one (StageOne.sample's default) and in the vocoder: a
    # batched convolution may sum in another order than a lone one (186 LSB apart after
    # Griffin-Lim, measured), so drawing clip by clip is what makes `--label L --seed S --n 1`
    # write the very samples of the set's file (tests/test_mistakes_caught.py). The cost is
    # small: the vocoders run per clip anyway (PGHI, the numba Griffin-Lim) and stage one is a
    # few ms a clip.
    if interpolate is not None:
        a, b = interpolate
        lab = (labels or default_labels(model))[0] if conditional else None
        lab = model.resolve(lab, [a])[0]
        plan = [(lab, None)] * points
        width = max(2, len(str(points - 1)))
        names = [wav_name(lab, None, prefix=f"walk{a}-{b}_{i:0{width}d}") for i in range(points)]
        walk = model.interpolate(a, b, points, lab)
        clips = (walk[i : i + 1] for i in range(points))
    else:
        chosen = list(labels) if labels else (default_labels(model) if conditional else [None])
        # each clip's label in full: a key a request leaves out is drawn from the clip's seed
        plan = [(model.resolve(lab, [s])[0], s) for lab, s in synth_plan(chosen, n, seed)]
        names = [wav_name(lab, s) for lab, s in plan]
        clips = (model.sample(lab, seeds=[s]) for lab, s in plan)

    edge = edge_repair(recipe, mel_cfg)
    wavs, all_logmel, scaled = [], [], {}
    with tqdm(total=len(plan), desc="synth", unit="clip", disable=not progress or len(plan) <= 4) as bar:
        for i, logmel in enumerate(clips):
            wav, gain_db, clamped = vocode_protected(voc, logmel.to(dev), length, edge)
            if gain_db:
                scaled[names[i]] = {"gain_db": round(gain_db, 2), **({"clipped": clamped} if clamped else {})}
            write_audio(stage / names[i], wav, mel_cfg.sample_rate, subtype="PCM_16")
            wavs.append(out / names[i])
            all_logmel.append(logmel.cpu().numpy())
            bar.update(1)
    mels = np.concatenate(all_logmel).astype(np.float32)
    np.save(stage / "mels.npy", mels)
    titles = [p.stem for p in wavs]
    _grid_png(stage / "grid.png", mels, titles,
              f"{recipe.name}: stage one {g_path} (step {model.step}); vocoder {voc_desc}", mel_cfg)
    result = SynthResult(out, wavs, [lab for lab, _ in plan], [s for _, s in plan], str(g_path), voc_desc, scaled)
    blob = {
        "recipe": recipe.path, "stage_one": str(g_path), "stage_one_step": model.step, "vocoder": voc_desc,
        "sample_rate": mel_cfg.sample_rate, "samples_per_clip": length, "truncation": model.truncation,
        "smoothing": model.smoothing,
        "edge": {"hold_from": edge.hold_from, "fade_samples": edge.fade},
        "interpolate": list(interpolate) if interpolate else None,
        "peak": PEAK,
        "max_cut_db": MAX_CUT_DB,
        "clips": [{"wav": p.name, "label": lab, "seed": s, **scaled.get(p.name, {})}
                  for p, (lab, s) in zip(wavs, plan, strict=True)],
        **(extra or {}),
    }
    atomic_write(stage / "synth.json", lambda tmp: tmp.write_text(json.dumps(blob, indent=1)))
    return result


def _npy_rows(item: Path) -> int | None:
    """Rows of a log-mel ``.npy`` from its header only: None for (n_mels, T), N for (N, n_mels, T)
    (synth's own ``mels.npy``); anything else is refused, naming the file.
    """
    try:
        arr = np.load(item, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{item}: not a NumPy .npy array of log-mels ({' '.join(str(e).split())})") from e
    if arr.ndim == 2:
        return None
    if arr.ndim == 3 and arr.shape[0] >= 1:
        return arr.shape[0]
    raise ValueError(f"{item}: expected a (n_mels, frames) log-mel or a stack (N, n_mels, frames) like synth's "
                     f"mels.npy, got shape {tuple(arr.shape)}")


def _vocode_targets(inputs: list[Path], out: Path) -> list[tuple[Path, int | None, Path]]:
    """(input, row, output) per WAV to write: ``<out>/<stem>.wav`` per input, ``<out>/<stem>_<i>.wav``
    per row of an (N, n_mels, T) ``.npy``; a name already taken (a/x.wav and b/x.wav, or x.wav and
    x.npy) gets ``-2``, ``-3``... An output that is one of the inputs is refused before any work.
    """
    taken: set[str] = set()
    jobs = []
    for item in inputs:
        rows = _npy_rows(item) if item.suffix == ".npy" else None
        width = len(str(rows - 1)) if rows else 0
        for row in range(rows) if rows else [None]:
            stem = item.stem if row is None else f"{item.stem}_{row:0{max(3, width)}d}"
            name, k = f"{stem}.wav", 1
            while name.lower() in taken:  # lower(): two names that differ in case are one file on some filesystems
                k += 1
                name = f"{stem}-{k}.wav"
            taken.add(name.lower())
            jobs.append((item, row, out / name))
    targets = [t for _, _, t in jobs]
    for target in targets:
        for item in inputs:
            if target.resolve() == item.resolve() or (target.exists() and os.path.samefile(target, item)):
                raise FileExistsError(f"{target}: is the input {item}; refusing to write over an input "
                                      f"(give another --out)")
    return jobs


def _check_vocode_input(item: Path, row: int | None, mel_cfg) -> None:
    """One input of ``vocode``, checked without vocoding it: a ``.npy`` must hold real, finite
    (n_mels, T ≥ 1) log-mels of the vocoder's n_mels (read in slices: a long one is never whole in
    memory); an audio file must be one libsndfile reads, with samples.
    """
    import soundfile as sf

    if item.suffix != ".npy":
        try:
            info = sf.info(str(item))
        except (RuntimeError, sf.LibsndfileError) as e:
            raise ValueError(f"{item}: not an audio file libsndfile can read ({' '.join(str(e).split())[:120]})") \
                from None
        if info.frames < 1:
            raise ValueError(f"{item}: no samples")
        need = mel_cfg.n_fft // 2 + 1  # the centred STFT's reflect padding needs more samples than this
        have = int(info.frames * mel_cfg.sample_rate / info.samplerate)
        if mel_cfg.center and mel_cfg.pad_mode == "reflect" and have < need:
            raise ValueError(f"{item}: too short: {have} samples at {mel_cfg.sample_rate} Hz, the vocoder's mel "
                             f"(n_fft {mel_cfg.n_fft}) needs at least {need}")
        return
    arr = np.load(item, mmap_mode="r", allow_pickle=False)
    one = arr if row is None else arr[row]
    if one.ndim != 2 or one.shape[0] != mel_cfg.n_mels:
        raise ValueError(f"{item}: expected log-mels of n_mels={mel_cfg.n_mels} (the vocoder's), "
                         f"got shape {tuple(arr.shape)}")
    if np.iscomplexobj(one) or not np.issubdtype(one.dtype, np.number):
        raise ValueError(f"{item}: a {one.dtype} array; log-mels are real numbers")
    if one.shape[-1] < 1:
        raise ValueError(f"{item}: a log-mel of 0 frames (shape {tuple(arr.shape)}): nothing to vocode")
    for a in range(0, one.shape[-1], 65536):
        if not np.isfinite(one[:, a: a + 65536]).all():
            raise ValueError(f"{item}: contains NaN or Inf" + (f" (row {row})" if row is not None else ""))


def human_bytes(n: float) -> str:
    """1536 → '1.5 kB', 2.5e9 → '2.50 GB': a size in the unit that reads best."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}" if unit == "GB" else f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


def _write_streamed(path: Path, pieces, sr: int, clipped: list | None = None) -> Path:
    """Write (1, samples) waveform pieces into ``path`` as 16-bit WAV as they come, under a hidden
    temporary name renamed into place at the end: a killed or failed run leaves no WAV that reads as
    whole, and what was there before stays until the new file is complete. ``clipped``, when given,
    gets the number of samples written at full scale (a streamed file cannot be scaled afterwards
    without a second pass, so a rebuild past full scale is clamped and counted).
    """
    import soundfile as sf

    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    at_full_scale = 0
    try:
        with sf.SoundFile(str(tmp), "w", samplerate=sr, channels=1, format="WAV", subtype="PCM_16") as f:
            for piece in pieces:
                piece = piece[0].clamp(-1, 1)
                at_full_scale += int((piece.abs() >= FULL_SCALE).sum())
                f.write(piece.cpu().numpy())
        if clipped is not None:
            clipped.append(at_full_scale)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def vocode_files(inputs: list[str | Path], vocoder_name: str, recipe: Recipe | None = None,
                 out: str | Path = "vocoded", chunk_frames: int = 512, device: str = "auto") -> list[Path]:
    """Copy synthesis: each ``.wav`` (→ its log-mel in the vocoder's MelConfig) or ``.npy`` log-mel
    ((n_mels, T), or synth's (N, n_mels, T) ``mels.npy``; the vocoder's MelConfig) → ``<out>/<stem>.wav``
    (``<stem>_000.wav``... per row; see :func:`_vocode_targets`: never over an input, never two
    inputs onto one file), long inputs in overlapping chunks.
    """
    from specgan.audio import read as read_audio
    from specgan.training import pick_device
    from vocoder.inference import vocode_stream
    from vocoder.mel import MelSpectrogram

    inputs = [Path(p) for p in inputs]
    for item in inputs:
        if item.is_dir():
            raise ValueError(f"{item}: is a folder; give the .wav or .npy files in it (e.g. {item}/*.wav)")
        if not item.is_file():
            raise FileNotFoundError(f"{item}: not found")
    out = Path(out)
    jobs = _vocode_targets(inputs, out)
    dev = pick_device(device)
    mel_cfg = recipe.mel if recipe is not None else None
    from specgan.checkpoints import find_vocoder, load_vocoder

    given = find_vocoder(vocoder_name)
    if not given.exists() and (given.suffix == ".safetensors" or len(given.parts) > 1):
        raise FileNotFoundError(f"--vocoder {vocoder_name}: not found")
    if mel_cfg is None and not given.exists():
        raise ValueError(f"--vocoder {vocoder_name}: give --recipe so its mel settings are known")
    voc, desc = load_vocoder(recipe, vocoder_name, mel_cfg, dev)
    mel_cfg = voc.mel_cfg
    for item, row, _ in jobs:  # every input checked before the first output is written
        _check_vocode_input(item, row, mel_cfg)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    mel_fn = MelSpectrogram(mel_cfg)
    for item, row, path in jobs:
        if item.suffix == ".npy":
            arr = np.load(item, mmap_mode="r", allow_pickle=False)
            one = arr if row is None else arr[row]
            frames = one.shape[-1]

            def mel_of(a, b, one=one):  # from the memory map: only these frames are read
                return torch.from_numpy(np.array(one[:, a:b], dtype=np.float32))
        else:
            y, _ = read_audio(item, mel_cfg.sample_rate)
            wave = torch.from_numpy(np.ascontiguousarray(y, np.float32))
            frames = 1 + wave.shape[-1] // mel_cfg.hop_length

            def mel_of(a, b, wave=wave):  # only these frames' STFT (a long file's mel never whole)
                return mel_fn.frame_range(wave, a, b)
        clipped: list[int] = []
        written.append(_write_streamed(path, vocode_stream(voc, lambda a, b, f=mel_of: f(a, b).to(dev), frames,
                                                           chunk_frames), mel_cfg.sample_rate, clipped))
        if clipped[0]:
            log.warning("vocode: %s: %d samples at full scale (clipped): the rebuild of this input goes past "
                        "full scale; scale the input down (by 2 dB or so) to avoid it", path, clipped[0])
        log.info("vocode: %s → %s (%s, %.2f s)", item, path, Path(desc).name,
                 frames * mel_cfg.hop_length / mel_cfg.sample_rate)
    return written
