"""The benchmark registry: names, groups, size checks; and the report's means and outputs."""

import logging

import lmdb
import pytest

from ace_str.data.lmdb import find_lmdbs
from ace_str.evaluation import benchmarks
from ace_str.evaluation.benchmarks import find_benchmarks, identify, resolve_selection
from ace_str.evaluation.report import add_means, markdown_table, worst_errors, write_predictions
from ace_str.scoring.evaluator import Reading


def test_names_map_to_registry_entries():
    assert identify("IIIT5k_3000", 3000).name == "IIIT5k_3000"
    assert identify("IIIT5K", 3000).name == "IIIT5k_3000"
    assert identify("SVT", 647).name == "SVT_647"
    assert identify("SVTP", 645).name == "SVTP_645"
    assert identify("CUTE80", 288).name == "CUTE80_288"
    assert identify("IC13_1015", 1015).name == "IC13_1015"
    # plain names shared by two versions go by size, else the first version
    assert identify("IC15", 2077).name == "IC15_2077"
    assert identify("IC15", 1811).name == "IC15_1811"
    assert identify("ic03", 867).name == "IC03_867"
    assert identify("IC13", 5).name == "IC13_857"
    assert identify("MYSET", 3) is None


def test_groups():
    assert resolve_selection("all_found") is None
    assert len(resolve_selection("clovaai")) == 10
    assert resolve_selection("parseq") == [
        "IIIT5k_3000",
        "SVT_647",
        "IC13_1015",
        "IC15_2077",
        "SVTP_645",
        "CUTE80_288",
    ]
    assert set(resolve_selection("regular")) | set(resolve_selection("irregular")) == set(
        resolve_selection("clovaai")
    )
    assert resolve_selection("SVT_647,irregular")[:2] == ["SVT_647", "IC15_1811"]
    assert resolve_selection(["CUTE80_288", "CUTE80_288"]) == ["CUTE80_288"]


def labelled(folder, count):
    folder.mkdir(parents=True)
    lines = "".join(f"{i}.png\tw{i}\n" for i in range(count))
    (folder / "labels.tsv").write_text(lines, encoding="utf-8")


def lmdb_set(folder, count):
    folder.mkdir(parents=True)
    with lmdb.open(str(folder), map_size=1 << 20) as env, env.begin(write=True) as txn:
        txn.put(b"num-samples", str(count).encode())


@pytest.fixture
def small_registry(monkeypatch):
    """The real names with tiny expected sizes, so fake sets can be of the right size."""
    small = tuple(
        benchmarks.Benchmark(b.name, i + 2, b.irregular, b.folder_names)
        for i, b in enumerate(benchmarks.BENCHMARKS)
    )
    monkeypatch.setattr(benchmarks, "BENCHMARKS", small)
    monkeypatch.setattr(benchmarks, "BY_NAME", {b.name: b for b in small})
    return {b.name: b.samples for b in small}


def test_find_right_and_wrong_sizes(tmp_path, small_registry, caplog):
    labelled(tmp_path / "evaluation" / "SVT", small_registry["SVT_647"])
    labelled(tmp_path / "evaluation" / "IIIT5k_3000", small_registry["IIIT5k_3000"] + 1)
    lmdb_set(tmp_path / "evaluation" / "CUTE80", small_registry["CUTE80_288"])
    labelled(tmp_path / "mine" / "MYSET", 3)
    with caplog.at_level(logging.INFO, logger="ace_str.evaluation.benchmarks"):
        found = find_benchmarks(tmp_path)
    assert [f.name for f in found] == ["IIIT5k_3000", "SVT_647", "CUTE80_288", "MYSET"]
    assert found[2].samples == small_registry["CUTE80_288"] and found[3].expected is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "IIIT5k_3000" in warnings[0]
    assert f"holds {small_registry['IIIT5k_3000'] + 1} samples" in warnings[0]
    missing = [r.getMessage() for r in caplog.records if "not found" in r.getMessage()]
    assert len(missing) == 1 and "IC13_857" in missing[0] and "SVT_647" not in missing[0]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ace_str.evaluation.benchmarks"):
        found = find_benchmarks(tmp_path, "irregular")
    assert [f.name for f in found] == ["CUTE80_288"]
    missing = [r.getMessage() for r in caplog.records if "not found" in r.getMessage()]
    assert len(missing) == 1 and "IC15_1811, IC15_2077, SVTP_645" in missing[0]
    assert [f.name for f in find_benchmarks(tmp_path, ["MYSET", "SVT_647"])] == ["MYSET", "SVT_647"]


def test_means_cover_every_column_and_lexicons_where_present():
    rows = {
        "A": {"samples": 1, "word_accuracy": 1.0, "one_minus_ned": 1.0, "cer": 0.0,
              "correct_rate": 1.0, "accurate_rate": 1.0,
              "count_precision": 1.0, "count_recall": 1.0, "mean_confidence": 0.9,
              "lexicon_50_accuracy": 1.0},
        "B": {"samples": 3, "word_accuracy": 0.0, "one_minus_ned": 0.5, "cer": 0.5,
              "correct_rate": 0.6, "accurate_rate": 0.4,
              "count_precision": 0.5, "count_recall": 0.25, "mean_confidence": 0.1},
    }  # fmt: skip
    means = add_means(rows)
    assert means["weighted mean"]["word_accuracy"] == pytest.approx(0.25)
    assert means["plain mean"]["word_accuracy"] == pytest.approx(0.5)
    assert means["weighted mean"]["count_recall"] == pytest.approx((1 + 0.75) / 4)
    assert means["plain mean"]["mean_confidence"] == pytest.approx(0.5)
    assert means["plain mean"]["lexicon_50_accuracy"] == 1.0
    table = markdown_table(means)
    assert means["weighted mean"]["accurate_rate"] == pytest.approx((1 + 1.2) / 4)
    assert "| B | 3 | 0.00 | 50.00 | 50.00 | 60.00 | 40.00 | 50.00 | 25.00 | 10.00 | – |" in table


def test_predictions_and_worst_errors(tmp_path):
    readings = [
        Reading("Cat", "cat", 0.9, "images/0.png"),
        Reading("dog", "dig", 0.8, "images/1.png"),
        Reading("sun", "xyz", 0.2, "images/2.png"),
        Reading("sea", "qrs", 0.7, "images/3.png"),
    ]
    assert worst_errors(readings, "standard", count=3) == [3, 2, 1]
    lines = write_predictions(readings, tmp_path / "p.tsv", "standard").read_text().splitlines()
    assert lines[1] == "images/0.png\tCat\tcat\t0.9000\t1"
    assert lines[2].endswith("\t0") and len(lines) == 5


def test_symlinked_set_folders_are_found_and_a_link_cycle_ends(tmp_path, small_registry):
    """data/README.md suggests links for sets kept elsewhere: Path.rglob never entered them, so
    every set of such a root was "not found". A link back up the tree must not loop, and a
    folder reached by two links is one set."""
    store = tmp_path / "storage"
    labelled(store / "iiit_v2", small_registry["IIIT5k_3000"])
    labelled(store / "svt", small_registry["SVT_647"])
    lmdb_set(store / "cute_lmdb", small_registry["CUTE80_288"])
    root = tmp_path / "bench"
    root.mkdir()
    (root / "IIIT5K").symlink_to(store / "iiit_v2")
    (root / "SVT").symlink_to(store / "svt", target_is_directory=True)
    (root / "more").mkdir()
    (root / "more" / "CUTE80").symlink_to(store / "cute_lmdb")
    (root / "more" / "zz_same_svt").symlink_to(store / "svt")  # a second link to one folder
    (root / "more" / "up").symlink_to(root)  # a cycle: bench/more/up/more/up/...
    found = find_benchmarks(root)
    assert [f.name for f in found] == ["IIIT5k_3000", "SVT_647", "CUTE80_288"]
    assert [f.path for f in found] == [root / "IIIT5K", root / "SVT", root / "more" / "CUTE80"]
    assert find_lmdbs(root) == [root / "more" / "CUTE80"]
