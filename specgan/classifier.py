"""The evaluation classifier: a small CNN on normalised mels, trained on the recipe's real train split.

It plays the role the Inception network plays for images (and the SC09 classifier for WaveGAN):
its class probabilities give the Inception Score and the label accuracy of generated clips, its
penultimate layer the embeddings for the Fréchet distance. Trained once per recipe into
``<work>/classifier/`` (``model.safetensors`` + ``metrics.json`` with its test accuracy, which
bounds how much the generation metrics can say).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["MelClassifier", "load_classifier", "predict", "train_classifier"]

log = logging.getLogger(__name__)


class MelClassifier(nn.Module):
    """Four conv blocks (3×3 conv, batch norm, ReLU, 2×2 max-pool), global average pooling to a
    ``4·width`` embedding, dropout, linear classifier. Input (B, 1, n_mels, frames) in [-1, 1].
    """

    def __init__(self, n_classes: int, width: int = 32, dropout: float = 0.3):
        super().__init__()
        chans = [1, width, 2 * width, 4 * width, 4 * width]
        blocks = []
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(chans[-1], n_classes)
        self.n_classes, self.width = n_classes, width

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.embed(x)))


@torch.no_grad()
def predict(model: MelClassifier, x: torch.Tensor, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, classes), embeddings (N, D)) for (N, 1, n_mels, frames) or (N, n_mels, frames)."""
    model.eval()
    if x.dim() == 3:
        x = x[:, None]
    probs, embs = [], []
    for i in range(0, len(x), batch):
        e = model.embed(x[i : i + batch].float())
        embs.append(e.numpy())
        probs.append(torch.softmax(model.head(e), -1).numpy())
    return np.concatenate(probs), np.concatenate(embs)


def _accuracy(model: MelClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    probs, _ = predict(model, x)
    return float((probs.argmax(1) == y.numpy()).mean())


def start_training(n_classes: int, width: int, lr: float, seed: int, horizon: int):
    """(model, optimiser, cosine schedule over ``horizon`` scheduler steps, batch generator), seeded:
    the one recipe the evaluation classifier and the augmentation experiment's recognisers share.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = MelClassifier(n_classes, width)
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=1e-4)
    return model, opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, horizon), gen


def train_step(model: MelClassifier, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               gen: torch.Generator, max_shift: int, transform=None) -> float:
    """One step on a batch: a random circular time shift of up to ``max_shift`` frames, then
    ``transform(x)`` if given (e.g. SpecAugment), cross-entropy, AdamW. Returns the batch loss.
    """
    if max_shift:
        x = torch.roll(x, int(torch.randint(-max_shift, max_shift + 1, (1,), generator=gen)), dims=3)
    if transform is not None:
        x = transform(x)
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def train_classifier(train, dev, test, out: str | Path, epochs: int = 20, batch_size: int = 64, lr: float = 1e-3,
                     width: int = 32, seed: int = 0, max_shift: int = 4, patience: int = 4) -> dict:
    """Train on ``train`` (a :class:`specgan.stage_one.data.MelDataset` with labels), keep the epoch
    with the best ``dev`` accuracy (stopping after ``patience`` epochs without a gain), report
    ``test`` accuracy; writes ``out/model.safetensors`` and ``out/metrics.json``. Augmentation: a
    random circular time shift of up to ``max_shift`` frames.
    """
    from vocoder.checkpoint import atomic_write, save_model

    if train.y is None:
        raise ValueError("the evaluation classifier needs labels (set data.label)")
    model, opt, sched, gen = start_training(len(train.vocab), width, lr, seed, epochs)
    best, best_state, history = -1.0, None, []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train), generator=gen)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            total += train_step(model, opt, train.x[idx], train.y[idx], gen, max_shift) * len(idx)
        sched.step()
        acc = _accuracy(model, dev.x, dev.y)
        history.append({"epoch": epoch + 1, "train_loss": total / len(train), "dev_accuracy": acc})
        log.info("classifier epoch %d: train loss %.3f, dev accuracy %.3f", epoch + 1, total / len(train), acc)
        if acc > best:
            best, best_state, stale = acc, {k: v.clone() for k, v in model.state_dict().items()}, 0
        else:
            stale += 1
            if stale >= patience:
                break
    model.load_state_dict(best_state)
    metrics = {"dev_accuracy": best, "test_accuracy": _accuracy(model, test.x, test.y), "classes": len(train.vocab),
               "train_items": len(train), "dev_items": len(dev), "test_items": len(test), "epochs": len(history),
               "history": history}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / "model.safetensors", model, kind="classifier", name="classifier",
               kwargs={"n_classes": len(train.vocab), "width": width}, step=len(history),
               extra={"vocab": list(train.vocab), "shape": list(train.x.shape[2:])})
    atomic_write(out / "metrics.json", lambda tmp: tmp.write_text(json.dumps(metrics, indent=1)))
    return metrics


def load_classifier(path: str | Path) -> tuple[MelClassifier, list, dict]:
    """(model in eval mode, vocabulary, metrics.json beside it or {})."""
    from vocoder.checkpoint import load_model

    path = Path(path)
    model, info = load_model(path, lambda i: MelClassifier(int(i.kwargs["n_classes"]), int(i.kwargs["width"])),
                             "classifier")
    metrics_path = path.parent / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    except json.JSONDecodeError:
        metrics = {}
    return model, list(info.extra.get("vocab", [])), metrics
