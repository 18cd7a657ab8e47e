r"""The ``.sgc`` file: a 40-byte header, then the codes bit-packed.

Header (little-endian)::

    offset size  field
         0    4  magic b"SGC\x1a"
         4    1  version (1)
         5    1  n_q: quantisers used (codes per code frame)
         6    1  bits per code (log2 of the codebook size)
         7    1  stride: mel frames per code frame
         8    8  the model's id (:func:`specgan.codec.model.codec_id`: codebooks and decoder)
        16    4  sample rate (Hz) of the decoded audio
        20    8  samples of the original (the decoded audio is cut to it)
        28    4  code frames
        32    4  nominal bitrate (bits per second of the codes, header excluded)
        36    4  CRC-32 of the payload

Payload: code frame after code frame, each ``n_q`` codes of ``bits`` bits, most significant bit
first, the last byte zero-padded. Its length follows from the header, so a truncated or padded
file is caught before decoding, and the CRC catches a corrupted one.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["BitPacker", "CodecFileError", "HEADER", "Header", "MAGIC", "VERSION", "read_codes", "unpack_codes"]

MAGIC = b"SGC\x1a"
VERSION = 1
HEADER = struct.Struct("<4sBBBB8sIQIII")


class CodecFileError(ValueError):
    """A file that is not, or no longer, a codec file this model can read (one line, naming it)."""


@dataclass
class Header:
    """The fields of a file's header (the module docstring's table), and its payload's size."""

    n_q: int
    bits: int
    stride: int
    model_id: bytes
    sample_rate: int
    samples: int
    code_frames: int
    bitrate: int
    crc: int = 0

    def pack(self) -> bytes:
        return HEADER.pack(MAGIC, VERSION, self.n_q, self.bits, self.stride, self.model_id, self.sample_rate,
                           self.samples, self.code_frames, self.bitrate, self.crc)

    @property
    def payload_bytes(self) -> int:
        return -(-self.code_frames * self.n_q * self.bits // 8)

    @classmethod
    def unpack(cls, raw: bytes, path: str | Path = "") -> "Header":
        if len(raw) < 4 or raw[:4] != MAGIC:
            raise CodecFileError(f"{path}: not a specgan codec file (no {MAGIC!r} magic at the start)")
        if len(raw) < HEADER.size:
            raise CodecFileError(f"{path}: truncated ({len(raw)} bytes, shorter than the {HEADER.size}-byte header)")
        magic, version, n_q, bits, stride, model_id, sr, samples, frames, bitrate, crc = HEADER.unpack(raw[:HEADER.size])
        if version != VERSION:
            raise CodecFileError(f"{path}: codec file version {version}; this specgan reads version {VERSION}")
        if not (n_q and bits and stride and sr):
            raise CodecFileError(f"{path}: a corrupt header (n_q {n_q}, bits {bits}, stride {stride}, rate {sr})")
        return cls(n_q, bits, stride, model_id, sr, samples, frames, bitrate, crc)


class BitPacker:
    """Packs (frames, n_q) code arrays into bytes, chunk by chunk, carrying the bits of an unfinished
    byte; :meth:`finish` pads the last byte.
    """

    def __init__(self, bits: int):
        self.bits = bits
        self.carry = np.zeros(0, np.uint8)
        self.crc = 0

    def pack(self, codes: np.ndarray) -> bytes:
        shifts = np.arange(self.bits - 1, -1, -1, dtype=np.int64)
        flat = (np.asarray(codes, np.int64).reshape(-1, 1) >> shifts) & 1
        allbits = np.concatenate([self.carry, flat.astype(np.uint8).ravel()])
        whole = len(allbits) // 8 * 8
        self.carry = allbits[whole:]
        out = np.packbits(allbits[:whole]).tobytes()
        self.crc = zlib.crc32(out, self.crc)
        return out

    def finish(self) -> bytes:
        out = np.packbits(self.carry).tobytes() if len(self.carry) else b""
        self.carry = np.zeros(0, np.uint8)
        self.crc = zlib.crc32(out, self.crc)
        return out


def unpack_codes(payload: bytes, header: Header) -> np.ndarray:
    """The payload → codes (code_frames, n_q), int64."""
    n = header.code_frames * header.n_q * header.bits
    bits = np.unpackbits(np.frombuffer(payload, np.uint8))[:n].reshape(-1, header.bits).astype(np.int64)
    weights = 1 << np.arange(header.bits - 1, -1, -1, dtype=np.int64)
    return (bits @ weights).reshape(header.code_frames, header.n_q)


def read_codes(f: BinaryIO, path: str | Path) -> tuple[Header, np.ndarray]:
    """Header and codes of an open ``.sgc`` file, every check of the module docstring done."""
    header = Header.unpack(f.read(HEADER.size), path)
    payload = f.read(header.payload_bytes + 1)
    if len(payload) < header.payload_bytes:
        raise CodecFileError(f"{path}: truncated: {len(payload)} of {header.payload_bytes} payload bytes "
                             f"({header.code_frames} code frames)")
    if len(payload) > header.payload_bytes:
        raise CodecFileError(f"{path}: {header.payload_bytes} payload bytes expected, more found (not one codec file)")
    if zlib.crc32(payload) != header.crc:
        raise CodecFileError(f"{path}: the payload's CRC does not match its header (a corrupted file)")
    return header, unpack_codes(payload, header)
