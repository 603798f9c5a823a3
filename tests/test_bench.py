"""The benchmark harness works (bench/compare.py, the asv suite).  No test here asserts a
time: performance is measured by running the benchmarks, not by the test suite."""
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import compare, peers, workloads  # noqa: E402


def test_compare_quick_run_writes_json_table_and_readme(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    before = readme.read_text()
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compare.py"), "--quick", "--workloads", "W5",
         "--repeat", "3", "--no-fit", "--output-dir", str(tmp_path / "results"),
         "--machine", "testbox", "--readme", "--readme-file", str(readme)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "OPENBLAS_CORETYPE": "Prescott", "OPENBLAS_L2_SIZE": "65536"})
    assert out.returncode == 0, out.stderr[-3000:]
    (path,) = (tmp_path / "results").glob("*-testbox-quick.json")
    result = json.loads(path.read_text())
    for key in ("machine", "cpu_model", "date", "command", "versions", "peers", "workloads",
                "gemm_ceiling", "table_markdown"):
        assert key in result, key
    assert result["machine"] == "testbox"
    # the OpenBLAS pins are removed from the workers' environment, and that is recorded
    assert sorted(result["environment"]["removed"]) == ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"]
    for info in result["peers"].values():
        if info["available"]:
            assert info["versions"]["env"]["OPENBLAS_CORETYPE"] is None
            assert info["versions"]["env"]["OPENBLAS_NUM_THREADS"] == "2"
    w5 = result["workloads"]["W5"]
    for mode in ("step", "infer"):
        fastnn = w5["timings"][mode]["fastnn"]
        assert fastnn["n"] == 3 and 0 < fastnn["p10"] <= fastnn["median"] <= fastnn["p90"]
        assert w5["timings"][mode]["blas"]["median"] > 0  # the ceiling, timed in turns
        assert w5["summary"][mode]["targets"]
        assert w5["summary"][mode]["pct_of_ceiling"] > 0
    # every peer that started agrees with fastnn's step, and was timed
    for role, info in result["peers"].items():
        assert "threadpool_info" in info or not info["available"]
        if role in ("fastnn", "blas") or not info["available"]:
            continue
        assert w5["check"][role]["ok"], w5["check"][role]
        assert role in w5["timings"]["step"]
    assert "first_step_s" in w5["fastnn_cold"], w5["fastnn_cold"]
    assert "| W5 tiny |" in out.stdout and ("PASS" in out.stdout or "MISS" in out.stdout)
    # --readme rewrote only the benchmarks region of the given file
    after = readme.read_text()
    start, end = compare.SECTION_START, compare.SECTION_END
    assert after.split(start)[0] == before.split(start)[0]
    assert after.split(end)[1] == before.split(end)[1]
    assert "| W5 tiny |" in after.split(start)[1].split(end)[0]
    assert "asv publish" in after
    # --readme-from renders the same section from the saved JSON, running nothing
    readme.write_text(before)
    assert compare.main(["--readme-from", str(path), "--readme-file", str(readme)]) == 0
    assert readme.read_text() == after


# ------------------------------------------------------- the parameter check catches a wrong step

class _Direct:
    """A worker answered in this process (the real peers.Worker, no pipe)."""

    def __init__(self, worker):
        self.worker = worker

    def call(self, cmd, timeout=None, **kw):
        return getattr(self.worker, cmd)({"cmd": cmd, **kw})

    def settle(self):
        return 0.0


def _wrong_peer(how):
    class Wrong(peers.NumpyPeer):
        role = "numpy"

        def load(self, w, dtype, params, X, labels, Y):
            if how == "no_l2":
                w = dataclasses.replace(w, l2=0.0)
            super().load(w, dtype, params, X, labels, Y)
            if how == "lr":
                self.opt.lr = workloads.LR * 1.001
            if how == "frozen_bias":
                net, inner = self.net, self._step

                def step():
                    biases = [b.copy() for _, b in net._Wb]
                    inner()
                    for (_, b), old in zip(net._Wb, biases):
                        b[...] = old
                self._step = step
    return Wrong


def _in_process_run(monkeypatch, wrong):
    import fastnn

    threads = fastnn.get_num_threads()  # keep this process's thread count as it is
    args = types.SimpleNamespace(quick=True, repeat=2, threads=threads, backend="cpu")
    run = compare.Run(args, log=lambda s: None)
    run.cfg.update(turn=0.001, warm=0.0)
    monkeypatch.setitem(peers.PEERS, "wrong", _wrong_peer(wrong))
    # fastnn on its reference backend here: this tests the harness, not the cpu kernels
    run.workers = {"fastnn": _Direct(peers.Worker("numpy", threads, "cpu")),
                   "numpy": _Direct(peers.Worker("numpy", threads, "cpu")),
                   "wrong": _Direct(peers.Worker("wrong", threads, "cpu"))}
    monkeypatch.setattr(run, "cold", lambda w, env: {})
    return run


@pytest.mark.parametrize("key,wrong", [("W5", "lr"), ("W5", "frozen_bias"), ("W3", "no_l2")])
def test_parameter_check_rejects_a_wrong_step(monkeypatch, tmp_path, key, wrong):
    run = _in_process_run(monkeypatch, wrong)
    try:
        entry = run.workload(workloads.get(key), ["numpy", "wrong"], {}, str(tmp_path))
    finally:
        for wp in run.workers.values():
            wp.worker.limits.restore_original_limits()
    assert entry["check"]["numpy"]["ok"], entry["check"]["numpy"]
    assert not entry["check"]["wrong"]["ok"], entry["check"]["wrong"]
    assert not entry["check"]["wrong"]["float64"]["ok"]
    assert "numpy" in entry["timings"]["step"] and "wrong" not in entry["timings"]["step"]
    assert any("wrong" in n or "not timed" in n for n in run.notes)


def test_compare_params_uses_the_tolerance_table():
    a = {"W0": np.ones((3, 2)), "b0": np.zeros(2)}
    assert compare.compare_params(a, a, "float64")[0]
    near = {"W0": a["W0"] * (1 + 1e-6), "b0": a["b0"]}
    assert compare.compare_params(near, a, "float32")[0]      # within float32's rtol 1e-4
    assert not compare.compare_params(near, a, "float64")[0]  # not within float64's 1e-10
    assert not compare.compare_params({"W0": a["W0"]}, a, "float32")[0]


def test_flop_counts_follow_the_three_gemms_per_layer():
    w = workloads.get("W1")
    m = w.batch
    fwd = 2 * m * (784 * 256 + 256 * 128 + 128 * 10)
    assert w.flops("infer") == fwd
    assert w.flops("step") == 3 * fwd - 2 * m * 784 * 256  # no backward-to-input for layer 1


def test_cuda_backend_without_gpu_says_so_and_exits_zero(capsys):
    env, _ = compare.worker_env(1, "cuda")
    if compare.cuda_problem(env) is None:
        pytest.skip("a CUDA GPU is present: the no-GPU path does not apply")
    assert compare.main(["--backend", "cuda", "--quick", "--workloads", "W5"]) == 0
    assert "no CUDA GPU is usable here" in capsys.readouterr().out


def test_asv_check_passes():
    pytest.importorskip("asv")
    out = subprocess.run([sys.executable, "-m", "asv", "check", "--python=same"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "No problems found" in out.stdout


def test_fit_loop_script_runs(tmp_path):
    """bench/fit_loop.py (the compiled loop's saving, quoted in the README) runs and
    records both timings of both fits."""
    root = pathlib.Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, str(root / "bench" / "fit_loop.py"), "--repeat", "1",
                        "--output-dir", str(tmp_path)], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    (path,) = tmp_path.glob("*-fit-loop.json")
    result = json.loads(path.read_text())
    assert set(result["results"]) == {"Network.fit", "MLPClassifier.fit"}
    for r in result["results"].values():
        assert r["loop_s"] > 0 and r["per_step_call_s"] > 0


def test_asv_full_training_benchmark_runs():
    """The asv FullTraining benchmark fits and reports a ratio (its size is not tested:
    performance lives in bench/)."""
    from bench.benchmarks import FullTraining

    b = FullTraining()
    b.setup("cpu")
    b.time_fit_digits("cpu")
    ratio = b.track_fit_speedup_vs_sklearn("cpu")
    assert np.isfinite(ratio) and ratio > 0
