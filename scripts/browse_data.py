"""A PNG grid of the training samples a config produces, as the model sees them (after the
transform and data.augment), each captioned with its label and source: the renderer, LMDBs,
labelled folders or a mix, drawn by the run's own sampler.

    python scripts/browse_data.py experiment=cpu_synth_real --out grid.png --num 32
    python scripts/browse_data.py experiment=cpu_synth_real augment=str --step 6000  # real joined
    python scripts/browse_data.py experiment=crnn_ace 'data.train_roots=[lmdb/IIIT5K_train]'

``--step N`` starts at the batches of optimizer step N (a source with start_fraction joins at
that share of trainer.max_steps; a budget run plans its own).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math

from ace_str.build.config import compose_config
from ace_str.build.data import build_train_dataset
from ace_str.build.loaders import train_loader
from ace_str.build.models import build_charset
from ace_str.viz.grid import save_grid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="+", help="experiment=NAME and Hydra overrides")
    parser.add_argument("--out", default="outputs/browse_data.png", help="the grid (PNG)")
    parser.add_argument("--num", type=int, default=32, help="samples shown")
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--step", type=int, default=0, help="start at this optimizer step")
    args = parser.parse_args(argv)
    if args.num < 1 or args.step < 0:
        parser.error("--num must be positive and --step not negative")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    cfg = compose_config("train", [*args.overrides, "data.num_workers=0"])
    charset = build_charset(cfg)
    dataset, shuffle = build_train_dataset(cfg, charset)
    per_step = cfg.data.batch_size * int(cfg.trainer.get("accumulate") or 1)
    loader = train_loader(dataset, cfg, charset, shuffle, args.step * per_step)
    # the run's own batches, enough for --num samples, shown evenly spread over them (a mixed
    # batch holds its sources one after another); unusable records are left out
    batches = itertools.islice(loader.batch_sampler, math.ceil(args.num / cfg.data.batch_size))
    drawn = list(itertools.chain.from_iterable(batches))
    picked = [drawn[i * len(drawn) // args.num] for i in range(min(args.num, len(drawn)))]
    images, captions = [], []
    for sample in (dataset[index] for index in picked):
        if sample is not None:
            images.append(sample[0])
            captions.append(" | ".join(str(part) for part in sample[1:]))
    path = save_grid(images, captions, args.out, args.columns)
    print(f"saved {len(images)} training samples of {cfg.name} from step {args.step} to {path}")


if __name__ == "__main__":
    main()
