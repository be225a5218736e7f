"""Save one PNG with rendered synthetic samples beside random real crops, to see the gap.

    python scripts/real_vs_synth_grid.py                          # data=synth_real vs IIIT5K_train
    python scripts/real_vs_synth_grid.py --data synth             # the built-in defaults
    python scripts/real_vs_synth_grid.py --model-input            # as the model sees them (32x100)
    python scripts/real_vs_synth_grid.py data.synth.render.jpeg_prob=1.0   # any Hydra override

The real images come from a labelled folder (``images/`` + ``labels.tsv``); only training sets
belong here, never a benchmark test set.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from ace_str.build.config import compose_config
from ace_str.build.data import synth_dataset
from ace_str.build.models import build_charset
from ace_str.build.transform import build_transform
from ace_str.data.folder import LabelledFolderDataset
from ace_str.viz.grid import comparison_grid, save_figure

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REAL = ROOT.parent / "shared" / "data" / "real_train" / "IIIT5K_train"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/real_vs_synth.png")
    parser.add_argument("--num", type=int, default=24, help="images in each grid")
    parser.add_argument("--cols", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="renderer seed and real-image pick")
    parser.add_argument("--data", default="synth_real", help="data config of the renderer")
    parser.add_argument("--real", default=str(DEFAULT_REAL), help="labelled real folder")
    parser.add_argument(
        "--model-input",
        action="store_true",
        help="show both through the data config's transform (the model's input)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the training config")
    args = parser.parse_args(argv)
    if "benchmarks" in Path(args.real).resolve().parts:
        parser.error("benchmark test sets are for evaluation only; pick a training folder")
    if not Path(args.real).is_dir():
        sys.exit(f"error: real image folder not found: {args.real}")

    cfg = compose_config("train", [f"data={args.data}", *args.overrides])
    transform = build_transform(cfg) if args.model_input else None
    synth = synth_dataset(
        cfg.data.synth, build_charset(cfg), transform, length=args.num, seed=args.seed
    )
    synth_pairs = [synth[i] for i in range(args.num)]
    real = LabelledFolderDataset(
        args.real, synth.charset, cfg.data.max_label_length, transform=transform
    )
    picks = random.Random(args.seed).sample(range(len(real)), min(args.num, len(real)))
    real_pairs = [pair for pair in (real[i] for i in picks) if pair is not None]

    fig = comparison_grid(
        [
            (f"synthetic (data={args.data})", *zip(*synth_pairs, strict=True)),
            (f"real ({Path(args.real).name})", *zip(*real_pairs, strict=True)),
        ],
        columns=args.cols,
    )
    path = save_figure(fig, args.out)
    print(f"saved {len(synth_pairs)} synthetic and {len(real_pairs)} real images to {path}")


if __name__ == "__main__":
    main()
