"""``benchmarks/bench_arms.py`` kept honest: its report's structure, and its torch loops doing
jaxprecond's arithmetic (each replayed in this process for a few steps against jaxprecond).

The measuring processes are replaced by canned results (timing is the benchmark's job); the
replays are the real ones. Needs torch (``pip install -e ".[bench]"``); skipped without it.
"""

import json
import sys
from pathlib import Path

import pytest
from shared import SHARED, need

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_arms  # noqa: E402

REPLAY_STEPS = 3


def canned_spawn(arm, side, args, cache=None):
    """``bench_arms.spawn`` without processes: real replays, canned measurements.

    jaxprecond: 8 seeds in 1 s, compile 10 s cold (first repeat), 1 s from the cache after;
    torch: one seed in 2 s (2 threads) or 3 s (1 thread).
    """
    if side.startswith("peak"):
        return {"gflop_per_s": {"2048": 100.0}, "best": 100.0}
    if side in ("replay", "replay64"):
        return {
            a: bench_arms.replay(a, args.replay_steps, args.data_dir, side == "replay64")
            for a in arm.split(",")
        }
    first = cache is not None and not (cache / "seen").exists()
    if cache is not None:
        (cache / "seen").touch()
    if side == "jaxprecond":
        return {
            "seeds": 8, "run_s": 1.0, "first_call_s": 10.5 if first else 1.5,
            "overhead_s": 10.0 if first else 1.0, "cached": not first, "final_metric": "test_mse",
            "final_mean": 0.5, "devices": 2, "group_size": 4, "jax": "canned",
        }  # fmt: skip
    seconds = 2.0 if side == "torch" else 3.0
    return {"seeds": 1, "run_s": seconds, "overhead_s": 0.5, "final_mean": 0.5, "threads": 1}


def test_report_structure_and_replay(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_arms, "spawn", canned_spawn)
    out = tmp_path / "arms.json"
    argv = ["--arms", "adahessian", "--repeats", "2", "--steps", "20"]
    bench_arms.main(argv + ["--replay-steps", str(REPLAY_STEPS), "--json", str(out)])
    report = json.loads(out.read_text())
    assert {"argv", "cores", "matmul_peak", "replay", "measurements", "summary", "failures"} <= set(
        report
    )
    assert report["failures"] == []

    replay = report["replay"]["adahessian"]
    assert replay["ok"] and replay["steps"] == REPLAY_STEPS
    assert set(replay["float32"]) == {"train_loss", "test_mse"}
    assert max(replay["float32"].values()) < 1e-5  # the same arithmetic, float32 rounding

    assert {side: len(rs) for side, rs in report["measurements"]["adahessian"].items()} == {
        "jaxprecond": 2, "torch": 2, "torch-1t": 2,
    }  # fmt: skip
    s = report["summary"]["adahessian"]
    assert s["steps"] == 20 and s["best_torch"] == "torch"
    assert s["ratio"] == pytest.approx(2.0 / (1.0 / 8))  # 16×
    assert s["compile_s"] == 10.0  # the cold repeat only; the cached one apart
    assert s["jaxprecond"]["first_call_overhead_cached_s"] == 1.0
    assert s["break_even_seeds"] == pytest.approx(10.0 / (2.0 - 1.0 / 8))
    protocol = bench_arms.PROTOCOL_STEPS["regression"] / 20
    assert s["break_even_seeds_at_protocol"] == pytest.approx(s["break_even_seeds"] / protocol)
    assert s["jaxprecond"]["seed_runs_per_hour"] == pytest.approx(8 * 3600.0)
    gflop = bench_arms.flops_per_seed_run("adahessian", 20, 20) / 1e9
    assert s["gflop_per_seed_run"] == pytest.approx(gflop)
    assert s["jaxprecond"]["peak_fraction"] == pytest.approx(gflop * 8 / 100.0)
    assert s["goal"] == {"ratio": 5.0, "peak_fraction": None, "met": True}
    assert "| adahessian | 20 |" in capsys.readouterr().out


def test_ood_replay_is_the_same_arithmetic():
    need((SHARED / "data" / "mnist").is_dir(), f"MNIST at {SHARED / 'data' / 'mnist'}")
    deviations = bench_arms.replay("ood-sam", REPLAY_STEPS, SHARED / "data")
    assert set(deviations) == {"train_loss", "final_W1", "final_b1", "final_W2", "final_b2"}
    assert max(deviations.values()) < 1e-5
