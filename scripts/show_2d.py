"""Write a Fig. 5-style picture (input, 2D argmax map, overlay) for each image a model reads.

    python scripts/show_2d.py --checkpoint outputs/resnet2d_ace_quick/.../best.ckpt \
        --images word1.png word2.jpg --out maps/
    python scripts/show_2d.py --checkpoint ... --words station coffee --sheet maps/sheet.png

``--words`` renders each word curved (the built-in renderer, DejaVu Sans, seed = its position),
so a picture can go into the docs without copying a benchmark image; ``--sheet`` also stacks
every picture into one PNG.
"""

from __future__ import annotations

import argparse
import logging
import random
from pathlib import Path

import matplotlib
import torch
from PIL import Image, UnidentifiedImageError

from ace_str.build.models import load_model, resolve_device
from ace_str.build.transform import build_transform, inference_transform
from ace_str.data.synth import RenderConfig, render_word
from ace_str.viz.maps import save_map_picture

log = logging.getLogger("show_2d")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by train.py")
    parser.add_argument("--images", nargs="+", default=[], help="image files to read")
    parser.add_argument("--words", nargs="+", default=[], help="words to render curved and read")
    parser.add_argument("--sheet", help="also write every picture stacked into this PNG")
    parser.add_argument("--out", default="maps", help="folder for the PNG pictures")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument(
        "--max-text-height", type=int, help="--images: cap the text's height (evaluate.py's)"
    )
    args = parser.parse_args(argv)
    if not args.images and not args.words:
        parser.error("give --images or --words")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    device = resolve_device(args.device)
    model, charset, cfg = load_model(args.checkpoint, device)
    # real crops as evaluate.py reads them, rendered words as the run trained on them
    real, rendered = inference_transform(cfg, args.max_text_height), build_transform(cfg)
    out = Path(args.out)
    inputs = [(Path(name).stem, name, read_image(name), real) for name in args.images]
    inputs += [
        (word, f"rendered {word!r}", render_curved(word, seed), rendered)
        for seed, word in enumerate(args.words)
    ]
    paths = []
    for index, (stem, name, image, transform) in enumerate(inputs):
        # Index prefix: two inputs with the same stem in different folders stay apart.
        path = save_map_picture(
            model, charset, image, transform, out / f"{index:03d}_{stem}_map.png"
        )
        paths.append(path)
        log.info("%s -> %s", name, path)
    if args.sheet:
        log.info("sheet of %d pictures -> %s", len(paths), write_sheet(paths, Path(args.sheet)))


def read_image(name: str) -> Image.Image:
    try:
        with Image.open(name) as opened:
            return opened.copy()
    except (OSError, UnidentifiedImageError) as err:
        raise SystemExit(f"cannot read image {name}: {err}") from None


def render_curved(word: str, seed: int) -> Image.Image:
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return render_word(word, font, random.Random(seed), RenderConfig(curve_prob=1.0))


def write_sheet(paths: list[Path], sheet: Path) -> Path:
    """The pictures one below the other, on white."""
    pictures = []
    for path in paths:
        with Image.open(path) as opened:
            pictures.append(opened.convert("RGB"))
    canvas = Image.new(
        "RGB", (max(p.width for p in pictures), sum(p.height for p in pictures)), "white"
    )
    top = 0
    for picture in pictures:
        canvas.paste(picture, (0, top))
        top += picture.height
    sheet.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(sheet)
    return sheet


if __name__ == "__main__":
    with torch.inference_mode():
        main()
