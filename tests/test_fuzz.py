"""Training reads through random and mutated LMDB records without stopping, and counts each
skip by reason: in the trainer (across a DataLoader worker) and in TensorBoard."""

from __future__ import annotations

import io
import random
from collections import Counter
from pathlib import Path

import lmdb
import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ace_str.data.charset import Charset
from ace_str.data.collate import Collator, Skip
from ace_str.data.lmdb import LmdbDataset
from ace_str.data.sampler import ResumableSampler
from ace_str.engine.trainer import Trainer

WORDS = ["street", "hotel", "open", "42", "exit", "cafe", "north", "bank"]


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def word_image(rng: random.Random, mode: str = "L") -> Image.Image:
    pixels = np.array([[rng.randrange(256) for _ in range(40)] for _ in range(12)], np.uint8)
    image = Image.fromarray(pixels, "L")
    if mode == "I;16":
        return Image.fromarray(pixels.astype(np.uint16) * 257)  # 16-bit grey ("I;16")
    return image.convert(mode) if mode != "L" else image


def records(rng: random.Random) -> list[tuple[bytes | None, bytes | None, str | None]]:
    """(image, label, reason the loader must skip it at runtime or None) per record."""
    good = encoded(word_image(rng))
    out: list[tuple[bytes | None, bytes | None, str | None]] = []
    for i in range(24):  # usable records, some in odd modes that must be converted
        mode = ["L", "RGB", "RGBA", "P", "LA", "I;16", "CMYK", "1"][i % 8]
        fmt = "JPEG" if mode == "CMYK" else "PNG"
        out.append((encoded(word_image(rng, mode), fmt), WORDS[i % 8].upper().encode(), None))
    for _ in range(3):
        out.append((rng.randbytes(rng.randrange(1, 300)), b"noise", "corrupt_image"))
        out.append((good[: len(good) // 2], b"cut", "corrupt_image"))
        jpeg = encoded(word_image(rng, "RGB"), "JPEG")
        out.append((jpeg[: len(jpeg) // 3], b"jpeg", "corrupt_image"))
        out.append((b"", b"empty", "empty_image"))
        out.append((None, b"nokey", "missing_image"))
        out.append((encoded(Image.new("L", (1, 1), 128)), b"dot", "tiny_image"))
    # dropped when indexing, never read: no label, not UTF-8, empty, too long, all unknown
    out += [(good, None, None), (good, b"\xff\xfe\xfa", None), (good, b"", None)]
    out += [(good, b"a" * 5000, None), (good, "Ωß@@".encode(), None)]
    return out


def write_lmdb(path: Path, rows: list) -> None:
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for key, (image, label, _) in enumerate(rows, start=1):
            if image is not None:
                txn.put(b"image-%09d" % key, image)
            if label is not None:
                txn.put(b"label-%09d" % key, label)
        txn.put(b"num-samples", str(len(rows)).encode())
    env.close()


@pytest.fixture
def fuzzed(tmp_path: Path) -> tuple[Path, list]:
    rng = random.Random(1234)
    rows = records(rng)
    rng.shuffle(rows)
    write_lmdb(tmp_path / "fuzz", rows)
    return tmp_path / "fuzz", rows


def test_index_drops_bad_labels_by_reason(fuzzed) -> None:
    root, rows = fuzzed
    ds = LmdbDataset(root, Charset(preset="lower36"), max_label_length=25)
    assert ds.stats[0].dropped == {
        "missing_label": 1,
        "label_not_utf8": 1,
        "empty_label": 2,  # "" and the label whose symbols all lie outside the charset
        "too_long": 1,
    }
    assert len(ds) == len(rows) - 5


def test_training_through_fuzzed_lmdb_counts_every_skip(tiny_config, tmp_path, fuzzed) -> None:
    root, rows = fuzzed
    cfg = tiny_config(
        f"data.train_roots=[{root}]",
        "data.batch_size=8",
        "data.num_workers=1",
        "trainer.max_steps=8",
        "trainer.log_every=4",
    )
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.fit()
    assert trainer.step == 8
    # the skips the stream must have met: every drawn index whose record is bad at runtime
    ds = trainer.train_set
    reason_of = {key: reason for key, (_, _, reason) in enumerate(rows, start=1)}
    drawn = ResumableSampler(len(ds), cfg.seed, shuffle=True)
    indices = [i for i, _ in zip(drawn, range(trainer.batches_drawn * 8), strict=False)]
    expected = Counter(reason_of[int(ds._keys[0][i])] for i in indices)
    expected.pop(None, None)
    assert sum(expected.values()) > 0 and trainer.skipped == expected
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "data/skipped/corrupt_image" in tags and "data/dropped_at_index/too_long" in tags
    assert events.Scalars("data/skipped/total")[-1].value == sum(expected.values())


def test_collator_drops_labels_longer_than_the_model_emits() -> None:
    collate = Collator(Charset(preset="lower36"), max_label_length=4)
    batch = collate([(torch.zeros(1, 4, 4), "ok"), (torch.zeros(1, 4, 4), "toolong")])
    assert batch.texts == ["ok"] and [s.reason for s in batch.skipped] == ["too_long"]


def test_skips_of_an_all_skipped_batch_travel_with_the_next_one() -> None:
    """A dataset's Skip values are counted even when no sample of their batch survives."""
    collate = Collator(Charset(preset="lower36"))
    corrupt = Skip("db", "image-000000007", "corrupt_image")
    assert collate([corrupt, None]) is None
    batch = collate([(torch.zeros(1, 4, 4), "ok")])
    assert [s.reason for s in batch.skipped] == ["corrupt_image", "no_sample"]
    assert collate([(torch.zeros(1, 4, 4), "ok")]).skipped == []


def test_max_label_length_beyond_the_frames_is_a_config_error(tiny_config, tmp_path) -> None:
    with pytest.raises(ValueError, match="exceeds the 25 symbols this model can emit"):
        Trainer(tiny_config("data.max_label_length=400"), tmp_path)
