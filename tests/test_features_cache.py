"""The features stage: per-item cache reuse and invalidation, skipped files, train-only stats."""

import os

import numpy as np
import pytest
import soundfile as sf
from conftest import music_like, speech_like

from specgan.data.prepare import prepare
from specgan.features import LogMelExtractor
from specgan.features.cache import load_features, load_index, load_stats, run_features
from specgan.recipe import load_recipe

SR = 16000


@pytest.fixture
def corpus(tmp_path, write_wav):
    for label in ("a", "b"):
        for i in range(5):
            f = speech_like if label == "a" else music_like
            write_wav(f"audio/{label}/{i}.wav", f(SR, 0.6 + 0.1 * i, seed=i), SR)
    nan = np.full(SR, 0.1, np.float32)
    nan[7] = np.nan
    write_wav("audio/a/nan.wav", nan, SR, subtype="FLOAT")
    write_wav("audio/b/zeros.wav", np.zeros(SR, np.float32), SR)
    (tmp_path / "r.yaml").write_text(
        f"name: t\nwork_dir: {tmp_path / 'work'}\n"
        f"mel: {{sample_rate: {SR}, n_fft: 512, hop_length: 128, n_mels: 40}}\n"
        f"data:\n  source: '{tmp_path / 'audio'}'\n  label_from_subfolder: true\n  label: folder\n"
        f"  preprocess: {{trim_db: null, normalize: none}}\n"
        f"features: {{workers: 1}}\n")
    return tmp_path


def run(tmp_path, *overrides):
    r = load_recipe(tmp_path / "r.yaml", list(overrides))
    prepare(r)
    return r, run_features(r)


def load_index_or_manifest(r):
    """The audio path of the first train item (from the manifest)."""
    from specgan.data.prepare import load_split

    return load_split(r, "train")[0].path


def all_skipped(r):
    return {k: v for s in ("train", "dev", "test") for k, v in load_index(r.work, s)["skipped"].items()}


def test_extracts_reuses_and_skips_bad_files(corpus, write_wav):
    import json

    r = load_recipe(corpus / "r.yaml")
    prepare(r)  # prepare reads every file: the NaN and all-zero files never reach the manifests
    report = json.loads((r.work / "data" / "prepare.json").read_text())
    assert sorted((os.path.basename(f["path"]), f["reason"]) for f in report["skipped_files"]) == [
        ("nan.wav", "non-finite samples"), ("zeros.wav", "silent")]
    victim = r.work / load_index_or_manifest(r)  # a file that goes bad after prepare is skipped by features
    write_wav(os.path.relpath(victim, corpus), np.zeros(SR, np.float32), SR)
    rep = run_features(r)
    total = sum(rep[s]["items"] for s in ("train", "dev", "test"))
    assert total == 9 and sum(rep[s]["extracted"] for s in ("train", "dev", "test")) == 9
    skipped = all_skipped(r)
    assert [(os.path.basename(v["path"]), v["reason"]) for v in skipped.values()] == [(victim.name, "silent")]
    write_wav(os.path.relpath(victim, corpus), speech_like(SR, 0.6, seed=0), SR)  # restored
    r, rep = run(corpus)
    assert sum(rep[s]["items"] for s in ("train", "dev", "test")) == 10 and not all_skipped(r)
    # The stored features are exactly the extractor's output for the clip.
    idx = load_index(r.work, "train")
    item_id, entry = next(iter(idx["items"].items()))
    import soundfile as sf

    y, _ = sf.read(entry["audio"], dtype="float32")
    np.testing.assert_array_equal(load_features(r.work, "train", item_id), LogMelExtractor(r.mel)(y))
    assert entry["frames"] == r.mel.n_frames(y.size)

    mtimes = {p: p.stat().st_mtime_ns for p in (r.work / "features").rglob("*.npy")}
    r2, rep2 = run(corpus)
    assert all(rep2[s]["extracted"] == 0 and rep2[s]["reused"] == rep[s]["items"] for s in ("train", "dev", "test"))
    assert rep2["stats"]["recomputed"] is False
    assert {p: p.stat().st_mtime_ns for p in (r.work / "features").rglob("*.npy")} == mtimes


def test_changed_audio_is_reextracted_alone(corpus, write_wav):
    r, rep = run(corpus)
    idx = load_index(r.work, "train")
    item_id, entry = next(iter(idx["items"].items()))
    before = load_features(r.work, "train", item_id, mmap=False)
    write_wav(os.path.relpath(entry["audio"], corpus), speech_like(SR, 0.9, seed=42), SR)
    _, rep2 = run(corpus)
    assert rep2["train"]["extracted"] == 1 and rep2["train"]["reused"] == rep["train"]["items"] - 1
    assert rep2["stats"]["recomputed"] is True
    after = load_features(r.work, "train", item_id, mmap=False)
    assert after.shape != before.shape or not np.array_equal(after, before)


def test_config_change_rebuilds(corpus):
    r, _ = run(corpus)
    r2, rep = run(corpus, "mel.n_mels=32")
    assert all(rep[s]["reused"] == 0 for s in ("train", "dev", "test"))
    idx = load_index(r2.work, "train")
    assert load_features(r2.work, "train", next(iter(idx["items"]))).shape[0] == 32
    assert load_stats(r2.work).n_mels == 32
    _, rep3 = run(corpus, "mel.n_mels=32", "data.preprocess.normalize=peak")
    assert rep3["train"]["reused"] == 0  # preprocessing is part of the key too


def test_removed_items_lose_their_features(corpus):
    r, _ = run(corpus)
    n_before = len(list((r.work / "features").rglob("*.npy")))
    os.remove(corpus / "audio" / "a" / "0.wav")
    prepare(r, force=True)
    run_features(r)
    assert len(list((r.work / "features").rglob("*.npy"))) == n_before - 1


def test_stats_come_from_train_only(corpus):
    r, _ = run(corpus)
    stats = load_stats(r.work)
    idx = load_index(r.work, "train")
    frames = np.concatenate([load_features(r.work, "train", k, idx) for k in idx["items"]], axis=1).astype(np.float64)
    np.testing.assert_allclose(stats.mean, frames.mean(axis=1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stats.std, np.maximum(frames.std(axis=1), 1e-4), rtol=1e-5, atol=1e-6)
    assert stats.count == frames.shape[1] and stats.clip_sigma == 3.0
    z = stats.normalize(frames)
    assert z.min() >= -1 and z.max() <= 1


@pytest.mark.slow
def test_process_pool_matches_in_process(corpus, monkeypatch, write_wav):
    import specgan.features.cache as cache
    from specgan.data.prepare import load_split

    r, _ = run(corpus)
    serial = {k: load_features(r.work, "train", k, mmap=False) for k in load_index(r.work, "train")["items"]}
    victim = load_split(r, "dev")[0].path  # goes bad after prepare: the pool must report it too
    st, n = os.stat(victim), sf.info(victim).frames
    write_wav(os.path.relpath(victim, corpus), np.zeros(n, np.float32), SR)
    # same size, and its old mtime back: prepare's file-list fingerprint cannot see the change, so the
    # bad file reaches the features stage (what this test is about)
    assert os.stat(victim).st_size == st.st_size
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    monkeypatch.setattr(cache, "_POOL_MIN_SECONDS", 0.0)
    r2, rep = run(corpus, "features.workers=2", "features.dtype=float16")  # key changes: full rebuild in a pool
    assert rep["train"]["extracted"] == len(serial)
    for k, v in serial.items():
        got = load_features(r2.work, "train", k, mmap=False)
        assert got.dtype == np.float16
        np.testing.assert_allclose(got.astype(np.float32), v, atol=1e-2)
    assert [v["reason"] for v in all_skipped(r2).values()] == ["silent"]
