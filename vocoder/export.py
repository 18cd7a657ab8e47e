"""ONNX export of trained generators, and a runner that uses onnxruntime.

Sample-rate generators (hifigan, melgan) export whole: mel → waveform. The ``istft`` and ``phase``
generators export their network up to (magnitude, phase) — ``torch.istft`` has no ONNX form, so, as the field
does for Vocos-type models, the inverse STFT runs outside the graph (:class:`OnnxVocoder` does it
with torch). The graph's metadata records what the outside step needs and the MelConfig.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vocoder.generators.base import Generator
from vocoder.mel import MelConfig

__all__ = ["OnnxVocoder", "export_onnx"]


class _Spectrum(nn.Module):
    """A spectral generator's network alone (mel → magnitude, phase): what its ONNX form holds."""

    def __init__(self, g: Generator):
        super().__init__()
        self.g = g

    def forward(self, mel: torch.Tensor):
        return self.g.spectrum(mel)


def export_onnx(generator: Generator, path: str | Path, example_frames: int = 64, opset: int = 18) -> Path:
    """Export ``generator`` (weight norm folded) to ``path`` with dynamic batch and frame axes."""
    why = generator.onnx_unsupported()
    if why is not None:
        raise ValueError(f"{generator.registry_name}: {why}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    g = generator.eval()
    mel = torch.randn(1, g.mel_cfg.n_mels, example_frames)
    if g.stft is not None:  # the network is mel → spectrum; the iSTFT runs outside (OnnxVocoder)
        module, outputs = _Spectrum(g), ["magnitude", "phase"]
        meta = {"head": "istft", "n_fft": g.stft.n_fft, "hop_length": g.stft.hop_length, "window": "hann"}
        if g.stft.frames_per_mel_frame != 1:  # phase: its own (shorter) hop, u spectrum frames per mel frame
            meta["mel_hop"] = g.hop_length
    else:
        module, outputs = g, ["waveform"]
        meta = {"head": "waveform", "hop_length": g.hop_length}
    dyn = {"mel": {0: "batch", 2: "frames"}, **{o: {0: "batch", 2: "frames" if o != "waveform" else "samples"}
                                                 for o in outputs}}
    with torch.no_grad():
        torch.onnx.export(module, (mel,), str(path), input_names=["mel"], output_names=outputs, dynamic_axes=dyn,
                          opset_version=opset, dynamo=False)
    import onnx

    model = onnx.load(str(path))
    for k, v in {**meta, "generator": g.registry_name, "mel": json.dumps(g.mel_cfg.to_dict())}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, str(v)
    onnx.save(model, str(path))
    return path


class OnnxVocoder:
    """Run an exported generator with onnxruntime: ``OnnxVocoder(path)(mel)`` → waveform.

    Args:
        path: ``.onnx`` file written by :func:`export_onnx`.
        threads: onnxruntime intra-op threads.
    """

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.mel_cfg = MelConfig.from_dict(json.loads(self.meta["mel"]))
        self.hop = int(self.meta["hop_length"])
        self.mel_hop = int(self.meta.get("mel_hop", self.hop))  # samples per mel frame

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        """Mel (B, n_mels, T) float32 → waveform (B, T * mel hop)."""
        out = self.session.run(None, {"mel": np.ascontiguousarray(mel, dtype=np.float32)})
        if self.meta["head"] == "waveform":
            return out[0][:, 0]
        n_fft = int(self.meta["n_fft"])
        mag, phase = (torch.from_numpy(a) for a in out)
        spec = torch.polar(mag, phase)
        y = torch.istft(spec, n_fft, self.hop, n_fft, torch.hann_window(n_fft), center=True,
                        length=mel.shape[-1] * self.mel_hop)
        return y.clamp(-1, 1).numpy()
