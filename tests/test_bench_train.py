"""scripts/bench_train.py end to end on a tiny model: one table, plausible figures (no timing
assertions: the machine may be busy)."""

from __future__ import annotations

from tests.conftest import TINY, load_script

# the real path: a forked rendering worker
ARGS = ["experiment=crnn_ace_quick", *TINY, "data.num_workers=1", "--steps", "3", "--warmup", "1"]


def test_bench_train_prints_full_model_only_ratio_renderer_and_machine(capsys):
    """Catches a bench that stops printing a figure, prints a ratio that does not follow from
    its own two figures, or leaves the renderer or machine rows out."""
    load_script("bench_train").main([*ARGS, "--render-num", "3", "--render-warmup", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| crnn_ace_quick: experiment=crnn_ace_quick")
    assert lines[1] == "|---|---:|"
    rows = dict(line.strip("|").split(" | ", 1) for line in lines[2:])
    rows = {k.strip(): v.strip() for k, v in rows.items()}
    full = float(rows["full pipeline (images/s)"])
    model = float(rows["model-only bound (images/s)"])
    assert full > 0 and model > 0
    assert abs(float(rows["ratio full / model-only"]) - full / model) < 0.01
    for name in ("synth", "synth_real"):
        assert float(rows[f"renderer data={name} (images/s per core)"]) > 0
    assert "cores" in rows["machine"] and "1 threads" in rows["torch"]
    assert rows["loader"].startswith("batch 4, 1 worker(s)")


def test_sweep_runs_each_lever_in_its_own_process(capsys):
    """Catches a lever whose run fails or whose row does not follow from its figures."""
    bench = load_script("bench_train")
    bench.LEVERS = [bench.LEVERS[0], ("OMP passive", {"OMP_WAIT_POLICY": "passive"}, [])]
    bench.main([*ARGS, "--sweep"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "|---|---:|---:|---:|---:|"
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:4]]
    assert [r[0] for r in rows] == ["as configured", "OMP passive"]
    bound = float(rows[0][2])
    for _, full, model, ratio, against_bound in rows:
        assert float(full) > 0 and float(model) > 0
        assert abs(float(ratio) - float(full) / float(model)) < 0.01
        assert abs(float(against_bound) - float(full) / bound) < 0.01
    assert lines[4].startswith("machine: ")


def test_variants_compare_run_settings_side_by_side(capsys):
    """Catches a variant whose overrides never reach its run (a misspelt key must fail it, by
    name) or a malformed variant that runs instead of being refused."""
    import pytest

    bench = load_script("bench_train")
    bench.main(
        [*ARGS, "--variant", "h8=model.backbone.lstm_hidden=8", "--variant", "b2=data.batch_size=2"]
    )
    lines = capsys.readouterr().out.splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:4]]
    assert [r[0] for r in rows] == ["h8", "b2"]
    assert all(float(r[1]) > 0 and float(r[2]) > 0 for r in rows)
    with pytest.raises(RuntimeError, match="^typo: "):
        bench.main([*ARGS, "--variant", "typo=model.backbone.lstm_hiden=8"])
    for bad in (["--variant", "no-equals-sign"], ["--sweep", "--variant", "b2=data.batch_size=2"]):
        with pytest.raises(SystemExit):
            bench.main([*ARGS, *bad])
