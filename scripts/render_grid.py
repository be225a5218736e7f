"""Save a captioned grid of synthetic samples, to eyeball what the model trains on."""

from __future__ import annotations

import argparse
import math

from matplotlib.figure import Figure

from ace_str.data.charset import Charset
from ace_str.data.synth import SyntheticWordDataset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="grid.png")
    parser.add_argument("--num", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--charset", default="lower36", help="charset preset name")
    parser.add_argument("--cols", type=int, default=4)
    args = parser.parse_args(argv)

    dataset = SyntheticWordDataset(Charset(preset=args.charset), length=args.num, seed=args.seed)
    rows = math.ceil(args.num / args.cols)
    # A bare Figure needs no pyplot backend, so this works on headless machines.
    fig = Figure(figsize=(3 * args.cols, 1.1 * rows))
    axes = fig.subplots(rows, args.cols, squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < args.num:
            image, label = dataset.sample(index)
            ax.imshow(image)
            ax.set_title(label, fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"saved {args.num} samples to {args.out}")


if __name__ == "__main__":
    main()
