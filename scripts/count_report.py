"""Score a counting model (experiment=count_ace_quick) as the paper's Table 4 does, against the
"always predict each class's most frequent training count" baseline, and write Fig. 6 pictures.

    python scripts/count_report.py --checkpoint outputs/count_ace_quick/.../best.ckpt \
        --samples 1000 --train-samples 2000 --pictures 4 --out counts/
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from ace_str.build.data import synth_dataset
from ace_str.build.loaders import eval_loader
from ace_str.build.models import load_model, resolve_device
from ace_str.build.transform import build_transform
from ace_str.data.counting import label_counts
from ace_str.models.counting import most_frequent_counts, predict_counts
from ace_str.scoring.metrics import CountTotals
from ace_str.viz.counts import count_map_figure

log = logging.getLogger("count_report")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by train.py")
    parser.add_argument("--samples", type=int, default=1000, help="held-out synthetic images")
    parser.add_argument("--train-samples", type=int, default=2000, help="for the baseline's mode")
    parser.add_argument("--seed", type=int, default=424243, help="held-out seed (not training's)")
    parser.add_argument("--pictures", type=int, default=4, help="Fig. 6 pictures to write")
    parser.add_argument("--out", default="counts", help="folder for the pictures")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    device = resolve_device(args.device)
    model, charset, cfg = load_model(args.checkpoint, device)
    transform = build_transform(cfg)
    test = synth_dataset(cfg.data.synth, charset, transform, seed=args.seed, length=args.samples)
    train = synth_dataset(cfg.data.synth, charset, length=args.train_samples)
    loader = eval_loader(test, charset, cfg.data.batch_size, 0)
    predicted, truth = predict_counts(model, loader, charset, device)
    baseline = most_frequent_counts(
        label_counts([train.sample(i)[1] for i in range(len(train))], charset)
    )
    names = list(cfg.data.synth.get("shapes", charset.symbols))
    for title, guess in (("ACE", predicted), ("most frequent count", baseline.expand_as(truth))):
        totals = CountTotals()
        totals.update(guess, truth)
        rmse, rel = totals.per_class()
        s = totals.summary()
        per_class = "  ".join(
            f"{n} {r:.2f}/{q:.2f}" for n, r, q in zip(names, rmse, rel, strict=True)
        )
        print(f"{title:>20}: m-RMSE {s['m_rmse']:.3f}, m-relRMSE {s['m_rel_rmse']:.3f}")
        print(f"{'':>20}  per class RMSE/relRMSE: {per_class}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(min(args.pictures, len(test))):
        fig = count_map_figure(model, test[i][0].to(device), names)
        fig.savefig(out / f"{i:03d}_counts.png", dpi=120)
        log.info("wrote %s", out / f"{i:03d}_counts.png")


if __name__ == "__main__":
    with torch.inference_mode():
        main()
