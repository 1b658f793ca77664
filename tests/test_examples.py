"""Every sweep file in examples/ runs through ``jaxprecond sweep`` and ``jaxprecond report``, at a
tiny size; the README's own experiment is the file examples/linear_student.py."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from jaxprecond.cli import main
from jaxprecond.report import load_run, load_sweep_file

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
STUDENT = dict(steps=20, log_every=10, dh=8, n=300, n_train=50)
#: Settings that make each experiment tiny (the files' axes are kept).
TINY = {
    "noise": STUDENT,
    "transfer": STUDENT,
    "rotated": dict(STUDENT, log_every=20, arms=["diagonal"]),
    "ood": dict(steps=10, log_every=5, hidden=8, n_train=40, n_val=40, n_test=40),
    "linear_student.py:EXPERIMENT": dict(steps=20, log_every=10, n=300, n_train=50),
}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def tiny_copy(path: Path, folder: Path) -> Path:
    """The sweep file with 2 seeds and the tiny settings, beside a copy of what it imports."""
    doc = tomllib.loads(path.read_text())
    doc.update(seeds=2, chunk_size=1, out=str(folder / "run"))
    doc["config"] = dict(doc.get("config", {}), **TINY[doc["experiment"]])
    lines = [f"{k} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for table in ("config", "axes"):
        lines += [f"[{table}]"] + [f"{k} = {toml_value(v)}" for k, v in doc.get(table, {}).items()]
    for module in path.parent.glob("*.py"):
        shutil.copy(module, folder)
    copy = folder / path.name
    copy.write_text("\n".join(lines) + "\n")
    return copy


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_sweeps_and_reports(path, tmp_path, capsys):
    experiment, config, axes, out = load_sweep_file(path)  # the file as shipped is valid
    assert out and axes
    copy = tiny_copy(path, tmp_path)
    assert main(["sweep", str(copy), "--no-progress"]) == 0
    assert "all 2 seeds finished" in capsys.readouterr().out
    run = tmp_path / "run"
    assert main(["report", str(run)]) == 0
    text = (run / "report.md").read_text()
    assert (run / "figure.png").stat().st_size > 5_000
    results = load_run(run)
    assert results.config.seeds == 2 and len(results.missing_seeds) == 0
    for name, values in axes.items():  # every axis of the file is in the grid and the table
        assert list(results.values(name)) == values
    assert all(np.isfinite(v).all() for v in results.data.values()), text
    (run / "chunks" / "seeds-00000001-00000002.npz").unlink()  # a run cut short
    assert main(["report", str(run)]) == 0
    assert "1 of 2 seeds finished (partial run)" in (run / "report.md").read_text()
    assert load_run(run).seeds.tolist() == [0]


def test_readme_experiment_is_the_example_file():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Write your own experiment", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert code == (ROOT / "examples" / "linear_student.py").read_text()
    assert len(code.splitlines()) <= 60
