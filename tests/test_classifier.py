"""The evaluation classifier learns a separable toy task, stops early, and round-trips."""

import numpy as np
import torch

from specgan.classifier import load_classifier, predict, train_classifier
from specgan.stage_one.data import MelDataset
from vocoder.mel import MelStats


def toy(n, seed):
    """Class k = a bright band at mel bins 4k..4k+3 (and a random time shift)."""
    rng = np.random.default_rng(seed)
    mels, labels = [], []
    for i in range(n):
        k = i % 3
        m = rng.normal(-6, 0.5, (16, 16)).astype(np.float32)
        m[4 * k : 4 * k + 4, rng.integers(0, 8) :] += 4
        mels.append(m)
        labels.append(["lo", "mid", "hi"][k])
    stats = MelStats(np.full(16, -5.0), np.full(16, 2.0))
    return MelDataset(mels, labels, stats, 16, float(np.log(1e-5)), vocab=["hi", "lo", "mid"])


def test_classifier_learns_stops_early_and_reloads(tmp_path):
    m = train_classifier(toy(60, 0), toy(15, 1), toy(15, 2), tmp_path, epochs=30, batch_size=16, width=8, patience=4)
    assert m["dev_accuracy"] == 1.0 and m["test_accuracy"] == 1.0
    assert m["epochs"] < 30  # stopped once dev accuracy stopped improving
    model, vocab, saved = load_classifier(tmp_path / "model.safetensors")
    assert vocab == ["hi", "lo", "mid"] and saved["test_accuracy"] == 1.0
    probs, emb = predict(model, toy(6, 3).x)
    assert probs.shape == (6, 3) and emb.shape == (6, 32) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == toy(6, 3).y.numpy()).all()


def test_a_shuffled_label_task_is_not_learned(tmp_path):
    train = toy(60, 0)
    train.y = train.y[torch.randperm(60, generator=torch.Generator().manual_seed(0))]  # labels carry no signal
    m = train_classifier(train, toy(30, 1), toy(30, 2), tmp_path, epochs=6, batch_size=16, width=8)
    assert m["test_accuracy"] < 0.7
