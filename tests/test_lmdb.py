import gc
import importlib.util
import pickle
import sys
from itertools import islice
from pathlib import Path

import lmdb
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ace_str.data.charset import Charset
from ace_str.data.collate import Batch, Collator, Skip
from ace_str.data.folder import LabelledFolderDataset, find_datasets, open_dataset
from ace_str.data.lmdb import LmdbDataset, LmdbWriter, count_lmdb
from ace_str.data.transforms import ResizeNormalize

REPO = Path(__file__).resolve().parents[1]
IIIT5K = REPO.parent / "shared/data/benchmarks/IIIT5K"

_spec = importlib.util.spec_from_file_location("create_lmdb", REPO / "scripts/create_lmdb.py")
create_lmdb_module = importlib.util.module_from_spec(_spec)
sys.modules["create_lmdb"] = create_lmdb_module  # dataclasses look their module up
_spec.loader.exec_module(create_lmdb_module)
create_lmdb = create_lmdb_module.create_lmdb

LABELS = ["Hello", "world", "a" * 30, "café", "x-y!", "42"]


def make_folder(root: Path, labels: list[str], broken: bool = False) -> Path:
    """Tiny labelled folder; optionally a truncated image and a malformed line as well."""
    (root / "images").mkdir(parents=True)
    lines = []
    for i, label in enumerate(labels):
        Image.new("L", (8 + i, 6), 255 - i).save(root / "images" / f"{i}.png")
        lines.append(f"{i}.png\t{label}")
    if broken:
        good = (root / "images/0.png").read_bytes()
        (root / "images/broken.png").write_bytes(good[: len(good) // 2])
        lines += ["broken.png\tbroken", "no tab on this line", "absent.png\tgone", "0.png\t"]
    (root / "labels.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def built(tmp_path: Path) -> Path:
    report = create_lmdb(make_folder(tmp_path / "src", LABELS, broken=True), tmp_path / "db")
    assert report.written == len(LABELS)
    return tmp_path / "db"


def test_create_lmdb_skips_and_reports(tmp_path: Path) -> None:
    report = create_lmdb(make_folder(tmp_path / "src", LABELS, broken=True), tmp_path / "db")
    reasons = {line: why.split(":")[0] for line, _, why in report.skipped}
    n = len(LABELS)
    assert reasons == {
        n + 1: "undecodable",
        n + 2: "malformed line (no tab)",
        n + 3: "missing file",
        n + 4: "empty label",
    }
    summary = report.summary()
    assert f"written {n}, skipped 4" in summary and "line 8" in summary
    with pytest.raises(FileExistsError):
        create_lmdb(tmp_path / "src", tmp_path / "db")


def test_create_lmdb_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = make_folder(tmp_path / "src", ["ok"])
    assert create_lmdb_module.main(["--input", str(src), "--output", str(tmp_path / "a")]) == 0
    assert "written 1, skipped 0" in capsys.readouterr().out
    (src / "labels.tsv").write_text("missing.png\tword\n", encoding="utf-8")
    assert create_lmdb_module.main(["--input", str(src), "--output", str(tmp_path / "b")]) == 1


def test_round_trip_raw_labels(built: Path) -> None:
    ds = LmdbDataset(built, Charset(preset="lower36"), filter_labels=False)
    assert [ds[i][1] for i in range(len(ds))] == LABELS
    assert isinstance(ds[0][0], Image.Image) and ds[0][0].size == (8, 6)
    with ds.env(0).begin() as txn:  # the dataset's own handle: py-lmdb allows one a process
        assert txn.get(b"num-samples") == str(len(LABELS)).encode()
        assert txn.get(b"image-000000001").startswith(b"\x89PNG")


def test_writer_leaves_no_valid_half_database(tmp_path: Path) -> None:
    png = (make_folder(tmp_path / "src", ["ab"]) / "images/0.png").read_bytes()
    with LmdbWriter(tmp_path / "db", 1 << 24, commit_every=2) as writer:
        for label in ("ab", "cd", "ef"):
            writer.add(png, label)
    assert count_lmdb(tmp_path / "db") == 3
    assert [s[1] for s in LmdbDataset(tmp_path / "db", Charset(preset="lower36"))] == [
        "ab",
        "cd",
        "ef",
    ]
    with pytest.raises(FileExistsError, match="overwrite"):
        LmdbWriter(tmp_path / "db", 1 << 24)
    with pytest.raises(KeyboardInterrupt):  # interrupted after a commit: refused, not half-read
        with LmdbWriter(tmp_path / "db", 1 << 24, overwrite=True, commit_every=2) as writer:
            for label in ("gh", "ij", "kl"):
                writer.add(png, label)
            raise KeyboardInterrupt
    with pytest.raises(ValueError, match="num-samples"):
        count_lmdb(tmp_path / "db")
    with pytest.raises(ValueError, match="num-samples"):
        LmdbDataset(tmp_path / "db", Charset(preset="lower36"))


def test_filtering_counts(built: Path) -> None:
    strip = LmdbDataset(built, Charset(preset="lower36", on_unknown="strip"))
    assert [strip[i][1] for i in range(len(strip))] == ["hello", "world", "caf", "xy", "42"]
    stats = strip.stats[0]
    assert (stats.total, stats.kept, stats.stripped) == (6, 5, 2)
    assert stats.dropped == {"too_long": 1}

    skip = LmdbDataset(built, Charset(preset="lower36", on_unknown="skip"), max_label_length=40)
    assert [skip[i][1] for i in range(len(skip))] == ["hello", "world", "a" * 30, "42"]
    assert skip.stats[0].dropped == {"out_of_charset": 2}

    with pytest.raises(ValueError, match="no usable samples"):
        LmdbDataset(built, Charset(symbols="#"))


def test_many_roots_and_discovery(tmp_path: Path) -> None:
    for name, labels in [("MJ/train", ["one", "two"]), ("ST", ["three"])]:
        create_lmdb(make_folder(tmp_path / "src" / name, labels), tmp_path / "lmdb" / name)
    charset = Charset(preset="lower36")
    parent = LmdbDataset(tmp_path / "lmdb", charset)
    assert [parent[i][1] for i in range(len(parent))] == ["one", "two", "three"]
    assert parent[-1][1] == "three" and len(parent.stats) == 2
    listed = LmdbDataset([tmp_path / "lmdb/ST", tmp_path / "lmdb/MJ"], charset)
    assert [listed[i][1] for i in range(len(listed))] == ["three", "one", "two"]
    with pytest.raises(FileNotFoundError, match="src"):
        LmdbDataset(tmp_path / "src", charset)
    with pytest.raises(IndexError):
        parent[3]


def test_corrupt_record_returns_a_skip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    create_lmdb(make_folder(tmp_path / "src", ["ab", "cd", "ef"]), tmp_path / "db")
    with lmdb.open(str(tmp_path / "db")) as env, env.begin(write=True) as txn:
        txn.put(b"image-000000002", b"not an image")
        txn.delete(b"image-000000003")
        txn.put(b"label-000000003", b"\xff\xfe")  # not UTF-8: dropped at init instead
    ds = LmdbDataset(tmp_path / "db", Charset(preset="lower36"))
    assert len(ds) == 2 and ds.stats[0].dropped == {"label_not_utf8": 1}
    assert ds[1] == Skip(str(tmp_path / "db"), "image-000000002", "corrupt_image")
    assert ds.corrupt == 1
    assert "image-000000002" in caplog.text and str(tmp_path / "db") in caplog.text


def test_pickles_and_loads_with_workers(built: Path) -> None:
    charset = Charset(preset="lower36")
    ds = LmdbDataset(built, charset, transform=ResizeNormalize(8, 16))
    ds[0]  # opens the environment in this process; pickling must drop it
    clone = pickle.loads(pickle.dumps(ds))
    assert clone[0][1] == "hello"
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=Collator(charset))
    batches = list(loader)
    assert sum(len(b) for b in batches) == len(ds)
    assert batches[0].images.shape == (2, 1, 8, 16)


def test_datasets_over_one_lmdb_share_a_handle_while_they_live(built: Path) -> None:
    """py-lmdb opens the same files once a process: datasets share the handle they hold, and
    it closes with the last of them, so the files open afresh afterwards."""
    charset = Charset(preset="lower36")
    first = LmdbDataset(built, charset)
    first[0]
    second = LmdbDataset(built, charset)  # indexed through the live handle
    assert second[0][1] == "hello" and second.env(0) is first.env(0)
    del first, second
    gc.collect()
    with lmdb.open(str(built), readonly=True, lock=False) as env, env.begin() as txn:
        assert txn.get(b"num-samples") == str(len(LABELS)).encode()


def test_collator_drops_none() -> None:
    charset = Charset(preset="lower36")
    collate = Collator(charset)
    image = torch.zeros(1, 8, 16)
    batch = collate([(image, "ab"), None, (image, "c")])
    assert isinstance(batch, Batch) and len(batch) == 2 and collate.dropped == 1
    assert batch.targets.tolist() == [[11, 12], [13, 0]]
    assert batch.target_lengths.tolist() == [2, 1]
    assert batch.to("cpu").images.shape == (2, 1, 8, 16)
    assert collate([None, None]) is None and collate.dropped == 3
    with pytest.raises(TypeError, match="transform"):
        collate([(Image.new("L", (2, 2)), "a")])


def test_folder_dataset_and_open_dataset(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "bench/IIIT", LABELS, broken=True)
    create_lmdb(folder, tmp_path / "bench/lmdb_named_oddly")
    charset = Charset(preset="lower36")
    ds = LabelledFolderDataset(folder, charset)
    assert ds.stats.dropped == {
        "malformed_line": 1,
        "missing_image": 1,
        "too_long": 1,
        "empty_label": 1,
    }
    assert [s[1] for s in ds.samples][-1] == "broken"
    assert ds[len(ds) - 1].reason == "corrupt_image" and ds.corrupt == 1
    assert find_datasets(tmp_path) == [tmp_path / "bench/IIIT", tmp_path / "bench/lmdb_named_oddly"]
    assert isinstance(open_dataset(tmp_path / "bench/lmdb_named_oddly", charset), LmdbDataset)
    assert isinstance(open_dataset(folder, charset), LabelledFolderDataset)
    with pytest.raises(FileNotFoundError, match="one by one"):
        open_dataset(tmp_path / "bench", charset)


@pytest.mark.skipif(not IIIT5K.is_dir(), reason="../shared/data/benchmarks/IIIT5K not present")
def test_iiit5k_first_50_round_trip(tmp_path: Path) -> None:
    with open(IIIT5K / "labels.tsv", encoding="utf-8") as f:
        head = list(islice(f, 50))
    (tmp_path / "labels.tsv").write_text("".join(head), encoding="utf-8")
    (tmp_path / "images").symlink_to(IIIT5K / "images")
    report = create_lmdb(tmp_path, tmp_path / "db", progress=False)
    assert report.written == 50 and not report.skipped
    ds = LmdbDataset(tmp_path / "db", Charset(preset="printable94"), filter_labels=False)
    assert [ds[i][1] for i in range(len(ds))] == [line.rstrip("\n").split("\t")[1] for line in head]
