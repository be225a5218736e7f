import pytest

from ace_str.data.charset import Charset, FilterStats


def test_presets_and_blank():
    assert Charset(preset="lower36").num_classes == 37
    assert len(Charset(preset="mixed62")) == 62
    assert len(Charset(preset="printable94")) == 94
    cs = Charset(preset="lower36")
    assert cs.encode("a0") == [11, 1]
    assert cs.decode([0, 11, 0, 1]) == "a0"


def test_case_folding_follows_charset():
    assert Charset(preset="lower36").normalize("HeLLo") == "hello"
    assert Charset(preset="mixed62").normalize("HeLLo") == "HeLLo"


def test_strip_or_skip_is_counted():
    stats = FilterStats()
    strip = Charset(preset="lower36")
    assert strip.normalize("it's", stats) == "its"
    assert strip.normalize("!!!", stats) is None
    skip = Charset(preset="lower36", on_unknown="skip")
    assert skip.normalize("it's", stats) is None
    assert stats.stripped == 2 and stats.skipped["out_of_charset"] == 1
    assert stats.skipped["empty_label"] == 0 or stats.kept == 1


def test_counts_travel_with_the_caller():
    """A charset is shared by every dataset and worker, so it keeps no counts of its own."""
    cs = Charset(preset="lower36", on_unknown="skip")
    assert cs.normalize("it's") is None and cs.normalize("ok") == "ok"
    assert not hasattr(cs, "stats")
    stats = FilterStats()
    assert cs.normalize("ok", stats) == "ok" and stats.kept == 1


def test_regex_characters_are_plain_symbols():
    cs = Charset(symbols=".*[]^\\-a")
    assert cs.normalize("a.b*c]") == "a.*]"  # '.' matches only '.', not any character
    assert cs.normalize("zzz") is None


def test_charset_file(tmp_path):
    path = tmp_path / "chars.txt"
    path.write_text("中\n文\n\n字\n", encoding="utf-8")
    cs = Charset(path=path)
    assert cs.symbols == ["中", "文", "字"] and cs.num_classes == 4
    assert cs.encode("文字") == [2, 3]
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        Charset(path=tmp_path / "missing.txt")
    (tmp_path / "bad.txt").write_text("ab\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.txt:1"):
        Charset(path=tmp_path / "bad.txt")


def test_bad_configs_are_clear():
    with pytest.raises(ValueError, match="unknown charset preset"):
        Charset(preset="klingon")
    with pytest.raises(ValueError, match="duplicate"):
        Charset(symbols="aa")
    with pytest.raises(ValueError, match="exactly one"):
        Charset()


def test_encode_batch_pads_with_blank():
    targets, lengths = Charset(preset="lower36").encode_batch(["ab", "c"])
    assert targets.tolist() == [[11, 12], [13, 0]] and lengths.tolist() == [2, 1]
