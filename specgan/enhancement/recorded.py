"""Recorded noise for the enhancement data: OpenSFX and a keyboard, read offline from Debian packages.

``openttd-opensfx`` (Debian main, 10 MB) is OpenTTD's free sound set: 73 sounds at 44.1 kHz, most
of them edited field recordings from freesound.org and pdsounds.org (trains, jets, buses,
a jackhammer, a chainsaw, wind, birds, sheep, crashes), licensed CC BY-SA 3.0 (their sources CC0,
CC BY 3.0 or public domain; the package's ``readme.txt`` credits each). They come in one catalogue
file, ``opensfx.cat``: a table of (offset, size) pairs, then at each offset a length-prefixed title
and a RIFF WAV (OpenTTD's own format, read here without OpenTTD).

The sounds are grouped into noise types by what they are (:data:`GROUPS`; the jingles, the silent
placeholders and the cartoon "Toyland" mixes are left out), so that a recipe can train on some
groups and test on others it never heard, as with the synthesised types:

- ``vehicles``: trains, ships, jets, propeller planes, a helicopter, buses (engines, horns);
- ``machinery``: a mine's machinery, electric sparking, steam, a jackhammer, a smithy, a circular
  saw, a chainsaw;
- ``nature``: wind, birds, sheep, a cow, a horse, a lion, monkeys;
- ``impacts``: crashes, an explosion, falling trees, splats, things dropped;
- ``signals``: a factory whistle, a level crossing's bells, a cash till, beeps, Morse, a car horn.

A noise of ``n`` samples is recordings of the group, each from a random start for a random 0.3-2 s
(or to its end), joined with 20-ms cross-fades until ``n`` samples are filled; the caller scales
it to unit RMS.

``keyboard`` is typing, played from ``bucklespring-data`` (Debian main, GPL-2+): each key of an IBM
Model M recorded twice, pressed and released, 171 short 44.1-kHz clips (:func:`typing_noise`).
"""

from __future__ import annotations

import functools
import io
import os
import struct
from pathlib import Path

import numpy as np

__all__ = ["BUCKLESPRING", "GROUPS", "OPENSFX", "catalogue_path", "check_recorded", "group_sounds", "key_sounds",
           "keys_path", "read_catalogue", "recorded_noise", "typing_noise"]

OPENSFX = Path("/usr/share/games/openttd/baseset/opensfx/opensfx.cat")
PACKAGE = "openttd-opensfx"
BUCKLESPRING = Path("/usr/share/buckle/wav")
KEYS_PACKAGE = "bucklespring-data"


# catalogue index → group, from the titles OpenSFX 1.0.3 gives them (checked when read)
GROUPS: dict[str, dict[int, str]] = {
    "vehicles": {4: "Steam train station departure", 5: "Steam engine going in tunnel", 6: "Ship horn",
                 7: "Ferry horn", 8: "Propeller plane start", 9: "Early jet take off",
                 10: "Diesel/electric train station departure", 24: "Helicopter",
                 25: "Truck/old bus start, pull away", 27: "Modern bus start", 28: "Old bus start",
                 59: "Mach 1+ Jet take off", 61: "Modern jet take off", 65: "Maglev train station departure",
                 71: "Monorail train station departure"},
    "machinery": {11: "Mining machinery", 12: "Electric sparking", 13: "Steam (of steam engine)", 33: "Jackhammer",
                  39: "Building bridge", 40: "Sawmill", 56: "Lumber mill: Chainsaw"},
    "nature": {36: "Sheep", 37: "Cow", 38: "Horse", 52: "Wind", 57: "Heavy wind", 66: "Tropical: Bird (1)",
               67: "Tropical: Lion roar", 68: "Tropical: Monkeys", 72: "Tropical: Bird (2)"},
    "impacts": {2: "Splat (building docks/canals/river)", 15: "Road vehicle breakdown", 16: "Train/ship breakdown",
                17: "Crash", 18: "Explosion", 19: "Big crash", 23: "Plane wheels touching ground",
                31: "Splat (terraform/non-rail builds", 32: "Splat (rail builds)", 54: "Lumber mill: Crashing tree",
                55: "Lumber mill: Falling tree"},
    "signals": {3: "Factory Whistle", 14: "Level crossing", 20: "Cash till", 21: "Beep", 22: "Morse",
                35: "Modern car horn"},
}


def catalogue_path() -> Path:
    """Where the catalogue is read from: ``$SPECGAN_OPENSFX`` if set (a copy elsewhere, on a system
    without the Debian package), else the package's :data:`OPENSFX`.
    """
    return Path(os.environ.get("SPECGAN_OPENSFX") or OPENSFX)


def read_catalogue(path: str | Path | None = None) -> list[tuple[str, np.ndarray, int]]:
    """Every sound of an OpenTTD sound catalogue: (title, mono float32 samples, sample rate).

    One line names the file and what is wrong: missing (with the package to install), not a
    catalogue, or cut short.
    """
    import soundfile as sf

    path = catalogue_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: recorded noise needs the {PACKAGE} package "
                                f"(sudo apt-get install {PACKAGE}; tools/setup.sh installs it)")
    data = path.read_bytes()
    if len(data) < 8:
        raise ValueError(f"{path}: not an OpenTTD sound catalogue ({len(data)} bytes)")
    first = struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF  # bit 31 flags the newer format
    if first % 8 or not 8 <= first <= len(data):
        raise ValueError(f"{path}: not an OpenTTD sound catalogue (its table would end at byte {first})")
    sounds = []
    for i in range(first // 8):
        off, size = struct.unpack_from("<II", data, 8 * i)
        off &= 0x7FFFFFFF  # each entry: a title's length, the title, then ``size`` bytes of WAV
        if off >= len(data) or off + 1 + data[off] + size > len(data):
            raise ValueError(f"{path}: sound {i} lies past the end of the file (cut short?)")
        n = data[off]
        title = data[off + 1: off + 1 + n].rstrip(b"\0").decode("latin-1")
        blob = data[off + 1 + n: off + 1 + n + size]
        if len(blob) <= 44:  # the catalogue's empty placeholders: a bare header
            sounds.append((title, np.zeros(0, np.float32), 44100))
            continue
        try:
            y, sr = sf.read(io.BytesIO(blob), dtype="float32", always_2d=True)
        except Exception as e:  # noqa: BLE001 (soundfile raises several kinds)
            raise ValueError(f"{path}: sound {i} ({title[:40]!r}) is not a readable WAV: {e}") from None
        sounds.append((title, y.mean(1), int(sr)))
    return sounds


def group_sounds(group: str, sr: int, path: str | Path | None = None) -> tuple[np.ndarray, ...]:
    """The recordings of one :data:`GROUPS` group at ``sr`` (soxr), each peak-normalised, cached
    per catalogue file (default :func:`catalogue_path`).

    A catalogue whose titles are not the ones :data:`GROUPS` was made from (another OpenSFX
    release) is refused in one line rather than grouped wrongly.
    """
    if group not in GROUPS:
        raise ValueError(f"unknown recorded noise group {group!r}; known: {', '.join(GROUPS)}")
    return _group_sounds(group, int(sr), catalogue_path() if path is None else Path(path))


@functools.lru_cache(maxsize=1)
def _catalogue(path: Path) -> tuple[tuple[str, np.ndarray, int], ...]:
    """:func:`read_catalogue`, once per file for all the groups drawn from it."""
    return tuple(read_catalogue(path))


@functools.lru_cache(maxsize=16)
def _group_sounds(group: str, sr: int, path: Path) -> tuple[np.ndarray, ...]:
    import soxr

    sounds = _catalogue(path)
    out = []
    for i, want in GROUPS[group].items():
        if i >= len(sounds) or not sounds[i][0].startswith(f'"{want}"'):
            got = sounds[i][0][:60] if i < len(sounds) else "nothing"
            raise ValueError(f"{path}: sound {i} should be {want!r} (OpenSFX 1.0.3) but is {got!r}: another release")
        _, y, rate = sounds[i]
        y = soxr.resample(y, rate, sr).astype(np.float32) if rate != sr else y
        top = float(np.abs(y).max()) if y.size else 0.0
        if top > 0:
            out.append(y / top)
    return tuple(out)


def recorded_noise(group: str, n: int, sr: int, rng: np.random.Generator,
                   path: str | Path | None = None) -> np.ndarray:
    """``n`` samples of the group's recordings (float64, not yet at unit RMS): random recordings
    from random starts for 0.3-2 s each (or to their end), joined with 20-ms cross-fades; the
    ``keyboard`` type is :func:`typing_noise` (``path``: its folder).
    """
    if group == "keyboard":
        return typing_noise(n, sr, rng, path)
    sounds = group_sounds(group, sr, path)
    fade = max(1, int(0.02 * sr))
    ramp = np.linspace(0.0, 1.0, fade)
    y = np.zeros(0)
    while len(y) < n + fade:
        s = sounds[int(rng.integers(len(sounds)))]
        start = int(rng.integers(0, max(1, len(s) - fade)))
        seg = np.asarray(s[start: start + int(rng.uniform(0.3, 2.0) * sr)], np.float64)
        if len(seg) <= 2 * fade:
            continue
        if len(y):
            y[-fade:] = y[-fade:] * ramp[::-1] + seg[:fade] * ramp
            y = np.concatenate([y, seg[fade:]])
        else:
            y = seg
    return y[:n]


def check_recorded(kind: str, sr: int) -> None:
    """Read (and cache) the sounds of one recorded noise type at ``sr``: one line when its package is
    missing or another release.
    """
    if kind == "keyboard":
        key_sounds(sr)
    else:
        group_sounds(kind, sr)


# -- a keyboard ------------------------------------------------------------------------------------
def keys_path() -> Path:
    """Where the key recordings are read from: ``$SPECGAN_BUCKLESPRING`` if set, else the package's."""
    return Path(os.environ.get("SPECGAN_BUCKLESPRING") or BUCKLESPRING)


def key_sounds(sr: int, path: str | Path | None = None) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(press, release) recordings of every key that has both (``<scancode>-0.wav`` and ``-1.wav``),
    at ``sr``, each pair scaled by the press's peak; cached per folder. One line when the folder is
    missing (with the package to install) or holds no such pair.
    """
    return _key_sounds(int(sr), keys_path() if path is None else Path(path))


@functools.lru_cache(maxsize=4)
def _key_sounds(sr: int, path: Path) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    import soundfile as sf
    import soxr

    if not path.is_dir():
        raise FileNotFoundError(f"{path} not found: the keyboard noise needs the {KEYS_PACKAGE} package "
                                f"(sudo apt-get install {KEYS_PACKAGE}; tools/setup.sh installs it)")
    pairs = []
    for press in sorted(path.glob("*-0.wav")):
        release = press.with_name(press.name[:-6] + "-1.wav")
        if not release.is_file():
            continue
        two = []
        for f in (press, release):
            try:
                y, rate = sf.read(f, dtype="float32", always_2d=True)
            except Exception as e:  # noqa: BLE001 (soundfile raises several kinds)
                raise ValueError(f"{f}: not a readable WAV: {e}") from None
            y = y.mean(1)
            y = soxr.resample(y, rate, sr).astype(np.float32) if rate != sr else y
            tail = min(len(y), max(1, sr // 100))  # a 10-ms fade-out: the clip's floor ends without a click
            y[len(y) - tail:] *= np.linspace(1.0, 0.0, tail, dtype=np.float32)
            two.append(y)
        top = float(np.abs(two[0]).max())
        if top > 0:
            pairs.append((two[0] / top, two[1] / top))
    if not pairs:
        raise ValueError(f"{path}: no key recordings (pairs of <key>-0.wav and <key>-1.wav)")
    return tuple(pairs)


def typing_noise(n: int, sr: int, rng: np.random.Generator, path: str | Path | None = None) -> np.ndarray:
    """``n`` samples of typing (float64, not yet at unit RMS): keystrokes at gamma-distributed
    intervals (mean 0.15 s: about 7 keys a second), with a pause of 0.4-1.5 s after one in ten,
    each a random key pressed and released 50-150 ms later, at a random level within ±4 dB.
    """
    keys = key_sounds(sr, path)
    y = np.zeros(n + sr)  # room for the last key's tail
    t = float(rng.uniform(0.0, 0.3)) * sr
    while t < n:
        press, release = keys[int(rng.integers(len(keys)))]
        gain = 10 ** (rng.uniform(-4.0, 4.0) / 20)
        for start, clip in ((int(t), press), (int(t + rng.uniform(0.05, 0.15) * sr), release)):
            m = min(len(clip), len(y) - start)
            if m > 0:
                y[start: start + m] += gain * clip[:m]
        t += rng.gamma(4.0, 0.15 / 4.0) * sr
        if rng.random() < 0.1:
            t += rng.uniform(0.4, 1.5) * sr
    return y[:n]
