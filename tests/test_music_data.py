"""builtin:music: builtin:notes plus excerpts of music21's corpus, split by program and piece."""

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import need_tool
from test_data import recipe_for as data_recipe

from specgan.cli import main
from specgan.data.manifest import MissingToolError, read_manifest
from specgan.data.music import _plan, _resolve_pieces, corpus_root, excerpt_notes, require_music21, score_notes
from specgan.data.prepare import load_split, parse_source, prepare
from specgan.recipe import MusicConfig, load_recipe

SR = 16000
RECIPES = Path(__file__).resolve().parent.parent / "recipes"
TINY = ("data.notes.programs=[0, 42, 71]", "data.notes.pitch_min=60", "data.notes.pitch_max=72",
        "data.notes.pitch_step=12", "data.notes.velocities=[100]", "data.notes.note_seconds=1.0",
        "data.notes.clip_seconds=1.5", "data.notes.workers=1",
        "data.music.excerpts=3", "data.music.excerpt_seconds=2.0", "data.music.programs=[0, 24, 42, 71]",
        "data.music.test_programs=[42]", "data.music.dev_programs=[71]",
        "data.music.pieces=[bach/bwv66.6.mxl, bach/bwv10.7.mxl, bach/bwv12.7.mxl]",
        "data.music.test_pieces=[bach/bwv10.7.mxl]", "data.music.dev_pieces=[bach/bwv12.7.mxl]",
        "data.music.workers=1")


def recipe_for(tmp_path, *extra):
    return data_recipe(tmp_path, "builtin:music", *TINY, *extra)


def test_parse_source_knows_music():
    assert parse_source("builtin:music") == ("builtin", "music")


def test_the_recipe_and_the_default_pieces():
    r, music = load_recipe(RECIPES / "music-voc.yaml"), load_recipe(RECIPES / "music.yaml")
    assert r.name == "music-voc" and r.work_dir == "exp/music-voc" and r.data.source == "builtin:music"
    assert r.data.label is None and r.data.preprocess.clip_seconds is None
    assert r.mel == music.mel and r.vocoder == music.vocoder and r.data.notes == music.data.notes
    assert set(r.data.music.programs) == set(music.data.notes.programs)   # every program of the notes
    _resolve_pieces(MusicConfig(), corpus_root(require_music21()))       # every default piece is in the corpus


def test_a_piece_not_in_the_corpus_is_one_line(tmp_path):
    r = recipe_for(tmp_path, "data.music.pieces=[bach/bwv66.6.mxl, bach/bwv10.7.mxl, bach/bwv12.7.mxl, "
                                    "bach/bwv66.7.mxl]")
    with pytest.raises(ValueError, match=r"data.music.pieces: 'bach/bwv66.7.mxl' is not in music21's corpus") as e:
        prepare(r)
    assert "\n" not in str(e.value) and "bwv66.6.mxl" in str(e.value)   # the nearest names are suggested


def test_missing_music21_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "music21", None)   # `import music21` now raises ImportError
    r = recipe_for(tmp_path)
    with pytest.raises(MissingToolError, match=r"pip install music21") as e:
        prepare(r)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "work" / "data" / "wavs").exists()   # refused before anything is rendered
    assert main(["prepare", "--recipe", str(tmp_path / "r.yaml"), *(a for o in TINY for a in ("--set", o))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "music21" in err and "pip install" in err and "Traceback" not in err, err


@pytest.mark.parametrize("bpm", [60, 240])
def test_score_notes_follow_the_tempo(tmp_path, bpm):
    (tmp_path / "t.abc").write_text(f"X:1\nT:t\nM:4/4\nL:1/4\nQ:1/4={bpm}\nK:C\nC D E F|\n")
    notes = score_notes(require_music21(), tmp_path / "t.abc")
    np.testing.assert_allclose([n[0] for n in notes], np.arange(4) * 60 / bpm, atol=1e-6)
    assert [n[2] for n in notes] == [60, 62, 64, 65]


def test_excerpt_windows():
    notes = [(0.0, 1.0, 60, 80), (0.5, 2.0, 64, 40), (1.0, 0.5, 60, 80), (2.9, 0.2, 67, 80), (5.0, 1.0, 72, 80)]
    out = excerpt_notes(notes, t0=0.5, length=2.5, tempo=2.0, top_velocity=100)
    # clipped to [0.5, 3.0], shifted to 0, twice as fast; the held C4 ends where the next C4 starts;
    # G4's 0.1-s fragment inside the window is kept, the note after the window is not
    np.testing.assert_allclose(out, [(0.0, 0.25, 60, 100), (0.0, 1.0, 64, 50), (0.25, 0.25, 60, 100),
                                     (1.2, 0.05, 67, 100)])
    assert excerpt_notes(notes, t0=3.2, length=1.0, tempo=1.0, top_velocity=100) == []


@need_tool("fluidsynth")
def test_tiny_build_splits_by_program_and_piece(tmp_path):
    r = recipe_for(tmp_path)
    report = prepare(r)
    build = report["build"]
    assert build["rendered"] == 6 + 3 == sum(report["counts"].values()) and not build["notes"]
    splits = {s: load_split(r, s) for s in ("train", "dev", "test")}
    programs = {s: {it.labels["program"] for it in items} for s, items in splits.items()}
    pieces = {s: {it.labels["piece"] for it in items if it.labels["kind"] == "excerpt"} for s, items in splits.items()}
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not (programs[a] & programs[b]) and not (pieces[a] & pieces[b]), (a, b)
    assert programs["test"] == {42} and programs["dev"] == {71} and programs["train"] <= {0, 24}
    assert pieces == {"train": {"bach/bwv66.6.mxl"}, "dev": {"bach/bwv12.7.mxl"}, "test": {"bach/bwv10.7.mxl"}}
    for items in splits.values():
        kinds = sorted(it.labels["kind"] for it in items)
        assert kinds == ["excerpt", "note", "note"], kinds   # two notes of its program, one excerpt
        for it in items:
            y, sr = sf.read(it.path, dtype="float32", always_2d=True)
            seconds = 2.0 if it.labels["kind"] == "excerpt" else 1.5
            assert sr == SR and y.shape == (int(seconds * SR), 1) and it.duration == seconds
            assert 0.85 < np.abs(y).max() < 0.95 and np.sqrt(np.mean(y**2)) > 0.02   # not silent
            if it.labels["kind"] == "excerpt":   # notes sound through the window, not just at its start
                quarters = np.sqrt(np.mean(y[: 4 * (len(y) // 4), 0].reshape(4, -1) ** 2, axis=1))
                assert np.all(quarters > 0.005), quarters
                assert it.labels["notes"] > 0 and 0.8 <= it.labels["tempo"] <= 1.25
            else:
                assert it.labels["piece"] is None and it.labels["pitch"] in (60, 72)
    # the same seed gives the same manifest; another seed other windows
    again = recipe_for(tmp_path, f"work_dir={tmp_path / 'again'}")
    prepare(again)
    for s in ("train", "dev", "test"):
        a = read_manifest(tmp_path / "work" / "data" / f"{s}.jsonl")
        b = read_manifest(tmp_path / "again" / "data" / f"{s}.jsonl")
        assert [(x.id, x.labels, x.path) for x in a] == [(x.id, x.labels, x.path) for x in b]
    m21 = require_music21()
    scores = {p: score_notes(m21, corpus_root(m21) / p) for p in r.data.music.pieces}
    plans = [[(j["piece"], j["start"], j["tempo"], j["program"]) for j in _plan(r.data.music, scores, seed)[0]]
             for seed in (0, 0, 1)]
    assert plans[0] == plans[1] != plans[2]
