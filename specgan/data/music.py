"""``builtin:music`` — single notes plus polyphonic excerpts of real scores, for music vocoders.

Items of two kinds (the ``kind`` label):

* ``note``: exactly the notes of ``builtin:notes`` (``data.notes``: its programs, pitches,
  velocities, soundfont and gain; rendered by :func:`specgan.data.notes.build_notes`).
* ``excerpt``: windows of scores from music21's offline corpus (``data.music.pieces``, paths
  inside ``music21/corpus`` such as ``bach/bwv66.6.mxl``). Each piece is parsed and exported to
  MIDI by music21 once; its notes (seconds, via the MIDI tempo map) are cut into windows of
  ``excerpt_seconds`` at a random tempo factor (``tempo``), with the loudest note's velocity drawn
  from ``velocities``, and all voices played by one General MIDI program drawn per excerpt. As
  for the notes, each program's excerpts are written into one MIDI file (:func:`midi_file`, a
  silent gap after each) and rendered by one fluidsynth call with the same soundfont, then cut.
  Excerpts are shared out among the pieces in proportion to their length, and windows where
  notes sound less than 80 % of the time are redrawn. Everything random comes from ``seed``, so
  the same seed (and music21 version) gives the same manifest.

Every item's labels carry ``kind``, ``program``, ``instrument`` and ``piece`` (the corpus path;
null for notes), so other splits can be made from the manifest.

Splits are by *voice*, here the instrument and the piece: ``data.music.test_programs`` (GM
programs) and ``data.music.test_pieces`` are the test split: the notes of those programs and the
excerpts of those pieces, which are played only by those programs. ``dev_programs`` /
``dev_pieces`` are the dev split likewise; every other program and piece is train. So no program
and no piece is in two splits. Defaults (:class:`specgan.recipe.MusicConfig`, stated in
``recipes/music-voc.yaml``), of 16 programs and 36 pieces: test = cello 42, clarinet 71, banjo 105
and Bach BWV 10.7 and 11.6, Palestrina Agnus I (02), Monteverdi madrigal 3.2, C. P. E. Bach H. 186;
dev = vibraphone 11, alto sax 65 and BWV 12.7, Palestrina Kyrie (02), Haydn op. 1 no. 1/ii.

music21 is an optional dependency (``pip install 'specgan[music]'``; the test extra and
``tools/setup.sh`` install it); without it ``builtin:music`` stops with one line saying so.

Measured here (one busy core of a 2-core machine, nice 10, FluidR3_GM, 16 kHz, music21 10.5.1):
parsing and exporting a piece takes 0.1-0.4 s (a chorale) to 4.5 s (a quartet movement, the
rag); the 36 default pieces 35 s. Rendering takes 0.035 s per excerpt batched per program (one
fluidsynth call per excerpt: 0.18 s). The default set (``recipes/music-voc.yaml``, workers 1):
3,136 notes + 1,200 excerpts, all 4 s, 4.8 h, 543 MB of WAV (notes 393 MB, excerpts 151 MB);
train 3,008 (2,156 notes + 852 excerpts), dev 556 (392 + 164), test 772 (588 + 184); built in
2.1 min (notes 40 s, corpus 35 s, excerpts 40 s).
"""

from __future__ import annotations

import bisect
import difflib
import logging
import random
import re
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from specgan.audio import peak_normalize, write
from specgan.data.manifest import Item, MissingToolError, require_tool
from specgan.data.notes import (GAP_SECONDS, GM_PROGRAMS, PEAK, SILENT_PEAK, build_notes, find_soundfont,
                                midi_file, render_midi)
from specgan.progress import bar as progress_bar

__all__ = ["INSTALL_HINT", "build_music", "corpus_root", "excerpt_notes", "require_music21", "score_notes"]

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install music21 (or pip install 'specgan[music]'; tools/setup.sh installs it)"
_MIN_COVERAGE = 0.8      # a window where notes sound less of the time than this is redrawn
_WINDOW_TRIES = 20
_MIN_FRAGMENT = 0.05     # seconds: shorter note fragments at a window's edges are dropped
_DEFAULT_USEC_PER_QUARTER = 500_000   # MIDI's default tempo, 120 bpm
_PERCUSSION_CHANNEL = 10  # music21 numbers channels from 1; GM channel 10 is unpitched


def require_music21():
    """The music21 module, or a one-line :class:`MissingToolError` saying how to install it."""
    try:
        import music21
    except ImportError as e:
        raise MissingToolError(f"builtin:music needs the Python package music21, which is not installed "
                               f"({e}); install it with: {INSTALL_HINT}") from None
    return music21


def corpus_root(music21) -> Path:
    """The folder of music21's bundled corpus (``.../music21/corpus``)."""
    return Path(music21.common.getCorpusFilePath())


def _resolve_pieces(cfg, root: Path) -> None:
    """Every configured piece is a file of the corpus, or one line naming the key and near names."""
    for key in ("pieces", "test_pieces", "dev_pieces"):
        for piece in getattr(cfg, key):
            if not (root / piece).is_file():
                folder = (root / piece).parent
                near = difflib.get_close_matches(Path(piece).name, [p.name for p in folder.glob("*")]
                                                 if folder.is_dir() else [], n=3)
                hint = f"; did you mean {', '.join(str(Path(piece).parent / n) for n in near)}?" if near else \
                    " (corpus paths look like bach/bwv66.6.mxl, palestrina/Agnus_01.krn)"
                raise ValueError(f"data.music.{key}: {piece!r} is not in music21's corpus ({root}){hint}")


def score_notes(music21, path: Path) -> list[tuple[float, float, int, int]]:
    """Parse a score and export it to MIDI with music21; its notes as (start s, duration s, pitch,
    velocity), sorted, with the tempo map of the MIDI file applied (120 bpm when it has none).
    """
    score = music21.converter.parse(path, forceSource=True)   # forceSource: no pickle cache written
    mf = music21.midi.translate.streamToMidiFile(score)
    tempo_type = music21.midi.MetaEvents.SET_TEMPO
    tempos, raw = [(0, _DEFAULT_USEC_PER_QUARTER)], []
    for track in mf.tracks:
        tick, open_notes = 0, defaultdict(list)
        for e in track.events:
            if e.isDeltaTime():
                tick += e.time
            elif e.type == tempo_type:
                tempos.append((tick, int.from_bytes(e.data[:3], "big")))
            elif e.channel == _PERCUSSION_CHANNEL:
                continue
            elif e.isNoteOn():
                open_notes[(e.channel, e.pitch)].append((tick, e.velocity))
            elif e.isNoteOff() and open_notes[(e.channel, e.pitch)]:
                on, vel = open_notes[(e.channel, e.pitch)].pop(0)
                raw.append((on, tick, e.pitch, vel))
    tempos.sort(key=lambda t: t[0])   # stable: a tempo set at tick 0 comes after (and wins over) the default
    # seconds at each tempo change: piecewise-linear tick → seconds
    ticks, secs, rates = [], [], []
    t_sec = 0.0
    for i, (tick, usec) in enumerate(tempos):
        if i:
            t_sec += (tick - ticks[-1]) * rates[-1]
        ticks.append(tick)
        secs.append(t_sec)
        rates.append(usec / 1e6 / mf.ticksPerQuarterNote)

    def seconds(tick: int) -> float:
        i = bisect.bisect_right(ticks, tick) - 1
        return secs[i] + (tick - ticks[i]) * rates[i]

    notes = [(seconds(on), seconds(off) - seconds(on), pitch, vel) for on, off, pitch, vel in raw if off > on]
    return sorted(notes)


def _coverage(notes, t0: float, length: float) -> float:
    """Share of [t0, t0 + length] during which at least one note sounds."""
    spans = sorted((max(s, t0), min(s + d, t0 + length)) for s, d, _, _ in notes if s < t0 + length and s + d > t0)
    covered, end = 0.0, t0
    for a, b in spans:
        if b > end:
            covered += b - max(a, end)
            end = b
    return covered / length


def excerpt_notes(notes, t0: float, length: float, tempo: float,
                  top_velocity: int) -> list[tuple[float, float, int, int]]:
    """The notes sounding in score time [t0, t0 + length], shifted to 0, clipped to the window,
    played ``tempo`` times faster, the loudest at ``top_velocity``; a note cut by a later one of
    the same pitch ends there (one MIDI channel: its note-off would silence the later one).
    """
    cut = []
    for s, d, pitch, vel in notes:
        a, b = max(s, t0), min(s + d, t0 + length)
        if b - a >= _MIN_FRAGMENT:
            cut.append([(a - t0) / tempo, (b - t0) / tempo, pitch, vel])
    if not cut:
        return []
    scale = top_velocity / max(v for *_, v in cut)
    by_pitch = defaultdict(list)
    for n in sorted(cut):
        by_pitch[n[2]].append(n)
    out = []
    for same in by_pitch.values():
        for cur, nxt in zip(same, same[1:] + [None]):
            end = min(cur[1], nxt[0]) if nxt else cur[1]
            if end > cur[0]:
                out.append((cur[0], end - cur[0], cur[2], min(127, max(1, round(cur[3] * scale)))))
    return sorted(out)


def _shares(total: int, weights: list[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders; ties to the earlier one)."""
    if total == 0 or not weights:
        return [0] * len(weights)
    exact = [total * w / sum(weights) for w in weights]
    out = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: (out[i] - exact[i], i))[: total - sum(out)]:
        out[i] += 1
    return out


def _slug(piece: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", str(Path(piece).with_suffix(""))).strip("-")


def _split_of_piece(cfg, piece: str) -> str:
    return "test" if piece in cfg.test_pieces else "dev" if piece in cfg.dev_pieces else "train"


def _split_of_program(cfg, program: int) -> str:
    return "test" if program in cfg.test_programs else "dev" if program in cfg.dev_programs else "train"


def _plan(cfg, scores: dict[str, list], seed: int) -> tuple[list[dict], dict]:
    """Which window of which piece, at which tempo, velocity and program: every excerpt's recipe."""
    rng = random.Random(f"{seed}-music")
    pool = {s: [p for p in cfg.programs if _split_of_program(cfg, p) == s] for s in ("train", "dev", "test")}
    pieces = [p for p in cfg.pieces if scores.get(p)]
    lengths = [max(s + d for s, d, _, _ in scores[p]) for p in pieces]
    jobs, notes = [], {}
    for piece, length, n in zip(pieces, lengths, _shares(cfg.excerpts, lengths)):
        split = _split_of_piece(cfg, piece)
        for k in range(n):
            tempo = round(rng.uniform(*cfg.tempo), 3)
            span = cfg.excerpt_seconds * tempo           # score seconds the window covers
            best = (-1.0, 0.0)
            for _ in range(_WINDOW_TRIES):
                t0 = round(rng.uniform(0.0, max(0.0, length - span)), 3)
                cov = _coverage(scores[piece], t0, span)
                best = max(best, (cov, t0))
                if cov >= _MIN_COVERAGE:
                    break
            if best[0] < _MIN_COVERAGE:
                key = f"sparse window kept (notes sound < {_MIN_COVERAGE:.0%} of it)"
                notes[key] = notes.get(key, 0) + 1
            t0 = best[1]
            program = rng.choice(pool[split])
            velocity = rng.randint(*cfg.velocities)
            jobs.append({"piece": piece, "split": split, "k": k, "start": t0, "tempo": tempo, "program": program,
                         "velocity": velocity,
                         "notes": excerpt_notes(scores[piece], t0, span, tempo, velocity)})
    return jobs, notes


def build_music(dc, sample_rate: int, out_dir: Path, seed: int,
                work_dir: Path) -> tuple[list[Item], dict, dict[str, str]]:
    """Render the notes and the excerpts into ``out_dir``; return items, a report and each item's split.

    The common builder signature (:class:`specgan.data.sources.Builder`).

    Args:
        dc: The recipe's ``data`` section: ``dc.music`` (:class:`specgan.recipe.MusicConfig`) and
            ``dc.notes`` (:class:`specgan.recipe.NotesConfig`: the notes, the soundfont, the gain).
        sample_rate: Render rate.
        out_dir: Where WAVs go (``<work>/data/wavs``): ``notes/<instrument>/``, ``excerpts/<piece>/``.
        seed: Seeds the windows, tempos, velocities and programs of the excerpts.
        work_dir: Paths in the manifest are made relative to it.

    Returns:
        (items, report, split_of) where ``split_of`` maps item id → ``train``/``dev``/``test``.
    """
    cfg, notes_cfg = dc.music, dc.notes
    music21 = require_music21()              # the package, the pieces, then the tools: before anything is rendered
    root = corpus_root(music21)
    _resolve_pieces(cfg, root)
    fluidsynth = require_tool("fluidsynth", "fluidsynth")
    soundfont = find_soundfont(notes_cfg.soundfont)
    timing = {}

    t = time.perf_counter()
    note_items, note_report, _ = build_notes(dc, sample_rate, out_dir / "notes", seed, work_dir)
    for it in note_items:
        it.labels.update(kind="note", piece=None)
        it.group = it.labels["instrument"]
    timing["notes"] = round(time.perf_counter() - t, 1)

    t = time.perf_counter()
    scores = {}
    if cfg.excerpts:
        for piece in progress_bar(cfg.pieces, total=len(cfg.pieces), desc="music21", unit="piece"):
            scores[piece] = score_notes(music21, root / piece)
    empty = sorted(p for p, n in scores.items() if not n)
    jobs, notes = _plan(cfg, scores, seed)
    timing["corpus"] = round(time.perf_counter() - t, 1)

    t = time.perf_counter()
    n_clip = int(round(cfg.excerpt_seconds * sample_rate))
    slot = cfg.excerpt_seconds + GAP_SECONDS
    by_program = defaultdict(list)
    for job in jobs:
        by_program[job["program"]].append(job)

    def render_program(program: int):
        batch = by_program[program]
        stream_notes = [(i * slot + s, d, p, v) for i, job in enumerate(batch) for s, d, p, v in job["notes"]]
        stream = render_midi(fluidsynth, soundfont, midi_file(program, stream_notes), sample_rate, notes_cfg.gain)
        name, out, silent = GM_PROGRAMS[program], [], 0
        for i, job in enumerate(batch):
            a = int(round(i * slot * sample_rate))
            clip = stream[a : a + n_clip]
            if clip.size < n_clip:
                clip = np.pad(clip, (0, n_clip - clip.size))
            if float(np.max(np.abs(clip))) < SILENT_PEAK:
                silent += 1   # the window's pitches lie outside the patch
                continue
            cid = f"{_slug(job['piece'])}-{job['k']:03d}-{name}"
            path = out_dir / "excerpts" / _slug(job["piece"]) / f"{cid}.wav"
            write(path, peak_normalize(clip, PEAK), sample_rate, subtype="PCM_16")
            labels = {"kind": "excerpt", "program": program, "instrument": name, "piece": job["piece"],
                      "start": job["start"], "tempo": job["tempo"], "velocity": job["velocity"],
                      "notes": len(job["notes"])}
            out.append(Item(id=cid, path=str(path.relative_to(work_dir)), label=None, labels=labels,
                            group=job["piece"], duration=cfg.excerpt_seconds, sr=sample_rate))
        return out, silent

    excerpt_items, silent = [], 0
    with ThreadPoolExecutor(max(1, cfg.workers)) as pool:
        for got, s in progress_bar(pool.map(render_program, sorted(by_program)), total=len(by_program),
                                   desc="excerpts", unit="program"):
            excerpt_items += got
            silent += s
    excerpt_items.sort(key=lambda it: it.id)
    timing["excerpts"] = round(time.perf_counter() - t, 1)
    if silent:
        notes["silent (pitches outside the patch)"] = silent
    if empty:
        notes["pieces without notes (skipped)"] = len(empty)
        log.warning("music: pieces without notes skipped: %s", ", ".join(empty))

    items = note_items + excerpt_items
    split_of = {it.id: _split_of_program(cfg, it.labels["program"]) if it.labels["kind"] == "note"
                else _split_of_piece(cfg, it.labels["piece"]) for it in items}
    per = defaultdict(lambda: [0, 0.0])
    for it in items:
        row = per[(split_of[it.id], it.labels["kind"])]
        row[0] += 1
        row[1] += it.duration
    report = {
        "rendered": len(items), "requested": note_report["requested"] + len(jobs), "soundfont": soundfont,
        "music21": music21.__version__, "notes": {**note_report["notes"], **notes},
        "hours": round(sum(it.duration for it in items) / 3600, 3), "seconds": timing,
        "splits": [{"split": s, "kind": k, "items": n, "seconds": round(secs, 1)}
                   for (s, k), (n, secs) in sorted(per.items())],
        "programs": {s: sorted({it.labels["program"] for it in items if split_of[it.id] == s})
                     for s in ("train", "dev", "test")},
        "pieces": {s: sorted({it.labels["piece"] for it in excerpt_items if split_of[it.id] == s})
                   for s in ("train", "dev", "test")},
        "pieces_empty": empty,
    }
    return items, report, split_of
