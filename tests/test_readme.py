"""The README's examples of the transforms in someone else's training loop run as written.

Each ```python block preceded by ``<!-- tested: NAME -->`` is executed; then its optimizer ``tx``
is checked against a dense computation (the first-layer kernel's update is ``−lr·G Σᵀ`` or
``−lr·Σ G``, every other leaf's ``−lr·g``) and its trained model must beat the zero predictor
on the held-out points.
"""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_blocks() -> dict[str, str]:
    text = README.read_text()
    blocks = re.findall(r"<!-- tested: (\w+) -->\s*```python\n(.*?)```", text, flags=re.S)
    return dict(blocks)


def test_readme_marks_its_examples():
    assert set(readme_blocks()) >= {"equinox", "flax"}


@pytest.mark.parametrize(
    ("name", "module", "kernel_path", "layout"),
    [
        ("equinox", "equinox", lambda p: p.layers[0].weight, "out_in"),
        ("flax", "flax", lambda p: p["hidden"]["kernel"], "in_out"),
    ],
)
def test_readme_training_loop(name, module, kernel_path, layout, capsys):
    pytest.importorskip(module)
    namespace = {}
    exec(compile(readme_blocks()[name], f"README.md[{name}]", "exec"), namespace)  # noqa: S102
    capsys.readouterr()
    tx, params, sigma = namespace["tx"], namespace["params"], namespace["sigma"]

    grads = jax.tree.map(
        lambda leaf: jax.random.normal(jax.random.key(leaf.size), leaf.shape), params
    )
    updates, _ = tx.update(grads, tx.init(params), params)
    kernel_grad, kernel_update = kernel_path(grads), kernel_path(updates)
    dense = kernel_grad @ sigma.T if layout == "out_in" else sigma @ kernel_grad
    np.testing.assert_allclose(kernel_update, -1e-2 * dense, rtol=1e-5, atol=1e-7)

    flat_grads, flat_updates = jax.tree.leaves(grads), jax.tree.leaves(updates)
    others = [(g, u) for g, u in zip(flat_grads, flat_updates, strict=True) if g is not kernel_grad]
    assert len(others) == len(flat_grads) - 1
    for g, u in others:
        np.testing.assert_allclose(u, -1e-2 * g, rtol=1e-6)

    task = namespace["task"]
    test_mse = float(namespace["loss"](namespace["params"], task.x_test, task.y_test))
    assert test_mse < 0.9 * float(jnp.mean(task.y_test**2))
