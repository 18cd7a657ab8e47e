"""Recipes: YAML → typed, validated dataclasses with defaults.

A recipe is data. Loading it checks every key against the dataclass fields (an unknown key is an
error naming its full path and the allowed keys), checks every value's type, fills defaults, and
the resolved recipe is written beside every stage's output (:func:`save_resolved`).

``--set key.path=value`` overrides (:func:`apply_overrides`) are applied to the raw mapping before
validation, so they are checked exactly like YAML keys. A recipe may start with
``extends: other.yaml`` (path relative to the recipe) to layer small changes over a base recipe.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import stat
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, get_args, get_origin

import yaml

from specgan.audio import Preprocess
from specgan.codec.config import CodecConfig
from specgan.enhancement.config import EnhanceConfig
from specgan.kshot import KShotConfig
from specgan.stage_one.config import SpecGANConfig
from vocoder.config import VocoderConfig
from vocoder.mel import MelConfig

__all__ = [
    "DataConfig",
    "DigitsConfig",
    "FeaturesConfig",
    "MusicConfig",
    "NotesConfig",
    "Recipe",
    "RecipeError",
    "VoicesConfig",
    "apply_overrides",
    "from_dict",
    "load_recipe",
    "save_resolved",
    "to_dict",
]


log = logging.getLogger(__name__)

MAX_RECIPE_BYTES = 1 << 20  # a recipe is a page of YAML; anything bigger is the wrong file


class RecipeError(ValueError):
    """A recipe key or value is wrong; the message names the key path."""


# -- sections -----------------------------------------------------------------------------
@dataclass
class DigitsConfig:
    """``builtin:digits``: spoken digits "zero".."nine" by offline TTS engines (SC09-like).

    ``engines``: any of ``espeak-ng``, ``flite``, ``festival``. An espeak-ng *voice* is one
    variant (``m3``, ``f2``, ``edward``...) and speaks every word in every accent ``repeats`` times
    with random ``speed`` and ``pitch``; a flite/festival voice speaks every word ``tts_repeats``
    times with a random tempo (``tts_tempo``) and sox pitch shift (``tts_cents``). Splits are by
    speaker (a variant, or the recorded person behind a flite/festival voice).
    """

    engines: list[str] = field(default_factory=lambda: ["espeak-ng"])
    words: list[str] = field(default_factory=lambda: ["zero", "one", "two", "three", "four",
                                                      "five", "six", "seven", "eight", "nine"])
    # Variants reported clear on single words (m2, f2, f3, f5, adam, benjamin, caleb, edward
    # among them); norbert, Andrea, Lee, boris (reported barely intelligible) and the
    # whisper/croak effects are left out. recipes/speech-multi.yaml uses a list pruned by
    # tools/digit_intelligibility.py (docs/pipeline.md).
    variants: list[str] = field(default_factory=lambda: [
        "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
        "adam", "benjamin", "caleb", "edward", "edward2", "david", "john", "linda", "paul",
        "robert", "steph", "steph2", "max", "klatt", "klatt2", "klatt3",
    ])
    accents: list[str] = field(default_factory=lambda: ["en-us", "en-gb", "en-gb-scotland", "en-029"])
    repeats: int = 1                # espeak-ng takes per variant x accent x word
    speed: list[int] = field(default_factory=lambda: [120, 200])   # espeak-ng -s words per minute, [low, high]
    pitch: list[int] = field(default_factory=lambda: [10, 70])     # espeak-ng -p, [low, high]
    flite_voices: list[str] = field(default_factory=lambda: ["kal16", "awb", "rms", "slt"])
    festival_voices: list[str] = field(default_factory=lambda: ["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"])
    tts_repeats: int = 20           # flite/festival takes per voice x word
    tts_tempo: list[float] = field(default_factory=lambda: [0.85, 1.2])    # tempo factor (>1 faster), [low, high]
    tts_cents: list[float] = field(default_factory=lambda: [-300.0, 300.0])  # sox pitch shift, [low, high]
    jitter_seconds: float = 0.1     # random shift of the word inside the clip
    workers: int = 2
    # speaker: no voice in two splits (held-out voices: the default, every shipped digit model);
    # take: every voice in every split, each voice's takes dealt to train/dev/test by the
    # fractions (a word x voice model can then be scored on voices it knows)
    split_by: Literal["speaker", "take"] = "speaker"

    def __post_init__(self) -> None:
        for name in ("speed", "pitch", "tts_tempo", "tts_cents"):
            v = getattr(self, name)
            if len(v) != 2 or v[0] > v[1]:
                raise ValueError(f"{name}: expected [low, high] with low <= high, got {v}")
        if self.tts_tempo[0] <= 0:
            raise ValueError(f"tts_tempo: must be positive, got {self.tts_tempo}")
        _positive(self, "workers")
        if self.repeats < 0 or self.tts_repeats < 0:
            raise ValueError("repeats: must be >= 0")


@dataclass
class NotesConfig:
    """``builtin:notes``: single notes of General MIDI programs rendered by fluidsynth (NSynth-like)."""

    programs: list[int] = field(default_factory=lambda: [0, 24, 40, 56, 73, 19, 32, 11])
    pitch_min: int = 36
    pitch_max: int = 84
    pitch_step: int = 1
    velocities: list[int] = field(default_factory=lambda: [100])
    note_seconds: float = 3.0       # key held (NSynth: 3 s of a 4 s clip)
    clip_seconds: float = 4.0       # rendered length per note, including the release
    soundfont: str | None = None    # None: search the Debian GM soundfonts
    gain: float = 0.6
    split_by: Literal["note", "program"] = "note"
    workers: int = 2


@dataclass
class VoicesConfig:
    """``builtin:voices``: real recorded speech (asterisk prompts) plus TTS voices, for speech vocoders.

    Splits are by speaker: ``test_speaker`` (a real speaker) is the whole test split,
    ``dev_speakers`` the dev split, everyone else train. Folders of the reserved English and
    Spanish prompts (asterisk-core-sounds-en*/-es*) are refused.
    """

    real_root: str = "/usr/share/asterisk/sounds"
    # Voice folders under real_root (one speaker each): Debian's asterisk-core-sounds-{fr,it,ru}-g722.
    real_speakers: list[str] = field(default_factory=lambda: ["fr_CA_f_June", "it_IT_m_Carlo", "ru_RU_f_IvrvoiceRU"])
    # The only real male: the unseen speaker with the lowest F0, where hop-rate combs and F0
    # errors show most.
    test_speaker: str = "it_IT_m_Carlo"
    dev_speakers: list[str] = field(default_factory=lambda: ["tts-rms", "espeak-f5", "espeak-caleb"])
    max_prompts: int | None = None      # per real speaker (None: all, ~560-600 each)
    min_seconds: float = 0.5            # shorter after trimming → skipped
    trim_db: float = 40.0               # leading/trailing silence threshold
    engines: list[str] = field(default_factory=lambda: ["espeak", "flite", "festival"])  # TTS; each optional
    sentences_per_voice: int = 40       # Harvard sentences per TTS voice (per espeak variant x accent)
    espeak_variants: list[str] = field(default_factory=lambda: ["m2", "m3", "f2", "f3", "f5", "adam", "benjamin",
                                                                "caleb", "edward"])
    espeak_accents: list[str] = field(default_factory=lambda: ["en-us", "en-gb"])
    espeak_pitch: list[int] = field(default_factory=lambda: [10, 50])  # espeak-ng -p, [low, high]
    flite_voices: list[str] = field(default_factory=lambda: ["kal16", "awb", "rms", "slt"])
    festival_voices: list[str] = field(default_factory=lambda: ["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"])
    speed: list[float] = field(default_factory=lambda: [0.85, 1.15])   # tempo factor, every engine
    pitch: list[float] = field(default_factory=lambda: [0.85, 1.2])    # flite awb/rms/slt: factor on the mean F0
    workers: int = 2


@dataclass
class MusicConfig:
    """``builtin:music``: the notes of ``data.notes`` plus polyphonic excerpts of music21's corpus
    (one GM program per excerpt), for music vocoders.

    Splits are by instrument and piece: the notes of ``test_programs`` and the excerpts of
    ``test_pieces`` (played only by ``test_programs``) are the test split, ``dev_programs`` /
    ``dev_pieces`` the dev split, everything else train; no program or piece is in two splits.
    Pieces are paths inside music21's corpus folder (``bach/bwv66.6.mxl``).
    """

    excerpts: int = 1200                # shared out among the pieces in proportion to their length
    excerpt_seconds: float = 4.0
    tempo: list[float] = field(default_factory=lambda: [0.8, 1.25])   # tempo factor range (>1 faster)
    velocities: list[int] = field(default_factory=lambda: [50, 120])  # the loudest note's velocity, [low, high]
    # GM programs the excerpts are played by (one per excerpt): music.yaml's sixteen.
    programs: list[int] = field(default_factory=lambda: [0, 24, 40, 56, 73, 19, 32, 11, 42, 48, 65, 71, 81, 89,
                                                         105, 114])
    test_programs: list[int] = field(default_factory=lambda: [42, 71, 105])   # cello, clarinet, banjo
    dev_programs: list[int] = field(default_factory=lambda: [11, 65])         # vibraphone, alto sax
    pieces: list[str] = field(default_factory=lambda: [
        *(f"bach/bwv{n}.mxl" for n in ("1.6", "10.7", "11.6", "12.7", "13.6", "14.5", "101.7", "102.7", "103.6",
                                       "104.6", "108.6", "110.7", "111.6", "113.8", "114.7", "115.6", "116.6",
                                       "117.4", "119.9", "120.6")),
        "palestrina/Agnus_I_01.krn", "palestrina/Agnus_I_02.krn", "palestrina/Kyrie_02.krn",
        "palestrina/Gloria_02.krn", "monteverdi/madrigal.3.1.mxl", "monteverdi/madrigal.3.2.mxl",
        "monteverdi/madrigal.3.3.mxl", "corelli/opus3no1/1grave.xml", "mozart/k80/movement1.mxl",
        "mozart/k545/movement1_exposition.mxl", "haydn/opus1no1/movement1.mxl", "haydn/opus1no1/movement2.mxl",
        "joplin/maple_leaf_rag.mxl", "handel/rinaldo/Lascia_chio_pianga.mxl", "cpebach/h186.mxl",
        "trecento/PMFC_04-Cara mi donna.xml",
    ])
    test_pieces: list[str] = field(default_factory=lambda: [
        "bach/bwv10.7.mxl", "bach/bwv11.6.mxl", "palestrina/Agnus_I_02.krn", "monteverdi/madrigal.3.2.mxl",
        "cpebach/h186.mxl"])
    dev_pieces: list[str] = field(default_factory=lambda: [
        "bach/bwv12.7.mxl", "palestrina/Kyrie_02.krn", "haydn/opus1no1/movement2.mxl"])
    workers: int = 2                    # parallel fluidsynth renders (one per program)

    def __post_init__(self) -> None:
        if self.excerpts < 0:
            raise ValueError(f"excerpts: must be >= 0, got {self.excerpts}")
        _positive(self, "excerpt_seconds", "workers")
        if len(self.tempo) != 2 or not 0 < self.tempo[0] <= self.tempo[1]:
            raise ValueError(f"tempo: expected [low, high] with 0 < low <= high, got {self.tempo}")
        if len(self.velocities) != 2 or not 1 <= self.velocities[0] <= self.velocities[1] <= 127:
            raise ValueError(f"velocities: expected [low, high] with 1 <= low <= high <= 127, got {self.velocities}")
        for kind in ("programs", "pieces"):
            pool, test, dev = getattr(self, kind), getattr(self, f"test_{kind}"), getattr(self, f"dev_{kind}")
            for key, values in ((kind, pool), (f"test_{kind}", test), (f"dev_{kind}", dev)):
                twice = sorted({v for v in values if values.count(v) > 1})
                if twice:
                    raise ValueError(f"{key}: listed twice: {twice}")
                outside = [v for v in values if v not in pool]
                if outside:
                    raise ValueError(f"{key}: {outside} not in {kind}")
            both = sorted(set(test) & set(dev))
            if both:
                raise ValueError(f"dev_{kind}: {both} also in test_{kind}; each is in one split only")
            if (pool or self.excerpts) and not set(pool) - set(test) - set(dev):
                raise ValueError(f"{kind}: none left for train (all held out in test_{kind}/dev_{kind}, or empty)")
        bad = [p for p in self.programs if not 0 <= p <= 127]
        if bad:
            raise ValueError(f"programs: GM programs are 0..127, got {bad}")
        for split in ("test", "dev"):
            if getattr(self, f"{split}_pieces") and not getattr(self, f"{split}_programs"):
                raise ValueError(f"{split}_programs: empty, but {split}_pieces need programs of their own to be "
                                 f"played by")


@dataclass
class DataConfig:
    """Where audio comes from and how each clip is conditioned.

    ``source``: ``builtin:digits``, ``builtin:notes``, ``builtin:voices``, ``builtin:music``, ``sc09:PATH``,
    ``nsynth:PATH``, ``ljspeech:PATH``, ``folder:PATH`` or a bare PATH (a folder). Relative paths are
    relative to the current directory.
    """

    source: str = "builtin:digits"
    # which label(s) the models condition on: one (word, pitch, program...) or a list of them at
    # once ([pitch, instrument], [word, voice])
    label: str | list[str] | None = None
    dev_fraction: float = 0.1
    test_fraction: float = 0.1
    max_items: int | None = None       # cap per split after shuffling (for quick runs)
    pitch_min: int | None = None       # nsynth: keep notes in [pitch_min, pitch_max]
    pitch_max: int | None = None
    label_from_subfolder: bool = False  # folder: label = first sub-folder name
    preprocess: Preprocess = field(default_factory=Preprocess)
    digits: DigitsConfig = field(default_factory=DigitsConfig)
    notes: NotesConfig = field(default_factory=NotesConfig)
    voices: VoicesConfig = field(default_factory=VoicesConfig)
    music: MusicConfig = field(default_factory=MusicConfig)

    def __post_init__(self) -> None:
        if isinstance(self.label, list):
            if not self.label:
                raise ValueError("label: an empty list; name one label or several, or null for none")
            if len(set(self.label)) != len(self.label):
                raise ValueError(f"label: a key is listed twice: {self.label}")
            if len(self.label) == 1:  # [word] is word
                self.label = self.label[0]

    @property
    def label_keys(self) -> list[str]:
        """The label keys in order: [] for none, one, or several."""
        if self.label is None:
            return []
        return [self.label] if isinstance(self.label, str) else list(self.label)


@dataclass
class FeaturesConfig:
    """Feature extraction (the ``features`` stage)."""

    dtype: Literal["float32", "float16"] = "float32"
    workers: int = 2                   # processes; 1 = in-process
    threads: int = 1                   # threads per process (FFT + numba)
    clip_sigma: float | None = 3.0     # normalisation clip (SpecGAN: 3 sigma → [-1, 1])

    def __post_init__(self) -> None:
        _positive(self, "workers", "threads")


def _positive(obj, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ValueError(f"{name}: must be positive, got {getattr(obj, name)}")


@dataclass
class PretrainedConfig:
    """Shipped models used when the work dir has none of its own (paths relative to the recipe file)."""

    specgan: str | None = None         # a stage-one model.safetensors
    vocoder: str | None = None         # a vocoder model.safetensors
    enhance: str | None = None         # an enhancer model.safetensors (specgan enhance)
    codec: str | None = None           # a codec model.safetensors (specgan encode / decode)


@dataclass
class SynthConfig:
    """Defaults of ``specgan synth`` (every one can be given on the command line)."""

    vocoder: str = "auto"              # auto (<work>/vocoder, else pretrained.vocoder, else griffinlim) | griffinlim | a path
    n: int = 16                        # clips to write
    # conditional models: these labels in turn (default: every label in turn); several-label recipes:
    # mappings such as {pitch: 60, instrument: violin} (a key left out is drawn per clip)
    labels: list[str | int | dict[str, str | int]] | None = None
    seed: int = 0                      # clip i uses seed + i, so each clip is reproducible alone
    duration: float | None = None      # seconds per clip (default data.preprocess.clip_seconds)
    # the clip's end (specgan.synth.edge_repair): auto holds the frames that straddle the training
    # clips' cut and fades the last 30 ms when stage one learnt cut clips (clip_seconds without
    # data.preprocess.fade_out), hold always does, raw renders the frames as drawn (not "off": YAML
    # reads an unquoted off as false)
    edge: Literal["auto", "hold", "raw"] = "auto"
    # ψ: every latent scaled by it (0 < ψ <= 1; 1 = as trained): the truncation trick, fewer
    # atypical clips for less variety (docs/specgan.md). Synth, specgan.generate, augment, the report
    # and evaluate's generated set all draw with it.
    truncation: float = 1.0
    # a: every drawn mel smoothed along time, each frame a·previous + (1 − 2a)·itself + a·next (0 ≤ a ≤
    # 1/3; 0 = as drawn, 0.25 = the 1-2-1 filter): the generators draw more frame-to-frame modulation
    # than real mels, which the vocoder renders as roughness (docs/specgan.md). Drawn with wherever ψ is.
    smoothing: float = 0.0

    def __post_init__(self) -> None:
        _positive(self, "n")
        from specgan.stage_one.model import check_smoothing, check_truncation

        check_truncation(self.truncation)
        check_smoothing(self.smoothing)
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"duration: must be positive, got {self.duration}")


@dataclass
class EvaluateConfig:
    """``specgan evaluate`` (stage 5)."""

    split: str = "test"
    max_items: int | None = 64         # copy-synthesis clips (None: the whole split)
    n_generated: int = 256             # generated clips (and as many real ones) for the stage-one metrics
    seed: int = 0
    ndb_bins: int = 20                 # k-means bins for NDB/JSD (at most n / 10)
    classifier_epochs: int = 20        # the evaluation classifier's training
    speech: bool | None = None         # PESQ/STOI/DNSMOS; null: what data.source declares (data/sources.py)
    # Pitch of generated notes (label: pitch): pyin on every generated note, frames at the mel hop;
    # crepe / crepe-tiny (torchcrepe, 'music' extra) on the first crepe_notes of them (a seeded random
    # draw of the split), frames every 50 ms: the full model costs ~70 ms of CPU a frame.
    pitch_trackers: list[str] = field(default_factory=lambda: ["pyin"])  # the first is the headline
    crepe_notes: int = 128
    # DNSMOS P.835 (speech recipes; the 'speech' extra: speechmos's ONNX model) on the first
    # dnsmos_clips of each set (generated, real through the vocoder, real): ~1 s of CPU a clip. 0: off.
    dnsmos_clips: int = 32

    def __post_init__(self) -> None:
        _positive(self, "n_generated", "ndb_bins", "classifier_epochs", "crepe_notes")
        if isinstance(self.dnsmos_clips, bool) or self.dnsmos_clips < 0:
            raise ValueError(f"dnsmos_clips: must be 0 (off) or more, got {self.dnsmos_clips}")
        from specgan.metrics import PITCH_TRACKERS  # the trackers pitch_accuracy knows (numpy-only import)

        if not self.pitch_trackers or any(t not in PITCH_TRACKERS for t in self.pitch_trackers):
            raise ValueError(f"pitch_trackers: expected a non-empty list of {', '.join(PITCH_TRACKERS)}, "
                             f"got {self.pitch_trackers!r}")
        if self.max_items is not None and self.max_items <= 0:
            raise ValueError(f"max_items: must be positive or null, got {self.max_items}")


@dataclass
class Recipe:
    """A whole experiment. ``work_dir`` holds every stage's output."""

    name: str = "experiment"
    work_dir: str = "exp/experiment"
    seed: int = 0
    # generate: stage one + a vocoder (synth, evaluate the generation); enhance: the mel → mel GAN of
    # the enhance section (specgan run trains it at stage 2 and scores it at stage 5; specgan enhance);
    # codec: the mel codec of the codec section (the same stages; specgan encode / decode)
    # augment: the low-resource experiment of the kshot section (specgan/kshot.py: a GAN per K-shot cell
    # at stage 2, the extra training sets at stage 4, the recognisers at stage 5)
    task: Literal["generate", "enhance", "codec", "augment"] = "generate"
    mel: MelConfig = field(default_factory=MelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    specgan: SpecGANConfig = field(default_factory=SpecGANConfig)
    vocoder: VocoderConfig = field(default_factory=VocoderConfig)
    pretrained: PretrainedConfig = field(default_factory=PretrainedConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    # enhancement (specgan enhance, recipes/enhance.yaml): degradations and the mel → mel GAN
    enhance: EnhanceConfig = field(default_factory=EnhanceConfig)
    # compression (specgan encode / decode, recipes/codec.yaml): the mel codec, decoded by the vocoder
    codec: CodecConfig = field(default_factory=CodecConfig)
    # the low-resource augmentation experiment (task: augment, recipes/augment-digits.yaml)
    kshot: KShotConfig = field(default_factory=KShotConfig)
    # Path of the YAML this came from (not a key; filled by load_recipe).
    path: str | None = field(default=None, metadata={"internal": True})

    @property
    def work(self) -> Path:
        return Path(self.work_dir)

    def resolve(self, path: str) -> Path:
        """A path written in the recipe, relative to the recipe file's folder (absolute stays)."""
        p = Path(path).expanduser()
        if p.is_absolute() or self.path is None:
            return p
        return Path(os.path.normpath(Path(self.path).parent / p))

    def fingerprint(self, *sections: str) -> str:
        """Stable hash of the named top-level sections (all keys if none): keys caches."""
        d = to_dict(self)
        if sections:
            d = {s: d[s] for s in sections}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- generic dataclass <-> mapping --------------------------------------------------------
def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(tp.__name__, tp.__name__)
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        (item,) = get_args(tp) or (Any,)
        return f"list of {_type_name(item)}"
    if origin is dict:
        return "mapping"
    return str(tp)


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against annotation ``tp``; return it converted (e.g. int → float)."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise RecipeError(f"{path}: expected {_type_name(tp)}, got null")
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, path)
            except RecipeError as e:
                errors.append(e)
        if len(errors) == 1 and "finite" in str(errors[0]):  # `number or null` given nan: say what is wrong
            raise errors[0]
        raise RecipeError(f"{path}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            raise RecipeError(f"{path}: expected {_type_name(tp)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{path}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
        (item,) = get_args(tp) or (Any,)
        return [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise RecipeError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        _, vt = get_args(tp) or (str, Any)
        return {str(k): _convert(v, vt, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if value is None:
        raise RecipeError(f"{path}: expected {_type_name(tp)}, got null")
    if tp is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{path}: expected a boolean (true/false), got {type(value).__name__} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{path}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{path}: expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise RecipeError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise RecipeError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise RecipeError(f"{path}: unsupported field type {tp!r}")


def _public_fields(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def from_dict(cls, data: Any, path: str = ""):
    """Build dataclass ``cls`` from a mapping, validating keys and types recursively.

    Raises:
        RecipeError: naming the full key path, e.g. ``data.digits.speeds: unknown key``.
    """
    where = path or "recipe"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise RecipeError(f"{where}: expected a mapping of keys, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in _public_fields(cls)}
    for key in data:
        if key not in fields:
            raise RecipeError(
                f"{path + '.' if path else ''}{key}: unknown key in {where}; allowed keys: {', '.join(fields)}"
            )
    kwargs = {}
    for name in fields:
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], f"{path + '.' if path else ''}{name}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        msg = str(e)
        head = msg.split(":", 1)[0]
        if head in fields:  # "batch_size: must be positive" → "specgan.batch_size: must be positive"
            raise RecipeError(f"{path + '.' if path else ''}{msg}") from e
        raise RecipeError(f"{where}: {msg}") from e


def to_dict(obj: Any) -> Any:
    """Dataclass → plain mapping of public fields (recursively), for YAML/JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in _public_fields(type(obj))}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# -- loading ------------------------------------------------------------------------------
def _other_model(old: Any, new: Any) -> bool:
    """``new`` is a model spec (a mapping with ``name``) naming another model than ``old``."""
    return isinstance(new, Mapping) and isinstance(old, Mapping) and "name" in new and old.get("name") != new["name"]


def _deep_merge(base: dict, over: Mapping) -> dict:
    """``over`` layered on ``base``; a model spec (a mapping with ``name``) naming another model
    replaces the base's spec instead of inheriting its parameters, and a ``generator`` naming
    another model drops the base's ``inference`` beside it (switches of the model it replaced).
    """
    out = copy.deepcopy(base)
    for k, v in over.items():
        other_model = _other_model(out.get(k), v)
        if other_model and k == "generator" and "inference" not in over:
            out.pop("inference", None)
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and not other_model:
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


class _RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` for recipes: no anchors or aliases (a few hundred bytes of aliases expand
    to 10^8 nodes), no duplicate keys (the second silently won), and ``1e-4`` read as a number
    (YAML 1.1, and so PyYAML, wants ``1.0e-4``).
    """

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
            raise yaml.MarkedYAMLError(problem=f"YAML {kind}{event.anchor} is not allowed in a recipe "
                                               f"(write the value out, or use extends: / --set)",
                                       problem_mark=event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.MarkedYAMLError(problem=f"duplicate key {key!r} (first on line {seen[key] + 1})",
                                           problem_mark=key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


_RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _yaml(text: str, where: str) -> Any:
    """Parse recipe YAML with :class:`_RecipeLoader`; errors name ``where`` and the line."""
    try:
        return yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark is not None else where
        what = " ".join(str(getattr(e, "problem", None) or e).split())
        context = getattr(e, "context", None)
        raise RecipeError(f"{at}: invalid YAML: {what}" + (f" ({context})" if context else "")) from e


def bundled_dir() -> Path:
    """The folder holding the shipped ``recipes/`` and ``pretrained/`` (package data; in a checkout
    ``specgan/_bundled/*`` are links to the repository's own folders).
    """
    return Path(__file__).resolve().parent / "_bundled"


def find_recipe(path: str | Path) -> Path:
    """``path`` itself if it exists; else, for a bare name (``music.yaml``, ``music``) or
    ``recipes/<name>``, the bundled recipe of that name, so the README's commands work from any
    folder and after ``pip install``.
    """
    path = Path(path).expanduser()
    if path.exists() or path.is_symlink():
        return path
    parts = path.parts
    if len(parts) == 1 or (len(parts) == 2 and parts[0] == "recipes"):
        name = parts[-1] if path.suffix in (".yaml", ".yml") else parts[-1] + ".yaml"
        shipped = bundled_dir() / "recipes" / name
        if shipped.is_file():
            log.debug("recipe %s: not in %s; using the bundled %s", path, Path.cwd(), shipped)
            return shipped
        names = sorted(p.stem for p in (bundled_dir() / "recipes").glob("*.yaml"))
        raise RecipeError(f"cannot read recipe {path}: no such file here, and no bundled recipe of that name "
                          f"(bundled: {', '.join(names)})")
    raise RecipeError(f"cannot read recipe {path}: no such file")


def _read_text(path: Path) -> str:
    """A recipe file's text: a regular file of at most MAX_RECIPE_BYTES (checked before reading, so
    ``--recipe /dev/zero`` or a FIFO is refused, not read without end).
    """
    try:
        st = path.stat()
    except OSError as e:
        raise RecipeError(f"cannot read recipe {path}: {e.strerror or e}") from e
    if stat.S_ISDIR(st.st_mode):
        raise RecipeError(f"recipe {path}: is a folder; give a recipe .yaml file")
    if not stat.S_ISREG(st.st_mode):
        raise RecipeError(f"recipe {path}: not a regular file (a device, FIFO or socket); give a recipe .yaml file")
    if st.st_size > MAX_RECIPE_BYTES:
        raise RecipeError(f"recipe {path}: {st.st_size} bytes, over the {MAX_RECIPE_BYTES}-byte limit for a recipe; "
                          f"is it the right file?")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_RECIPE_BYTES + 1)
    except OSError as e:
        raise RecipeError(f"cannot read recipe {path}: {e.strerror or e}") from e
    if len(data) > MAX_RECIPE_BYTES:
        raise RecipeError(f"recipe {path}: over the {MAX_RECIPE_BYTES}-byte limit for a recipe")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecipeError(f"recipe {path}: not UTF-8 text (byte {e.start}); is it the right file?") from e


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise RecipeError(f"{path}: 'extends' cycle: {' -> '.join(map(str, seen + (path,)))}")
    raw = _yaml(_read_text(path), str(path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of keys, got {type(raw).__name__}")
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise RecipeError(f"{path}: extends: expected a path string, got {base!r}")
    base_path = path.parent / base
    if not base_path.exists():  # a copied recipe's `extends: speech.yaml`: the bundled one, as --recipe finds it
        try:
            base_path = find_recipe(base)
        except RecipeError:
            raise RecipeError(f"{path}: extends: {base}: no such file next to it, and no bundled recipe of that "
                              f"name") from None
    return _deep_merge(_anchor_paths(_read_yaml(base_path, seen + (path,)), base_path.resolve().parent), raw)


def _anchor_paths(raw: dict, folder: Path) -> dict:
    """A base recipe's ``pretrained:`` paths are written relative to the base's own folder: made
    absolute before layering, so a recipe elsewhere that extends it still finds the shipped models.
    """
    pre = raw.get("pretrained")
    if isinstance(pre, dict):
        for key, value in pre.items():
            if isinstance(value, str) and not Path(value).expanduser().is_absolute():
                pre[key] = os.path.normpath(folder / value)
    return raw


def _parse_scalar(text: str) -> Any:
    """A ``--set`` value is parsed as recipe YAML, so ``3``, ``1e-4``, ``null``, ``[1, 2]`` work."""
    try:
        return _yaml(text, "--set")
    except RecipeError as e:
        if "not allowed" in str(e):
            raise
        return text


def apply_overrides(raw: dict, overrides: list[str] | None) -> dict:
    """Apply ``key.path=value`` overrides to a raw recipe mapping (before validation)."""
    out = copy.deepcopy(raw)
    given = {item.split("=", 1)[0].strip() for item in overrides or []}
    for item in overrides or []:
        if "=" not in item:
            raise RecipeError(f"--set {item!r}: expected key.path=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise RecipeError(f"--set {item!r}: empty key in {key!r}")
        node = out
        for i, p in enumerate(parts[:-1]):
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            elif not isinstance(nxt, dict):
                raise RecipeError(f"--set {item!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = nxt
        new = _parse_scalar(value)
        inference = ".".join([*parts[:-1], "inference"])
        if parts[-1] == "generator" and _other_model(node.get("generator"), new) and not any(
                g == inference or g.startswith(inference + ".") for g in given):
            node.pop("inference", None)  # as in extends: another model does not inherit these switches
        node[parts[-1]] = new
    return out


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Load, layer (``extends``), override (``--set``) and validate a recipe YAML."""
    path = find_recipe(path)
    raw = apply_overrides(_read_yaml(path), overrides)
    try:
        recipe = from_dict(Recipe, raw)
        _check_ranges(raw)
        _check_model_specs(recipe)
        _check_across_sections(recipe)
    except RecipeError as e:
        raise RecipeError(f"{_blame(path, overrides, str(e))}: {e}") from None
    recipe.work_dir = os.path.expanduser(recipe.work_dir)
    work = Path(recipe.work_dir)
    if work.exists() and not work.is_dir():
        raise RecipeError(f"{_blame(path, overrides, 'work_dir')}: work_dir {work}: exists and is not a folder")
    if not 0 <= recipe.seed < 2**32:
        raise RecipeError(f"{_blame(path, overrides, 'seed')}: seed: must be 0 ... 2**32 - 1, got {recipe.seed}")
    recipe.path = str(path)
    return recipe


def _blame(path: Path, overrides: list[str] | None, message: str) -> str:
    """Who gave the key a message starts with: the ``--set`` that set it (the last one), else the
    recipe file.
    """
    key = message.split(":", 1)[0].strip()
    for item in reversed(overrides or []):
        k = item.split("=", 1)[0].strip()
        if key == k or key.startswith(k + ".") or key.startswith(k + "["):
            return f"--set {item}"
    mentioned = [item for item in overrides or [] if item.split("=", 1)[0].strip() in message]
    return f"{path} with --set {mentioned[-1]}" if mentioned else str(path)


# Keys whose value means nothing below zero (a rate, a duration, a size...), matched on the last
# part of the key path: those in _NON_NEGATIVE must be >= 0, those in _POSITIVE > 0. Checked on
# the raw mapping, so the message names the key as the user wrote it (list items included:
# ``vocoder.critics[1].periods[0]``).
_NON_NEGATIVE = re.compile(r"^(gp_weight|weight_decay|fmin|fmax|grad_clip|critic_warmup_steps|steps|ema|"
                           r"dev_fraction|test_fraction|jitter_seconds|min_seconds|max_rollbacks|"
                           r".*_weight|mel|fm|adv|stft|feature|power|seed)$")
_POSITIVE = re.compile(r"^(lr|lr_[gd]|learning_rate|floor|clip_sigma|peak|gain|lr_decay|.*_seconds|duration|"
                       r"max_items|max_prompts|sample_rate|n_fft|hop_length|win_length|n_mels|batch_size|"
                       r"segment_samples|.*_every|d|z_dim|embed_dim|dim|intermediate_dim|num_layers|kernel_size|"
                       r"width|periods|scales|resolutions|frames|n|n_critic|n_generated|eval_items|ndb_bins|"
                       r"classifier_epochs|nan_lr_factor|repeats|workers|threads|sentences_per_voice)$")


def _check_ranges(raw: Any, path: str = "") -> None:
    if isinstance(raw, Mapping):
        for k, v in raw.items():
            _check_ranges(v, f"{path}.{k}" if path else str(k))
        return
    if isinstance(raw, list):
        for i, v in enumerate(raw):
            _check_ranges(v, f"{path}[{i}]")
        return
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return
    key = path.rsplit(".", 1)[-1].split("[", 1)[0]
    if _NON_NEGATIVE.match(key):
        if not raw >= 0:
            raise RecipeError(f"{path}: must be zero or positive, got {raw!r}")
    elif _POSITIVE.match(key) and not raw > 0:
        raise RecipeError(f"{path}: must be positive, got {raw!r}")


def _check_model_specs(recipe: Recipe) -> None:
    """Registry look-ups (names and parameter names) at load time, so a typo fails before training."""
    from vocoder.losses import LossWeights
    from vocoder.registry import check_critic_spec, check_generator_spec

    checks = [("vocoder.generator", check_generator_spec, recipe.vocoder.generator),
              ("vocoder.weights", LossWeights.from_dict, recipe.vocoder.weights)]
    checks += [(f"vocoder.critics[{i}]", check_critic_spec, c) for i, c in enumerate(recipe.vocoder.critics)]
    from specgan.stage_one import registry as stage_one

    checks += [("specgan.generator", stage_one.check_generator_spec, recipe.specgan.generator),
               ("specgan.critic", stage_one.check_critic_spec, recipe.specgan.critic)]
    from vocoder.registry import ParamError

    for where, check, spec in checks:
        try:
            check(spec)
        except ParamError as e:  # names the key: vocoder.generator.dim: expected an integer, ...
            raise RecipeError(f"{where}.{e.param}: {e.detail}") from None
        except (ValueError, TypeError) as e:
            raise RecipeError(f"{where}: {e}") from None
    # Build the generator against the recipe's mel (on the meta device: no memory, no time), so a
    # hop_length its upsampling cannot produce fails here, not after data preparation.
    import torch

    from vocoder.registry import build_generator

    try:
        with torch.device("meta"):
            build_generator(recipe.vocoder.generator, recipe.mel)
    except (ValueError, TypeError, RuntimeError) as e:
        raise RecipeError(f"vocoder.generator: {' '.join(str(e).split())}") from None
    if recipe.vocoder.inference:
        from vocoder.registry import check_inference

        try:
            check_inference(recipe.vocoder.generator, recipe.vocoder.inference, recipe.mel)
        except (ValueError, TypeError, RuntimeError) as e:
            raise RecipeError(f"vocoder.inference: {' '.join(str(e).split())}") from None
    from vocoder.registry import build_critic

    for i, spec in enumerate(recipe.vocoder.critics):  # sizes too: a width of 0 fails here, not at stage 3
        try:
            with torch.device("meta"):
                build_critic(spec)
        except (ValueError, TypeError, RuntimeError, ZeroDivisionError) as e:
            raise RecipeError(f"vocoder.critics[{i}]: {' '.join(str(e).split())}") from None
    # Stage one likewise (sizes: a negative width fails here, in one line). Stage one takes any
    # n_mels >= 8 (stage_one.layers.grid_for pads and crops); a recipe whose stage one learns its clips (it
    # has a label) is refused here below that, one that trains only a vocoder may use any n_mels.
    n_mels = recipe.mel.n_mels
    if n_mels < 8:
        if recipe.data.label is not None:
            raise RecipeError(f"mel.n_mels ({n_mels}): stage one needs at least 8 mel bands")
        n_mels = 64
    for where, build_fn, spec in (("specgan.generator", stage_one.build_generator, recipe.specgan.generator),
                                  ("specgan.critic", stage_one.build_critic, recipe.specgan.critic)):
        try:
            with torch.device("meta"):
                build_fn(spec, n_mels, recipe.specgan.frames, 2 if recipe.specgan.conditional else 0)
        except (ValueError, TypeError, RuntimeError) as e:
            raise RecipeError(f"{where}: {' '.join(str(e).split())}") from None


def _check_across_sections(recipe: Recipe) -> None:
    """Constraints between sections, checked when the recipe loads (before anything is written), so
    a value one stage cannot use fails now and not after the stages before it have run.
    """
    mel, voc, sg = recipe.mel, recipe.vocoder, recipe.specgan
    if voc.segment_samples % mel.hop_length:
        lo = voc.segment_samples // mel.hop_length * mel.hop_length
        raise RecipeError(f"vocoder.segment_samples ({voc.segment_samples}) must be a multiple of mel.hop_length "
                          f"({mel.hop_length}): e.g. {lo or mel.hop_length} or {lo + mel.hop_length}")
    span = sg.frames * mel.hop_length
    clip = recipe.data.preprocess.clip_seconds
    if clip is not None and recipe.data.label is not None:  # a recipe whose stage one learns the clips
        samples = int(round(clip * mel.sample_rate))
        need = -(-samples // mel.hop_length)  # frames that cover the clip
        if span < samples:
            pow2 = 1 << (need - 1).bit_length()
            raise RecipeError(
                f"specgan.frames ({sg.frames}) x mel.hop_length ({mel.hop_length}) = {span} samples "
                f"({span / mel.sample_rate:.3f} s) is shorter than data.preprocess.clip_seconds ({clip:g} s = "
                f"{samples} samples at mel.sample_rate {mel.sample_rate}): set specgan.frames: {pow2}, or "
                f"data.preprocess.clip_seconds: {span / mel.sample_rate:.3f}")
    try:
        sg.aux_key_weights_for(recipe.data.label_keys)  # a key the data does not carry, before any stage runs
    except ValueError as e:
        raise RecipeError(str(e)) from None
    duration = recipe.synth.duration
    if duration is not None and int(round(duration * mel.sample_rate)) > span:
        raise RecipeError(f"synth.duration ({duration:g} s) is longer than stage one's span: specgan.frames "
                          f"({sg.frames}) x mel.hop_length ({mel.hop_length}) = {span / mel.sample_rate:.3f} s")


def save_resolved(recipe: Recipe, directory: str | Path, name: str = "config.yaml") -> Path:
    """Write the fully resolved recipe (every default filled) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / name
    header = f"# resolved from {recipe.path}\n" if recipe.path else ""
    out.write_text(header + yaml.safe_dump(to_dict(recipe), sort_keys=False))
    return out
