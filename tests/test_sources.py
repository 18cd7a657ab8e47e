"""The builtin sources table is the single source of truth: names, builders, labels, speech."""

import inspect

import pytest

from specgan.data.prepare import parse_source, source_labels
from specgan.data.sources import SOURCES, Builder, Source
from specgan.recipe import DataConfig

COMMON = list(inspect.signature(Builder.__call__).parameters)[1:]  # without self


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_source_declares_a_common_builder_and_its_labels(name):
    src = SOURCES[name]
    assert isinstance(src, Source)
    assert list(inspect.signature(src.build).parameters) == COMMON  # dc, sample_rate, out_dir, seed, work_dir
    assert src.labels and all(isinstance(k, str) for k in src.labels)
    assert len(set(src.labels)) == len(src.labels)
    assert isinstance(src.speech, bool)
    assert parse_source(f"builtin:{name}") == ("builtin", name)
    # check_label's answer is the table's, nothing added or dropped on the way
    assert source_labels("builtin", name, DataConfig()) == src.labels_for(DataConfig())


def test_config_dependent_labels_come_from_the_table():
    dc = DataConfig()
    assert "engine" not in source_labels("builtin", "digits", dc)
    dc.digits.engines = ["espeak-ng", "flite"]
    assert source_labels("builtin", "digits", dc)[-2:] == ["engine", "speaker"]


def test_parse_source_lists_exactly_the_tables_names(monkeypatch):
    with pytest.raises(ValueError) as e:
        parse_source("builtin:drums")
    assert str(e.value).endswith(f"available: {', '.join(sorted(SOURCES))}")
    with pytest.raises(ValueError) as e:
        parse_source("timit:/x")
    assert ", ".join(f"builtin:{n}" for n in sorted(SOURCES)) in str(e.value)
    # a new table line is a new builtin everywhere, with no other list to update
    monkeypatch.setitem(SOURCES, "drums", Source(SOURCES["notes"].build, ("kit",), speech=False))
    assert parse_source("builtin:drums") == ("builtin", "drums")
    assert source_labels("builtin", "drums", DataConfig()) == ["kit"]
    with pytest.raises(ValueError, match="builtin:drums, builtin:music"):
        parse_source("timit:/x")
