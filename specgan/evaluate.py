"""Stage 5: how good is a trained recipe? Every number, with its protocol, in ``<work>/eval/metrics.json``.

**Generation** (stage one), N generated clips against N real clips of the held-out split (N =
``evaluate.n_generated`` or the split's size, the generated labels matching the real clips'):

- every generation metric reads real and generated mels in the normalisation of the work's own
  features (:func:`in_work_statistics`), so models trained on other builds of the data are scored
  by the same classifier and their numbers compare;
- the project classifier (:mod:`specgan.classifier`, trained on the real train split; its own test
  accuracy is reported as the ceiling): Inception Score of generated and of real clips, Fréchet
  distance of generated vs real embeddings (and of real train vs real test as the floor), and the
  label accuracy of generated clips (does a generated "seven" classify as seven?);
- NDB/JSD on k-means bins of the real normalised mels;
- diversity (mean pairwise distance, generated vs real) and the distance of each clip to its
  nearest training clip (generated vs real held-out: much smaller for generated = memorised);
- the modulation spectrum: how fast each mel band moves over time, generated over real power per
  band of modulation frequencies (:func:`specgan.metrics.modulation_ratio`; above 1 above 8 Hz: a
  flicker from frame to frame that the vocoder renders as roughness);
- for pitch labels: the generated notes, vocoded, tracked with pYIN against the asked pitch (real
  held-out notes give the tracker's own ceiling);
- for speech: harmonicity (:func:`specgan.metrics.harmonicity`, the periodicity of active frames)
  of the generated clips vocoded, against the real held-out mels through the same vocoder (and
  the real audio itself).

**Vocoder** (stage two), by copy synthesis of the held-out split (preprocessed as in training →
log-mel → vocoder → compared with the original): mel-L1, multi-resolution STFT distance, log-F0
RMSE (cents) and V/UV error (pYIN), for speech wideband PESQ and STOI, and × real time on this
process's threads. Griffin-Lim runs beside the trained vocoder on the same clips as the floor.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from specgan.recipe import Recipe
from vocoder.checkpoint import atomic_write

__all__ = ["copy_synthesis", "evaluate", "generation_metrics", "is_speech", "summary_lines"]

log = logging.getLogger(__name__)



def is_speech(recipe: Recipe) -> bool:
    """PESQ/STOI apply: ``evaluate.speech`` if set, else what the data source declares (a builtin's
    ``speech`` in :data:`specgan.data.sources.SOURCES`, a layout's in
    :data:`specgan.data.layouts.SPEECH_LAYOUTS`; a folder: not speech).
    """
    from specgan.data.layouts import SPEECH_LAYOUTS
    from specgan.data.prepare import parse_source
    from specgan.data.sources import SOURCES

    if recipe.evaluate.speech is not None:
        return recipe.evaluate.speech
    kind, arg = parse_source(recipe.data.source)
    return SOURCES[arg].speech if kind == "builtin" else kind in SPEECH_LAYOUTS


def _clips(recipe: Recipe, split: str, max_items: int | None) -> list[torch.Tensor]:
    from specgan.audio import load_clip
    from specgan.data.prepare import load_split

    mel_cfg = recipe.mel
    items = load_split(recipe, split)[:max_items]
    if not items:
        raise ValueError(f"evaluate: split {split!r} of {recipe.work / 'data'} is empty")
    clips = []
    for it in items:
        y = load_clip(it.path, mel_cfg.sample_rate, recipe.data.preprocess, mel_cfg.n_fft)
        clips.append(torch.from_numpy(mel_cfg.crop_samples(y))[None, None])
    return clips


@torch.inference_mode()
def copy_synthesis(generator, clips: list[torch.Tensor], recipe: Recipe, speech: bool = False,
                   f0: bool = True, per_clip: bool = False, visqol: bool = False, on_clip=None) -> dict:
    """Mean mel-L1, MR-STFT distance, spectral convergence, F0 metrics, hop-rate buzz (and PESQ/STOI
    when ``speech``; ViSQOL's audio mode when ``visqol``) of ``generator`` re-synthesising ``clips``;
    × real time of the generator alone. With ``per_clip``
    the result also holds ``"per_clip"``: each metric's value per clip, in clip order (NaN where a
    clip has none, e.g. F0 on a clip voiced in neither signal), for paired comparisons.
    ``on_clip(i, y_hat)`` is called with each clip's re-synthesis (a float32 array), e.g. to keep
    the first few for the report.
    """
    from specgan import metrics as M
    from vocoder.losses import MelL1, MultiResolutionSTFTLoss
    from vocoder.mel import MelSpectrogram

    mel_cfg, hop, sr = recipe.mel, recipe.mel.hop_length, recipe.mel.sample_rate
    mel_fn, mel_l1 = MelSpectrogram(mel_cfg), MelL1(mel_cfg)
    mrstft = MultiResolutionSTFTLoss(recipe.vocoder.stft_resolutions)
    rows: dict[str, list[float]] = {}
    busy = 0.0
    from specgan.progress import bar

    for i, y in enumerate(bar(clips, desc=f"evaluate: copy synthesis ({getattr(generator, 'registry_name', 'vocoder')})",
                 unit="clip")):
        mel = mel_cfg.crop_frames(mel_fn(y), y.shape[-1])
        t = time.perf_counter()
        y_hat = generator(mel)
        busy += time.perf_counter() - t
        if on_clip is not None:
            on_clip(i, y_hat[0, 0].numpy())
        row = {"mel_l1": float(mel_l1(y_hat, y)), "mrstft": float(mrstft(y_hat, y))}
        ref, est = y[0, 0].numpy(), y_hat[0, 0].numpy()
        row["buzz_db"] = M.buzz_db(est, ref, sr, hop)
        row["spectral_convergence"] = M.spectral_convergence(ref, est)
        if visqol:
            row["visqol"] = M.visqol_audio(ref, est, sr)
        if f0:
            fm = M.f0_metrics(ref, est, sr, hop=hop)
            row["vuv_error"] = fm["vuv_error"]
            for k in ("f0_rmse_cents", "f0_gpe", "f0_fpe_cents"):
                row[k] = fm[k] if fm["voiced_frames"] else float("nan")
        if speech:
            try:  # PESQ refuses signals in which it finds no speech (e.g. an untrained vocoder's noise)
                row["pesq_wb"] = M.pesq_wb(ref, est, sr) if sr == 16000 else float("nan")
            except Exception as e:  # noqa: BLE001 (the pesq package raises its own exception types)
                log.warning("PESQ failed on a clip (%s): counted as NaN", e)
                row["pesq_wb"] = float("nan")
            row["stoi"] = M.stoi(ref, est, sr)
        for k, v in row.items():
            rows.setdefault(k, []).append(v)
    secs = sum(c.shape[-1] for c in clips) / sr
    with warnings.catch_warnings():  # F0 over clips none of which is voiced: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        out = {**{k: float(np.nanmean(v)) for k, v in rows.items()}, "x_real_time": secs / busy,
               "threads": torch.get_num_threads()}
    # a metric undefined on some clips (STOI of a word shorter than its 384-ms window, F0 of a clip
    # voiced in neither signal) is a mean over fewer clips: say how many
    fewer = {k: int(np.isfinite(v).sum()) for k, v in rows.items() if not np.isfinite(v).all()}
    if fewer:
        out["clips_scored"] = {**fewer, "of": len(clips)}
    if per_clip:
        out["per_clip"] = rows
    return out


def note_items(recipe: Recipe, split: str, max_notes: int | None = None) -> list:
    """The split's single notes with a known MIDI pitch, sorted by (group, pitch, id) and thinned
    evenly to ``max_notes`` so every instrument and the whole pitch range stay in.

    A note is an item whose ``labels.kind`` is ``"note"`` (builtin:music; its excerpts are left out)
    or, in a dataset without kinds, any item of a recipe conditioned on ``pitch`` (builtin:notes,
    NSynth). A TTS engine's ``pitch`` setting (digits, voices) is not a MIDI pitch and never counts.
    """
    from specgan.data.prepare import load_split

    def is_note(it) -> bool:
        kind = it.labels.get("kind")
        return it.labels.get("pitch") is not None and (kind == "note" or kind is None and "pitch" in recipe.data.label_keys)

    notes = [it for it in load_split(recipe, split) if is_note(it)]
    notes.sort(key=lambda it: (it.group, int(it.labels["pitch"]), it.id))
    if max_notes is not None and len(notes) > max_notes:
        notes = [notes[i] for i in np.linspace(0, len(notes) - 1, max_notes).round().astype(int)]
    return notes


@torch.inference_mode()
def copy_pitch(generator, recipe: Recipe, split: str = "test", max_notes: int | None = 147,
               tolerance_cents: float = 50.0, real: dict | None = None) -> dict:
    """Copy synthesis of single notes, scored against the asked pitch: the share of notes whose
    median pYIN pitch lies within ``tolerance_cents`` of their MIDI pitch, for the originals and
    for ``generator``'s copies (issue 12: copies at >= 0.95x the originals' rate), and the copies'
    hop-rate buzz on the notes alone.

    ``real``: the originals' result of an earlier call with the same notes (their pitch tracking is
    the same for every vocoder), so it is not tracked again.

    Returns:
        {"notes", "real", "copies", "ratio", "buzz_db"} with ``real``/``copies`` the dicts of
        :func:`specgan.metrics.pitch_accuracy`; empty when the split has no pitched notes.
    """
    from specgan import metrics as M
    from specgan.audio import load_clip
    from vocoder.mel import MelSpectrogram

    notes = note_items(recipe, split, max_notes)
    if not notes:
        return {}
    mel_cfg = recipe.mel
    mel_fn, sr, hop = MelSpectrogram(mel_cfg), mel_cfg.sample_rate, mel_cfg.hop_length
    refs, copies, buzz = [], [], []
    from specgan.progress import bar

    for it in bar(notes, desc="evaluate: note pitch through the vocoder", unit="note"):
        y = torch.from_numpy(mel_cfg.crop_samples(load_clip(it.path, sr, recipe.data.preprocess, mel_cfg.n_fft)))
        y = y[None, None]
        est = generator(mel_cfg.crop_frames(mel_fn(y), y.shape[-1]))[0, 0].numpy()
        ref = y[0, 0].numpy()
        refs.append(ref)
        copies.append(est)
        buzz.append(M.buzz_db(est, ref, sr, hop))
    midi = [int(it.labels["pitch"]) for it in notes]
    tol = tolerance_cents / 100.0
    if real is None:
        real = M.pitch_accuracy(refs, midi, sr, tolerance=tol, hop=hop)
    gen = M.pitch_accuracy(copies, midi, sr, tolerance=tol, hop=hop)
    ratio = gen["pitch_accuracy"] / real["pitch_accuracy"] if real["pitch_accuracy"] else float("nan")
    return {"protocol": f"median pYIN pitch of each note within {tolerance_cents:g} cents of its MIDI pitch; "
                        f"{len(notes)} notes of the {split} split (every group, the whole pitch range)",
            "notes": len(notes), "real": real, "copies": gen, "ratio": ratio, "buzz_db": float(np.mean(buzz))}


def _split_set(recipe: Recipe, split: str, stats, frames: int, space=None, max_items=None, seed: int = 0):
    """A :class:`MelDataset` of a split's cached features (optionally a seeded random subset),
    indexed in ``space`` (a model's :class:`~specgan.stage_one.labels.LabelSpace`: clips with a
    label it never saw are left out), or unlabelled when None.
    """
    from specgan.features.cache import load_features, load_index
    from specgan.stage_one.data import MelDataset

    index = load_index(recipe.work, split)
    ids = list(index["items"])
    if max_items is not None and len(ids) > max_items:
        ids = [ids[i] for i in sorted(np.random.default_rng(seed).choice(len(ids), max_items, replace=False))]
    labels = [index["items"][i]["label"] for i in ids] if recipe.data.label and space is not None \
        else [None] * len(ids)
    if space is not None:  # labels the model never saw cannot be asked for
        def known(lab) -> bool:
            values = lab if space.multi else [lab]
            return len(values) == len(space.vocabs) and all(v in vocab for v, vocab in zip(values, space.vocabs))

        keep = [i for i, lab in enumerate(labels) if known(lab)]
        ids, labels = [ids[i] for i in keep], [labels[i] for i in keep]
    mels = [load_features(recipe.work, split, i, index) for i in ids]
    ds = MelDataset(mels, labels, stats, frames, recipe.mel.log_floor, space=space)
    ds.ids = ids
    ds.paths = [index["items"][i]["audio"] for i in ids]
    return ds


def _classifier(recipe: Recipe, model, progress_log=log.info, column: int = 0):
    """The recipe's evaluation classifier of label ``column`` (``<work>/classifier``; with several
    labels, the others' in ``<work>/classifier-<key>``), trained (a few CPU-minutes) if missing or stale.
    """
    from specgan.classifier import load_classifier, train_classifier
    from specgan.features.cache import load_index

    space = model.labels
    out = recipe.work / ("classifier" if column == 0 else f"classifier-{space.name(column)}")
    key = json.dumps({"features": load_index(recipe.work, "train")["key"], "stats": model.stats.to_dict(),
                      "frames": model.generator.frames, "vocab": space.vocabs[column],
                      **({"label": space.name(column)} if space.multi else {})}, sort_keys=True, default=str)
    key_path = out / "key.json"
    if (out / "model.safetensors").is_file() and key_path.is_file() and key_path.read_text() == key:
        return load_classifier(out / "model.safetensors")
    progress_log(f"evaluate: training the evaluation classifier into {out}")
    sets = [_split_set(recipe, s, model.stats, model.generator.frames, space=space).column(column)
            for s in ("train", "dev", "test")]
    train_classifier(*sets, out, epochs=recipe.evaluate.classifier_epochs, seed=recipe.seed)
    atomic_write(key_path, lambda tmp: tmp.write_text(key))
    return load_classifier(out / "model.safetensors")


def in_work_statistics(recipe: Recipe, model):
    """``model`` as seen in the normalisation of the recipe's own features (``<work>/features/stats.npz``),
    and a map of the model's normalised mels into it (None when the two statistics are the same, or
    the work has none). Every generation metric reads real and generated mels in the work's
    normalisation, so the evaluation classifier (keyed on those statistics) is the same for every
    model scored in one work dir — a shipped model trained on an earlier build of the data, or
    another ablation candidate — and their label accuracy and FID are comparable.
    """
    import dataclasses

    from specgan.features.cache import load_stats

    try:
        ref = load_stats(recipe.work)
    except FileNotFoundError:
        return model, None
    if ref.to_dict() == model.stats.to_dict():
        return model, None
    own = model.stats
    return dataclasses.replace(model, stats=ref), lambda x: ref.normalize(own.denormalize(x))


def generation_draw(recipe: Recipe, model):
    """What the generation metrics compare: ``evaluate.n_generated`` held-out clips of
    ``evaluate.split`` (a seeded draw; labels the model knows), their labels (None for an
    unconditional model), as many generated mels asking for the same labels (seed
    ``evaluate.seed``, drawn with ``synth.truncation`` and ``synth.smoothing`` as synth draws them), (N, 1, n_mels, frames) float, all in the work's normalisation, and the
    model seen in that normalisation (:func:`in_work_statistics`): pass it, not ``model``, to
    whatever denormalises or vocodes the draw.
    """
    ec = recipe.evaluate
    conditional = model.conditional
    view, to_work = in_work_statistics(recipe, model)
    real = _split_set(recipe, ec.split, view.stats, model.generator.frames,
                      space=model.labels if conditional else None, max_items=ec.n_generated, seed=ec.seed)
    if len(real) < 2:
        raise ValueError(f"evaluate: split {ec.split!r} has {len(real)} usable clips; need at least 2")
    labels = [model.labels.decode(row) for row in real.y.tolist()] if conditional else None
    fake = model.sample_normalised(labels, seeds=range(ec.seed, ec.seed + len(real)), batch_size=None,
                                   truncation=recipe.synth.truncation, smoothing=recipe.synth.smoothing)
    if to_work is not None:
        fake = to_work(fake)
    return real, labels, fake[:, None].float(), view


def _is_griffinlim(g) -> bool:
    return getattr(g, "registry_name", None) == "griffinlim"


def generation_metrics(recipe: Recipe, model, vocoder_g=None) -> dict:
    """The stage-one half of :func:`evaluate` (see the module docstring)."""
    from specgan import metrics as M
    from specgan.classifier import predict

    ec = recipe.evaluate
    conditional = model.conditional
    frames = model.generator.frames
    real, labels, fake, model = generation_draw(recipe, model)  # from here on, the work's normalisation
    n = len(real)
    psi, smooth = recipe.synth.truncation, recipe.synth.smoothing
    out: dict = {"protocol": f"{n} generated (seed {ec.seed}, labels matching the real clips'"
                             f"{'' if psi == 1 else f', truncation ψ {psi:g}'}"
                             f"{'' if smooth == 0 else f', smoothed along time, a = {smooth:g}'}) vs {n} real "
                             f"{ec.split} clips, normalised mels {tuple(real.x.shape[2:])}", "n": n,
                 "truncation": psi, "smoothing": smooth}
    train = _split_set(recipe, "train", model.stats, frames, space=model.labels if conditional else None,
                       max_items=max(ec.n_generated, 2 * n), seed=ec.seed + 1)
    if conditional:
        space = model.labels
        if space.multi:  # each label by its own classifier; the first's also gives IS and FID below
            out["labels"] = _label_accuracy_by_key(recipe, model, real, fake)
        clf, vocab, clf_metrics = _classifier(recipe, model)
        if vocab != space.vocabs[0]:
            raise ValueError(f"classifier vocabulary {vocab} differs from the model's {space.vocabs[0]}")
        real1 = real.column(0)
        p_fake, e_fake = predict(clf, fake)
        p_real, e_real = predict(clf, real.x)
        _, e_train = predict(clf, train.x)
        out["classifier"] = {"test_accuracy": clf_metrics.get("test_accuracy"),
                             "dev_accuracy": clf_metrics.get("dev_accuracy"), "classes": len(vocab)}
        out["inception_score"] = M.inception_score(p_fake)[0]
        out["inception_score_real"] = M.inception_score(p_real)[0]
        out["fid"] = M.frechet_distance(e_fake, e_real)
        out["fid_real_train_vs_test"] = M.frechet_distance(e_train[:n], e_real)
        asked = real1.y.numpy()
        out["label_accuracy"] = float((p_fake.argmax(1) == asked).mean())
        out["label_accuracy_real"] = float((p_real.argmax(1) == asked).mean())
        per = {}
        for i, lab in enumerate(vocab):
            sel = asked == i
            if sel.any():
                per[str(lab)] = {"n": int(sel.sum()), "generated": float((p_fake[sel].argmax(1) == i).mean()),
                                 "real": float((p_real[sel].argmax(1) == i).mean())}
        out["label_accuracy_per_label"] = per
    k = max(2, min(ec.ndb_bins, n // 10))
    out.update(M.ndb_jsd(real.x.numpy(), fake.numpy(), k=k, seed=ec.seed))
    out["diversity_generated"] = M.mean_pairwise_distance(fake.numpy())
    out["diversity_real"] = M.mean_pairwise_distance(real.x.numpy())
    out["nn_train_distance_generated"] = float(M.nearest_neighbour_distance(fake.numpy(), train.x.numpy()).mean())
    out["nn_train_distance_real"] = float(M.nearest_neighbour_distance(real.x.numpy(), train.x.numpy()).mean())
    frame_rate = model.mel_cfg.sample_rate / model.mel_cfg.hop_length
    out["modulation"] = {"protocol": "generated over real power of each mel band's track over time, by modulation "
                                     "frequency (metrics.modulation_ratio)",
                         "ratio": M.modulation_ratio(real.x[:, 0].numpy(), fake[:, 0].numpy(), frame_rate)}
    generated = Generated(model, fake)  # denormalised once, vocoded once per vocoder
    if conditional and vocoder_g is not None:
        out["label_accuracy_vocoded"] = _vocoded_accuracy(model, generated, real1.y.numpy(), clf, vocoder_g)
    if conditional and "pitch" in recipe.data.label_keys and vocoder_g is not None:
        pitches = [lab["pitch"] for lab in labels] if model.labels.multi else labels
        out["pitch"] = _pitch(recipe, model, generated.audio(vocoder_g), pitches, real)
    from specgan.stage_one.harmonics import FINE_STRUCTURE_WIDTH, ripple_bands

    bands = ripple_bands(model.mel_cfg) if is_speech(recipe) else 0
    if bands >= FINE_STRUCTURE_WIDTH + 2:  # fewer: no moving average with bands left beside it
        logmels = [generated.logmel.numpy(), model.stats.denormalize(real.x[:, 0]).float().numpy()]
        out["fine_structure"] = _fine_structure(*logmels, bands)
        out["comb_fit"] = _comb_fit(model.mel_cfg, *logmels)
    if vocoder_g is not None and is_speech(recipe):
        from specgan.audio import load_clip

        sr = model.mel_cfg.sample_rate
        audio = {"generated": list(generated.audio(vocoder_g).numpy()),
                 "real_vocoded": list(Generated(model, real.x).audio(vocoder_g).numpy()),
                 "real_audio": [load_clip(p, sr, recipe.data.preprocess, model.mel_cfg.n_fft) for p in real.paths]}
        out["harmonicity"] = _harmonicity(model, audio)
        if ec.dnsmos_clips:
            out["dnsmos"] = _dnsmos(sr, audio, ec.dnsmos_clips)
    return out


def _label_accuracy_by_key(recipe: Recipe, model, real, fake: torch.Tensor) -> dict:
    """Several labels: each label's accuracy on the generated clips (asked: the real clips' labels)
    and on the real ones, by that label's own evaluation classifier, and the share of clips with
    every label right.
    """
    from specgan.classifier import predict

    space, out = model.labels, {}
    right_fake = np.ones(len(real), bool)
    right_real = np.ones(len(real), bool)
    for col in range(len(space.keys)):
        clf, vocab, metrics = _classifier(recipe, model, column=col)
        if vocab != space.vocabs[col]:
            raise ValueError(f"classifier vocabulary of {space.name(col)} {vocab} differs from the model's "
                             f"{space.vocabs[col]}")
        asked = real.y[:, col].numpy()
        got_fake = predict(clf, fake)[0].argmax(1) == asked
        got_real = predict(clf, real.x)[0].argmax(1) == asked
        right_fake &= got_fake
        right_real &= got_real
        out[space.name(col)] = {"classes": len(vocab), "classifier_test_accuracy": metrics.get("test_accuracy"),
                                "generated": float(got_fake.mean()), "real": float(got_real.mean())}
    out["all"] = {"generated": float(right_fake.mean()), "real": float(right_real.mean())}
    return out


def _dnsmos(sr: int, audio: dict, clips: int) -> dict:
    """DNSMOS P.835 (SIG/BAK/OVRL) of the first ``clips`` of each set: generated through the synth
    vocoder, the real held-out clips' mels through it (copy synthesis) and the real audio.
    """
    from specgan import metrics as M

    why = M.dnsmos_available()
    if why is not None:
        log.warning("evaluate: DNSMOS skipped: %s", why)
        return {"unavailable": why}
    n = min(clips, len(audio["generated"]))
    return {"protocol": f"DNSMOS P.835 (the speechmos wheel's ONNX model, not personalised) of the first {n} clips "
                        "of each set, tiled to its 9.01-s input: generated through the synth vocoder, the same "
                        "held-out clips' mels through it, and their audio",
            **{k: M.dnsmos_set(v[:n], sr) for k, v in audio.items()}}


class Generated:
    """The generated set of one evaluation: its log-mels, denormalised once, and its audio through
    each vocoder, vocoded once (label accuracy after vocoding, pitch and harmonicity all read the
    same waveforms).

    Args:
        model: The stage-one model in the normalisation of ``normalised``.
        normalised: Generated mels (N, 1, n_mels, frames).
    """

    def __init__(self, model, normalised: torch.Tensor):
        self.logmel = model.stats.denormalize(normalised[:, 0]).float()
        self._audio: dict[int, torch.Tensor] = {}
        self._vocoders: list = []  # keeps each vocoder alive while its id keys the cache

    @torch.inference_mode()
    def audio(self, g, batch: int = 16) -> torch.Tensor:
        """The waveforms (N, samples) of the set through vocoder ``g``, vocoded on first use."""
        if id(g) not in self._audio:
            x = self.logmel
            self._audio[id(g)] = torch.cat([g(x[i : i + batch]) for i in range(0, len(x), batch)])[:, 0]
            self._vocoders.append(g)
        return self._audio[id(g)]


def _fine_structure(fake: np.ndarray, real: np.ndarray, bands: int) -> dict:
    """Generated and real log-mels (N, n_mels, T) → :func:`specgan.stage_one.harmonics.fine_structure` of each."""
    from specgan.stage_one import harmonics as H

    return {"protocol": f"ripple of the lowest {bands} mel bands (centres below {H.FINE_STRUCTURE_MAX_HZ:.0f} Hz) "
                        f"around their {H.FINE_STRUCTURE_WIDTH}-band moving average, frames within 30 dB of each "
                        "clip's loudest: RMS (nats) and frame-to-frame correlation (stage_one.harmonics.fine_structure)",
            "bands": bands, "generated": H.fine_structure(fake, bands), "real": H.fine_structure(real, bands)}


def _comb_fit(mel_cfg, fake: np.ndarray, real: np.ndarray) -> dict:
    """Generated and real log-mels (N, n_mels, T) → :func:`specgan.stage_one.harmonics.comb_fit` of each."""
    from specgan.stage_one import harmonics as H

    lo, hi, k = H.COMB_F0_GRID
    f0s, t, bands = H.comb_candidates(mel_cfg, who="comb_fit")
    return {"protocol": f"best correlation of each active frame's low-band ripple (the same {bands} bands) with the "
                        f"ripple of a harmonic comb through the mel filterbank, over {k} F0s {lo:.0f}-{hi:.0f} Hz; "
                        f"harmonic frames: correlation >= {H.COMB_FIT_HARMONIC} (stage_one.harmonics.comb_fit)",
            "generated": H.comb_fit(fake, t, f0s, bands), "real": H.comb_fit(real, t, f0s, bands)}


def _vocode(model, normalised: torch.Tensor, g, batch: int = 16) -> list[np.ndarray]:
    """Normalised mels (N, 1, n_mels, frames) → N waveforms through vocoder ``g`` (a set vocoded
    once: :class:`Generated`).
    """
    return list(Generated(model, normalised).audio(g, batch).numpy())


def _harmonicity(model, audio: dict) -> dict:
    """Periodicity of the generated clips, the real ones through the same vocoder, and the real audio."""
    from specgan import metrics as M

    sr, hop = model.mel_cfg.sample_rate, model.mel_cfg.hop_length
    return {"protocol": "periodicity (peak normalised autocorrelation, lags 2-16.7 ms) of frames within 30 dB of "
                        "each clip's loudest; generated and real held-out mels through the same vocoder, and the "
                        "real audio itself",
            **{k: M.harmonicity(v, sr, hop) for k, v in audio.items()}}


@torch.inference_mode()
def _vocoded_accuracy(model, generated: Generated, asked: np.ndarray, clf, vocoder_g) -> dict:
    """Label accuracy of generated clips after the whole pipeline: vocoded to audio, analysed back
    into a log-mel, normalised, classified (what a listener gets, as far as the classifier hears).
    """
    from specgan.classifier import predict
    from vocoder.mel import MelSpectrogram
    from vocoder.registry import build_generator

    mel_fn = MelSpectrogram(model.mel_cfg)
    frames = model.generator.frames
    # the synth vocoder, and Griffin-Lim beside it (always scored: the floor)
    vocoders = ({"griffinlim": vocoder_g} if _is_griffinlim(vocoder_g) else
                {"trained": vocoder_g, "griffinlim": build_generator({"name": "griffinlim"}, model.mel_cfg).eval()})
    out = {}
    for name, g in vocoders.items():
        wav = generated.audio(g)
        again = model.stats.normalize(mel_fn(wav)[..., :frames])
        probs, _ = predict(clf, again[:, None].float())
        out[name] = float((probs.argmax(1) == asked).mean())
    return out


@torch.inference_mode()
def _pitch(recipe: Recipe, model, generated_audio: torch.Tensor, labels: list, real) -> dict:
    """Pitch accuracy of the generated notes (their audio (N, samples) through the synth vocoder)
    and of the same held-out real notes, by each of ``evaluate.pitch_trackers``.
    """
    from specgan import metrics as M
    from specgan.audio import load_clip

    sr = model.mel_cfg.sample_rate
    wavs = list(generated_audio.numpy())
    midi = [int(v) for v in labels]
    real_wavs = [load_clip(p, sr, recipe.data.preprocess, model.mel_cfg.n_fft) for p in real.paths]
    trackers = {}
    for t in recipe.evaluate.pitch_trackers:
        # CREPE is slow on CPU: a prefix of the (seeded, random) draw, frames every 50 ms
        n, hop = (len(wavs), model.mel_cfg.hop_length) if t == "pyin" else (recipe.evaluate.crepe_notes, sr // 20)
        trackers[t] = {"notes": min(n, len(wavs)), "hop": hop,
                       "generated": M.pitch_accuracy(wavs[:n], midi[:n], sr, hop=hop, tracker=t),
                       "real": M.pitch_accuracy(real_wavs[:n], midi[:n], sr, hop=hop, tracker=t)}
    first = trackers[recipe.evaluate.pitch_trackers[0]]
    return {"protocol": "median pitch of each clip (over its voiced frames) within ±0.5 semitone of the asked MIDI "
                        "pitch; generated clips vocoded by the trained vocoder; real = the same held-out notes; "
                        f"generated/real: {recipe.evaluate.pitch_trackers[0]}, trackers: each tracker's result",
            "generated": first["generated"], "real": first["real"], "trackers": trackers}


EXAMPLES = 4  # held-out clips whose copy synthesis evaluate keeps as WAVs (eval/copy/), for the report


class _Examples:
    """The copy-synthesis examples: ``<folder>/<i>_truth.wav`` and ``<i>_<vocoder>.wav`` (16-bit),
    listed in ``files`` (paths relative to eval/) for metrics.json.
    """

    def __init__(self, folder: Path, clips: list[torch.Tensor], sr: int):
        import shutil

        from specgan.audio import write as write_audio

        self.folder, self.sr, self.files = folder, sr, []
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for i, y in enumerate(clips):
            write_audio(folder / f"{i:02d}_truth.wav", np.clip(y[0, 0].numpy(), -1, 1), sr, subtype="PCM_16")
            self.files.append({"truth": f"{folder.name}/{i:02d}_truth.wav"})

    def keeper(self, name: str):
        """``on_clip`` for :func:`copy_synthesis`: keeps the first clips' re-synthesis by ``name``."""
        from specgan.audio import write as write_audio

        def keep(i: int, y_hat: np.ndarray) -> None:
            if i < len(self.files):
                write_audio(self.folder / f"{i:02d}_{name}.wav", np.clip(y_hat, -1, 1), self.sr, subtype="PCM_16")
                self.files[i][name] = f"{self.folder.name}/{i:02d}_{name}.wav"

        return keep


def evaluate(recipe: Recipe, vocoder_name: str = "auto", report=log.info, extra: dict | None = None) -> dict:
    """Run both evaluations and write ``<work>/eval/metrics.json`` (atomically, with ``extra``'s keys
    added); returns what was written.
    """
    from specgan.checkpoints import load_pair
    from vocoder.registry import build_generator

    ec = recipe.evaluate
    speech = is_speech(recipe)
    out: dict = {"recipe": recipe.path, "split": ec.split, "seed": ec.seed, "threads": torch.get_num_threads()}
    pair = load_pair(recipe, vocoder_name, recipe_mel=True)
    model, g_path, voc, desc = pair.stage_one, pair.stage_one_path, pair.vocoder, pair.vocoder_desc

    report(f"evaluate: generation ({g_path}, step {model.step})")
    out["generation"] = {"model": str(g_path), "step": model.step, "vocab": list(model.vocab),
                         **({"label_keys": model.labels.keys} if model.labels.multi else {}),
                         **generation_metrics(recipe, model, voc)}

    clips = _clips(recipe, ec.split, ec.max_items)
    out["vocoder"] = {"protocol": f"copy synthesis of {len(clips)} {ec.split} clips; mel-L1 of natural-log "
                                  f"magnitudes; MR-STFT = spectral convergence + log-magnitude L1 summed over "
                                  f"{recipe.vocoder.stft_resolutions}; F0 by pYIN; buzz_db = comb contrast at k·sr/hop "
                                  f"minus the reference's (vocoder.buzz)"
                                  + ("; PESQ wideband, STOI" if speech else ""), "clips": len(clips)}
    gl = voc if _is_griffinlim(voc) else build_generator({"name": "griffinlim"}, recipe.mel).eval()
    real_notes = None  # the originals' pitch tracking, shared by both vocoders
    rows = [("griffinlim", gl, "griffinlim")]
    if voc is not gl:  # the synth vocoder is a trained one: scored beside the floor (else the floor once)
        rows.insert(0, ("trained", voc, desc))
    # the first EXAMPLES clips, as heard: the report plays these files (it re-synthesises nothing)
    examples = _Examples(recipe.work / "eval" / "copy", clips[:EXAMPLES], recipe.mel.sample_rate)
    for name, g, what in rows:
        report(f"evaluate: copy synthesis with {what}")
        out["vocoder"][name] = {"model": what, **copy_synthesis(g, clips, recipe, speech=speech,
                                                                 on_clip=examples.keeper(name))}
        notes = copy_pitch(g, recipe, ec.split, min(ec.max_items or 147, 147), real=real_notes)  # {}: no notes
        if notes:
            out["vocoder"][name]["note_pitch"] = notes
            real_notes = notes["real"]
    out["vocoder"]["examples"] = examples.files
    out.update(extra or {})
    path = atomic_write(recipe.work / "eval" / "metrics.json", lambda tmp: tmp.write_text(json.dumps(out, indent=1)))
    out["path"] = str(path)
    return out


def headline_rows(m: dict) -> list[tuple[str, str, str]]:
    """The headline numbers of a metrics.json as (group, name, value) rows: what the terminal
    summary (:func:`summary_lines`) and the report's tables both show, so they cannot disagree.
    """
    g, v = m["generation"], m["vocoder"]
    rows: list[tuple[str, str, str]] = []

    def gen(name: str, value: str) -> None:
        rows.append(("generation", name, value))

    if "labels" in g:  # several labels: each by its own classifier, then all of them right
        for key, acc in g["labels"].items():
            what = "every label right" if key == "all" else f"{key} accuracy"
            test = acc.get("classifier_test_accuracy")
            gen(what, f"{acc['generated']:.3f} (real {acc['real']:.3f}"
                      + (f"; classifier test accuracy {test:.3f})" if test is not None else ")"))
    elif "classifier" in g:
        gen("label accuracy", f"{g['label_accuracy']:.3f} (real {g['label_accuracy_real']:.3f}; classifier test "
                              f"accuracy {g['classifier']['test_accuracy']:.3f})")
    if "classifier" in g:
        gen("IS", f"{g['inception_score']:.2f} (real {g['inception_score_real']:.2f})")
        gen("FID", f"{g['fid']:.2f} (real train vs test {g['fid_real_train_vs_test']:.2f})")
    if "label_accuracy_vocoded" in g:
        gen("label accuracy after vocoding and re-analysis",
            ", ".join(f"{k} {x:.3f}" for k, x in g["label_accuracy_vocoded"].items()))
    gen("NDB", f"{g['ndb']}/{g['bins']}, JSD {g['jsd']:.3f}")
    gen("diversity", f"{g['diversity_generated']:.3f} (real {g['diversity_real']:.3f})")
    gen("nearest-train distance", f"{g['nn_train_distance_generated']:.3f} (real {g['nn_train_distance_real']:.3f})")
    if g.get("modulation", {}).get("ratio"):
        gen("modulation power, generated / real", ", ".join(f"{k} {x:.2f}" for k, x in g["modulation"]["ratio"].items()))
    if "fine_structure" in g:
        f = g["fine_structure"]
        gen("low-band ripple", f"{f['generated']['contrast']:.3f} nats (real {f['real']['contrast']:.3f}), "
                               f"frame-to-frame correlation {f['generated']['time_corr']:.2f} "
                               f"(real {f['real']['time_corr']:.2f})")
    if "comb_fit" in g:
        c, r = g["comb_fit"]["generated"], g["comb_fit"]["real"]
        gen("ripple's fit to a harmonic comb", f"{c['fit']:.3f} (real {r['fit']:.3f}), harmonic frames "
                                               f"{c['harmonic_frames']:.3f} (real {r['harmonic_frames']:.3f}), their "
                                               f"F0 median {c['f0_hz'][1]:.0f} Hz (real {r['f0_hz'][1]:.0f})")
    if "harmonicity" in g:
        h = g["harmonicity"]
        gen("periodicity of active frames", f"{h['generated']['periodicity']:.3f}, voiced fraction "
                                            f"{h['generated']['voiced_fraction']:.3f} (real through the same vocoder "
                                            f"{h['real_vocoded']['periodicity']:.3f}, "
                                            f"{h['real_vocoded']['voiced_fraction']:.3f})")
    if "ovrl" in g.get("dnsmos", {}).get("generated", {}):
        d = g["dnsmos"]
        gen("DNSMOS OVRL", f"{d['generated']['ovrl']:.2f} (real {d['real_audio']['ovrl']:.2f}, real through the "
                           f"vocoder {d['real_vocoded']['ovrl']:.2f}; SIG {d['generated']['sig']:.2f}, BAK "
                           f"{d['generated']['bak']:.2f}; {d['generated']['clips']} clips)")
    if "pitch" in g:
        for t, r in g["pitch"].get("trackers", {"pyin": g["pitch"]}).items():
            gen(f"pitch accuracy by {t}", f"{r['generated']['pitch_accuracy']:.3f} (real "
                                          f"{r['real']['pitch_accuracy']:.3f}; {r['generated']['notes']} notes)")
    for k in [k for k in ("trained", "griffinlim") if k in v]:
        r = v[k]
        extra = "".join(f", {n} {r[n]:.3f}" for n in ("f0_rmse_cents", "vuv_error", "pesq_wb", "stoi") if n in r)
        if r.get("clips_scored"):
            c = r["clips_scored"]
            extra += " (" + ", ".join(f"{n} over {c[n]} of {c['of']} clips" for n in ("f0_rmse_cents", "pesq_wb", "stoi")
                                      if n in c) + ")"
        rows.append((f"vocoder {r['model']}", "mel-L1", f"{r['mel_l1']:.3f}, MR-STFT {r['mrstft']:.3f}{extra}, "
                                                         f"{r['x_real_time']:.1f}x real time"))
        if "note_pitch" in r:
            p = r["note_pitch"]
            rows.append((f"vocoder {r['model']}", "notes within 50 cents of the asked pitch",
                         f"copies {p['copies']['pitch_accuracy']:.3f}, originals {p['real']['pitch_accuracy']:.3f} "
                         f"(x{p['ratio']:.2f}), note buzz {p['buzz_db']:.2f} dB"))
    return rows


def summary_lines(m: dict) -> str:
    """The headline numbers of a metrics.json (:func:`headline_rows`), one per line, for the terminal."""
    return "\n".join(f"  {group}: {name} {value}" for group, name, value in headline_rows(m))
