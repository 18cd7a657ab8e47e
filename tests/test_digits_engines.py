"""builtin:digits from several TTS engines: every engine in the manifest, clean 1-s clips,
speaker-disjoint splits that still give every engine a speaker in each split, missing engines
named in one line."""

import shutil

import numpy as np
import pytest
import soundfile as sf
from conftest import need_tool

from specgan.data.digits import split_speakers
from specgan.data.manifest import MissingToolError
from specgan.data.prepare import load_split, prepare
from specgan.recipe import RecipeError, load_recipe

SR = 16000


def recipe_for(tmp_path, *extra):
    base = tmp_path / "r.yaml"
    base.write_text(f"name: t\nwork_dir: {tmp_path / 'work'}\nmel: {{sample_rate: {SR}, n_fft: 512, hop_length: 128, "
                    f"n_mels: 32}}\ndata:\n  source: builtin:digits\n  label: word\n")
    return load_recipe(base, list(extra))


TINY = ("data.digits.engines=[espeak-ng, flite, festival]", "data.digits.words=[seven, two]",
        "data.digits.variants=[m1, m3, f2, adam]", "data.digits.accents=[en-us]",
        "data.digits.flite_voices=[kal16, awb, rms, slt]",
        "data.digits.festival_voices=[kal_diphone, ked_diphone, cmu_us_slt_arctic_hts]",
        "data.digits.tts_repeats=1", "data.digits.workers=1")


@need_tool("espeak-ng")
@need_tool("flite")
@need_tool("festival")
@need_tool("sox")
def test_multi_engine_build(tmp_path):
    r = recipe_for(tmp_path, *TINY)
    report = prepare(r)
    splits = {s: load_split(r, s) for s in ("train", "dev", "test")}
    items = [it for s in splits.values() for it in s]
    # 4 variants x 1 accent + 4 flite + 3 festival voices, x 2 words
    assert len(items) == (4 + 4 + 3) * 2, report["build"]
    assert {it.labels["engine"] for it in items} == {"espeak-ng", "flite", "festival"}
    assert {it.label for it in items} == {"seven", "two"}
    for it in items:
        y, sr = sf.read(it.path, dtype="float32", always_2d=True)
        assert sr == SR and y.shape == (SR, 1), it.path
        assert np.all(np.isfinite(y)) and 0.5 < np.abs(y).max() <= 0.91, it.path
    # speaker-disjoint: kal16/kal_diphone and slt/cmu_us_slt_arctic_hts are one person each
    where = {}
    for s, its in splits.items():
        for it in its:
            assert where.setdefault(it.group, s) == s, f"{it.group} in {where[it.group]} and {s}"
    groups = {(it.labels["engine"], it.labels["voice"]): it.group for it in items}
    assert groups[("flite", "kal16")] == groups[("festival", "kal_diphone")]
    assert groups[("flite", "slt")] == groups[("festival", "cmu_us_slt_arctic_hts")]
    for s, its in splits.items():   # every engine (>= 3 speakers each) has a speaker in every split
        assert {it.labels["engine"] for it in its} == {"espeak-ng", "flite", "festival"}, s
    assert report["build"]["per_engine"]["festival"]["test"] == 2


def test_split_speakers_covers_every_engine():
    eng = {"espeak-ng": [f"v{i}" for i in range(20)], "flite": ["tts-kal", "tts-awb", "tts-rms", "tts-slt"],
           "festival": ["tts-kal", "tts-ked", "tts-slt"]}
    for seed in range(20):
        where = split_speakers(eng, 0.1, 0.1, seed)
        assert set(where) == {s for v in eng.values() for s in v}
        for e, spk in eng.items():
            assert {where[s] for s in spk} == {"train", "dev", "test"}, (seed, e)
        assert sum(where[s] == "test" for s in eng["espeak-ng"]) == 2
        # a person behind two engines (kal, slt) covers both in dev/test: three people left in train
        assert {where[s] for s in ("tts-kal", "tts-slt")} == {"dev", "test"}, seed
        assert sum(where[s] == "train" for s in ("tts-awb", "tts-rms", "tts-ked")) == 3, seed


@need_tool("espeak-ng")
def test_espeak_only_is_today_set(tmp_path):
    # engines: [espeak-ng] (the default): same ids, labels and variant split as the espeak-only builder
    r = recipe_for(tmp_path, "data.digits.variants=[m1, m3, f2]", "data.digits.accents=[en-us]",
                   "data.digits.words=[one]", "data.digits.workers=1")
    prepare(r)
    items = [it for s in ("train", "dev", "test") for it in load_split(r, s)]
    assert sorted(it.id for it in items) == ["one_f2_en-us_0", "one_m1_en-us_0", "one_m3_en-us_0"]
    assert all("engine" not in it.labels and it.group == it.labels["voice"] for it in items)


def test_missing_engine_is_one_line(tmp_path, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda p, *a, **k: None if p == "flite" else real_which(p, *a, **k))
    r = recipe_for(tmp_path, "data.digits.engines=[flite]")
    with pytest.raises(MissingToolError) as e:
        prepare(r)
    msg = str(e.value)
    assert "\n" not in msg and "flite" in msg and "apt-get install -y flite" in msg and "data.digits.engines" in msg


def test_unknown_engine_and_bad_ranges(tmp_path):
    with pytest.raises(ValueError, match="unknown pico"):
        prepare(recipe_for(tmp_path, "data.digits.engines=[pico]"))
    with pytest.raises(RecipeError, match="tts_cents"):
        recipe_for(tmp_path, "data.digits.tts_cents=[300, -300]")
