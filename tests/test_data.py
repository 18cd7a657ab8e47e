"""Dataset sources: the standard layouts on small data made here, the builtin builders, splits."""

import json
import os

import numpy as np
import pytest
from conftest import need_tool

from specgan.data.layouts import scan_ljspeech, scan_nsynth, scan_sc09
from specgan.data.manifest import Item, MissingToolError, split_by_group
from specgan.data.prepare import load_split, parse_source, prepare
from specgan.recipe import load_recipe

SR = 16000


def clip(seed, seconds=0.5):
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t)).astype(np.float32)


def recipe_for(tmp_path, source, *extra):
    base = tmp_path / "r.yaml"
    base.write_text(f"name: t\nwork_dir: {tmp_path / 'work'}\nmel: {{sample_rate: {SR}, n_fft: 512, hop_length: 128, "
                    f"n_mels: 40}}\nspecgan: {{frames: 128}}\ndata:\n  source: '{source}'\n")
    return load_recipe(base, list(extra))


def test_parse_source():
    assert parse_source("builtin:digits") == ("builtin", "digits")
    assert parse_source("sc09:/data/sc09") == ("sc09", "/data/sc09")
    assert parse_source("/some/folder") == ("folder", "/some/folder")
    with pytest.raises(ValueError, match="unknown builtin 'drums'"):
        parse_source("builtin:drums")
    with pytest.raises(ValueError, match="unknown kind 'timit'"):
        parse_source("timit:/x")


def test_split_by_group_keeps_groups_whole():
    items = [Item(id=f"{g}-{i}", path="", group=g) for g in "abcdefghij" for i in range(5)]
    s = split_by_group(items, 0.1, 0.2, seed=0)
    groups = {k: {it.group for it in v} for k, v in s.items()}
    assert len(groups["dev"]) == 1 and len(groups["test"]) == 2 and len(groups["train"]) == 7
    assert not (groups["train"] & groups["dev"]) and not (groups["train"] & groups["test"])
    assert sum(len(v) for v in s.values()) == len(items)
    assert split_by_group(items, 0.1, 0.2, seed=0) == s  # deterministic
    with pytest.raises(ValueError, match="sum < 1"):
        split_by_group(items, 0.5, 0.6, 0)


def test_sc09_speech_commands_layout_with_lists(tmp_path, write_wav):
    for w in ("zero", "one", "two"):
        for spk in ("aaa", "bbb", "ccc"):
            write_wav(f"sc/{w}/{spk}_nohash_0.wav", clip(1), SR)
    write_wav("sc/dog/aaa_nohash_0.wav", clip(1), SR)  # not a digit: ignored
    (tmp_path / "sc" / "validation_list.txt").write_text("zero/bbb_nohash_0.wav\n")
    (tmp_path / "sc" / "testing_list.txt").write_text("one/ccc_nohash_0.wav\n")
    items, split_of = scan_sc09(tmp_path / "sc")
    assert len(items) == 9 and {it.label for it in items} == {"zero", "one", "two"}
    assert split_of["zero__bbb_nohash_0"] == "dev" and split_of["one__ccc_nohash_0"] == "test"
    assert sum(v == "train" for v in split_of.values()) == 7


def test_sc09_archive_layout(tmp_path, write_wav):
    write_wav("sc/train/Zero_aaa_nohash_0.wav", clip(1), SR)
    write_wav("sc/valid/Seven_bbb_nohash_1.wav", clip(2), SR)
    write_wav("sc/test/Nine_ccc_nohash_0.wav", clip(3), SR)
    items, split_of = scan_sc09(tmp_path / "sc")
    by_id = {it.id: it for it in items}
    assert by_id["valid__Seven_bbb_nohash_1"].label == "seven"
    assert by_id["valid__Seven_bbb_nohash_1"].labels["digit"] == 7
    assert sorted(split_of.values()) == ["dev", "test", "train"]


def test_nsynth_layout(tmp_path, write_wav):
    meta = {}
    for i, (inst, pitch) in enumerate([("guitar_001", 40), ("guitar_001", 60), ("flute_002", 72), ("flute_002", 100)]):
        name = f"{inst}-{pitch:03d}-100"
        write_wav(f"ns/nsynth-train/audio/{name}.wav", clip(i), SR)
        meta[name] = {"pitch": pitch, "velocity": 100, "instrument_str": inst, "instrument_family_str": inst[:-4]}
    (tmp_path / "ns" / "nsynth-train" / "examples.json").write_text(json.dumps(meta))
    r = recipe_for(tmp_path, "x")
    r.data.pitch_min, r.data.pitch_max = 36, 84
    items, split_of = scan_nsynth(tmp_path / "ns", r.data)
    assert len(items) == 3 and all(36 <= it.labels["pitch"] <= 84 for it in items)
    assert set(split_of.values()) == {"train"}
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "examples.json").write_text("{not json")
    with pytest.raises(ValueError, match="examples.json: cannot read NSynth metadata"):
        scan_nsynth(tmp_path / "bad")


def test_ljspeech_layout(tmp_path, write_wav):
    rows = []
    for i in range(4):
        write_wav(f"lj/wavs/LJ001-{i:04d}.wav", clip(i), SR)
        rows.append(f"LJ001-{i:04d}|Text {i}.|Text {i} normalized.")
    (tmp_path / "lj" / "metadata.csv").write_text("\n".join(rows) + "\n")
    items, split_of = scan_ljspeech(tmp_path / "lj")
    assert split_of is None and len(items) == 4
    assert items[2].labels["text"] == "Text 2 normalized." and items[2].path.endswith("LJ001-0002.wav")
    (tmp_path / "lj" / "metadata.csv").write_text("LJ001-0000\n")
    with pytest.raises(ValueError, match=r"metadata.csv:1: expected 'id\|text"):
        scan_ljspeech(tmp_path / "lj")


def test_prepare_folder_skips_bad_files_with_counts(tmp_path, write_wav):
    for label in ("cat", "dog"):
        for i in range(6):
            write_wav(f"audio/{label}/{i}.wav", clip(i), SR)
    (tmp_path / "audio" / "cat" / "broken.wav").write_bytes(b"not audio")
    write_wav("audio/dog/empty.wav", np.zeros(0, np.float32), SR)
    write_wav("audio/dog/tiny.wav", clip(0, seconds=0.005), SR)
    r = recipe_for(tmp_path, f"folder:{tmp_path / 'audio'}", "data.label_from_subfolder=true", "data.label=folder",
                   "data.dev_fraction=0.2", "data.test_fraction=0.2")
    report = prepare(r)
    assert sum(report["counts"].values()) == 12
    assert report["skipped"].startswith("skipped 3 files:")
    for reason in ("unreadable", "empty", "too short"):
        assert reason in report["skipped"]
    assert len(report["skipped_files"]) == 3 and all(f["path"].startswith(str(tmp_path)) for f in report["skipped_files"])
    train = load_split(r, "train")
    assert {it.label for it in train} <= {"cat", "dog"} and all(os.path.isabs(it.path) for it in train)
    assert (r.work / "data" / "config.yaml").is_file()
    # Up to date: skipped; a data change re-runs.
    assert prepare(r).get("skipped_stage") is True
    r.data.dev_fraction = 0.1
    assert "skipped_stage" not in prepare(r)


def test_prepare_label_errors(tmp_path, write_wav):
    write_wav("audio/a.wav", clip(0), SR)
    r = recipe_for(tmp_path, str(tmp_path / "audio"), "data.label=pitch")
    with pytest.raises(ValueError, match="data.label: 'pitch' is not a label"):
        prepare(r)
    (tmp_path / "no_audio").mkdir()
    (tmp_path / "no_audio" / "notes.txt").write_text("hello")
    with pytest.raises(FileNotFoundError, match="no audio files"):
        prepare(recipe_for(tmp_path, f"folder:{tmp_path / 'no_audio'}"))
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        prepare(recipe_for(tmp_path, f"sc09:{tmp_path / 'missing'}"))


def test_missing_tool_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    r = recipe_for(tmp_path, "builtin:digits")
    with pytest.raises(MissingToolError, match="apt-get install -y espeak-ng"):
        prepare(r)
    r = recipe_for(tmp_path, "builtin:notes")
    with pytest.raises(MissingToolError, match="apt-get install -y fluidsynth"):
        prepare(r)


@need_tool("espeak-ng")
def test_builtin_digits_split_by_voice(tmp_path):
    r = recipe_for(tmp_path, "builtin:digits", "data.label=word", "data.preprocess.clip_seconds=1.0",
                   "data.digits.variants=[m1, m3, f2, f4, adam]", "data.digits.accents=[en-us]",
                   "data.digits.words=[zero, one, seven]")
    report = prepare(r)
    assert report["build"]["rendered"] == 15 and sum(report["counts"].values()) == 15
    voices = {s: {it.labels["voice"] for it in load_split(r, s)} for s in ("train", "dev", "test")}
    assert voices["dev"] and voices["test"] and not (voices["train"] & (voices["dev"] | voices["test"]))
    it = load_split(r, "train")[0]
    import soundfile as sf

    y, sr = sf.read(it.path)
    assert sr == SR and y.size == SR and 0.85 < np.abs(y).max() < 0.95
    assert it.label in ("zero", "one", "seven") and it.labels["digit"] in (0, 1, 7)


@need_tool("fluidsynth")
def test_builtin_notes_have_the_asked_pitch(tmp_path):
    import librosa
    import soundfile as sf

    r = recipe_for(tmp_path, "builtin:notes", "data.label=pitch", "data.notes.programs=[0, 40]",
                   "data.notes.pitch_min=48", "data.notes.pitch_max=72", "data.notes.pitch_step=12",
                   "data.notes.clip_seconds=1.5", "data.notes.note_seconds=1.0")
    report = prepare(r)
    assert report["build"]["rendered"] == 6
    items = [it for s in ("train", "dev", "test") for it in load_split(r, s)]
    assert len({it.id for it in items}) == 6
    for it in items:
        y, sr = sf.read(it.path, dtype="float32")
        assert sr == SR and y.size == int(1.5 * SR)
        f0, _, _ = librosa.pyin(y[: SR], fmin=60, fmax=1200, sr=sr)
        midi = librosa.hz_to_midi(np.nanmedian(f0))
        assert abs(midi - it.label) < 0.5, (it.id, midi)
