"""Single-process throughput of the synthetic renderer, to size DataLoader workers.

Images per CPU second (``time.process_time``, one torch thread), so other processes on the
machine do not distort the figure.

``--data synth_real`` (and any further Hydra overrides, e.g. ``data.synth.render.jpeg_prob=1``)
times the renderer a data config builds instead of the built-in defaults.
"""

from __future__ import annotations

import argparse

import torch

from ace_str.data.charset import Charset
from ace_str.data.synth import SyntheticWordDataset
from ace_str.data.synth.rate import render_rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--charset", default="lower36", help="charset preset name")
    parser.add_argument(
        "--data", default=None, help="a data config (e.g. synth_real); default: built-in settings"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, with --data")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # the figure is per DataLoader worker, which gets one core
    try:
        from ace_str.data.transforms import ResizeNormalize

        transform, what = ResizeNormalize(height=32, width=100, channels=1), "render + 32x100"
    except ImportError:
        transform, what = None, "render only"
    length = args.warmup + args.num
    if args.data is None:
        if args.overrides:
            parser.error("overrides need --data")
        dataset = SyntheticWordDataset(
            Charset(preset=args.charset), length=length, transform=transform
        )
    else:
        from ace_str.build.config import compose_config
        from ace_str.build.data import synth_dataset
        from ace_str.build.models import build_charset

        overrides = [f"data={args.data}", f"charset={args.charset}", *args.overrides]
        cfg = compose_config("train", overrides)
        dataset = synth_dataset(cfg.data.synth, build_charset(cfg), transform, length=length)
        what += f", data={args.data}"
    rate = render_rate(dataset, args.num, args.warmup)
    print(f"renderer: {rate:.0f} images/s on one core ({args.num} samples, {what})")


if __name__ == "__main__":
    main()
