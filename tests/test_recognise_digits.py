"""The independent digit listener of tools/recognise_digits.py (PocketSphinx with a digit grammar)."""

import subprocess

import numpy as np
import pytest
from conftest import load_tool, need_tool


def _tool():
    return load_tool("recognise_digits")


def test_score_counts_the_asked_word_per_word_and_nothing_heard():
    r = _tool().score(["one", "two", "", "one"], ["one", "one", "two", "one"])
    assert r["accuracy"] == 0.5 and r["n"] == 4 and r["none_heard"] == 0.25
    assert r["per_word"] == {"one": pytest.approx(2 / 3), "two": 0.0}
    assert r["confusions"] == {"one": {"two": 1}, "two": {"(nothing)": 1}}
    with pytest.raises(ValueError, match="3 transcripts for 2 clips"):
        _tool().score(["one"] * 3, ["one"] * 2)


@pytest.mark.slow
@need_tool("pocketsphinx_continuous")
@need_tool("flite")
def test_recogniser_hears_a_synthetic_voice_s_digits_at_any_rate_and_nothing_in_silence(tmp_path):
    import soundfile as sf
    import torch
    import torchaudio.functional as AF

    tool = _tool()
    words = ["three", "seven", "zero", "six"]
    wavs = []
    for w in words:
        path = tmp_path / f"{w}.wav"
        subprocess.run(["flite", "-voice", "slt", "-t", w, "-o", str(path)], check=True)
        y, sr = sf.read(path, dtype="float32")
        wavs.append(AF.resample(torch.from_numpy(y), sr, 22050).numpy() * 0.3)  # another rate, quiet
    heard = tool.recognise(wavs + [np.zeros(22050, np.float32)], 22050)
    assert heard[:4] == words
    assert heard[4] == ""  # silence: no word, not a guess


def test_the_table_has_a_dnsmos_column_and_a_row_with_only_dnsmos():
    tool = _tool()
    heard = tool.score(["one", "two"], ["one", "one"])
    rows = {"training audio": {"dnsmos": {"sig": 2.4, "bak": 3.7, "ovrl": 2.18, "clips": 2}},
            "model, auto": {**heard, "dnsmos": {"sig": 2.0, "bak": 3.5, "ovrl": 1.85, "clips": 2}}}
    lines = tool.table(rows, dnsmos=True)
    widths = {line.count("|") for line in lines}
    assert len(widths) == 1  # every row has every column
    assert lines[0].endswith("DNSMOS SIG / BAK / OVRL |")
    assert lines[2].startswith("| training audio | – |") and "**2.18** (n = 2)" in lines[2]
    assert "**0.500** (n = 2)" in lines[3] and "2.00 / 3.50 / **1.85**" in lines[3]
    plain = tool.table({"model, auto": heard})
    assert "DNSMOS" not in plain[0] and len({line.count("|") for line in plain}) == 1
