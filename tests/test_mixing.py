"""Mixing sources by batch ratio: exact counts per batch, resumable and sharded streams."""

from __future__ import annotations

import io
from itertools import islice
from pathlib import Path

import lmdb
import pytest
from PIL import Image

from ace_str.build.checkpoint import load_checkpoint
from ace_str.data.mixing import MixedDataset, batch_counts
from ace_str.engine.trainer import Trainer


def write_words(path: Path, words: list[str]) -> Path:
    buffer = io.BytesIO()
    Image.new("L", (40, 12), 200).save(buffer, format="PNG")
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for key, word in enumerate(words, start=1):
            txn.put(b"image-%09d" % key, buffer.getvalue())
            txn.put(b"label-%09d" % key, word.encode())
        txn.put(b"num-samples", str(len(words)).encode())
    env.close()
    return path


def test_batch_counts_round_by_largest_remainder() -> None:
    assert batch_counts([0.5, 0.5], 64) == [32, 32]
    assert batch_counts([1, 1, 1], 8) == [3, 3, 2]
    assert batch_counts([0.99, 0.01], 8) == [7, 1]  # a small ratio still feeds its source
    assert sum(batch_counts([0.2, 0.3, 0.5], 7)) == 7


def test_batches_follow_ratios_resume_and_shard() -> None:
    mixed = MixedDataset([range(10), range(100, 103)], ["a", "b"], [0.75, 0.25], [True, False])
    batches = list(islice(mixed.batch_sampler(4, seed=1, start_sample=0), 6))
    for batch in batches:
        assert sum(i < 10 for i in batch) == 3 and sum(i >= 10 for i in batch) == 1
    resumed = list(islice(mixed.batch_sampler(4, seed=1, start_sample=2 * 4), 4))
    assert resumed == batches[2:]
    ranks = [list(islice(mixed.batch_sampler(4, 1, 0, rank=r, world_size=2), 3)) for r in (0, 1)]
    a_stream = [i for batch in batches for i in batch if i < 10]
    assert [i for b in ranks[0] for i in b if i < 10] == [
        x for n, x in enumerate(a_stream[:18]) if n % 2 == 0
    ]


def test_trainer_mixes_lmdb_and_synthetic_sources(tiny_config, tmp_path: Path) -> None:
    root = write_words(tmp_path / "real", ["street", "hotel", "open", "exit"])
    cfg = tiny_config(
        f"data.train_sources=[{{roots: [{root}], ratio: 0.75}}, {{ratio: 0.25, name: render}}]",
        "trainer.max_steps=3",
    )
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.fit()
    assert trainer.source_counts == {"real": 9, "render": 3}  # batch 4: 3 + 1, three steps


def write_folder(path: Path, words: list[str]) -> Path:
    """An ``images/`` + ``labels.tsv`` folder, the layout of ../shared/data/real_train."""
    (path / "images").mkdir(parents=True)
    for i in range(len(words)):
        Image.new("L", (40, 12), 200).save(path / "images" / f"{i}.png")
    lines = [f"{i}.png\t{word}" for i, word in enumerate(words)]
    (path / "labels.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_trainer_mixes_labelled_folders_lmdbs_and_synthetic(tiny_config, tmp_path: Path) -> None:
    """real_train-style folders (and LMDBs beside them) feed training like any source."""
    write_folder(tmp_path / "real/IIIT5K_train", ["street", "hotel"])
    write_folder(tmp_path / "real/SVT_train", ["open"])
    write_words(tmp_path / "real/lmdb", ["exit", "bar"])
    cfg = tiny_config(
        f"data.train_sources=[{{roots: [{tmp_path / 'real'}], ratio: 0.5, name: real}},"
        " {ratio: 0.5, name: render}]",
        "trainer.max_steps=3",
    )
    trainer = Trainer(cfg, tmp_path / "run")
    assert len(trainer.train_set.sources[0]) == 5
    trainer.fit()
    assert trainer.source_counts == {"real": 6, "render": 6}


def test_train_roots_take_a_labelled_folder(tiny_config, tmp_path: Path) -> None:
    """Training reads the folder's labels, each pass a permutation of its 3 words (batches of 4
    run across passes). Catches a folder read but not trained on (the synthetic renderer's words
    instead), or a stream that repeats or skips samples within a pass."""
    words = ["street", "hotel", "open"]
    root = write_folder(tmp_path / "words", words)
    cfg = tiny_config(f"data.train_roots=[{root}]", "trainer.max_steps=2")
    trainer = Trainer(cfg, tmp_path / "run")
    assert len(trainer.train_set) == 3
    texts: list[str] = []
    step = trainer.train_step

    def recording(batch):
        texts.extend(batch.texts)
        return step(batch)

    trainer.train_step = recording
    trainer.fit()
    assert trainer.step == 2 and len(texts) == 8
    assert sorted(texts[:3]) == sorted(words) and sorted(texts[3:6]) == sorted(words)
    assert set(texts[6:]) <= set(words)
    assert load_checkpoint(tmp_path / "run" / "last.ckpt")["batches_drawn"] == 2


def test_a_source_joining_later_keeps_batches_resumable() -> None:
    """start_step: synthetic only at first, then real words mixed in; resume mid-phase.

    Indices 0-49 are the synthetic source, 50-59 the real one."""
    mixed = MixedDataset(
        [range(50), range(10)], ["synth", "real"], [1.0, 1.0], [False, True], [0, 3]
    )
    batches = list(islice(mixed.batch_sampler(4, seed=2, start_sample=0), 8))
    assert all(max(b) < 50 for b in batches[:3])  # before step 3: synthetic only
    assert all(sum(i >= 50 for i in b) == 2 for b in batches[3:])
    assert [i for b in batches for i in b if i < 50] == list(range(12 + 5 * 2))
    for start in (2, 3, 5):
        assert list(islice(mixed.batch_sampler(4, 2, start * 4), 8 - start)) == batches[start:]
    ranks = [list(islice(mixed.batch_sampler(4, 2, 0, rank=r, world_size=2), 5)) for r in (0, 1)]
    assert all(max(b) < 50 for r in ranks for b in r[:3]) and min(ranks[1][3]) < 50
    assert sum(i >= 50 for i in ranks[0][4]) == 2
    with pytest.raises(ValueError, match="start_step"):
        MixedDataset([range(5), range(5)], ["a", "b"], [1.0, 1.0], [True, True], [2, 3])


def test_a_source_can_join_at_a_fraction_of_the_run() -> None:
    """start_fraction follows the run's length (a budget picks it): 0.5 of 8 steps is step 4,
    of 20 steps step 10."""
    mixed = MixedDataset(
        [range(50), range(10)], ["synth", "real"], [1.0, 1.0], [False, True], None, [None, 0.5]
    )
    assert mixed.starts(8) == [0, 4] and mixed.starts(20) == [0, 10]
    sampler = mixed.batch_sampler(4, seed=2, start_sample=0, total_steps=8)
    assert sampler.counts_at(3) == [4, 0] and sampler.counts_at(4) == [2, 2]
    assert mixed.batch_sampler(4, 2, 0, total_steps=20).counts_at(9) == [4, 0]
    with pytest.raises(ValueError, match=r"start_fraction must be in \[0, 1\]"):
        MixedDataset([range(5)] * 2, ["a", "b"], [1.0, 1.0], [True, True], None, [None, 1.5])
    with pytest.raises(ValueError, match="some source must start at 0"):
        MixedDataset([range(5)] * 2, ["a", "b"], [1.0, 1.0], [True, True], None, [0.2, 0.5])


def test_a_source_can_leave_for_a_curriculum_and_batches_stay_resumable() -> None:
    """stop_step / stop_fraction: an easy source first, then only the hard one; the stopped
    source takes nothing after its stop, and a run resumed past the stop draws the same batches.
    Indices 0-49 are the easy source, 50-99 the hard one."""
    mixed = MixedDataset(
        [range(50), range(50)],
        ["easy", "hard"],
        [1.0, 1.0],
        [False, False],
        None,
        None,
        [None, None],
        [0.5, None],
    )
    assert mixed.stops(8) == [4, None] and mixed.stops(20) == [10, None]
    batches = list(islice(mixed.batch_sampler(4, seed=3, start_sample=0, total_steps=8), 8))
    assert all(sum(i < 50 for i in b) == 2 for b in batches[:4])
    assert all(min(b) >= 50 for b in batches[4:])  # the easy source has left
    assert [i for b in batches for i in b if i >= 50] == list(range(50, 50 + 8 + 16))
    for start in (3, 4, 6):
        resumed = mixed.batch_sampler(4, 3, start * 4, total_steps=8)
        assert list(islice(resumed, 8 - start)) == batches[start:]
    # a hard source joining when the easy one leaves: each phase has one source
    swap = MixedDataset(
        [range(50), range(50)],
        ["easy", "hard"],
        [1.0, 1.0],
        [False, False],
        None,
        [None, 0.25],
        None,
        [0.25, None],
    )
    sampler = swap.batch_sampler(4, 3, 0, total_steps=8)
    assert sampler.counts_at(1) == [4, 0] and sampler.counts_at(2) == [0, 4]


def test_a_stop_that_leaves_no_source_or_comes_before_the_start_is_refused() -> None:
    with pytest.raises(ValueError, match="no source left from step 2"):
        MixedDataset([range(5)], ["a"], [1.0], [True], None, None, [2], None).batch_sampler(
            2, 0, 0, total_steps=4
        )
    late = MixedDataset(
        [range(5)] * 2, ["a", "b"], [1.0, 1.0], [True, True], [0, 3], None, [None, 2], None
    )
    with pytest.raises(ValueError, match="source 'b' stops \\(step 2\\) before it starts"):
        late.batch_sampler(2, 0, 0, total_steps=4)
    with pytest.raises(ValueError, match=r"stop_fraction must be in \(0, 1\]"):
        MixedDataset([range(5)], ["a"], [1.0], [True], None, None, None, [0.0])
    with pytest.raises(ValueError, match="give stop_step or stop_fraction, not both"):
        MixedDataset([range(5)], ["a"], [1.0], [True], None, None, [2], [0.5])


def test_trainer_follows_a_curriculum_from_the_config(tiny_config, tmp_path: Path) -> None:
    """``stop_fraction`` in data.train_sources: short clean renders for the first half of the
    run, then the default renderer alone."""
    cfg = tiny_config(
        "data.train_sources=[{name: easy, ratio: 1, stop_fraction: 0.5, "
        "synth: {max_length: 3}}, {name: full, ratio: 1}]",
        "trainer.max_steps=4",
    )
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.fit()
    assert trainer.source_counts == {"easy": 4, "full": 12}  # batch 4: 2 + 2, then 0 + 4


def test_two_renderers_in_a_mix_draw_different_words(tiny_config) -> None:
    """A second synthetic source on the run's seed would render the first one's words at the
    same indices (a batch of words twice over); it gets its own stream unless a seed is given.
    The first renderer keeps the run's seed, so a single-renderer recipe is unchanged."""
    from ace_str.build.data import build_mixed_dataset, synth_dataset
    from ace_str.build.models import build_charset
    from ace_str.build.transform import build_transform

    cfg = tiny_config(
        "data.train_sources=[{name: a, ratio: 1}, {name: b, ratio: 1}, "
        "{name: c, ratio: 1, synth: {seed: 0}}]",
        "seed=0",
    )
    charset = build_charset(cfg)
    mixed = build_mixed_dataset(cfg, charset, build_transform(cfg))
    a, b, c = (mixed.sources[i] for i in range(3))
    words = [[s[i][1] for i in range(6)] for s in (a, b, c)]
    assert words[0] != words[1] and words[0] == words[2]
    alone = synth_dataset(cfg.data.synth, charset, build_transform(cfg))
    assert [alone[i][1] for i in range(6)] == words[0]
