"""Pre-render synthetic word images into an LMDB in the clovaai layout.

Rendering on the fly costs CPU every epoch; a fixed LMDB is cheaper to reread and easy to share.
Written by ``ace_str.data.lmdb.LmdbWriter``: encoded images and UTF-8 labels; an LMDB already at
``--out`` is replaced.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
from collections.abc import Iterator

from tqdm import tqdm

from ace_str.data.charset import Charset
from ace_str.data.lmdb import LmdbWriter
from ace_str.data.synth import SyntheticWordDataset

_dataset: SyntheticWordDataset | None = None
_format = "png"


def _init_worker(dataset: SyntheticWordDataset, image_format: str) -> None:
    global _dataset, _format
    _dataset, _format = dataset, image_format


def _encode(index: int) -> tuple[bytes, bytes]:
    assert _dataset is not None
    image, label = _dataset.sample(index)
    buffer = io.BytesIO()
    if _format == "jpeg":
        image.save(buffer, format="JPEG", quality=95)
    else:
        image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue(), label.encode("utf-8")


def _samples(dataset: SyntheticWordDataset, workers: int, image_format: str) -> Iterator:
    if workers <= 1:
        _init_worker(dataset, image_format)
        yield from map(_encode, range(len(dataset)))
        return
    with mp.Pool(workers, initializer=_init_worker, initargs=(dataset, image_format)) as pool:
        yield from pool.imap(_encode, range(len(dataset)), chunksize=64)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="LMDB folder to create")
    parser.add_argument("--num", type=int, required=True, help="number of samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--charset", default="lower36", help="charset preset name")
    parser.add_argument("--workers", type=int, default=max(1, mp.cpu_count() - 1))
    parser.add_argument("--format", choices=("png", "jpeg"), default="png")
    parser.add_argument("--font-dir", action="append", default=None, help="extra font folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    dataset = SyntheticWordDataset(
        Charset(preset=args.charset), length=args.num, seed=args.seed, font_dirs=args.font_dir
    )
    samples = _samples(dataset, args.workers, args.format)
    with LmdbWriter(args.out, args.num * 64 * 1024 + (64 << 20), overwrite=True) as writer:
        for image, label in tqdm(samples, total=args.num, unit="img"):
            writer.add(image, label)
    print(f"wrote {args.num} samples to {args.out}")


if __name__ == "__main__":
    main()
