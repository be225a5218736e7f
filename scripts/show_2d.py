"""Write a Fig. 5-style picture (input, 2D argmax map, overlay) for each image a model reads.

    python scripts/show_2d.py --checkpoint outputs/resnet2d_ace_quick/.../best.ckpt \
        --images word1.png word2.jpg --out maps/
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from ace_str.build.models import load_model, resolve_device
from ace_str.build.transform import build_transform
from ace_str.viz.maps import save_map_picture

log = logging.getLogger("show_2d")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by train.py")
    parser.add_argument("--images", nargs="+", required=True, help="image files to read")
    parser.add_argument("--out", default="maps", help="folder for the PNG pictures")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    device = resolve_device(args.device)
    model, charset, cfg = load_model(args.checkpoint, device)
    transform = build_transform(cfg)
    out = Path(args.out)
    for index, name in enumerate(args.images):
        try:
            with Image.open(name) as opened:
                image = opened.copy()
        except (OSError, UnidentifiedImageError) as err:
            raise SystemExit(f"cannot read image {name}: {err}") from None
        # Index prefix: two inputs with the same stem in different folders stay apart.
        path = save_map_picture(
            model, charset, image, transform, out / f"{index:03d}_{Path(name).stem}_map.png"
        )
        log.info("%s -> %s", name, path)


if __name__ == "__main__":
    with torch.inference_mode():
        main()
