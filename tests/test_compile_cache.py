"""The persistent compilation cache (issue 14): on by default for the command line and the run
functions, in the user's cache folder, never in a run folder, with an opt-out.

Every check runs in a fresh process with ``HOME`` and ``XDG_CACHE_HOME`` in a temporary folder
and no ``JAX_*`` variable: the cache that ``conftest.py`` sets up for the test processes (through
``JAX_COMPILATION_CACHE_DIR``) must not leak into them.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from jaxprecond.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]

#: Runs the command line's ``main`` with its arguments, then prints (last line) the JAX cache
#: settings and jax.monitoring's counts of compile requests and persistent-cache hits.
CLI = """
import json, sys
import jax, jax.monitoring
counts = {}
jax.monitoring.register_event_listener(lambda e, **k: counts.__setitem__(e, counts.get(e, 0) + 1))
from jaxprecond.cli import main
status = main(sys.argv[1:])
print(json.dumps({
    "status": status,
    "dir": jax.config.jax_compilation_cache_dir,
    "min_compile_time": jax.config.jax_persistent_cache_min_compile_time_secs,
    "requests": counts.get("/jax/compilation_cache/compile_requests_use_cache", 0),
    "hits": counts.get("/jax/compilation_cache/cache_hits", 0),
}))
"""

#: A tiny noise run (a few seconds of training; its compile is most of the time).
NOISE = ["noise", "--seeds", "2", "--steps", "4", "--log-every", "2", "--p", "0", "1"]
NOISE += ["--snr", "1", "--cases", "high", "--dx", "4", "--dh", "8", "--n", "48"]
NOISE += ["--n-train", "16", "--no-progress"]

#: The smallest experiment there is, for the checks that only need something compiled.
COIN = """
import dataclasses
import jax, jax.numpy as jnp
from jaxprecond.engine.config import POSITIVE, Config, setting
from jaxprecond.engine.experiment import Experiment

@dataclasses.dataclass(frozen=True)
class Coin(Config):
    bias: float = setting(0.5, "probability of heads", POSITIVE, traced=True)

def run(key, point, config, data):
    return {"heads": jax.random.bernoulli(key, config.bias, (1,)).astype(jnp.float32)}

COIN = Experiment("coin", Coin, {"one": Coin(seeds=2)}, run=run, steps=lambda c: (0,),
                  metrics=("heads",))
"""


def clean_env(tmp_path: Path, **extra) -> dict:
    """This process's environment without JAX's or the cache's variables; home in tmp_path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JAX_", "JAXPRECOND_", "XLA_")) and k != "XDG_CACHE_HOME"
    }
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CACHE_HOME=str(tmp_path / "xdg"),
        JAX_PLATFORMS="cpu",
        JAXPRECOND_HOST_DEVICES="1",  # no restart with one device per core
        MPLBACKEND="Agg",
    )
    env.update(extra)
    return env


def default_cache(tmp_path: Path) -> Path:
    return tmp_path / "xdg" / "jaxprecond" / "xla"


def entries(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*-cache")} if folder.exists() else set()


def cli(tmp_path: Path, *args: str, **env) -> dict:
    """Run ``jaxprecond ARGS`` (its ``main``) in a fresh process; its last line, parsed."""
    out = subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=tmp_path,
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def coin_sweep_file(tmp_path: Path, out: str = "coin-run") -> str:
    (tmp_path / "coin.py").write_text(COIN)
    (tmp_path / "coin.toml").write_text(f'experiment = "coin.py:COIN"\nout = "{out}"\n')
    return str(tmp_path / "coin.toml")


def no_cache_files_in(run: Path) -> None:
    names = [p.name for p in run.rglob("*")]
    assert names and not [n for n in names if n.endswith("-cache") or n.startswith("jit_")]


def test_a_second_run_compiles_nothing_and_gives_the_same_results(tmp_path):
    cache = default_cache(tmp_path)
    cold = cli(tmp_path, *NOISE, "--out", "first")
    written = entries(cache)
    assert cold["dir"] == str(cache) and cold["min_compile_time"] == 0
    assert written and cold["hits"] == 0 and len(written) <= cold["requests"]

    warm = cli(tmp_path, *NOISE, "--out", "second")
    assert entries(cache) == written, "the second run wrote programs the first had not"
    assert warm["requests"] == cold["requests"] and warm["hits"] == warm["requests"]

    first, second = (np.load(tmp_path / run / "arrays.npz") for run in ("first", "second"))
    assert sorted(first.files) == sorted(second.files)
    for name in first.files:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    for run in ("first", "second"):
        no_cache_files_in(tmp_path / run)


def test_the_flag_goes_before_or_after_the_command():
    parse = build_parser().parse_args
    assert not parse(["sweep", "s.toml"]).no_compile_cache
    assert parse(["--no-compile-cache", "sweep", "s.toml"]).no_compile_cache
    assert parse(["noise", "--no-compile-cache"]).no_compile_cache
    assert parse(["reproduce", "--quick", "--no-compile-cache"]).no_compile_cache


@pytest.mark.parametrize(
    ("flag", "env"),
    [(["--no-compile-cache"], {}), ([], {"JAXPRECOND_COMPILE_CACHE": "0"})],
    ids=["flag", "env-0"],
)
def test_opting_out_leaves_no_cache_folder(tmp_path, flag, env):
    args = ["sweep", coin_sweep_file(tmp_path), "--no-progress", *flag]
    result = cli(tmp_path, *args, **env)
    assert result["dir"] is None and result["requests"] > 0  # it compiled, without the cache
    assert not (tmp_path / "xdg" / "jaxprecond").exists()
    assert not (tmp_path / "home" / ".cache" / "jaxprecond").exists()
    no_cache_files_in(tmp_path / "coin-run")


def test_the_env_variable_chooses_the_folder(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    result = cli(
        tmp_path, "sweep", coin_sweep_file(tmp_path), "--no-progress",
        JAXPRECOND_COMPILE_CACHE=str(elsewhere),
    )  # fmt: skip
    assert result["dir"] == str(elsewhere) and entries(elsewhere)
    assert not default_cache(tmp_path).exists()


def test_a_cache_folder_of_the_users_own_is_kept(tmp_path):
    theirs = tmp_path / "theirs"
    result = cli(
        tmp_path, "sweep", coin_sweep_file(tmp_path), "--no-progress",
        JAX_COMPILATION_CACHE_DIR=str(theirs),
    )  # fmt: skip
    assert result["dir"] == str(theirs)
    assert result["min_compile_time"] == 1.0  # JAX's default: their settings, not ours
    assert not default_cache(tmp_path).exists()


def test_importing_leaves_jax_alone_and_run_functions_turn_the_cache_on(tmp_path):
    """From Python: nothing on import; on at the first run; ``disable()`` turns it off."""
    coin_sweep_file(tmp_path)
    code = textwrap.dedent(
        """
        import json, sys
        import jax
        def settings():
            return [jax.config.jax_compilation_cache_dir,
                    jax.config.jax_persistent_cache_min_compile_time_secs]
        before = settings()
        import jaxprecond, jaxprecond.cli, jaxprecond.report, jaxprecond.reproduce
        from jaxprecond.experiments import NAMES, find
        for name in NAMES:
            find(name)
        imported = settings()
        sys.path.insert(0, ".")
        from coin import COIN, Coin
        from jaxprecond.engine import compile_cache
        COIN.sweep(Coin(seeds=2), out="py-run", progress=False)
        ran = settings()
        compile_cache.disable()
        off = settings()
        COIN.sweep(Coin(seeds=3), progress=False)  # a new program: not written
        print(json.dumps([before, imported, ran, off, compile_cache.enable()]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    before, imported, ran, off, again = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == imported == [None, 1.0]
    cache = default_cache(tmp_path)
    assert ran == [str(cache), 0.0]
    assert off == [None, 1.0] and again is None
    assert entries(cache)
    no_cache_files_in(tmp_path / "py-run")
