"""Fig. 4 at CPU scale: ACE, CTC and attention trained with a share of the training labels in
scrambled character order (label shuffle ratio 0, 0.25, 0.5, 0.75, 1), all on the same synthetic
stream and budget, one run after the other; each best checkpoint read on IIIT5K.

    python scripts/reproduce_fig4.py [--pretrain-minutes 11] [--minutes-per-run 2.8]
                                     [--heads ace ctc] [--ratios 0 1]

Everything but the head and ``data.shuffle_ratio`` is ``experiment=crnn_ace_quick``. From
scratch, that model reads nothing in the ~400 steps that 15 runs in an hour allow (0.0% on
synthetic validation after 459 steps, measured), so by default the script first trains one
shared backbone for --pretrain-minutes on ordered labels (ACE head), and every (head, ratio)
run starts from that backbone with a fresh head and then trains on its shuffled labels
(``init_weights``, ``init_modules=[backbone]``). ``--pretrain-minutes 0`` trains each run from
scratch as the paper did (worth it with far more minutes per run). The defaults fit in about
55 minutes on a 2-core CPU. ACE's loss depends only on character counts, so its runs see the
same loss at every ratio. The paper printed no numbers for Fig. 4, only the curves: ACE flat,
CTC and attention falling as the ratio grows (attention fastest). Writes fig4.md, fig4.json
and fig4.png under --out.
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
    length_overrides,
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


def pretrain_backbone(args: argparse.Namespace) -> RunResult:
    """The shared starting point: crnn_ace_quick on ordered labels for --pretrain-minutes."""
    minutes = args.pretrain_minutes
    steps = args.pretrain_steps or budget_steps(minutes)  # an estimate under a budget
    overrides = [
        "experiment=crnn_ace_quick",
        "name=fig4_pretrain",
        f"seed={args.seed}",
        *length_overrides(args.pretrain_steps, minutes),
        f"trainer.val_every={max(1, steps // 4)}",
        *args.override,
    ]
    return train_run("shared backbone", overrides, args.out / "pretrain")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    description = __doc__.split("\n\n")[0]
    parser = budget_parser(description, 2.8, 0.5, "steps / 2", "outputs/reproduce_fig4")
    parser.add_argument(
        "--pretrain-minutes",
        type=float,
        default=11.0,
        help="shared backbone trained first on ordered labels (0: every run from scratch)",
    )
    parser.add_argument("--pretrain-steps", type=int, default=None, help="default: by budget")
    parser.add_argument("--heads", nargs="+", choices=list(HEADS), default=list(HEADS))
    parser.add_argument("--ratios", nargs="+", type=float, default=list(RATIOS))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[tuple[str, float], RunResult]:
    args = parse_args(argv)
    train_minutes = args.minutes_per_run - args.eval_minutes
    steps = args.steps or budget_steps(train_minutes)  # an estimate under a budget
    val_every = args.val_every or max(1, steps // 2)
    evaluate = benchmarks_present(args.benchmarks)
    runs = [(h, r) for r in args.ratios for h in args.heads]
    init: list[str] = []
    pretrain = None
    if args.pretrain_minutes > 0:
        pretrain = pretrain_backbone(args)
        init = [f"init_weights={pretrain.best_checkpoint}", "init_modules=[backbone]"]
    length = f"{steps} steps" if args.steps else "the steps the budget allows"
    log.info("%d runs of %s (at most %.1f min each)", len(runs), length, train_minutes)
    results: dict[tuple[str, float], RunResult] = {}
    for head, ratio in runs:
        overrides = [
            "experiment=crnn_ace_quick",
            f"head={head}",
            f"name=fig4_{head}_{ratio:g}",
            f"data.shuffle_ratio={ratio}",
            f"seed={args.seed + (pretrain is not None)}",  # past the pretraining's stream
            *length_overrides(args.steps, train_minutes),
            f"trainer.val_every={val_every}",
            *init,
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
    start = "from scratch"
    if pretrain is not None:
        start = (
            f"from one shared backbone (ACE, ordered labels, {pretrain.steps} steps in "
            f"{pretrain.minutes:.1f} min, synthetic accuracy {percent(pretrain.synth_accuracy)}%) "
            "with a fresh head"
        )
    body = (
        f"Word accuracy (%) by training-label shuffle ratio, standard protocol; synth val: best "
        f"synthetic validation accuracy (the checkpoint evaluated). Seed {args.seed}; every run "
        f"starts {start}, then {length} of batch {batch}, {train_minutes:g} "
        f"training minutes at most.{note}\n\n{text}\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fig4.md").write_text(body, encoding="utf-8")
    save_results(list(results.values()), args.out / "fig4.json", steps=args.steps)
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
