"""``benchmarks/profile_arms.py`` kept honest: its HLO classification against hand-written HLO,
and a real trace of a tiny noise arm whose accounting must add up."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import profile_arms  # noqa: E402

HLO = """\
%fused_dot (p0: f32[4,4], p1: f32[4,4]) -> f32[4,4] {
  %p0 = f32[4,4] parameter(0)
  %p1 = f32[4,4] parameter(1)
  ROOT %d = f32[4,4] dot(%p0, %p1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%fused_sum (p0: f32[4,4]) -> f32[4] {
  %p0 = f32[4,4] parameter(0)
  %z = f32[] constant(0)
  ROOT %r = f32[4] reduce(%p0, %z), dimensions={1}, to_apply=%add
}

%fused_relu (p0: f32[4,4]) -> f32[4,4] {
  %p0 = f32[4,4] parameter(0)
  %z = f32[4,4] broadcast(f32[] constant(0)), dimensions={}
  ROOT %m = f32[4,4] maximum(%p0, %z)
}

ENTRY %main (x: f32[4,4]) -> f32[4] {
  %x = f32[4,4] parameter(0)
  %fusion.1 = f32[4,4] fusion(%x, %x), kind=kOutput, calls=%fused_dot
  %fusion.2 = f32[4,4] fusion(%fusion.1), kind=kLoop, calls=%fused_relu
  %transpose.3 = f32[4,4] transpose(%fusion.2), dimensions={1,0}
  %custom-call.4 = f32[4,4] custom-call(%transpose.3), custom_call_target="lapack_ssyevd"
  ROOT %fusion.5 = f32[4] fusion(%custom-call.4), kind=kInput, calls=%fused_sum
}
"""


def test_hlo_kinds_classifies_fusions_by_what_they_compute():
    kinds = profile_arms.hlo_kinds(HLO)
    assert kinds["fusion.1"] == "matmul"
    assert kinds["fusion.2"] == "elementwise"
    assert kinds["transpose.3"] == "copy/transpose"
    assert kinds["custom-call.4"] == "custom call"
    assert kinds["fusion.5"] == "reduction"


def test_a_real_trace_accounts_for_the_wall_time():
    """Four seeds × 20 steps of the Σ^p noise arm: the trace's events are matched to the HLO
    (most of the wall time is covered by classified operations, none twice over), and a step
    executes at least the model's three matmuls (forward, and the two backward ones reaching W1)."""
    result = profile_arms.profile("noise", 4, Path("."), length=(20, 10))
    kinds = result["kinds"]
    summed = sum(r["us_per_seed_step"] for k, r in kinds.items() if k != "control")
    assert (
        0.5 * result["traced_us_per_seed_step"] < summed < 1.5 * result["traced_us_per_seed_step"]
    )
    assert kinds["matmul"]["ops_per_group_step"] >= 3
    assert kinds["elementwise"]["ops_per_group_step"] >= 1
