"""read.py: any image mode is read, a broken file is reported and skipped, the rest still read."""

import logging

import numpy as np
from PIL import Image

from ace_str.build.config import compose_config
from ace_str.engine.trainer import Trainer
from ace_str.evaluation.reader import list_images, read_with_checkpoint


def odd_images(folder):
    folder.mkdir()
    word = Image.new("RGB", (60, 20), "white")
    word.paste((0, 0, 0), (10, 5, 50, 15))
    word.convert("RGBA").save(folder / "a_rgba.png")
    word.convert("CMYK").save(folder / "b_cmyk.jpg")
    wide = np.asarray(word.convert("L"), dtype=np.uint16) * 257
    Image.fromarray(wide).save(folder / "c_i16.png")  # uint16 arrays open as I;16
    word.convert("P").save(folder / "d_palette.gif")
    (folder / "e_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (folder / "notes.txt").write_text("not an image, not listed")


def test_read_folder_with_odd_modes_and_a_broken_file(tiny_config, tmp_path, caplog, capsys):
    Trainer(tiny_config("trainer.max_steps=1"), tmp_path / "run").fit()
    odd_images(tmp_path / "imgs")
    assert Image.open(tmp_path / "imgs" / "c_i16.png").mode.startswith("I")
    out = tmp_path / "read.tsv"
    cfg = compose_config(
        "read",
        [
            f"checkpoint={tmp_path / 'run' / 'last.ckpt'}",
            f"images={tmp_path / 'imgs'}",
            f"output={out}",
            "num_workers=0",
            "batch_size=2",
        ],
    )
    with caplog.at_level(logging.WARNING):
        results = read_with_checkpoint(cfg)
    names = [r.path.rsplit("/", 1)[-1] for r in results]
    assert names == ["a_rgba.png", "b_cmyk.jpg", "c_i16.png", "d_palette.gif"]
    assert all(0.0 <= r.confidence <= 1.0 for r in results)
    assert any("e_broken.png" in r.getMessage() for r in caplog.records)
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and all(len(line.split("\t")) == 3 for line in lines)
    printed = capsys.readouterr().out
    assert lines[0] in printed and "# read 4, skipped 1 unreadable, of 5 images" in printed


def test_list_images_takes_files_and_folders(tmp_path):
    odd_images(tmp_path / "imgs")
    notes = tmp_path / "imgs" / "notes.txt"
    assert len(list_images(tmp_path / "imgs")) == 5
    assert list_images([notes, tmp_path / "imgs" / "a_rgba.png"])[0] == notes
