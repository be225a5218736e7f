"""The engine: resume equals an uninterrupted run, checkpoints are atomic and safe to load."""

import random
import signal

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ace_str.build.checkpoint import load_checkpoint, save_checkpoint
from ace_str.engine.trainer import Trainer


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def interrupt_at(trainer: Trainer, step: int) -> None:
    """Deliver the SIGTERM path (save, then stop) right after ``step``, as a scheduler would."""
    original = trainer.train_step

    def wrapped(batch):
        out = original(batch)
        if trainer.step + 1 == step:
            trainer._on_signal(signal.SIGTERM, None)
        return out

    trainer.train_step = wrapped


@pytest.mark.parametrize(
    "schedule",
    [
        ["optimizer=adadelta"],
        ["optimizer=adamw", "scheduler=onecycle"],
        # LSTM dropout draws from the global torch RNG at every step: a resume that does not
        # restore the saved random state draws other masks (and ends with other weights)
        ["optimizer=adadelta", "model.backbone.dropout=0.3"],
    ],
)
def test_resume_gives_the_same_weights(tiny_config, tmp_path, schedule):
    """A SIGTERM-saved run resumed to the end equals an uninterrupted one, bit for bit. Catches
    a resume that drops the optimizer or schedule state, the data position, or (the dropout
    case) the random state."""
    overrides = ["trainer.max_steps=6", *schedule]
    straight = Trainer(tiny_config(*overrides), tmp_path / "straight")
    straight.fit()

    first = Trainer(tiny_config(*overrides), tmp_path / "first")
    interrupt_at(first, 3)
    first.fit()
    saved = load_checkpoint(tmp_path / "first" / "last.ckpt")
    assert saved["step"] == 3

    resumed = Trainer(
        tiny_config(*overrides, f"ckpt_path={tmp_path / 'first' / 'last.ckpt'}"),
        tmp_path / "second",
    )
    resumed.fit()
    assert resumed.step == 6
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_resume_restores_the_random_state_of_the_checkpoint(tiny_config, tmp_path):
    """Catches a resume that leaves out ``set_rng_state``: the run would go on with the state
    its own seeding and model construction left, not the one the checkpoint saved, so every
    later random draw (dropout masks, anything drawing from torch or Python's generator)
    would differ from the uninterrupted run's."""
    Trainer(tiny_config("trainer.max_steps=2"), tmp_path / "a").fit()
    ckpt = tmp_path / "a" / "last.ckpt"
    saved = load_checkpoint(ckpt)["rng"]
    torch.set_rng_state(saved["torch"])
    version, internal, gauss = saved["python"]
    random.setstate((version, tuple(internal), gauss))
    expected = (torch.rand(4), random.random())

    resumed = Trainer(tiny_config(f"ckpt_path={ckpt}"), tmp_path / "b")
    torch.manual_seed(12345)  # whatever happened in between must not matter
    random.seed(12345)
    resumed.resume()
    got = (torch.rand(4), random.random())
    assert torch.equal(got[0], expected[0]) and got[1] == expected[1]


def test_run_writes_checkpoints_and_tensorboard(tiny_config, tmp_path):
    trainer = Trainer(tiny_config("trainer.max_steps=2", "trainer.val_every=2"), tmp_path)
    trainer.fit()
    assert (tmp_path / "last.ckpt").is_file() and (tmp_path / "best.ckpt").is_file()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    scalars, images = events.Tags()["scalars"], events.Tags()["images"]
    for tag in ("train/loss", "train/ace_kl", "train/lr", "train/images_per_second"):
        assert tag in scalars
    assert "val/synth_val/word_accuracy" in scalars and "val/synth_val/one_minus_ned" in scalars
    assert "val/synth_val/images" in images and "val/synth_val/map_0" in images
    state = load_checkpoint(tmp_path / "best.ckpt")
    assert state["step"] == 2
    assert state["config"]["model"]["_target_"].endswith("Recognizer")
    assert state["charset"] == list("0123456789abcdefghijklmnopqrstuvwxyz")


def test_atomic_save_keeps_old_file_when_write_fails(tmp_path):
    path = tmp_path / "last.ckpt"
    save_checkpoint({"step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint({"step": 2, "bad": Unpicklable()}, path)
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left behind


def test_save_swaps_in_a_new_file_so_an_open_reader_keeps_the_old_one(tmp_path):
    """Catches a non-atomic save, e.g. copying the temporary onto ``path`` then unlinking it
    instead of ``os.replace``: the copy truncates and rewrites the very file a reader (or a
    kill) may be in the middle of. A rename swaps in a new file; the old one stays whole for
    whoever has it open."""
    path = tmp_path / "last.ckpt"
    save_checkpoint({"step": 1, "w": torch.zeros(4096)}, path)
    old_bytes, old_inode = path.read_bytes(), path.stat().st_ino
    with path.open("rb") as reader:
        save_checkpoint({"step": 2, "w": torch.ones(4096)}, path)
        assert reader.read() == old_bytes
    assert path.stat().st_ino != old_inode
    assert load_checkpoint(path)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_checkpoint_with_code_is_refused(tmp_path):
    import collections

    path = tmp_path / "evil.ckpt"
    torch.save({"x": collections.OrderedDict, "f": print}, path)  # pickles callables
    with pytest.raises(RuntimeError, match="cannot load checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        load_checkpoint(tmp_path / "nope.ckpt")


def test_wrong_model_checkpoint_is_one_clear_error(tiny_config, tmp_path):
    Trainer(tiny_config("trainer.max_steps=1"), tmp_path / "a").fit()
    other = tiny_config(
        "model.backbone.lstm_hidden=12", f"ckpt_path={tmp_path / 'a' / 'last.ckpt'}"
    )
    with pytest.raises(RuntimeError, match="another model or charset"):
        Trainer(other, tmp_path / "b").fit()


def test_nonfinite_losses_are_skipped_then_stop(tiny_config, tmp_path):
    trainer = Trainer(
        tiny_config("trainer.max_steps=5", "trainer.max_nonfinite_in_row=3"), tmp_path
    )
    original = trainer.model.head.loss

    def nan_loss(*args):
        out = original(*args)
        out["loss"] = out["loss"] * float("nan")
        return out

    trainer.model.head.loss = nan_loss
    with pytest.raises(RuntimeError, match="3 non-finite loss"):
        trainer.fit()
    assert trainer.nonfinite_total == 3
    assert load_checkpoint(tmp_path / "last.ckpt")["step"] == 0


def test_time_budget_stops_validates_and_saves(tiny_config, tmp_path, monkeypatch):
    import time
    import types

    clock = iter(range(0, 10**6, 60))  # each look at the clock: one more minute has passed
    fake = types.SimpleNamespace(monotonic=lambda: next(clock), perf_counter=time.perf_counter)
    monkeypatch.setattr("ace_str.engine.trainer.time", fake)
    trainer = Trainer(tiny_config("trainer.max_steps=50", "trainer.max_minutes=3.5"), tmp_path)
    trainer.fit()
    assert trainer.step == 3
    # the run ends with a validation of its final weights, so best.ckpt reflects them
    assert load_checkpoint(tmp_path / "best.ckpt")["step"] == 3
    assert load_checkpoint(tmp_path / "last.ckpt")["step"] == 3


def test_validation_compares_in_the_runs_charset(tiny_config, tmp_path):
    """A charset the standard protocol would erase (here: punctuation only) must not make every
    reading 'correct': validation compares charset-normalised labels as they are."""
    trainer = Trainer(
        tiny_config(
            "trainer.max_steps=1",
            "trainer.val_every=1",
            "charset.preset=null",
            "+charset.symbols='!?#%&@'",
        ),
        tmp_path,
    )
    metrics = trainer.fit()
    assert metrics["synth_val/word_accuracy"] < 0.5  # an untrained model reads nothing right


def test_init_weights_copies_chosen_modules_and_starts_fresh(tiny_config, tmp_path):
    source = Trainer(tiny_config("trainer.max_steps=2"), tmp_path / "source")
    source.fit()
    ckpt = tmp_path / "source" / "last.ckpt"
    tuned = Trainer(
        tiny_config("head=ctc", f"init_weights={ckpt}", "init_modules=[backbone]"),
        tmp_path / "tuned",
    )
    tuned.resume()
    assert tuned.step == 0
    src, dst = weights(source), weights(tuned)
    backbone = [k for k in src if k.startswith("backbone.")]
    assert backbone and all(torch.equal(src[k], dst[k]) for k in backbone)
    assert any(not torch.equal(src[k], dst[k]) for k in src if k.startswith("head."))


def test_init_weights_of_another_shape_is_one_clear_error(tiny_config, tmp_path):
    Trainer(tiny_config("trainer.max_steps=1"), tmp_path / "a").fit()
    ckpt = tmp_path / "a" / "last.ckpt"
    other = tiny_config("model.backbone.lstm_hidden=12", f"init_weights={ckpt}")
    with pytest.raises(RuntimeError, match="init_weights .*shapes differ"):
        Trainer(other, tmp_path / "b").resume()
    missing = tiny_config(f"init_weights={ckpt}", "init_modules=[neck]")
    with pytest.raises(RuntimeError, match=r"no weights under \['neck'\]"):
        Trainer(missing, tmp_path / "c").resume()


def test_samples_a_loss_leaves_out_are_summed_not_averaged(tiny_config, tmp_path):
    """ACE's too-long labels (``ace_skipped`` per batch) reach the run's skip counts as a sum
    over the micro-batches of each step, as configs/head/ace.yaml promises."""
    trainer = Trainer(tiny_config("trainer.max_steps=3", "trainer.accumulate=2"), tmp_path)
    original = trainer.model.head.loss

    def leaves_out_one(*args):
        return original(*args) | {"ace_skipped": torch.tensor(1.0)}

    trainer.model.head.loss = leaves_out_one
    logged = []
    original_step = trainer.train_step
    trainer.train_step = lambda batches: logged.append(original_step(batches)) or logged[-1]
    trainer.fit()
    assert trainer.skipped["ace_label_too_long"] == 3 * 2
    assert [float(out["ace_skipped"]) for out in logged] == [2.0, 2.0, 2.0]
