"""Table 1 and Fig. 3 at CPU scale: CRNN trained with ACE regression (Eq. 4), ACE cross-entropy
(Eq. 8) and CTC on the same synthetic stream (same seed) for the same budget, one run after the
other; each best checkpoint read on the benchmarks; error curves from the validation logs.

    python scripts/reproduce_table1.py [--minutes-per-run 18] [--out outputs/reproduce_table1]

Everything but the head is ``experiment=crnn_ace_quick``. The defaults fit the whole script in
about 55 minutes on a 2-core CPU: far from the paper's MJSynth training, so read the ranking,
not the level. Writes table1.md, table1.json and fig3.png under --out.
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
    plot_error_curves,
    save_results,
    train_run,
)

log = logging.getLogger("reproduce_table1")

# head config -> method label
HEADS = {
    "ace_regression": "ACE regression (Eq. 4)",
    "ace": "ACE cross-entropy (Eq. 8)",
    "ctc": "CTC",
}
# Shi et al.'s CRNN with each loss, as printed in the paper's Table 1 (word accuracy, %)
PAPER = {
    "ctc": {"IIIT5K": 81.2, "SVT": 82.7, "IC03": 91.9, "IC13": 89.6},
    "ace_regression": {"IIIT5K": 19.4, "SVT": 6.6, "IC03": 12.0, "IC13": 9.3},
    "ace": {"IIIT5K": 82.3, "SVT": 82.6, "IC03": 92.1, "IC13": 89.7},
}
COLUMNS = ("IIIT5K", "SVT", "IC03", "IC13", "IC15")


def table(results: dict[str, RunResult]) -> str:
    """Our rows (synthetic validation and benchmark accuracy) with the paper's beside them."""
    lines = [
        "| method | steps | train min | synth val | " + " | ".join(COLUMNS) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(COLUMNS),
    ]
    for head, result in results.items():
        cells = " | ".join(percent(result.benchmarks.get(c)) for c in COLUMNS)
        lines.append(
            f"| {result.label} (ours) | {result.steps} | {result.minutes:.1f} | "
            f"{percent(result.synth_accuracy)} | {cells} |"
        )
        paper = " | ".join(f"{PAPER[head][c]:.1f}" if c in PAPER[head] else "–" for c in COLUMNS)
        lines.append(f"| {result.label} (paper, MJSynth) | – | – | – | {paper} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    description = __doc__.split("\n\n")[0]
    parser = budget_parser(description, 18.0, 1.5, "steps / 10", "outputs/reproduce_table1")
    parser.add_argument("--heads", nargs="+", choices=list(HEADS), default=list(HEADS))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, RunResult]:
    args = parse_args(argv)
    train_minutes = args.minutes_per_run - args.eval_minutes
    steps = args.steps or budget_steps(train_minutes)  # an estimate under a budget
    val_every = args.val_every or max(1, steps // 10)
    evaluate = benchmarks_present(args.benchmarks)
    log.info(
        "%d runs of %s (at most %.1f min each), validation every %d steps",
        len(args.heads),
        f"{steps} steps" if args.steps else "the steps the budget allows",
        train_minutes,
        val_every,
    )
    results: dict[str, RunResult] = {}
    for head in args.heads:
        overrides = [
            "experiment=crnn_ace_quick",
            f"head={head}",
            f"name=table1_{head}",
            f"seed={args.seed}",
            *length_overrides(args.steps, train_minutes),
            f"trainer.val_every={val_every}",
            *args.override,
        ]
        result = train_run(HEADS[head], overrides, args.out / head)
        result.params = {"head": head}
        if evaluate:
            evaluate_run(result, args.benchmarks)
        results[head] = result
    text = table(results)
    note = "" if evaluate else f"\n\nbenchmarks not evaluated: {args.benchmarks} not found."
    batch = next(iter(results.values())).batch_size if results else "?"
    body = (
        f"Word accuracy (%), standard protocol; synth val: best synthetic validation accuracy "
        f"(the checkpoint evaluated). Seed {args.seed}, batch {batch}, "
        f"{f'{steps} steps' if args.steps else 'steps sized by trainer.budget_minutes'} and "
        f"{train_minutes:g} training minutes at most per run.{note}\n\n{text}\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table1.md").write_text(body, encoding="utf-8")
    save_results(list(results.values()), args.out / "table1.json", paper=PAPER, steps=args.steps)
    plot_error_curves(list(results.values()), args.out / "fig3.png")
    print(f"\n{body}")
    log.info(
        "wrote %s, %s and %s", *(args.out / n for n in ("table1.md", "table1.json", "fig3.png"))
    )
    return results


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
    )
    main()
