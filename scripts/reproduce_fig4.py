"""Fig. 4 at CPU scale: ACE, CTC and attention trained with a share of the training labels in
scrambled character order (label shuffle ratio 0, 0.25, 0.5, 0.75, 1), all on the same synthetic
stream and budget, one run after the other; each best checkpoint read on IIIT5K.

    python scripts/reproduce_fig4.py [--minutes-per-run 3.5] [--heads ace ctc] [--ratios 0 1]

Everything but the head and ``data.shuffle_ratio`` is ``experiment=crnn_ace_quick``. The
defaults fit the 15 runs in about 55 minutes on a 2-core CPU: some 500 steps each, a tiny
budget next to the paper's (where a model barely starts reading), so read the trend across
ratios, not the level. The paper printed no numbers for Fig. 4, only the curves: ACE flat,
CTC and attention falling as the ratio grows (attention fastest). Writes fig4.md, fig4.json and
fig4.png under --out.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from ace_str.experiments import (
    RunResult,
    benchmarks_present,
    budget_parser,
    budget_steps,
    evaluate_run,
    percent,
    plot_vs_ratio,
    save_results,
    train_run,
)

log = logging.getLogger("reproduce_fig4")

HEADS = {"ace": "ACE", "ctc": "CTC", "attention": "attention"}  # head config -> label
RATIOS = (0.0, 0.25, 0.5, 0.75, 1.0)
BENCHMARK = "IIIT5K"  # the column read; the paper showed four sets


def table(results: dict[tuple[str, float], RunResult], heads: Sequence[str]) -> str:
    """Rows: shuffle ratio; per method: IIIT5K accuracy (when evaluated) and synthetic
    validation accuracy (of the same, best, checkpoint)."""
    header = " | ".join(f"{HEADS[h]} {BENCHMARK} | {HEADS[h]} synth val" for h in heads)
    lines = [f"| shuffle ratio | {header} |", "|---:|" + "---:|---:|" * len(heads)]
    for ratio in sorted({r for _, r in results}):
        cells = []
        for head in heads:
            result = results.get((head, ratio))
            bench = result.benchmarks.get(BENCHMARK) if result else None
            cells += [percent(bench), percent(result.synth_accuracy if result else None)]
        lines.append(f"| {ratio:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    description = __doc__.split("\n\n")[0]
    parser = budget_parser(description, 3.5, 0.5, "steps / 2", "outputs/reproduce_fig4")
    parser.add_argument("--heads", nargs="+", choices=list(HEADS), default=list(HEADS))
    parser.add_argument("--ratios", nargs="+", type=float, default=list(RATIOS))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[tuple[str, float], RunResult]:
    args = parse_args(argv)
    train_minutes = args.minutes_per_run - args.eval_minutes
    steps = args.steps or budget_steps(train_minutes)
    val_every = args.val_every or max(1, steps // 2)
    evaluate = benchmarks_present(args.benchmarks)
    runs = [(h, r) for r in args.ratios for h in args.heads]
    log.info("%d runs of %d steps (at most %.1f min each)", len(runs), steps, train_minutes)
    results: dict[tuple[str, float], RunResult] = {}
    for head, ratio in runs:
        overrides = [
            "experiment=crnn_ace_quick",
            f"head={head}",
            f"name=fig4_{head}_{ratio:g}",
            f"data.shuffle_ratio={ratio}",
            f"seed={args.seed}",
            f"trainer.max_steps={steps}",
            f"trainer.max_minutes={train_minutes}",
            f"trainer.val_every={val_every}",
            *args.override,
        ]
        result = train_run(
            f"{HEADS[head]}, ratio {ratio:g}", overrides, args.out / f"{head}_{ratio:g}"
        )
        result.params = {"head": head, "shuffle_ratio": str(ratio)}
        if evaluate:
            evaluate_run(result, args.benchmarks, ["IIIT5k_3000"])
        results[head, ratio] = result
    text = table(results, args.heads)
    note = "" if evaluate else f"\n\n{BENCHMARK} not evaluated: {args.benchmarks} not found."
    batch = next(iter(results.values())).batch_size if results else "?"
    body = (
        f"Word accuracy (%) by training-label shuffle ratio, standard protocol; synth val: best "
        f"synthetic validation accuracy (the checkpoint evaluated). Seed {args.seed}, {steps} "
        f"steps of batch {batch} at most, {train_minutes:g} training minutes at most per run.{note}"
        f"\n\n{text}\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fig4.md").write_text(body, encoding="utf-8")
    save_results(list(results.values()), args.out / "fig4.json", steps=steps)
    series = {
        f"{BENCHMARK} (real)": {HEADS[h]: [] for h in args.heads},
        "synthetic validation": {HEADS[h]: [] for h in args.heads},
    }
    for (head, ratio), result in results.items():
        if BENCHMARK in result.benchmarks:
            series[f"{BENCHMARK} (real)"][HEADS[head]].append((ratio, result.benchmarks[BENCHMARK]))
        series["synthetic validation"][HEADS[head]].append((ratio, result.synth_accuracy))
    plot_vs_ratio(series, args.out / "fig4.png")
    print(f"\n{body}")
    log.info("wrote %s, %s and %s", *(args.out / n for n in ("fig4.md", "fig4.json", "fig4.png")))
    return results


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
    )
    main()
