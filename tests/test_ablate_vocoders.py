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


def test_the_curve_of_a_run_that_started_from_a_model_file(tmp_path, capsys):
    """tools/vocoder_curve.py: the budgets' results in CPU order on the whole model's time (the start
    file's minutes added), the start file's own row first, the dev mel-L1 from history.jsonl; a
    folder with no results is one line and exit 2."""
    import json

    tool = load_tool("vocoder_curve")
    run = tmp_path / "ft"
    run.mkdir()
    for minutes, step, pesq in ((130, 60169, 3.27), (30, 13400, 3.05)):
        (run / f"result-{minutes}min.json").write_text(json.dumps(
            {"cpu_minutes": minutes + 0.01, "step": step, "pesq_wb": pesq, "stoi": 0.97}))
    (run / "result.json").write_text("{}")  # the latest budget's copy: not a point of its own
    (run / "history.jsonl").write_text("\n".join(json.dumps(r) for r in (
        {"step": 20, "gen/mel": 0.2}, {"step": 500, "dev/mel_l1": 0.17}, {"step": 1000, "dev/mel_l1": 0.16})))
    (tmp_path / "start.json").write_text(json.dumps({"phase (shipped)": {"pesq_wb": 2.99, "stoi": 0.96,
                                                                          "clips": 24}}))
    rows = tool.points(run, 120, {"pesq_wb": 2.99})
    assert [(round(r["minutes"]), r["pesq_wb"]) for r in rows] == [(120, 2.99), (150, 3.05), (250, 3.27)]
    assert tool.dev_curve(run) == [(500, 0.17), (1000, 0.16)]
    assert tool.main([str(run), "--offset-minutes", "120", "--start", str(tmp_path / "start.json"),
                      "--out", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "| 2.00 | 0 | 2.990 | 0.960 |" in out and "| 4.17 | 60,169 | 3.270 | 0.970 |" in out
    assert (tmp_path / "c.png").stat().st_size > 1000
    (tmp_path / "empty").mkdir()
    assert tool.main([str(tmp_path / "empty")]) == 2
    assert "no result-<N>min.json" in capsys.readouterr().err
