"""builtin:voices: real asterisk prompts + TTS voices, split by speaker; reserved prompts refused."""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import need_tool

from specgan.data.manifest import MissingToolError
from specgan.data.prepare import load_split, parse_source, prepare
from specgan.data.voices import ReservedVoiceError, check_not_reserved
from specgan.recipe import load_recipe

SR = 16000
SOUNDS = Path("/usr/share/asterisk/sounds")
REAL = ("fr_CA_f_June", "it_IT_m_Carlo", "ru_RU_f_IvrvoiceRU")


def need_asterisk_sounds(f):
    """Like conftest.need_tool, for the Debian asterisk-core-sounds-{fr,it,ru}-g722 prompts."""
    missing = [v for v in REAL if not any((SOUNDS / v).glob("*.g722"))]
    if not missing:
        return f
    pkgs = " ".join(f"asterisk-core-sounds-{v[:2]}-g722" for v in missing)
    if os.environ.get("SPECGAN_REQUIRE_TOOLS") == "1":
        raise RuntimeError(f"{pkgs} required (SPECGAN_REQUIRE_TOOLS=1) but not installed")
    return pytest.mark.skip(reason=f"asterisk prompts not installed (apt-get install {pkgs})")(f)


def recipe_for(tmp_path, *extra):
    base = tmp_path / "r.yaml"
    base.write_text(f"name: t\nwork_dir: {tmp_path / 'work'}\nmel: {{sample_rate: {SR}, n_fft: 512, hop_length: 128, "
                    f"n_mels: 32}}\ndata:\n  source: builtin:voices\n")
    return load_recipe(base, list(extra))


def test_parse_source_knows_voices():
    assert parse_source("builtin:voices") == ("builtin", "voices")


@pytest.mark.parametrize("folder", ["en_US_f_Allison", "es_MX_f_Dana", "en", "es", "EN-gb_m_x"])
def test_reserved_voice_folders_are_refused(tmp_path, monkeypatch, folder):
    # A fake reserved folder with a prompt in it: refused before anything is read or decoded,
    # even with no ffmpeg on PATH.
    (tmp_path / "sounds" / folder).mkdir(parents=True)
    (tmp_path / "sounds" / folder / "hello.g722").write_bytes(b"\0" * 100)
    monkeypatch.setenv("PATH", str(tmp_path))
    r = recipe_for(tmp_path, f"data.voices.real_root={tmp_path / 'sounds'}",
                   f"data.voices.real_speakers=[{folder}]", f"data.voices.test_speaker={folder}")
    with pytest.raises(ReservedVoiceError, match="reserved for independent evaluation") as e:
        prepare(r)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "work" / "data" / "train.jsonl").exists()


def test_reserved_folder_behind_a_link_is_refused(tmp_path):
    (tmp_path / "en_US_f_Allison").mkdir()
    (tmp_path / "innocent").symlink_to(tmp_path / "en_US_f_Allison")
    with pytest.raises(ReservedVoiceError):
        check_not_reserved(tmp_path / "innocent")
    check_not_reserved(tmp_path / "fr_CA_f_June")       # allowed languages pass
    check_not_reserved("/usr/share/asterisk/sounds/it_IT_m_Carlo")


def test_missing_prompts_name_the_package(tmp_path):
    (tmp_path / "sounds").mkdir()
    r = recipe_for(tmp_path, f"data.voices.real_root={tmp_path / 'sounds'}")
    with pytest.raises(MissingToolError, match="apt-get install -y asterisk-core-sounds-fr-g722"):
        prepare(r)


def test_split_config_errors(tmp_path):
    r = recipe_for(tmp_path, "data.voices.test_speaker=nobody")
    with pytest.raises(ValueError, match="test_speaker: 'nobody' is not one of"):
        prepare(r)
    r = recipe_for(tmp_path, "data.voices.dev_speakers=[tts-rmz]")
    with pytest.raises(ValueError, match="dev_speakers: unknown speaker"):
        prepare(r)


@need_tool("ffmpeg")
@need_tool("flite")
@need_tool("espeak-ng")
@need_asterisk_sounds
def test_tiny_build_splits_by_speaker(tmp_path):
    r = recipe_for(tmp_path, "data.voices.max_prompts=3", "data.voices.sentences_per_voice=1",
                   "data.voices.engines=[espeak, flite]", "data.voices.espeak_variants=[m2, f5]",
                   "data.voices.espeak_accents=[en-us]", "data.voices.flite_voices=[kal16, rms, slt]",
                   "data.voices.dev_speakers=[tts-rms, espeak-f5]", "data.voices.workers=1")
    report = prepare(r)
    splits = {s: load_split(r, s) for s in ("train", "dev", "test")}
    speakers = {s: {it.labels["speaker"] for it in items} for s, items in splits.items()}
    # speaker-disjoint; the held-out real speaker is the whole test split and nowhere else
    assert not (speakers["train"] & speakers["dev"]) and not (speakers["train"] & speakers["test"])
    assert not (speakers["dev"] & speakers["test"])
    assert speakers["test"] == {"it_IT_m_Carlo"}
    assert speakers["dev"] == {"tts-rms", "espeak-f5"}
    assert {"fr_CA_f_June", "ru_RU_f_IvrvoiceRU", "tts-kal", "tts-slt", "espeak-m2"} == speakers["train"]
    assert report["counts"]["test"] == 3 and report["build"]["rendered"] == sum(report["counts"].values())
    engines = {it.labels["engine"] for items in splits.values() for it in items}
    assert engines == {"real", "espeak", "flite"}
    for items in splits.values():
        for it in items:
            assert {"speaker", "language", "engine", "gender"} <= set(it.labels) and it.group == it.labels["speaker"]
            assert it.labels["language"] == ("en" if it.labels["engine"] != "real" else it.labels["speaker"][:2])
            y, sr = sf.read(it.path, dtype="float32", always_2d=True)
            assert sr == SR and y.shape[1] == 1 and np.all(np.isfinite(y))
            assert y.shape[0] >= 0.5 * SR and 0.85 < np.abs(y).max() < 0.95
