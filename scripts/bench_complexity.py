"""Table 5 of the ACE paper: parameters, runtime memory and time of CTC, attention and ACE.

Each method goes forward and backward from given inputs (batch 64, T = 144 by default): CTC and
ACE from the per-frame logits (B, T, C) to their gradient, the attention head (clovaai ``Attn``,
hidden 256, teacher forcing over the padded label length) from the features (B, T, D) to their
gradient and its parameters' gradients. Times are medians over repeats after a warm-up, all
methods interleaved in one loop so load on a shared machine hits them alike.

Memory is the peak of bytes allocated during one forward plus backward above what was allocated
before it (inputs and parameters excluded; the gradient of the inputs included):
``torch.cuda.max_memory_allocated`` on a GPU, on the CPU the running sum of the allocation and
free events that ``torch.profiler`` records with ``profile_memory=True`` (each op's net
allocation in start order, so a temporary allocated and freed inside one op is not seen).

On the CPU the table also has ACE on PyTorch ops (the analytic gradient of ``ace_fast.py``
without the numba kernels), side by side with them.

Also printed: fast ACE forward plus backward over one ``torch.softmax`` on the same logits (the
2x bound of issue 7; median ratio of back-to-back pairs) and the composed-ops ACE likewise, with
the median page faults per call of softmax and of ACE in those pairs, twice: first with glibc's
defaults, then with freed memory kept (``mallopt``: M_MMAP_MAX 0 and M_TRIM_THRESHOLD 2 GiB, so
every buffer comes from the heap and goes back to it, as with jemalloc, tcmalloc or PyTorch's own
caching allocator on a GPU). Under the defaults a logits-sized output (259 MB at 7,357 classes) is
either a fresh mapping the OS faults in page by page (66,214 faults, some 130 ms here) or, when an
earlier method left a large enough free chunk in the heap, reused without a fault; which one each
call gets depends on what split the heap before it, so softmax and ACE are not served alike and
the ratio swung between runs (0.8 to 3.6 at 7,357 classes). With freed memory kept both reuse
their buffer, and the ratio compares the computations; the bound is read from it, the defaults'
figure is printed beside it.
Usage: ``python scripts/bench_complexity.py [--classes 37 7357] [--repeats 11] [--device cpu]``.

``--keep-freed-memory`` keeps freed memory from the start, so the table's times are measured
that way too.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import time
from collections.abc import Callable

try:
    import resource  # Unix: page-fault counts
except ImportError:
    resource = None

import torch
from torch.profiler import ProfilerActivity, profile

from ace_str.losses import ace_cpu
from ace_str.losses.ace import ACELoss
from ace_str.models.heads.attention import AttentionHead
from ace_str.models.heads.ctc import ctc_loss

# Table 5 of Xie et al. (CVPR 2019), TITAN X, batch 64, T = 144: (para MB, mem MB, time ms)
PAPER = {
    37: {"CTC": ("none", "0.1", "3.1"), "Attention": ("2.8", "6.6", "78.9")},
    7357: {"CTC": ("none", "47.8", "16.2"), "Attention": ("17.2", "143.6", "85.5")},
}
PAPER_ACE = {37: ("none", "0.02", "<0.1"), 7357: ("none", "4.2", "<0.1")}
MB = 2**20


def make_inputs(args: argparse.Namespace, classes: int, device: torch.device) -> dict:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, args.max_label + 1, (args.batch,), generator=gen)
    targets = torch.randint(1, classes, (args.batch, args.max_label), generator=gen)
    targets *= torch.arange(args.max_label) < lengths.unsqueeze(1)
    logits = torch.randn(args.batch, args.frames, classes, generator=gen) * 2
    features = torch.randn(args.batch, args.frames, args.features, generator=gen)
    return {
        "logits": logits.to(device).requires_grad_(True),
        "features": features.to(device).requires_grad_(True),
        "targets": targets.to(device),
        "lengths": lengths.to(device),
    }


def methods(inputs: dict, classes: int, args: argparse.Namespace, device: torch.device) -> dict:
    """name -> (parameters in MB or None, a closure doing forward plus backward)."""
    logits, features = inputs["logits"], inputs["features"]
    targets, lengths = inputs["targets"], inputs["lengths"]
    ace, composed, torch_ops = ACELoss(), ACELoss(backend="composed"), ACELoss(backend="analytic")
    head = AttentionHead(args.features, classes, hidden_size=args.hidden).to(device)
    head_params = [p for p in head.parameters()]

    def run_ctc() -> None:
        torch.autograd.grad(ctc_loss(logits, targets, lengths), logits)

    def run_ace() -> None:
        torch.autograd.grad(ace(logits, targets, lengths), logits)

    def run_attention() -> None:
        loss = head.loss(head(features, targets), targets, lengths)["loss"]
        torch.autograd.grad(loss, [features, *head_params])

    def run_composed() -> None:
        torch.autograd.grad(composed(logits, targets, lengths), logits)

    def run_torch_ops() -> None:
        torch.autograd.grad(torch_ops(logits, targets, lengths), logits)

    def run_softmax() -> None:
        torch.softmax(logits.detach(), dim=-1)

    head_mb = sum(p.numel() * p.element_size() for p in head_params) / MB
    runs = {"CTC": (None, run_ctc), "ACE": (None, run_ace), "softmax": (None, run_softmax)}
    if not args.no_attention:
        runs["Attention"] = (head_mb, run_attention)
    if not args.no_composed:
        runs["ACE (composed ops)"] = (None, run_composed)
    if ace.backend_for(logits)[0] == "kernel":  # the same ACE without numba
        runs["ACE (PyTorch ops)"] = (None, run_torch_ops)
    return runs


def keep_freed_memory() -> bool:
    """glibc: serve every allocation from the heap (no mmap) and never hand freed memory back to
    the OS, so a buffer freed by one call is reused by the next without page faults."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(fn: Callable[[], None], device: torch.device) -> float:
    """Peak bytes allocated during ``fn`` above those allocated before it (see module doc)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / MB
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # each op's own allocations net of its own frees, plus the frees outside ops ("[memory]"),
    # in start order: a temporary freed inside one op is not seen
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += (
            event.cpu_memory_usage if event.name == "[memory]" else event.self_cpu_memory_usage
        )
        peak = max(peak, current)
    return peak / MB


def median_times_ms(runs: dict, repeats: int, warmup: int, device: torch.device) -> dict:
    """All closures once per round, interleaved, so machine load falls on each alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(warmup + repeats):
        for name, (_, fn) in runs.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            if round_ >= warmup:
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def minor_faults() -> int:
    """Page faults the process has taken so far (0 where ``resource`` is missing)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource else 0


def softmax_ratio(runs: dict, repeats: int, device: torch.device) -> tuple[float, float, tuple]:
    """Median over pairs run back to back of (ACE forward plus backward) / softmax, the same for
    the composed-ops ACE (nan when left out), and the median page faults per call of softmax and
    of ACE in those pairs: the 2x bound of issue 7. Each variant's pairs run in their own loop,
    so what one leaves behind (freed memory handed back to the OS, a cold cache) does not land
    on the other's pairs."""
    ratios, faults = [], []
    for name in ("ACE", "ACE (composed ops)"):
        if name not in runs:
            ratios.append(float("nan"))
            continue
        pairs = []
        runs["softmax"][1]()  # one untimed pair: a new allocator mode grows its heap here
        runs[name][1]()
        for _ in range(repeats):
            took, faulted = [], []
            for fn in (runs["softmax"][1], runs[name][1]):
                sync(device)
                before = minor_faults()
                start = time.perf_counter()
                fn()
                sync(device)
                took.append(time.perf_counter() - start)
                faulted.append(minor_faults() - before)
            pairs.append(took[1] / took[0])
            if name == "ACE":
                faults.append(faulted)
        ratios.append(statistics.median(pairs))
    per_call = tuple(statistics.median(f[i] for f in faults) for i in range(2))
    return ratios[0], ratios[1], per_call


def fmt(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def table(classes: int, runs: dict, mem: dict, ms: dict) -> list[str]:
    paper = {**PAPER[classes], "ACE": PAPER_ACE[classes]} if classes in PAPER else {}
    rows = [
        f"| {classes} classes | Para (MB) | Mem (MB) | Time (ms) | Mem / CTC | Time / CTC "
        "| paper Para / Mem / Time |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("CTC", "Attention", "ACE", "ACE (PyTorch ops)", "ACE (composed ops)"):
        if name not in runs:
            continue
        para = runs[name][0]
        rows.append(
            f"| {name} | {'none' if para is None else fmt(para)} | {fmt(mem[name])} "
            f"| {fmt(ms[name])} | {mem[name] / mem['CTC']:.2f} | {ms[name] / ms['CTC']:.2f} "
            f"| {' / '.join(paper.get(name, ('-',) * 3))} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[37, 7357])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--frames", type=int, default=144)
    parser.add_argument("--max-label", type=int, default=25)
    parser.add_argument("--features", type=int, default=256, help="feature width D")
    parser.add_argument("--hidden", type=int, default=256, help="attention hidden size")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--ratio-repeats", type=int, default=31, help="softmax/ACE pairs")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--parallel-threshold",
        type=int,
        default=None,
        help="logits from which the CPU kernel uses numba's thread pool (0: always), to measure "
        "the crossing behind ace_cpu.PARALLEL_MIN_ELEMENTS (NumbaKernels.parallel_min_elements)",
    )
    parser.add_argument("--no-attention", action="store_true")
    parser.add_argument("--no-composed", action="store_true")
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="glibc mallopt: no returning freed memory to the OS between calls (see above)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    kernels = ace_cpu.numba_kernels()
    if kernels is not None and args.parallel_threshold is not None:
        kernels.parallel_min_elements = args.parallel_threshold
    threaded = f"from {kernels.parallel_min_elements:,} logits" if kernels else "absent (no numba)"
    kept_from_start = args.keep_freed_memory and keep_freed_memory()
    allocator = "glibc malloc keeping freed memory" if kept_from_start else "glibc malloc defaults"
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device {where}, {torch.get_num_threads()} threads, torch {torch.__version__}; batch "
        f"{args.batch}, T = {args.frames}, labels 1..{args.max_label}, features {args.features}; "
        f"median of {args.repeats} after {args.warmup} warm-up; {allocator}; ACE's CPU kernel "
        f"threaded {threaded}"
    )
    print("memory: peak allocated above the start during forward plus backward, input grads in")
    measured = []
    for classes in args.classes:
        inputs = make_inputs(args, classes, device)
        runs = methods(inputs, classes, args, device)
        for _, fn in runs.values():
            fn()
        mem = {name: peak_memory_mb(fn, device) for name, (_, fn) in runs.items()}
        ms = median_times_ms(runs, args.repeats, args.warmup, device)
        ratios = softmax_ratio(runs, args.ratio_repeats, device)
        print()
        print("\n".join(table(classes, runs, mem, ms)))
        measured.append((classes, inputs, runs, mem, ms, ratios))
    # the same pairs again on kept memory (CPU only: a GPU's caching allocator already keeps it)
    kept = kept_from_start or (device.type == "cpu" and keep_freed_memory())
    print()
    for classes, inputs, runs, mem, ms, fresh in measured:
        ratio, composed, faults = softmax_ratio(runs, args.ratio_repeats, device) if kept else fresh
        logits_mb = inputs["logits"].numel() * 4 / MB
        how = "freed memory kept" if kept else allocator
        if device.type == "cuda":
            how = "CUDA caching allocator"
        how += f", page faults per call: softmax {faults[0]:,.0f}, ACE {faults[1]:,.0f}"
        if kept and not kept_from_start:
            how += (
                f"; glibc defaults {fresh[0]:.2f}, page faults per call: softmax "
                f"{fresh[2][0]:,.0f}, ACE {fresh[2][1]:,.0f}"
            )
        print(
            f"{classes} classes: ACE / softmax = {ratio:.2f} ({how}; composed ops "
            f"{composed:.2f}; median over {args.ratio_repeats} back-to-back pairs); "
            f"ACE / CTC time {ms['ACE'] / ms['CTC']:.2f}, memory {mem['ACE'] / mem['CTC']:.2f}; "
            f"ACE memory {mem['ACE'] / logits_mb:.2f} x the logits ({fmt(logits_mb)} MB)"
        )


if __name__ == "__main__":
    main()
