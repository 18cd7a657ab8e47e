"""tools/ablate_vocoders.py: what decides whether Griffin-Lim's stored row is reused, and the table."""

import argparse
from pathlib import Path

from conftest import load_tool

ROOT = Path(__file__).resolve().parent.parent


def _tool():
    return load_tool("ablate_vocoders")


def test_the_floor_row_is_keyed_on_settings_and_on_the_code_that_measures_it(monkeypatch, tmp_path):
    tool = _tool()
    args = argparse.Namespace(split="test", max_items=24, max_notes=147)
    key = tool._floor_key(args)
    assert key == tool._floor_key(argparse.Namespace(split="test", max_items=24, max_notes=147))
    assert key != tool._floor_key(argparse.Namespace(split="dev", max_items=24, max_notes=147))
    assert key != tool._floor_key(argparse.Namespace(split="test", max_items=24, max_notes=49))
    # the same settings measured by edited code: another key (a copy of the tree with one metric changed)
    assert "specgan/metrics.py" in tool.FLOOR_SOURCES and "vocoder/generators/griffinlim.py" in tool.FLOOR_SOURCES
    for rel in tool.FLOOR_SOURCES:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((ROOT / rel).read_bytes())
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    assert tool._floor_key(args) == key
    (tmp_path / "specgan" / "metrics.py").write_text((ROOT / "specgan" / "metrics.py").read_text() + "\n# edited\n")
    assert tool._floor_key(args) != key


def test_table_shows_note_columns_only_for_rows_that_have_them():
    tool = _tool()
    speech = {"name": "griffinlim", "what": "floor", "step": 0, "cpu_minutes": 0.0, "pesq_wb": 2.37, "f0_gpe": 0.001}
    text = tool.table([speech])
    assert "| griffinlim | floor | 0 | 0.0 | 2.37 |" in text and "note_pitch_ratio" not in text and "| 0.001 |" in text
    music = {**speech, "note_pitch_copies": 1.0, "note_pitch_real": 0.973, "note_pitch_ratio": 1.028}
    text = tool.table([music])
    assert "note_pitch_ratio" in text and "| 1.03 |" in text
