"""Where an arm's step time goes, from a ``jax.profiler`` trace of its compiled program.

XLA:CPU records one trace event per executed operation (a fusion, a matmul, a copy, a custom
call) with its duration. This script runs one arm's group program (the sweep engine's, as
``bench_arms.py`` times it) once to compile, once untraced and once under
:func:`jax.profiler.trace`, then sums the events by kind of operation, read from the compiled
HLO: *matmul* (a ``dot`` or a fusion holding one), *reduction*, *elementwise* (other fusions),
*copy/transpose*, *custom call* (LAPACK's ``eigh``, Cholesky) and *other*; the events of loops
and conditionals (*control*) contain the operations of their bodies, so they are shown apart and
not added up. Shares are of the operations' summed time. The traced call's wall time minus that
sum is the executor's time between operations and waiting; it is negative when XLA ran
independent operations at once (its thunk executor may, on one host device). Tracing itself
slows a step that has many small operations: both wall times are printed.

Usage (one host device, a quiet machine; about a minute per arm)::

    JAXPRECOND_HOST_DEVICES=1 python benchmarks/profile_arms.py --arms noise ood-kfac \\
        --data-dir ../shared/data

Prints a table per arm: per seed-step, each kind's time, share, operations and mean time per
operation; ``--json`` writes the numbers.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_arms import arm_config  # noqa: E402

from jaxprecond.engine.experiment import grid_axes  # noqa: E402
from jaxprecond.engine.sweep import axis_arrays, default_group_size, static_points  # noqa: E402
from jaxprecond.engine.sweep import program as sweep_program  # noqa: E402

#: Steps and logging of each arm's profile (the OOD arms' steps are ten times as long).
LENGTHS = {"noise": (500, 100), "adahessian": (500, 100), "transfer": (500, 100)}
OOD_LENGTH = (50, 50)
#: The most expensive operations listed per arm.
TOP = 8
KINDS = (
    "matmul", "reduction", "elementwise", "copy/transpose", "custom call", "control", "other",
)  # fmt: skip

_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = .*? ([\w\-]+)\(", re.M)
_CALLS = re.compile(r"calls=%?([\w.\-]+)")


def hlo_kinds(hlo: str) -> dict[str, str]:
    """Each instruction of a compiled module's HLO text → its kind (see :data:`KINDS`).

    Args:
      hlo: ``compiled.as_text()``.

    Returns:
      ``{instruction name: kind}``; a fusion's kind is that of what it computes (a fusion
      holding a ``dot`` is a matmul).

    Example:
      >>> text = '''%fused_computation (p: f32[2,2]) -> f32[2,2] {
      ...   %d = f32[2,2] dot(%p, %p)
      ... }
      ... ENTRY %main (x: f32[2,2]) -> f32[2,2] {
      ...   %fusion = f32[2,2] fusion(%x), kind=kOutput, calls=%fused_computation
      ...   ROOT %copy.1 = f32[2,2] copy(%fusion)
      ... }'''
      >>> hlo_kinds(text)["fusion"], hlo_kinds(text)["copy.1"]
      ('matmul', 'copy/transpose')
    """
    bodies, name, lines = {}, None, []
    for line in hlo.splitlines():
        head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$", line)
        if head:
            name, lines = head.group(1), []
        elif line.strip() == "}" and name is not None:
            bodies[name], name = "\n".join(lines), None
        elif name is not None:
            lines.append(line)
    opcodes = {m.group(1): m.group(2) for m in _INSTRUCTION.finditer(hlo)}

    def body_kind(body: str) -> str:
        ops = set(m.group(2) for m in _INSTRUCTION.finditer(body))
        if ops & {"dot", "convolution"}:
            return "matmul"
        if ops & {"reduce", "reduce-window"}:
            return "reduction"
        if ops <= {"parameter", "copy", "transpose", "bitcast", "reshape", "broadcast"}:
            return "copy/transpose"
        return "elementwise"

    kinds = {}
    for instruction, opcode in opcodes.items():
        if opcode == "fusion":
            line = re.search(rf"%?{re.escape(instruction)} = [^\n]*", hlo).group(0)
            called = _CALLS.search(line)
            kinds[instruction] = body_kind(bodies.get(called.group(1), "") if called else "")
        elif opcode in ("dot", "convolution"):
            kinds[instruction] = "matmul"
        elif opcode in ("reduce", "reduce-window", "all-reduce"):
            kinds[instruction] = "reduction"
        elif opcode in ("copy", "transpose", "dynamic-slice", "dynamic-update-slice", "slice"):
            kinds[instruction] = "copy/transpose"
        elif opcode == "custom-call":
            kinds[instruction] = "custom call"
        elif opcode in ("while", "conditional", "call"):
            kinds[instruction] = "control"
        else:
            kinds[instruction] = "elementwise" if opcode not in ("parameter",) else "other"
    return kinds


def op_events(trace_dir: Path) -> list[tuple[str, float]]:
    """``(name, µs)`` of every complete event in the Perfetto trace written under
    ``trace_dir``."""
    [path] = sorted(trace_dir.rglob("perfetto_trace.json.gz"))[-1:]
    trace = json.load(gzip.open(path))
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    return [(e["name"], float(e.get("dur", 0.0))) for e in events if e.get("ph") == "X"]


def profile(arm: str, seeds: int, data_dir: Path, length: tuple[int, int] | None = None) -> dict:
    """One arm's group program, run untraced and traced; its events summed by kind.

    Args:
      arm: an arm of ``bench_arms.py`` (``noise``, ``adahessian``, ``transfer``, ``ood-<name>``).
      seeds: seeds of the profiled call (whole groups).
      data_dir: the image set's folder (OOD arms).
      length: ``(steps, log_every)``; default :data:`LENGTHS` or :data:`OOD_LENGTH`.

    Returns:
      A dict: µs per seed-step untraced and traced, the time between operations, and per kind
      of operation its µs per seed-step, share of the traced wall, operations per group-step
      and mean µs per operation.
    """
    steps, log_every = length or (OOD_LENGTH if arm.startswith("ood-") else LENGTHS[arm])
    experiment, config = arm_config(arm, steps, log_every, seeds, data_dir)
    config, axes = grid_axes(experiment, config)
    config = dataclasses.replace(config, group_size=config.group_size or default_group_size())
    [(own, point)] = static_points(config, axes)
    program = sweep_program(experiment, point, axes, own, config.group_size)
    data = experiment.data(config) if experiment.data is not None else None
    values, indices = axis_arrays(axes), np.arange(seeds, dtype=np.uint32)
    hlo = program.lower(data).compile().as_text()
    kinds = hlo_kinds(hlo)
    shapes = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\S+)", hlo, re.M)
    }
    jax.block_until_ready(program(indices, values, data))  # compile and warm up
    start = time.perf_counter()
    jax.block_until_ready(program(indices, values, data))
    untraced_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            start = time.perf_counter()
            jax.block_until_ready(program(indices, values, data))
            traced_s = time.perf_counter() - start
        events = op_events(Path(folder))
    per_step = 1e6 / (seeds * steps)  # seconds of a call → µs per seed-step
    time_by, count_by, by_op = collections.Counter(), collections.Counter(), collections.Counter()
    for name, duration in events:
        if name in kinds:
            time_by[kinds[name]] += duration * 1e-6
            count_by[kinds[name]] += 1
            if kinds[name] != "control":
                by_op[name] += duration * 1e-6
    groups = -(-seeds // config.group_size)
    covered = sum(t for kind, t in time_by.items() if kind != "control")
    rows = {
        kind: {
            "us_per_seed_step": time_by[kind] * per_step,
            "share_of_ops": time_by[kind] / covered,
            "ops_per_group_step": count_by[kind] / (groups * steps),
            "us_per_op": time_by[kind] / max(count_by[kind], 1) * 1e6,
        }
        for kind in KINDS
    }
    return {
        "arm": arm,
        "seeds": seeds,
        "steps": steps,
        "group_size": config.group_size,
        "untraced_us_per_seed_step": untraced_s * per_step,
        "traced_us_per_seed_step": traced_s * per_step,
        "between_ops_us_per_seed_step": (traced_s - covered) * per_step,
        "ops_per_group_step": sum(n for k, n in count_by.items() if k != "control")
        / (groups * steps),
        "kinds": rows,
        "top_ops": [
            {
                "name": name,
                "kind": kinds[name],
                "us_per_seed_step": t * per_step,
                "share_of_ops": t / covered,
                "shape": shapes.get(name, ""),
            }
            for name, t in by_op.most_common(TOP)
        ],
    }


def print_profile(result: dict) -> None:
    """A Markdown table of one arm's :func:`profile`."""
    print(
        f"\n{result['arm']}: {result['seeds']} seeds × {result['steps']} steps, groups of "
        f"{result['group_size']}; {result['untraced_us_per_seed_step']:.1f} µs per seed-step "
        f"untraced, {result['traced_us_per_seed_step']:.1f} traced; "
        f"{result['ops_per_group_step']:.0f} operations per group-step\n"
    )
    print("| kind | µs per seed-step | share of op time | ops per group-step | µs per op |")
    print("|---|---|---|---|---|")
    for kind, row in result["kinds"].items():
        if row["ops_per_group_step"] and kind != "control":
            print(
                f"| {kind} | {row['us_per_seed_step']:.1f} | {row['share_of_ops']:.0%} | "
                f"{row['ops_per_group_step']:.1f} | {row['us_per_op']:.1f} |"
            )
    print(
        f"| wall − operations (executor and waiting; < 0: operations overlapped) | "
        f"{result['between_ops_us_per_seed_step']:.1f} | | | |"
    )
    control = result["kinds"]["control"]
    print(
        f"\n(loops and conditionals, containing some of the operations above: "
        f"{control['us_per_seed_step']:.1f} µs per seed-step)\n"
    )
    print("| most expensive operations | kind | shape | µs per seed-step | share |")
    print("|---|---|---|---|---|")
    for op in result["top_ops"]:
        print(
            f"| {op['name']} | {op['kind']} | {op['shape']} | {op['us_per_seed_step']:.1f} | "
            f"{op['share_of_ops']:.0%} |"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=["noise", "ood-kfac"])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = [profile(arm, args.seeds, args.data_dir) for arm in args.arms]
    for result in results:
        print_profile(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
