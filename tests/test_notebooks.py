"""The example notebooks run top to bottom, headless, and draw their figures.

Each notebook is copied into a temporary directory and executed there with a fresh Python
kernel (so a run folder a notebook writes lands in the temporary directory, not the repository;
the committed notebook is left untouched). Needs ``nbclient``, ``nbformat`` and ``ipykernel``
(the ``test`` extra); skipped without them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient")
pytest.importorskip("ipykernel", reason="the notebook tests need ipykernel (a Python kernel)")

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
#: The experiment notebooks (a minute each on 2 cores; the code they run is tested by the
#: experiments' own tests) run with the slow tests (benchmarks/slow_tests.sh); the theory
#: notebook, whose asserts check the paper's equations, runs in CI.
SLOW = pytest.mark.slow
NOTEBOOKS = (
    pytest.param("01_noise_robustness.ipynb", marks=SLOW),
    pytest.param("02_out_of_distribution.ipynb", marks=SLOW),
    pytest.param("03_transfer.ipynb", marks=SLOW),
    "04_theory.ipynb",
)
NAMES = [n if isinstance(n, str) else n.values[0] for n in NOTEBOOKS]


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, tmp_path):
    path = shutil.copy(NOTEBOOKS_DIR / name, tmp_path / name)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{name} failed:\n{error}")
    outputs = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
    errors = [output for output in outputs if output.output_type == "error"]
    assert not errors, f"{name}: " + "; ".join(f"{e.ename}: {e.evalue}" for e in errors)
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert images, f"{name} displayed no figure"
