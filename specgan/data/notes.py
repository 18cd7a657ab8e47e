"""``builtin:notes`` — an NSynth-like set of single notes rendered offline by fluidsynth.

For speed, each General MIDI program gets one MIDI file holding all of its notes in sequence
(one fluidsynth call per program instead of per note, 5-10x faster), which is then cut into
clips. Each note is held ``note_seconds`` inside a ``clip_seconds`` clip; a silent gap after each
clip keeps a long release from leaking into the next note.
"""

from __future__ import annotations

import random
import struct
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from specgan.progress import bar as progress_bar

from specgan.audio import peak_normalize, resample, write
from specgan.data.manifest import Item, MissingToolError, require_tool

__all__ = ["GAP_SECONDS", "GM_PROGRAMS", "PEAK", "SILENT_PEAK", "build_notes", "find_soundfont", "midi_file",
           "render_midi"]

PEAK = 0.9
GAP_SECONDS = 1.5         # silence between clips in the rendered stream
_TICKS_PER_SECOND = 960    # 480 ticks per quarter at the default 120 bpm
SILENT_PEAK = 1e-4        # a clip whose raw peak is below this is "silent" (pitch out of range)

SOUNDFONT_PATHS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
)

# General MIDI level 1 program names, 0-based.
GM_PROGRAMS = (
    "acoustic_grand_piano bright_acoustic_piano electric_grand_piano honky_tonk_piano electric_piano_1 "
    "electric_piano_2 harpsichord clavinet celesta glockenspiel music_box vibraphone marimba xylophone "
    "tubular_bells dulcimer drawbar_organ percussive_organ rock_organ church_organ reed_organ accordion "
    "harmonica tango_accordion acoustic_guitar_nylon acoustic_guitar_steel electric_guitar_jazz "
    "electric_guitar_clean electric_guitar_muted overdriven_guitar distortion_guitar guitar_harmonics "
    "acoustic_bass electric_bass_finger electric_bass_pick fretless_bass slap_bass_1 slap_bass_2 "
    "synth_bass_1 synth_bass_2 violin viola cello contrabass tremolo_strings pizzicato_strings "
    "orchestral_harp timpani string_ensemble_1 string_ensemble_2 synth_strings_1 synth_strings_2 "
    "choir_aahs voice_oohs synth_voice orchestra_hit trumpet trombone tuba muted_trumpet french_horn "
    "brass_section synth_brass_1 synth_brass_2 soprano_sax alto_sax tenor_sax baritone_sax oboe "
    "english_horn bassoon clarinet piccolo flute recorder pan_flute blown_bottle shakuhachi whistle "
    "ocarina lead_1_square lead_2_sawtooth lead_3_calliope lead_4_chiff lead_5_charang lead_6_voice "
    "lead_7_fifths lead_8_bass_lead pad_1_new_age pad_2_warm pad_3_polysynth pad_4_choir pad_5_bowed "
    "pad_6_metallic pad_7_halo pad_8_sweep fx_1_rain fx_2_soundtrack fx_3_crystal fx_4_atmosphere "
    "fx_5_brightness fx_6_goblins fx_7_echoes fx_8_sci_fi sitar banjo shamisen koto kalimba bagpipe "
    "fiddle shanai tinkle_bell agogo steel_drums woodblock taiko_drum melodic_tom synth_drum "
    "reverse_cymbal guitar_fret_noise breath_noise seashore bird_tweet telephone_ring helicopter "
    "applause gunshot"
).split()
assert len(GM_PROGRAMS) == 128


def _vlq(n: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def midi_file(program: int, notes: list[tuple[float, float, int, int]]) -> bytes:
    """A format-0 Standard MIDI File playing ``notes`` on channel 0 with ``program``.

    Args:
        program: GM program 0..127.
        notes: (start_seconds, duration_seconds, pitch, velocity) tuples.
    """
    if not 0 <= program < 128:
        raise ValueError(f"GM program must be in 0..127, got {program}")
    events = []  # (tick, order, bytes): note-offs sort before note-ons at the same tick
    for start, dur, pitch, vel in notes:
        if not (0 <= pitch < 128 and 1 <= vel < 128):
            raise ValueError(f"MIDI pitch must be 0..127 and velocity 1..127, got {pitch}, {vel}")
        on = int(round(start * _TICKS_PER_SECOND))
        off = int(round((start + dur) * _TICKS_PER_SECOND))
        events.append((on, 1, bytes([0x90, pitch, vel])))
        events.append((off, 0, bytes([0x80, pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    track = bytearray(_vlq(0) + bytes([0xC0, program]))
    now = 0
    for tick, _, data in events:
        track += _vlq(tick - now) + data
        now = tick
    track += _vlq(0) + b"\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, _TICKS_PER_SECOND // 2)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def find_soundfont(explicit: str | None) -> str:
    """The soundfont to use: ``explicit`` if given (must exist), else the first Debian GM bank."""
    if explicit:
        if not Path(explicit).is_file():
            raise FileNotFoundError(f"data.notes.soundfont: {explicit} does not exist")
        return explicit
    for p in SOUNDFONT_PATHS:
        if Path(p).is_file():
            return p
    raise MissingToolError(
        "no General MIDI soundfont found (looked in " + ", ".join(SOUNDFONT_PATHS)
        + "); install one with: apt-get install -y fluid-soundfont-gm, or set data.notes.soundfont"
    )


def render_midi(fluidsynth: str, soundfont: str, midi: bytes, sr: int, gain: float) -> np.ndarray:
    """Render a standard MIDI file's bytes with fluidsynth (no reverb or chorus) into a mono float32
    array at ``sr``; a fluidsynth failure raises RuntimeError with its command and message.
    """
    with tempfile.TemporaryDirectory(prefix="specgan-notes-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(midi)
        cmd = [fluidsynth, "-ni", "-q", "-o", "synth.dynamic-sample-loading=1", "-g", str(gain), "-r", str(sr),
               "-R", "0", "-C", "0", "-F", str(wav), soundfont, str(mid)]
        proc = subprocess.run(cmd, capture_output=True, timeout=3600)
        if proc.returncode != 0 or not wav.exists():
            raise RuntimeError(f"fluidsynth failed ({' '.join(cmd)}): {proc.stderr.decode(errors='replace').strip()}")
        y, file_sr = sf.read(str(wav), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    return resample(y, file_sr, sr)


def build_notes(dc, sample_rate: int, out_dir: Path, seed: int, work_dir: Path) -> tuple[list[Item], dict, None]:
    """Render every (program, pitch, velocity) note into ``out_dir``; return items, a report and no split.

    The common builder signature (:class:`specgan.data.sources.Builder`).

    Args:
        dc: The recipe's ``data`` section; its ``dc.notes`` (:class:`specgan.recipe.NotesConfig`) is read.
        sample_rate: Render rate.
        out_dir: Where WAVs go (``<work>/data/wavs``).
        seed: Unused by rendering (it is deterministic); taken because every builder takes it.
        work_dir: Paths in the manifest are made relative to it.

    Returns:
        (items, report, None): no split of its own; prepare splits by group (``data.notes.split_by``).
    """
    del seed
    cfg = dc.notes
    fluidsynth = require_tool("fluidsynth", "fluidsynth")
    soundfont = find_soundfont(cfg.soundfont)
    if not 0 <= cfg.pitch_min <= cfg.pitch_max <= 127:
        raise ValueError(f"data.notes: need 0 <= pitch_min <= pitch_max <= 127, got {cfg.pitch_min}, {cfg.pitch_max}")
    if cfg.note_seconds > cfg.clip_seconds:
        raise ValueError(f"data.notes: note_seconds ({cfg.note_seconds}) exceeds clip_seconds ({cfg.clip_seconds})")
    pitches = list(range(cfg.pitch_min, cfg.pitch_max + 1, cfg.pitch_step))
    slot = cfg.clip_seconds + GAP_SECONDS
    n_clip = int(round(cfg.clip_seconds * sample_rate))

    def render_program(program: int):
        notes = [(i * slot, cfg.note_seconds, p, v)
                 for i, (p, v) in enumerate((p, v) for p in pitches for v in cfg.velocities)]
        stream = render_midi(fluidsynth, soundfont, midi_file(program, notes), sample_rate, cfg.gain)
        name = GM_PROGRAMS[program]
        out, silent = [], 0
        for start, _, pitch, vel in notes:
            a = int(round(start * sample_rate))
            clip = stream[a : a + n_clip]
            if clip.size < n_clip:
                clip = np.pad(clip, (0, n_clip - clip.size))
            if float(np.max(np.abs(clip))) < SILENT_PEAK:
                silent += 1   # the patch has no sample for this pitch
                continue
            cid = f"{name}-{pitch:03d}-{vel:03d}"
            path = out_dir / name / f"{cid}.wav"
            write(path, peak_normalize(clip, PEAK), sample_rate, subtype="PCM_16")
            group = name if cfg.split_by == "program" else cid
            out.append(Item(id=cid, path=str(path.relative_to(work_dir)), label=None,
                            labels={"pitch": pitch, "velocity": vel, "program": program, "instrument": name},
                            group=group, duration=cfg.clip_seconds, sr=sample_rate))
        return out, silent

    items, silent = [], 0
    with ThreadPoolExecutor(max(1, cfg.workers)) as pool:
        for got, s in progress_bar(pool.map(render_program, cfg.programs), total=len(cfg.programs), desc="notes",
                           unit="program"):
            items += got
            silent += s
    random.Random(0).shuffle(items)  # interleave programs (order is otherwise by program)
    report = {"rendered": len(items), "requested": len(cfg.programs) * len(pitches) * len(cfg.velocities),
              "soundfont": soundfont, "notes": {"silent (pitch outside the patch)": silent} if silent else {}}
    return items, report, None
