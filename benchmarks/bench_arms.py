"""Every arm against its PyTorch loop: seed-runs per hour, compile break-even, FLOP rate.

The sibling of ``bench_reference.py`` (the Σ^p noise arm) for the other arms of the paper:

* ``adahessian``: the noise experiment's AdaHessian arm (Fig. 1c,d), Case High, p = 1 (so
  ``hessian_power = −1``), SNR 1, the Rademacher probe; dx 10, dh 500, n 10 000 with 200
  training points, lr 1e-2, decoupled weight decay 1e-6 and a plain-MSE loss. Torch: the
  authors' ``vanilla_generalization_adahessian.py`` loop (``nn.Sequential``, kaiming-uniform ×
  1e-3) with the update of their ``opt/adahessian.py`` (pytorch-optimizer's AdaHessian:
  ``D = z ⊙ Hz`` from ``torch.autograd.grad(grads, params, grad_outputs=z)`` on a
  ``create_graph=True`` gradient, ``θ ← θ(1 − lr·wd)``, Adam-like moments on ``g`` and ``D²``).
  pytorch-optimizer itself is not needed: its update is written out here.
* ``transfer``: the transfer experiment (Sec. 4.3) at Case High, p = 1, SNR 1: stage 1 is the
  Σ^p noise run (``bench_reference.torch_train`` on the torch side), then for each stage-2
  direction (high and low; jaxprecond refits both from one stage 1, so the torch loop does too)
  a fresh data set and the authors' ``solve_head_ridge_closed_form`` (dual form, ``λ = 1e-3``,
  ``torch.linalg.solve``), train and test MSE.
* ``ood-<optimizer>``: the OOD experiment (Sec. 4.2): 784 → 256 → 10 ReLU MLP, full-batch
  cross-entropy on 1 200 MNIST images with class templates, validation on 1 200 and the two
  shifted test sets on the 7 600 images left (``test_split_only``: only the MNIST test split is
  at hand, ``--data-dir``), lr 1e-2, wd 1e-4, accuracies recorded every ``log_every`` steps.
  Torch: the authors' ``ood_generalization.py`` loop and model (``nn.Linear`` default init),
  each optimizer as jaxprecond's registry configures it:

  - ``gd``, ``momentum``, ``adam``: ``torch.optim.SGD`` / ``SGD(momentum=0.9)`` / ``Adam`` with
    ``weight_decay=1e-4`` (the authors' ``build_optimizer``).
  - ``sam``: the authors' SAM (ρ 0.05, ε 1e-8 on the global gradient norm, an SGD base with
    momentum 0.9 and weight decay taken at ``w``): two forward/backward passes a step.
  - ``kfac``: jaxprecond's K-FAC (its arithmetic, not the authors' KFAC-Pytorch copy, whose
    KL clipping, identity-initialised statistics every 10 steps and inverses every 100 make a
    different optimizer): empirical-Fisher factors ``A = E[āāᵀ]``, ``G = E[ggᵀ]`` every step
    (torch: from the training pass; jaxprecond: from a second forward/backward pass,
    ``classifier_kfac_statistics``; EMA 0.95, the first step taking the batch's),
    inverses refreshed every 10 steps, ``(G + √γI)⁻¹ [∇W | ∇b] (A + √γI)⁻¹`` with γ = 1e-3,
    momentum 0.9. Both keep the two inverses between refreshes (the same numbers: damping is
    constant); torch takes them from eigendecompositions, jaxprecond by Cholesky.
  - ``adahessian``: as above, ``hessian_power`` 1, decoupled wd 1e-4, plain cross-entropy.
  - ``sigma_p``: GD with the first-layer gradient right-multiplied by ``Pᵀ``,
    ``P = (Σ + δI)^p`` (``Σ = XᵀX/N`` of the training images, ``δ = 1e-3 · tr Σ / 784``, p = 1),
    the L2 term coupled (through ``P``), as the authors' Σ^p code.

  Not benchmarked: ``lbfgs`` (jaxprecond runs optax's L-BFGS, one iteration with a zoom line
  search per step; the authors' ``torch.optim.LBFGS`` without a line search runs up to 20
  iterations per ``step``: no torch loop does the same arithmetic) and ``sophia_h`` (optax's
  ``contrib.sophia`` against the authors' pytorch-optimizer ``SophiaH``: other estimator
  schedule, clipping and defaults; a faithful torch copy of optax's would be a new optimizer,
  not the authors' loop).
* ``noise`` (not in the default set; ``bench_reference.py`` is its benchmark): the Σ^p noise
  arm itself, for one table of every arm.

Sides of each arm, each measured in a fresh process:

* ``jaxprecond``: the sweep engine as the product runs it, ``engine.sweep.program`` over the
  experiment's grid (one cell) and ``run_chunk`` on ``--host-devices`` XLA host devices (default
  one per core, as the console script), the group size the engine picks (4 on a CPU for the
  regression arms, the OOD config's 1). A first call of one group per device compiles (and
  runs); then the timed call runs ``--seeds`` seeds. Compile time = the first call minus one
  group per device's share of the timed call. The first repeat compiles cold; later repeats
  read the programs from a temporary persistent compilation cache (their first-call overhead is
  reported apart; ``--cold`` compiles cold every time, +2-3 minutes).
  **The transfer arm runs on one host device** (``--transfer-host-devices``): on two, its
  program deadlocks in the first call (every thread idle on a futex; twice in two tries here).
  The cause is the vmapped Cholesky of the ridge head (``tasks/ridge.py``, ``cho_factor``):
  ``jax.jit(jax.vmap(cho_solve ∘ cho_factor))`` on a batch of 8 SPD 200 × 200 matrices,
  dispatched to both host devices 200 times, hangs likewise (one device: fine): the thread-pool
  hazard ``linalg.symmetric_eigh`` guards against for ``eigh``, which the ridge solve lacks. So
  ``jaxprecond transfer`` with its default one device per core can hang on a multi-core CPU.
* ``torch`` / ``torch-1t``: the torch loop one seed at a time, ``torch.set_num_threads(2)``
  (``--threads``) and ``(1)``; one short warm-up seed is not timed. Data drawing and
  initialisation are timed on every side. Logging is equal: both record at every
  ``log_every``-th step (the authors' scripts evaluate every step; that would only slow torch).

Measurements alternate (arm 1: jaxprecond, torch, torch-1t; arm 2: ...; then the next repeat);
figures are medians over ``--repeats``. Reported per arm: seed-runs per hour of each side (and
estimated at the protocol's length, 10 000 or 500 steps, linearly in the steps), the ratio
jaxprecond / torch, compile time, the seeds at which the compile pays for itself,
``compile / (t_torch − t_jax)`` per seed against the faster torch side, and matmul FLOPs per
seed-run (counted from the shapes of the algorithm as the torch loop computes it; element-wise
work, eigendecompositions and solves not counted) as an achieved rate against this machine's
matmul peak (the best float32 square matmul, 1024² or 2048², of jax and of torch, measured first).

Proof of same arithmetic: before timing, each arm's torch loop is replayed for
``--replay-steps`` steps (default 20) against jaxprecond's own code at float32 / HIGHEST from
identical initial weights and data (drawn by jaxprecond from the experiment's keys and passed
across; AdaHessian's Rademacher probes drawn once and fed to both through the transform's
``probes=`` argument), all arms in one process. Compared: the per-step train loss (regression:
and test MSE; transfer: the ridge heads and stage-2 MSEs; OOD: the final weights, relative
norm). Bound 1e-4; typically 1e-7. Adam, K-FAC and AdaHessian (k = 1) on OOD amplify float32
rounding (a coordinate whose gradient or Hessian-diagonal estimate is rounding noise moves by
a full step either way): their weights differ by 1e-4 to 5e-2 after 20 steps while the losses
agree to 3e-5. An arm beyond the bound is therefore replayed again in float64 (both sides),
where it must agree to 1e-9 (seen: 1e-15 to 1e-11): the same arithmetic, not an approximation.

Goals (issue 14): the AdaHessian noise arm and the transfer stage at least 5× the torch loop;
the OOD arms at least at parity with it and at 50% or more of the matmul peak; the Σ^p noise arm
20× (``bench_reference.py``).

Usage (the real measurement: about 10 minutes on an idle 2-core machine)::

    python benchmarks/bench_arms.py --json arms.json

    # a quick look (2-4 minutes):
    python benchmarks/bench_arms.py --arms adahessian ood-gd --steps 20 --seeds 2 --repeats 1

Options: ``--arms`` (default every arm above but ``noise``), ``--steps`` (every arm's steps;
default 500 for the regression arms, 50 for OOD; rates are also given at the protocol's
length), ``--log-every`` (default 100, OOD 50), ``--seeds`` (jaxprecond's seeds per
measurement, rounded up to whole groups on every device; default two groups of 4 per device,
OOD one seed per device),
``--torch-seeds`` (1), ``--repeats`` (3), ``--sides``, ``--threads`` (2), ``--host-devices``,
``--transfer-host-devices`` (1), ``--cold``, ``--replay-steps`` (20), ``--worker-timeout``
(900 s: a hung process is killed and reported, the rest goes on), ``--data-dir`` (MNIST's test
split, default ``../shared/data``), ``--json`` (every measurement, the replays, the summary).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_reference as reference  # noqa: E402  (the Σ^p torch loop, data and model)

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / ".." / "shared" / "data"

REGRESSION_ARMS = ("noise", "adahessian", "transfer")
OOD_OPTIMIZERS = ("gd", "momentum", "adam", "sam", "kfac", "adahessian", "sigma_p")
ARMS = REGRESSION_ARMS + tuple(f"ood-{name}" for name in OOD_OPTIMIZERS)
DEFAULT_ARMS = ARMS[1:]
SIDES = ("jaxprecond", "torch", "torch-1t")
#: Protocol length and logging period (the paper's), and the default measured length.
PROTOCOL_STEPS = {"regression": 10_000, "ood": 500}
LOG_EVERY = {"regression": 100, "ood": 50}
DEFAULT_STEPS = {"regression": 500, "ood": 50}
#: Goals of issue 14: (least ratio jaxprecond / torch, least fraction of the matmul peak).
GOALS = {"noise": (20.0, None), "adahessian": (5.0, None), "transfer": (5.0, None)}
GOALS.update({f"ood-{name}": (1.0, 0.5) for name in OOD_OPTIMIZERS})
REPLAY_TOLERANCE = 1e-4
REPLAY_TOLERANCE_FLOAT64 = 1e-9

# The regression protocol is bench_reference's (dx 10, dh 500, n 10 000, 200 train, Case High).
DX, DH, N, N_TRAIN = reference.DX, reference.DH, reference.N, reference.N_TRAIN
POWER, SNR, RIDGE = 1.0, 1.0, 1e-3
ADA_B1, ADA_B2, ADA_EPS = 0.9, 0.999, 1e-16
# The OOD protocol (OODConfig's defaults, test split only).
D_IN, HIDDEN, CLASSES, OOD_TRAIN, OOD_VAL, POOL = 784, 256, 10, 1200, 1200, 10_000
OOD_TEST = POOL - OOD_TRAIN - OOD_VAL
OOD_LR, OOD_WD, MOMENTUM, RHO, SAM_EPS = 1e-2, 1e-4, 0.9, 0.05, 1e-8
KFAC_DECAY, KFAC_DAMPING, KFAC_REFRESH = 0.95, 1e-3, 10
SIGMA_DAMPING, OOD_POWER, TEMPLATE_STD = 1e-3, 1.0, 0.1


def family(arm: str) -> str:
    return "ood" if arm.startswith("ood-") else "regression"


# --------------------------------------------------------------------------- FLOP model


def flops_per_seed_run(arm: str, steps: int, log_every: int) -> float:
    """Matmul FLOPs (2 per multiply-add) of one seed-run, as the torch loop computes it.

    Per step: the gradient (forward ``XW1ᵀ``, ``HW2ᵀ``; backward ``dW2``, ``dH``, ``dW1``); SAM a
    second gradient; AdaHessian the Hessian-vector product's tangents (one more product per
    matmul with a weight operand); K-FAC its factors and the two-sided preconditioning; Σ^p the
    ``dW1 Pᵀ`` product. Per record: the evaluation sets' forward pass. Once per seed: Σ^p's
    ``XᵀX`` and ``P``; transfer's features, dual Gram matrix and head per direction.
    """
    records = steps // log_every
    if family(arm) == "regression":
        n, m = N_TRAIN, N - N_TRAIN
        grad = 2 * n * DX * DH + 3 * n * DH
        step = grad + (2 * n * DX * DH + 6 * n * DH if arm == "adahessian" else DH * DX * DX)
        macs = steps * step + records * (m * DX * DH + m * DH)
        if arm == "transfer":  # per direction: features, Gram H Hᵀ, w = Hᵀα, test features
            macs += 2 * (n * DX * DH + n * n * DH + n * DH + m * DX * DH + m * DH)
        return 2.0 * macs
    name = arm[4:]
    n, d, h, k = OOD_TRAIN, D_IN, HIDDEN, CLASSES
    grad = 2 * n * d * h + 3 * n * h * k
    step = {"sam": 2 * grad, "adahessian": grad + 2 * n * d * h + 6 * n * h * k}.get(name, grad)
    once = 0
    if name == "kfac":
        step += n * ((d + 1) ** 2 + h * h + (h + 1) ** 2 + k * k)  # factors
        step += h * h * (d + 1) + h * (d + 1) ** 2 + k * k * (h + 1) + k * (h + 1) ** 2
        step += ((d + 1) ** 3 + h**3 + (h + 1) ** 3 + k**3) / KFAC_REFRESH  # inverses
    elif name == "sigma_p":
        step += h * d * d
        once = d * d * n + d**3
    evaluation = (OOD_VAL + 2 * OOD_TEST) * (d * h + h * k)
    return 2.0 * (steps * step + records * evaluation + once)


# --------------------------------------------------------------------------- jaxprecond side


def arm_config(arm: str, steps: int, log_every: int, seeds: int, data_dir: Path):
    """The experiment and its config for one arm (one cell of its grid)."""
    common = dict(seeds=seeds, steps=steps, log_every=log_every)
    if arm in ("noise", "adahessian"):
        from jaxprecond.experiments.noise import NOISE, NoiseConfig

        preconditioner = "covariance_power" if arm == "noise" else "adahessian"
        config = NoiseConfig(
            cases=("high",), powers=(POWER,), snrs=(SNR,), preconditioner=preconditioner,
            precision="highest", **common,
        )  # fmt: skip
        return NOISE, config
    if arm == "transfer":
        from jaxprecond.experiments.transfer import TRANSFER, TransferConfig

        pairs = (("high", "low"), ("high", "high"))
        config = TransferConfig(
            pairs=pairs, powers=(POWER,), snr=SNR, ridge=RIDGE, precision="highest", **common
        )
        return TRANSFER, config
    from jaxprecond.experiments.ood import OOD, OODConfig

    name = arm[4:]
    config = OODConfig(
        dataset="mnist", data_dir=str(data_dir), test_split_only=True, optimizers=(name,),
        powers=(OOD_POWER if name == "sigma_p" else 0.0,), **common,
    )  # fmt: skip
    return OOD, config


#: Environment variable naming an arm's own persistent compilation cache: set by the driver
#: unless ``--cold`` (empty in the first repeat, which fills it); unset: no persistent cache.
CACHE_ENV = "BENCH_ARMS_COMPILE_CACHE"


def measure_jaxprecond(arm: str, steps: int, log_every: int, seeds: int, data_dir: Path) -> dict:
    """The sweep engine on one cell: a first call of one group per device (compile + run),
    then the timed call on ``seeds`` seeds (rounded up to whole groups on every device)."""
    import jax
    import numpy as np

    from jaxprecond.engine.experiment import grid_axes
    from jaxprecond.engine.sweep import axis_arrays, default_group_size, run_chunk, static_points
    from jaxprecond.engine.sweep import program as sweep_program

    cache = os.environ.get(CACHE_ENV)
    jax.config.update("jax_enable_compilation_cache", bool(cache))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    cached = bool(cache) and any(Path(cache).iterdir())
    experiment, config = arm_config(arm, steps, log_every, seeds, data_dir)
    config, axes = grid_axes(experiment, config)
    config = dataclasses.replace(config, group_size=config.group_size or default_group_size())
    [(own, point)] = static_points(config, axes)
    program = sweep_program(experiment, point, axes, own, config.group_size)
    devices = jax.local_devices()
    data = experiment.data(config) if experiment.data is not None else None
    copies = None if data is None else [jax.device_put(data, d) for d in devices]
    per_call = len(devices) * config.group_size
    indices = np.arange(-(-seeds // per_call) * per_call, dtype=np.uint32)
    values = axis_arrays(axes)
    start = time.perf_counter()
    run_chunk(program, devices, indices[:per_call], values, copies)  # compile + one group each
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    out = run_chunk(program, devices, indices, values, copies)
    run_s = time.perf_counter() - start
    metric = {"regression": "test_mse", "ood": "val_acc"}[family(arm)]
    metric = "to_low_test_mse" if arm == "transfer" else metric
    return {
        "seeds": len(indices),
        "run_s": run_s,
        "first_call_s": first_s,
        # the first call's excess over one group per device's share of the timed call
        "overhead_s": max(first_s - run_s * per_call / len(indices), 0.0),
        "cached": cached,
        "final_metric": metric,
        "final_mean": float(np.nanmean(out[metric][..., -1])),
        "devices": len(devices),
        "group_size": config.group_size,
        "jax": jax.__version__,
    }


# --------------------------------------------------------------------------- torch: shared


def adahessian_update(params, grads, hz, probes, moments, t, lr, wd, power, torch) -> None:
    """pytorch-optimizer's AdaHessian step ``t`` (1-based), in place: decoupled decay, then
    ``m ← β1 m + (1 − β1) g``, ``v ← β2 v + (1 − β2) D²`` with ``D = z ⊙ Hz``,
    ``θ ← θ − lr/(1 − β1ᵗ) · m / ((v/(1 − β2ᵗ))^(k/2) + ε)``."""
    bias1, bias2 = 1 - ADA_B1**t, 1 - ADA_B2**t
    with torch.no_grad():
        for p, g, h, z, (m, v) in zip(params, grads, hz, probes, moments, strict=True):
            d = h * z
            p.mul_(1 - lr * wd)
            m.mul_(ADA_B1).add_(g, alpha=1 - ADA_B1)
            v.mul_(ADA_B2).addcmul_(d, d, value=1 - ADA_B2)
            denominator = (v / bias2).pow_(power / 2).add_(ADA_EPS)
            p.addcdiv_(m, denominator, value=-lr / bias1)


def rademacher(params, torch):
    return [torch.randint(0, 2, p.shape, dtype=p.dtype) * 2 - 1 for p in params]


def hutchinson(loss, params, probes, torch):
    """``(grads, Hz)``: the gradient with its graph, and ``Hz`` by a second backward pass."""
    grads = torch.autograd.grad(loss, params, create_graph=True)
    hz = torch.autograd.grad(grads, params, grad_outputs=probes)
    return [g.detach() for g in grads], hz


# --------------------------------------------------------------------------- torch: regression


def torch_adahessian_train(model, data, steps: int, log_every: int, torch, probes=None):
    """The authors' AdaHessian noise loop: plain MSE, ``hessian_power = −p``, decoupled wd.

    ``probes(t)``, if given, returns step ``t``'s probes (else fresh Rademacher draws). Returns
    the train loss (before the step) and test MSE (after it) every ``log_every`` steps.
    """
    x_train, y_train, x_test, y_test = data[:4]
    params = list(model.parameters())
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    mse = torch.nn.functional.mse_loss
    train_loss, test_mse = [], []
    for t in range(steps):
        loss = mse(model(x_train).squeeze(-1), y_train)
        z = probes(t) if probes is not None else rademacher(params, torch)
        grads, hz = hutchinson(loss, params, z, torch)
        adahessian_update(params, grads, hz, z, moments, t + 1, reference.LR, reference.WD,
                          -POWER, torch)  # fmt: skip
        if (t + 1) % log_every == 0:
            train_loss.append(loss.item())
            with torch.no_grad():
                test_mse.append(mse(model(x_test).squeeze(-1), y_test).item())
    return train_loss, test_mse


def torch_stage2_task(seed: int, axis: int, torch):
    """A stage-2 data set: Case High's spectrum, the teacher on eigen-axis ``axis``."""
    gen = torch.Generator().manual_seed(10**7 + 2 * seed + axis)
    eigenvalues = torch.full((DX,), 1.0 / reference.SCALE)
    eigenvalues[0] = reference.SCALE
    x = torch.randn(N, DX, generator=gen) * eigenvalues.sqrt()
    beta = torch.zeros(DX)
    beta[axis] = torch.randn(1, generator=gen)
    signal = torch.nn.functional.softplus(10.0 * (x @ beta))
    y = signal + torch.randn(N, generator=gen) * (signal.std(unbiased=False) / SNR)
    mean, std = y[:N_TRAIN].mean(), y[:N_TRAIN].std()
    return x[:N_TRAIN], (y[:N_TRAIN] - mean) / std, x[N_TRAIN:], (y[N_TRAIN:] - mean) / std


def torch_ridge(model, x_train, y_train, x_test, y_test, torch):
    """The authors' ``solve_head_ridge_closed_form``: ``(w, b, train MSE, test MSE)``."""
    with torch.no_grad():
        features = torch.relu(model[0](x_train))
        n, d = features.shape
        h_mean, y_mean = features.mean(0, keepdim=True), y_train.mean()
        centred, y_centred = features - h_mean, (y_train - y_mean)[:, None]
        if d <= n:
            gram = centred.T @ centred + RIDGE * n * torch.eye(d, dtype=centred.dtype)
            w = torch.linalg.solve(gram, centred.T @ y_centred)
        else:
            gram = centred @ centred.T + RIDGE * n * torch.eye(n, dtype=centred.dtype)
            w = centred.T @ torch.linalg.solve(gram, y_centred)
        b = y_mean - (h_mean @ w)[0, 0]
        train_mse = ((features @ w)[:, 0] + b - y_train).pow(2).mean().item()
        test_mse = ((torch.relu(model[0](x_test)) @ w)[:, 0] + b - y_test).pow(2).mean().item()
    return w[:, 0], b, train_mse, test_mse


def torch_regression_seed(arm: str, seed: int, steps: int, log_every: int, torch) -> float:
    """One seed-run of a regression arm; returns its final metric."""
    data = reference.torch_task(seed, torch)
    model = reference.torch_model(seed, torch)
    if arm == "adahessian":
        return torch_adahessian_train(model, data, steps, log_every, torch)[1][-1]
    _, test_mse = reference.torch_train(model, data, steps, log_every, torch)
    if arm == "noise":
        return test_mse[-1]
    results = [torch_ridge(model, *torch_stage2_task(seed, a, torch), torch) for a in (1, 0)]
    return results[0][3]  # to-low test MSE (axis 1: a small eigenvalue)


# --------------------------------------------------------------------------- torch: OOD


def read_idx(path: Path):
    import numpy as np

    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def mnist_pool(data_dir: Path, torch):
    """The MNIST test split (the pool every OOD set is drawn from), features in [0, 1]."""
    folder = next(
        p for p in (data_dir / "mnist", data_dir) if (p / "t10k-labels-idx1-ubyte.gz").exists()
    )
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz").reshape(-1, D_IN)
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    return torch.from_numpy(images.astype("float32") / 255.0), torch.from_numpy(
        labels.astype("int64")
    )


def torch_ood_data(pool, seed: int, torch) -> dict:
    """One seed's correlation-shift sets, drawn as ``correlation_shift.make_ood_data`` draws
    them from one split (torch's generator instead of JAX's)."""
    images, labels = pool
    gen = torch.Generator().manual_seed(seed)
    templates = torch.randn(CLASSES, D_IN, generator=gen) * TEMPLATE_STD
    order = torch.randperm(images.shape[0], generator=gen)
    train, val = order[:OOD_TRAIN], order[OOD_TRAIN : OOD_TRAIN + OOD_VAL]
    test = order[OOD_TRAIN + OOD_VAL :]
    y_test = labels[test]
    y_random = torch.randint(0, CLASSES, y_test.shape, generator=gen)

    def add(x, template_labels):
        return (x + templates[template_labels]).clamp_(0.0, 1.0)

    return {
        "x_train": add(images[train], labels[train]), "y_train": labels[train],
        "x_val": add(images[val], labels[val]), "y_val": labels[val],
        "x_digit": add(images[test], y_test ^ 1), "y_digit": y_test,
        "x_noise": add(images[test], y_random), "y_noise": y_random,
    }  # fmt: skip


def torch_classifier(seed: int, torch):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(D_IN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, CLASSES)
    )


def eigh_psd(matrix, torch):
    """``jaxprecond.linalg.eigh_psd``: eigenvalues of the symmetrised matrix, clipped at 0."""
    eigenvalues, eigenvectors = torch.linalg.eigh(0.5 * (matrix + matrix.T))
    return eigenvalues.clamp_min(0.0), eigenvectors


def power_from_eigh(eigenvalues, eigenvectors, power: float, torch):
    """``jaxprecond.linalg.power_from_eigh`` with its default eigenvalue floor."""
    info = torch.finfo(eigenvalues.dtype)
    if power < 0:
        floor = (eigenvalues.shape[-1] * info.eps * eigenvalues.max()).clamp_min(info.tiny)
        eigenvalues = torch.maximum(eigenvalues, floor)
    weights = eigenvalues.pow(power).clamp_max(info.max)
    return (eigenvectors * weights) @ eigenvectors.T


class TorchKFAC:
    """jaxprecond's K-FAC (``optim/kfac.py``) on the two layers of an ``nn.Sequential`` MLP."""

    def __init__(self, model, torch):
        self.torch, self.layers, self.count = torch, (model[0], model[2]), 0
        self.factors = [
            [torch.zeros(m.in_features + 1, m.in_features + 1, dtype=m.weight.dtype),
             torch.zeros(m.out_features, m.out_features, dtype=m.weight.dtype)]
            for m in self.layers
        ]  # fmt: skip
        self.inverses = [None, None]
        self.buffers = [None, None]

    def step(self, t: int, inputs, output_grads) -> None:
        torch = self.torch
        weight = 1.0 if self.count == 0 else 1.0 - KFAC_DECAY
        root = KFAC_DAMPING**0.5
        with torch.no_grad():
            for i, (a, g) in enumerate(zip(inputs, output_grads, strict=True)):
                a = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype)], 1)
                new = (a.T @ a / a.shape[0], g.T @ g / g.shape[0])
                for j in (0, 1):
                    self.factors[i][j] += weight * (new[j] - self.factors[i][j])
            if t % KFAC_REFRESH == 0:
                for i, pair in enumerate(self.factors):
                    self.inverses[i] = [
                        power_from_eigh(e + root, q, -1.0, torch)
                        for e, q in (eigh_psd(f, torch) for f in pair)
                    ]
            for i, layer in enumerate(self.layers):
                grad = torch.cat([layer.weight.grad, layer.bias.grad[:, None]], 1)
                a_inv, g_inv = self.inverses[i]
                direction = g_inv @ grad @ a_inv
                if self.buffers[i] is None:  # optax.trace: b ← g + μ b, from b = 0
                    self.buffers[i] = direction
                else:
                    self.buffers[i].mul_(MOMENTUM).add_(direction)
                layer.weight.sub_(OOD_LR * self.buffers[i][:, :-1])
                layer.bias.sub_(OOD_LR * self.buffers[i][:, -1])
        self.count += 1


def torch_ood_train(name: str, model, data: dict, steps: int, log_every: int, torch, probes=None):
    """The authors' OOD loop with optimizer ``name`` configured as jaxprecond's registry does.

    Returns the train loss (before the step; with the L2 term where the loss couples it, as
    jaxprecond records it) and the three accuracies every ``log_every`` steps.
    """
    x, y = data["x_train"], data["y_train"]
    params = list(model.parameters())
    w1 = model[0].weight
    ce = torch.nn.functional.cross_entropy
    coupled = name in ("gd", "momentum", "adam", "kfac", "sigma_p")
    optimizer = {
        "gd": lambda: torch.optim.SGD(params, lr=OOD_LR, weight_decay=OOD_WD),
        "momentum": lambda: torch.optim.SGD(
            params, lr=OOD_LR, momentum=MOMENTUM, weight_decay=OOD_WD
        ),
        "adam": lambda: torch.optim.Adam(params, lr=OOD_LR, weight_decay=OOD_WD),
        "sam": lambda: torch.optim.SGD(params, lr=OOD_LR, momentum=MOMENTUM, weight_decay=OOD_WD),
        "sigma_p": lambda: torch.optim.SGD(params, lr=OOD_LR),
        "kfac": lambda: TorchKFAC(model, torch),
        "adahessian": lambda: None,
    }[name]()
    if name == "sigma_p":
        with torch.no_grad():
            sigma = x.T @ x / x.shape[0]
            eigenvalues, eigenvectors = eigh_psd(sigma, torch)
            eigenvalues = eigenvalues + SIGMA_DAMPING * torch.trace(sigma) / D_IN
            p_matrix = power_from_eigh(eigenvalues, eigenvectors, OOD_POWER, torch)
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    losses, accuracies = [], []
    for t in range(steps):
        log = (t + 1) % log_every == 0
        if log and coupled:  # jaxprecond's recorded loss carries the L2 term (before the step)
            with torch.no_grad():
                l2 = 0.5 * OOD_WD * sum(p.pow(2).sum().item() for p in params)
        if name == "adahessian":
            loss = ce(model(x), y)
            z = probes(t) if probes is not None else rademacher(params, torch)
            grads, hz = hutchinson(loss, params, z, torch)
            adahessian_update(params, grads, hz, z, moments, t + 1, OOD_LR, OOD_WD, 1.0, torch)
        elif name == "kfac":
            s1 = model[0](x)
            h = torch.relu(s1)
            s2 = model[2](h)
            s1.retain_grad()
            s2.retain_grad()
            loss = ce(s2, y)
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p.grad.add_(p, alpha=OOD_WD)
            n = x.shape[0]
            optimizer.step(t, (x, h.detach()), (n * s1.grad, n * s2.grad))
        elif name == "sam":
            loss = ce(model(x), y)
            loss.backward()
            with torch.no_grad():
                norm = torch.norm(torch.stack([p.grad.norm(2) for p in params]))
                scale = RHO / (norm + SAM_EPS)
                old = [p.clone() for p in params]
                for p in params:
                    p.add_(p.grad * scale)
            optimizer.zero_grad()
            ce(model(x), y).backward()
            with torch.no_grad():
                for p, o in zip(params, old, strict=True):
                    p.copy_(o)
            optimizer.step()
        else:
            loss = ce(model(x), y)
            loss.backward()
            if name == "sigma_p":
                with torch.no_grad():
                    for p in params:
                        p.grad.add_(p, alpha=OOD_WD)
                    w1.grad.copy_(w1.grad @ p_matrix.T)
            optimizer.step()
        for p in params:
            p.grad = None
        if log:
            with torch.no_grad():
                losses.append(loss.item() + (l2 if coupled else 0.0))
                accuracies.append(
                    [
                        (model(data[f"x_{s}"]).argmax(-1) == data[f"y_{s}"]).float().mean().item()
                        for s in ("val", "digit", "noise")
                    ]
                )
    return losses, accuracies


# --------------------------------------------------------------------------- torch side


def measure_torch(arm: str, steps: int, log_every: int, seeds: int, threads: int, data_dir) -> dict:
    import torch

    torch.set_num_threads(threads)
    if family(arm) == "ood":
        pool = mnist_pool(data_dir, torch)

        def one(seed, n_steps):
            data = torch_ood_data(pool, seed, torch)
            model = torch_classifier(seed, torch)
            return torch_ood_train(arm[4:], model, data, n_steps, log_every, torch)[1][-1][0]

    else:

        def one(seed, n_steps):
            return torch_regression_seed(arm, seed, n_steps, log_every, torch)

    start = time.perf_counter()
    one(10**6, log_every)  # warm-up seed (not timed): allocator, kernels
    warm_s = time.perf_counter() - start
    finals = []
    start = time.perf_counter()
    for seed in range(seeds):
        finals.append(one(seed, steps))
    run_s = time.perf_counter() - start
    return {
        "seeds": seeds,
        "run_s": run_s,
        "overhead_s": warm_s,
        "final_mean": statistics.fmean(finals),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def measure_peak(side: str, threads: int, sizes=(1024, 2048), repeats: int = 5) -> dict:
    """Best float32 GFLOP/s of an ``n × n`` matmul (jax at HIGHEST, or torch)."""
    best = {}
    if side == "jax":
        import jax
        import jax.numpy as jnp

        square = jax.jit(lambda a: jnp.matmul(a, a, precision=jax.lax.Precision.HIGHEST))
        for n in sizes:
            a = jnp.ones((n, n), jnp.float32) / n
            square(a).block_until_ready()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                square(a).block_until_ready()
                times.append(time.perf_counter() - start)
            best[n] = 2 * n**3 / min(times) / 1e9
    else:
        import torch

        torch.set_num_threads(threads)
        for n in sizes:
            a = torch.ones(n, n) / n
            a @ a
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                a @ a
                times.append(time.perf_counter() - start)
            best[n] = 2 * n**3 / min(times) / 1e9
    return {"gflop_per_s": best, "best": max(best.values())}


# --------------------------------------------------------------------------- replay


def max_rel(ours, theirs) -> float:
    import numpy as np

    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    return float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-30)))


def rel_norm(ours, theirs) -> float:
    import numpy as np

    ours = np.asarray(ours, np.float64).reshape(-1)
    theirs = np.asarray(theirs, np.float64).reshape(-1)
    return float(np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-30))


def with_probes(optimizer, probes):
    """``optimizer`` fed step ``t``'s probes from ``probes`` (leading axis: steps)."""
    import jax
    import optax

    def update_fn(updates, state, params=None, *, step, **extra):
        probe = jax.tree.map(lambda z: z[step], probes)
        return optimizer.update(updates, state, params, probes=probe, step=step, **extra)

    return optax.GradientTransformationExtraArgs(optimizer.init, update_fn)


def draw_probes(shapes, steps: int, seed: int = 0):
    """Rademacher probes for ``steps`` steps, one ``(steps, *shape)`` float32 array each."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.choice(np.float32([-1.0, 1.0]), size=(steps, *s)) for s in shapes]


def replay_regression(arm: str, steps: int, float64: bool) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    from jaxprecond.linalg import Eigh
    from jaxprecond.optim.registry import make_optimizer, weight_decay_coupling
    from jaxprecond.tasks.single_index import sample_task
    from jaxprecond.tasks.student import init_mlp
    from jaxprecond.training.regression import spectra, train

    _, config = arm_config(arm, steps, 1, 1, DATA_DIR)
    config = dataclasses.replace(config, float64=float64)
    names = ("W1", "b1", "W2", "b2")
    torch_shapes = [(DH, DX), (DH,), (1, DH), (1,)]
    probes = draw_probes(torch_shapes, steps)
    spectrum = jax.tree.map(lambda leaf: leaf[0], spectra(config))  # Case High
    key = jax.random.fold_in(jax.random.key(config.root_seed), 0)
    key_data, key_init, _ = jax.random.split(key, 3)  # as train_student splits it
    task = sample_task(key_data, spectrum, SNR, n=config.n, n_train=config.n_train)
    params = init_mlp(key_init, config.dx, config.dh, scale=config.init_scale, dtype=config.dtype)

    def run(params, task, z):
        options, wd = weight_decay_coupling(config.preconditioner, config.weight_decay)
        if arm == "adahessian":
            options.update(hessian_power=-POWER, probe="rademacher")
            optimizer = make_optimizer("adahessian", config.learning_rate, **options)
            shaped = {
                n: a.reshape((steps, *params[n].shape)) for n, a in zip(names, z, strict=True)
            }
            optimizer = with_probes(optimizer, shaped)
        else:
            eigh = Eigh(spectrum.eigenvalues, spectrum.eigenvectors)
            options.update(covariance=eigh, power=POWER, normalize=None)
            optimizer = make_optimizer("covariance_power", config.learning_rate, **options)
        return train(
            params, optimizer, task, steps=steps, log_every=1, weight_decay=wd,
            eigenvectors=spectrum.eigenvectors, eigenvalues=spectrum.eigenvalues,
            eval_block_size=config.eval_block_size,
        )  # fmt: skip

    final, trajectory = jax.jit(run)(params, task, [jnp.asarray(z, config.dtype) for z in probes])
    dtype = torch.float64 if float64 else torch.float32

    def tensor(a):
        return torch.from_numpy(np.array(a)).to(dtype)

    model = reference.torch_model(0, torch).to(dtype)
    with torch.no_grad():
        for name, p, shape in zip(names, model.parameters(), torch_shapes, strict=True):
            p.copy_(tensor(params[name]).reshape(shape))
    q = np.asarray(spectrum.eigenvectors, np.float64)
    lam = np.asarray(spectrum.eigenvalues, np.float64)
    data = [tensor(a) for a in (task.x_train, task.y_train, task.x_test, task.y_test)]
    data.append(tensor((q * lam**POWER) @ q.T))
    if arm == "adahessian":
        stored = [tensor(z) for z in probes]
        losses, mses = torch_adahessian_train(
            model, data, steps, 1, torch, probes=lambda t: [z[t] for z in stored]
        )
    else:
        losses, mses = reference.torch_train(model, data, steps, 1, torch)
    out = {
        "train_loss": max_rel(losses, trajectory.train_loss),
        "test_mse": max_rel(mses, trajectory.test_mse),
    }
    if arm == "transfer":
        from jaxprecond.experiments.transfer import (
            DIRECTIONS,
            STAGE2_FOLD,
            refit_head,
            stage_spectra,
        )

        _, stage2 = stage_spectra(config)
        key_stage2 = jax.random.fold_in(key, STAGE2_FOLD)
        refit = jax.jit(lambda p, t: refit_head(p, t, config=config))
        for i, direction in enumerate(DIRECTIONS):
            target = jax.tree.map(lambda leaf, i=i: leaf[0, i], stage2)
            task2 = sample_task(key_stage2, target, SNR, n=config.n, n_train=config.n_train)
            head, train_mse, test_mse = refit(final, task2)
            arrays = (task2.x_train, task2.y_train, task2.x_test, task2.y_test)
            w, b, torch_train_mse, torch_test_mse = torch_ridge(
                model, *(tensor(a) for a in arrays), torch
            )
            out[f"to_{direction}_head_W2"] = rel_norm(w.numpy(), head["W2"])
            out[f"to_{direction}_head_b2"] = max_rel(b.item(), head["b2"])
            out[f"to_{direction}_train_mse"] = max_rel(torch_train_mse, train_mse)
            out[f"to_{direction}_test_mse"] = max_rel(torch_test_mse, test_mse)
    return out


def replay_ood(arm: str, steps: int, data_dir: Path, float64: bool) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    from jaxprecond.engine.trainer import train
    from jaxprecond.experiments.ood import load_images, optimizer_of
    from jaxprecond.optim.registry import oracles
    from jaxprecond.tasks import correlation_shift
    from jaxprecond.tasks.classifier import classification_loss, init_classifier

    name = arm[4:]
    _, config = arm_config(arm, steps, 1, 1, data_dir)
    images = load_images(config)
    dtype = jnp.float64 if float64 else jnp.float32
    key = jax.random.fold_in(jax.random.key(config.root_seed), 0)
    key_data, key_init, key_opt = jax.random.split(key, 3)  # as the OOD run splits it
    data = correlation_shift.draw(
        key_data, images, n_train=config.n_train, n_val=config.n_val, n_test=config.n_test,
        template_std=config.template_std,
    )  # fmt: skip
    params = init_classifier(key_init, D_IN, config.hidden, CLASSES, dtype=dtype)
    power = OOD_POWER if name == "sigma_p" else 0.0
    names = ("W1", "b1", "W2", "b2")
    probes = draw_probes([params[n].shape for n in names], steps)

    @jax.jit
    def run(p, x, y, z):  # data as arguments: as constants, XLA folds XᵀX and P for minutes
        optimizer, wd = optimizer_of(name, power, x, key_opt, config)
        if name == "adahessian":
            optimizer = with_probes(optimizer, dict(zip(names, z, strict=True)))
        return train(
            p, optimizer, lambda q, batch: classification_loss(q, *batch, weight_decay=wd),
            steps=steps, log_every=1, record=lambda q, losses: losses[-1],
            batch=lambda t: (x, y), oracles=oracles,
        )  # fmt: skip

    x_train = jnp.asarray(data.x_train, dtype)
    final, losses = run(params, x_train, data.y_train, [jnp.asarray(z, dtype) for z in probes])
    torch_dtype = torch.float64 if float64 else torch.float32
    model = torch_classifier(0, torch).to(torch_dtype)
    with torch.no_grad():
        for n, p in zip(names, model.parameters(), strict=True):
            p.copy_(torch.from_numpy(np.array(params[n])))
    tensors = {
        k: torch.from_numpy(np.array(v)).to(torch.int64 if k.startswith("y_") else torch_dtype)
        for k, v in data._asdict().items()
    }
    stored = [torch.from_numpy(z).to(torch_dtype) for z in probes]
    torch_losses, _ = torch_ood_train(
        name, model, tensors, steps, 1, torch, probes=lambda t: [z[t] for z in stored]
    )
    out = {"train_loss": max_rel(torch_losses, losses)}
    for n, p in zip(names, model.parameters(), strict=True):
        out[f"final_{n}"] = rel_norm(p.detach().numpy(), final[n])
    return out


def replay(arm: str, steps: int, data_dir: Path, float64: bool = False) -> dict:
    """Largest relative deviations of ``arm``'s torch loop from jaxprecond over ``steps``."""
    import jax
    import torch

    torch.set_num_threads(1)
    with jax.enable_x64(float64):
        if family(arm) == "ood":
            return replay_ood(arm, steps, data_dir, float64)
        return replay_regression(arm, steps, float64)


# --------------------------------------------------------------------------- driver


def worker(args) -> dict:
    arms, side = args.worker
    if side in ("replay", "replay64"):  # every arm named, in this one process
        out = {}
        for arm in arms.split(","):
            try:
                out[arm] = replay(arm, args.replay_steps, args.data_dir, side == "replay64")
            except Exception as error:  # noqa: BLE001  (reported, the others still replayed)
                out[arm] = {"error": f"{type(error).__name__}: {error}"}
        return out
    if side in ("peak-jax", "peak-torch"):
        return measure_peak(side[5:], args.threads)
    arm = arms
    steps, log_every = arm_steps(arm, args)
    if side == "jaxprecond":
        seeds = arm_seeds(arm, args)
        return measure_jaxprecond(arm, steps, log_every, seeds, args.data_dir)
    threads = 1 if side == "torch-1t" else args.threads
    return measure_torch(arm, steps, log_every, args.torch_seeds, threads, args.data_dir)


def arm_steps(arm: str, args) -> tuple[int, int]:
    steps = args.steps or DEFAULT_STEPS[family(arm)]
    log_every = min(args.log_every or LOG_EVERY[family(arm)], steps)
    if steps % log_every:
        raise SystemExit(f"{arm}: --steps {steps} is not a multiple of log_every {log_every}")
    return steps, log_every


def arm_devices(arm: str, args) -> int:
    """XLA host devices of an arm's jaxprecond side (transfer: ``--transfer-host-devices``)."""
    return args.transfer_host_devices if arm == "transfer" else args.host_devices


def arm_seeds(arm: str, args) -> int:
    """jaxprecond's seeds per measurement: ``--seeds``, else two groups of 4 per device (OOD:
    one group of 1, the engine's CPU group sizes; an OOD seed-run is 10-100× the work)."""
    groups, group = (1, 1) if family(arm) == "ood" else (2, 4)
    return args.seeds or groups * group * arm_devices(arm, args)


def spawn(arm: str, side: str, args, cache: Path | None = None) -> dict:
    """Run one worker in a fresh process; ``{"failed": why}`` if it fails or times out."""
    env = {k: v for k, v in os.environ.items() if k != CACHE_ENV}
    devices = arm_devices(arm, args) if side == "jaxprecond" else 1
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}"
    ).strip()
    env["JAXPRECOND_HOST_DEVICES"] = str(devices)
    if cache is not None:
        env[CACHE_ENV] = str(cache)
    command = [sys.executable, __file__, "--worker", arm, side]
    for flag in ("threads", "torch_seeds", "host_devices", "transfer_host_devices"):
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    command += ["--replay-steps", str(args.replay_steps), "--data-dir", str(args.data_dir)]
    for flag in ("steps", "log_every", "seeds"):
        if getattr(args, flag):
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=args.worker_timeout
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"no result within {args.worker_timeout:.0f} s (killed)"}
    if done.returncode:
        sys.stderr.write(done.stderr[-3000:])
        return {"failed": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def summarize(arm: str, rows: dict, steps: int, log_every: int, peak: float | None) -> dict:
    """Medians over repeats, ratios, break-even seeds and FLOP rates of one arm."""
    flops = flops_per_seed_run(arm, steps, log_every)
    protocol = PROTOCOL_STEPS[family(arm)]
    out: dict = {"steps": steps, "log_every": log_every, "gflop_per_seed_run": flops / 1e9}
    seconds = {}
    for side, rs in rows.items():
        if not rs:
            continue
        per_seed = [r["run_s"] / r["seeds"] for r in rs]
        seconds[side] = statistics.median(per_seed)
        rates = [3600.0 / s for s in per_seed]
        entry = {
            "seeds": rs[0]["seeds"],
            "measurements": len(rs),
            "seed_runs_per_hour": 3600.0 / seconds[side],
            "seed_runs_per_hour_range": [min(rates), max(rates)],
            "seed_runs_per_hour_at_protocol": 3600.0 / seconds[side] * steps / protocol,
            "us_per_seed_step": seconds[side] / steps * 1e6,
            "gflop_per_s": flops / seconds[side] / 1e9,
        }
        if peak:
            entry["peak_fraction"] = entry["gflop_per_s"] / peak
        if side == "jaxprecond":
            cold = [r["overhead_s"] for r in rs if not r.get("cached")]
            warm = [r["overhead_s"] for r in rs if r.get("cached")]
            entry["devices"] = rs[0]["devices"]
            entry["compile_s"] = statistics.median(cold) if cold else None
            entry["first_call_overhead_cached_s"] = statistics.median(warm) if warm else None
        else:
            entry["warm_up_seed_s"] = statistics.median(r["overhead_s"] for r in rs)
        out[side] = entry
    torch_sides = [s for s in seconds if s.startswith("torch")]
    if "jaxprecond" not in seconds:
        return out
    out["compile_s"] = out["jaxprecond"]["compile_s"]
    for side in torch_sides:
        out[f"ratio_over_{side}"] = seconds[side] / seconds["jaxprecond"]
    if not torch_sides:
        return out
    best = min(torch_sides, key=seconds.get)
    out["best_torch"] = best
    out["ratio"] = seconds[best] / seconds["jaxprecond"]
    saved = seconds[best] - seconds["jaxprecond"]  # per seed-run of the measured length
    if out["compile_s"] is not None:
        out["break_even_seeds"] = out["compile_s"] / saved if saved > 0 else None
        out["break_even_seeds_at_protocol"] = (
            out["compile_s"] / (saved * protocol / steps) if saved > 0 else None
        )
    least_ratio, least_peak = GOALS[arm]
    met = out["ratio"] >= least_ratio
    if least_peak is not None and peak:
        met = met and out["jaxprecond"]["peak_fraction"] >= least_peak
    out["goal"] = {"ratio": least_ratio, "peak_fraction": least_peak, "met": met}
    return out


def print_table(summary: dict, peak: float | None) -> None:
    print(
        "\n| arm | steps | seed-runs/h: jaxprecond | torch | torch-1t | ratio (vs faster torch) "
        "| compile s | break-even seeds (at protocol length) | GFLOP/seed-run "
        "| jaxprecond GFLOP/s (% peak) | torch GFLOP/s (% peak) | goal |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")

    def rate(s, side):
        return f"{s[side]['seed_runs_per_hour']:.0f}" if side in s else "–"

    def flop(s, side):
        if side not in s:
            return "–"
        share = f" ({100 * s[side]['peak_fraction']:.0f}%)" if peak else ""
        return f"{s[side]['gflop_per_s']:.1f}{share}"

    for arm, s in summary.items():
        best = s.get("best_torch")
        ratio = f"{s['ratio']:.2f}× ({best})" if "ratio" in s else "–"
        if "break_even_seeds" not in s:
            even = "–"
        elif s["break_even_seeds"] is None:
            even = "never"
        else:
            even = f"{s['break_even_seeds']:.1f} ({s['break_even_seeds_at_protocol']:.1f})"
        compile_s = "–" if s.get("compile_s") is None else f"{s['compile_s']:.1f}"
        goal = "–"
        if "goal" in s:
            g = s["goal"]
            goal = f"≥{g['ratio']:g}×"
            goal += f", ≥{100 * g['peak_fraction']:.0f}% of peak" if g["peak_fraction"] else ""
            goal += ": met" if g["met"] else ": NOT met"
        print(
            f"| {arm} | {s['steps']} | {rate(s, 'jaxprecond')} | {rate(s, 'torch')} "
            f"| {rate(s, 'torch-1t')} | {ratio} | {compile_s} | {even} "
            f"| {s['gflop_per_seed_run']:.2f} | {flop(s, 'jaxprecond')} "
            f"| {flop(s, best) if best else '–'} | {goal} |"
        )


def run_replays(arms: list[str], args) -> dict:
    """Every arm's float32 replay (one process); those beyond the tolerance again in float64."""
    print(f"replay: each torch loop against jaxprecond, {args.replay_steps} steps, same init/data")
    first = spawn(",".join(arms), "replay", args)
    out = {arm: {"steps": args.replay_steps, "float32": first.get(arm, first)} for arm in arms}
    again = []
    for arm, check in out.items():
        values = [v for v in check["float32"].values() if isinstance(v, float)]
        check["ok"] = bool(values) and max(values) <= REPLAY_TOLERANCE
        again += [] if check["ok"] or not values else [arm]
    if again:  # rounding amplified by the optimizer, or other arithmetic? float64 tells
        second = spawn(",".join(again), "replay64", args)
        for arm in again:
            check = out[arm]
            check["float64"] = second.get(arm, second)
            values = [v for v in check["float64"].values() if isinstance(v, float)]
            check["ok"] = bool(values) and max(values) <= REPLAY_TOLERANCE_FLOAT64
    for arm, check in out.items():
        for precision in ("float32", "float64"):
            deviations = {k: v for k, v in check.get(precision, {}).items() if k != "process_s"}
            if not deviations:
                continue
            numbers = [v for v in deviations.values() if isinstance(v, float)]
            worst = f"max rel. deviation {max(numbers):.1e}: " if numbers else ""
            details = ", ".join(
                f"{k} {v:.1e}" if isinstance(v, float) else f"{k} {v}"
                for k, v in deviations.items()
            )
            print(f"  {arm:16s} {precision} {worst}{details}")
        print(f"  {arm:16s} {'ok' if check['ok'] else 'FAIL'}", flush=True)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(DEFAULT_ARMS))
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--steps", type=int, help="steps of every arm (default 500; OOD 50)")
    parser.add_argument("--log-every", type=int, help="record period (default 100; OOD 50)")
    parser.add_argument("--seeds", type=int, help="jaxprecond seeds per measurement")
    parser.add_argument("--torch-seeds", type=int, default=1, help="torch seeds per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="threads of the torch side")
    cores = len(os.sched_getaffinity(0))
    parser.add_argument(
        "--host-devices", type=int, default=cores,
        help="XLA host devices of the jaxprecond side (default: one per core)",
    )  # fmt: skip
    parser.add_argument(
        "--transfer-host-devices", type=int, default=1,
        help="the transfer arm's (default 1: on 2 devices its batched Cholesky deadlocks XLA:CPU)",
    )  # fmt: skip
    parser.add_argument(
        "--cold", action="store_true",
        help="compile from scratch in every repeat (default: the first; later ones read a "
        "temporary persistent compilation cache)",
    )  # fmt: skip
    parser.add_argument("--replay-steps", type=int, default=20)
    parser.add_argument("--worker-timeout", type=float, default=900.0, help="seconds per process")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return

    arms, sides = list(args.arms), list(args.sides)
    report: dict = {"argv": sys.argv[1:] if argv is None else list(argv), "cores": cores}
    if importlib.util.find_spec("torch") is None:
        raise SystemExit('torch is not installed (pip install -e ".[bench]")')
    if any(family(a) == "ood" for a in arms) and not (args.data_dir / "mnist").is_dir():
        print(f"{args.data_dir / 'mnist'} not found: skipping the OOD arms")
        arms = [a for a in arms if family(a) != "ood"]
    report["failures"] = []

    peaks = {side: spawn("-", f"peak-{side}", args) for side in ("jax", "torch")}
    found = [p["best"] for p in peaks.values() if "best" in p]
    peak = max(found) if found else None
    report["matmul_peak"] = dict(peaks, best_gflop_per_s=peak)
    print(
        "matmul peak (float32, best n×n of 1024/2048, GFLOP/s): "
        + ", ".join(f"{s} {p.get('best', float('nan')):.1f}" for s, p in peaks.items())
    )
    report["replay"] = run_replays(arms, args)

    cache_root = None if args.cold else Path(tempfile.mkdtemp(prefix="bench_arms_xla_"))
    rows = {arm: {side: [] for side in sides} for arm in arms}
    print(
        f"measurements: arms alternate, each side in a fresh process, {args.repeats} repeats"
        + ("" if args.cold else "; compile cold in repeat 1, from a temporary cache after")
    )
    try:
        for repeat in range(args.repeats):
            for arm in arms:
                for side in sides:
                    cache = None
                    if cache_root is not None and side == "jaxprecond":
                        cache = cache_root / arm
                        cache.mkdir(exist_ok=True)
                    r = spawn(arm, side, args, cache)
                    if "failed" in r:
                        report["failures"].append(dict(r, arm=arm, side=side, repeat=repeat + 1))
                        print(f"  repeat {repeat + 1} {arm:16s} {side:10s} FAILED: {r['failed']}")
                        continue
                    rows[arm][side].append(r)
                    print(
                        f"  repeat {repeat + 1} {arm:16s} {side:10s} {r['seeds']:3d} seeds in "
                        f"{r['run_s']:7.2f} s (+{r['overhead_s']:5.1f} s "
                        f"{'compile' if side == 'jaxprecond' else 'warm-up seed'}"
                        f"{' from cache' if r.get('cached') else ''}): "
                        f"{3600 * r['seeds'] / r['run_s']:9.0f} seed-runs/h, final "
                        f"{r['final_mean']:.4f}",
                        flush=True,
                    )
    finally:
        if cache_root is not None:
            shutil.rmtree(cache_root, ignore_errors=True)
    report["measurements"] = rows
    report["summary"] = {
        arm: summarize(arm, rows[arm], *arm_steps(arm, args), peak) for arm in arms
    }
    print_table(report["summary"], peak)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
