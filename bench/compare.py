"""fastnn side by side with its peers, in one run: ``python bench/compare.py``.

For every workload of ``bench/workloads.py`` (W1 mnist, W2 catvnoncat, W3 ng-ex4, W4 wide,
W5 tiny) this times one training step (forward + backward + SGD update) and one inference
of fastnn and of each peer -- torch eager, JAX jit, scikit-learn's MLPClassifier.partial_fit
(where the workload can be expressed in it) and plain vectorized NumPy (fastnn's
"reference" backend) -- and prints a table of medians, p10/p90, ratios against the best
peer and against torch eager, fastnn's GFLOP/s and its fraction of the GEMM ceiling
(NumPy's BLAS on the same GEMM shapes, measured in the same run), with PASS/MISS per target.

The rules:

* every peer runs in its own worker process (``bench/peers.py``), which stays alive and is
  told over a pipe to run one timing turn at a time; turns are interleaved (A B C ... A B C
  ..., the order rotated every round), so a noisy neighbour hits every peer alike;
* every worker uses the same number of threads (2 by default): torch.set_num_threads,
  XLA_FLAGS for JAX, threadpoolctl for every BLAS/OpenMP pool, fastnn.set_num_threads, and
  the usual environment variables.  OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed
  from the workers' environment (they pin OpenBLAS to a kernel that is not this CPU's);
  threadpoolctl's report from every worker is recorded;
* every turn starts on an idle machine: after a turn (and after each full-training fit)
  the coordinator waits until that worker has stopped using CPU (BLAS and OpenMP threads
  spin-wait for ~0.1 s after their last call; a turn started meanwhile would run on one
  core instead of two);
* warm-up first: JIT compilation is never timed; fastnn's cold first step (import, JIT
  compile or Numba cache load) is measured separately in a fresh interpreter;
* before timing, one SGD step from identical parameters and data is run by every peer and
  its updated parameters are compared with fastnn's (``fastnn.kernels.allclose``, the one
  tolerance table): a peer that disagrees is not timed.  float32 implementations
  accumulate in different orders, so a float32 step is compared with fastnn's *float64*
  step at float32 tolerance; each peer's float64 step is also compared with fastnn's
  float64 step at float64 tolerance (which a wrong step cannot pass);
* results go to ``bench/results/<date>-<machine>.json`` (``-quick`` added for --quick
  runs); ``--readme`` rewrites the benchmarks section of README.md with the table.

``main(argv=None)`` is the entry point (the ``fastnn bench`` command calls it).
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import select
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench import gemm, workloads  # noqa: E402
from bench.peers import LABELS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PEERS_PY = Path(__file__).resolve().parent / "peers.py"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
README = ROOT / "README.md"
SECTION_START, SECTION_END = "<!-- section:benchmarks -->", "<!-- /section:benchmarks -->"

CPU_PEERS = ("numpy", "torch", "jax", "sklearn")
CUDA_PEERS = ("torch",)
#: the module each worker needs; a peer whose module is not installed is skipped
MODULES = {"fastnn": "fastnn", "numpy": "numpy", "torch": "torch", "jax": "jax",
           "sklearn": "sklearn", "blas": "numpy"}
#: environment variables that pin OpenBLAS to a core type / cache size: removed for workers
OPENBLAS_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
MODES = ("step", "infer")
#: after each turn, wait until the worker is idle (at most SETTLE_LIMIT_S): a worker's
#: BLAS/OpenMP threads keep spinning for ~0.1 s after its last call and would take cores
#: from the next peer's turn.  Idle = no CPU tick (10 ms) in SETTLE_WINDOW_S.
SETTLE_LIMIT_S, SETTLE_WINDOW_S, SETTLE_FALLBACK_S = 1.0, 0.025, 0.2

FULL = dict(repeat=21, turn=0.1, warm=0.3, gemm=dict(min_sample=0.03, samples=7), fit_repeat=7)
QUICK = dict(repeat=5, turn=0.02, warm=0.05, gemm=dict(min_sample=0.005, samples=3), fit_repeat=1)


class WorkerError(RuntimeError):
    pass


# ====================================================================== worker processes

class WorkerProc:
    """One peer's worker process; `call` sends a request and waits for its answer."""

    def __init__(self, role, threads, backend, env, log_dir, timeout=600):
        self.role = role
        self.log_path = Path(log_dir) / f"{role}.stderr.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(PEERS_PY), role, str(threads), backend],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env,
            cwd=str(ROOT), text=True, bufsize=1)
        self._timeout = timeout

    def ready(self):
        return self._read(self._timeout)

    def _log_tail(self, n=1500):
        try:
            return self.log_path.read_text()[-n:]
        except OSError:
            return ""

    def _read(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            self.kill()
            raise WorkerError(f"{self.role} worker gave no answer within {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            raise WorkerError(f"{self.role} worker exited (code {self.proc.returncode}): "
                              f"{self._log_tail()}")
        reply = json.loads(line)
        if not reply["ok"]:
            raise WorkerError(f"{self.role}: {reply['error']}\n{reply.get('traceback', '')}")
        return reply["result"]

    def call(self, cmd, timeout=None, **kw):
        if self.proc.poll() is not None:
            raise WorkerError(f"{self.role} worker is not running: {self._log_tail()}")
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()
        return self._read(timeout or self._timeout)

    def cpu_ticks(self):
        """CPU time of the worker (all its threads) in clock ticks, or None without /proc."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            return None

    def settle(self, limit_s=SETTLE_LIMIT_S, window_s=SETTLE_WINDOW_S):
        """Wait until the worker burns no CPU (its BLAS/OpenMP threads spin-wait ~0.1 s
        after work, on the cores the next turn needs); seconds waited."""
        t0 = time.perf_counter()
        last = self.cpu_ticks()
        if last is None:
            time.sleep(SETTLE_FALLBACK_S)
            return time.perf_counter() - t0
        while time.perf_counter() - t0 < limit_s:
            time.sleep(window_s)
            now = self.cpu_ticks()
            if now is None or now == last:
                break
            last = now
        return time.perf_counter() - t0

    def close(self):
        try:
            if self.proc.poll() is None:
                self.call("quit", timeout=30)
                self.proc.wait(timeout=30)
        except Exception:
            self.kill()
        finally:
            self._log.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def worker_env(threads, backend):
    """The workers' environment: ours minus the OpenBLAS pins, plus the thread settings."""
    env = dict(os.environ)
    removed = {k: env.pop(k) for k in OPENBLAS_PINS if k in env}
    t = str(threads)
    env.update(OMP_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t, MKL_NUM_THREADS=t,
               NUMBA_NUM_THREADS=t, VECLIB_MAXIMUM_THREADS=t,
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p))
    xla = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                   if not f.lstrip("-").startswith(("xla_cpu_multi_thread_eigen",
                                                    "intra_op_parallelism_threads")))
    env["XLA_FLAGS"] = (xla + " --xla_cpu_multi_thread_eigen=true "
                        f"intra_op_parallelism_threads={t}").strip()
    if backend == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env, removed


def installed(module):
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# ====================================================================== statistics

def stats(samples):
    a = np.asarray(samples, dtype=float)
    p10, med, p90 = np.percentile(a, [10, 50, 90])
    return {"median": float(med), "p10": float(p10), "p90": float(p90), "n": int(a.size),
            "samples": [float(x) for x in a]}


def compare_params(actual, desired, dtype):
    """fastnn.kernels.allclose on every array; (ok, worst |diff| / (1 + |desired|max))."""
    from fastnn.kernels import allclose

    ok, worst = True, 0.0
    keys = sorted(desired)
    if sorted(actual) != keys:
        return False, math.inf
    for k in keys:
        a, d = actual[k], desired[k]
        if a.shape != d.shape:
            return False, math.inf
        ok &= allclose(a, d, dtype)
        scale = max(1.0, float(np.max(np.abs(d)))) if d.size else 1.0
        worst = max(worst, float(np.max(np.abs(a - d))) / scale if d.size else 0.0)
    return bool(ok), worst


def _load_npz(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


# ====================================================================== the run

class Run:
    def __init__(self, args, log=print):
        self.args = args
        self.log = log
        self.cfg = dict(QUICK if args.quick else FULL)
        if args.repeat:
            self.cfg["repeat"] = args.repeat
        self.workers = {}
        self.notes = []
        self.peer_info = {}

    # ------------------------------------------------------------------ workers
    def start_workers(self, roles, env, log_dir):
        pending = {}
        for role in roles:
            if not installed(MODULES[role]):
                self.peer_info[role] = {"available": False,
                                        "note": f"{MODULES[role]} is not installed: skipped"}
                self.notes.append(f"{_label(role)}: {MODULES[role]} is not installed, skipped.")
                continue
            pending[role] = WorkerProc(role, self.args.threads, self.args.backend, env, log_dir)
        for role, wp in pending.items():  # they start in parallel; collect each in turn
            try:
                wp.ready()
                self.peer_info[role] = {"available": True, "versions": wp.call("hello")}
                self.workers[role] = wp
            except WorkerError as exc:
                wp.kill()
                msg = str(exc).strip().splitlines()
                self.peer_info[role] = {"available": False, "note": str(exc)}
                self.notes.append(f"{_label(role)}: could not start ({msg[0] if msg else exc}); "
                                  "skipped.")
                self.log(f"  ! {role}: {msg[0] if msg else exc}")

    def close(self):
        for role, wp in self.workers.items():
            try:
                self.peer_info[role]["threadpool_info"] = wp.call("info", timeout=60)[
                    "threadpool_info"]
            except Exception as exc:
                self.peer_info[role]["threadpool_info"] = [{"error": repr(exc)}]
            wp.close()

    # ------------------------------------------------------------------ GEMM ceiling
    def gemm_ceiling(self, wls):
        """Square sgemm/dgemm GFLOP/s, and each GEMM of each workload on its own (the
        workload ceilings themselves are timed in turns among the peers: role "blas")."""
        blas = self.workers.get("blas")
        if blas is None:
            return {"note": "not measured (the NumPy BLAS worker did not start)"}
        kw = self.cfg["gemm"]
        dtypes = sorted({w.dtype for w in wls} | {"float32"})
        self.log(f"GEMM ceiling: NumPy BLAS, {', '.join(dtypes)}, square "
                 f"{', '.join(map(str, gemm.SQUARE_SIZES))} and each workload's GEMM shapes")
        sq = blas.call("gemm_square", dtypes=dtypes, sizes=list(gemm.SQUARE_SIZES), kw=kw)
        out = {"square_gflops": sq, "peak_gflops": {dt: max(v.values()) for dt, v in sq.items()},
               "per_gemm": {}}
        for w in wls:
            out["per_gemm"][w.key] = {m: blas.call("gemm_workload", workload=w.key, mode=m, kw=kw)
                                      for m in MODES}
        return out

    # ------------------------------------------------------------------ parameter check
    def check(self, w, roles, tmp):
        """One SGD step per peer from identical parameters and data, compared with fastnn's."""
        fastnn = self.workers["fastnn"]
        dtypes = [w.dtype] if w.dtype == "float64" else [w.dtype, "float64"]
        ref = {}
        for dt in dtypes:
            path = os.path.join(tmp, f"fastnn-{w.key}-{dt}.npz")
            fastnn.call("check", workload=w.key, dtype=dt, path=path)
            ref[dt] = _load_npz(path)
        result = {}
        # fastnn's own float32 step against its float64 step (information: it is timed anyway)
        if w.dtype != "float64":
            ok, err = compare_params(ref[w.dtype], ref["float64"], w.dtype)
            result["fastnn"] = {"ok": ok, w.dtype: {"ok": ok, "max_err": err,
                                                    "against": "fastnn float64 step"}}
        else:
            result["fastnn"] = {"ok": True, "note": "the reference for the others"}
        for role in roles:
            wp = self.workers[role]
            entry = {}
            try:
                for dt in dtypes:
                    path = os.path.join(tmp, f"{role}-{w.key}-{dt}.npz")
                    r = wp.call("check", workload=w.key, dtype=dt, path=path)
                    if r.get("skip"):
                        entry = {"ok": False, "skip": r["skip"]}
                        break
                    ok, err = compare_params(_load_npz(path), ref["float64"], dt)
                    entry[dt] = {"ok": ok, "max_err": err, "against": "fastnn float64 step",
                                 "tolerance": dt}
                else:
                    entry["ok"] = all(entry[dt]["ok"] for dt in dtypes)
            except WorkerError as exc:
                entry = {"ok": False, "error": str(exc).splitlines()[0]}
            result[role] = entry
        return result

    # ------------------------------------------------------------------ timing
    def measure_workload(self, w, roles):
        """Warm up every peer, then `repeat` rounds of interleaved turns, per mode."""
        cfg = self.cfg
        numbers, warm = {}, {}
        live = []
        for role in roles:
            wp = self.workers[role]
            try:
                wp.call("load", workload=w.key, dtype=w.dtype)
                for mode in MODES:
                    warm[(role, mode)] = wp.call("warm", mode=mode, target=cfg["turn"],
                                                 warm_s=cfg["warm"])
                    numbers[(role, mode)] = warm[(role, mode)]["number"]
                wp.settle()
                live.append(role)
            except WorkerError as exc:
                self.notes.append(f"{w.key} {_label(role)}: failed while warming up "
                                  f"({str(exc).splitlines()[0]}); not timed.")
        samples = {(r, m): [] for r in live for m in MODES}
        settled = {r: [] for r in live}
        for rep in range(cfg["repeat"]):
            k = rep % max(1, len(live))
            order = live[k:] + live[:k]
            for mode in MODES:
                for role in order:
                    if (role, mode) not in samples:
                        continue
                    try:
                        s = self.workers[role].call("turn", mode=mode,
                                                    number=numbers[(role, mode)])["seconds"]
                        samples[(role, mode)].append(s)
                        settled[role].append(self.workers[role].settle())
                    except WorkerError as exc:
                        self.notes.append(f"{w.key} {_label(role)} {mode}: failed during "
                                          f"timing ({str(exc).splitlines()[0]}).")
                        del samples[(role, mode)]
        out = {m: {} for m in MODES}
        for (role, mode), s in samples.items():
            if s:
                out[mode][role] = {**stats(s), "calls_per_turn": numbers[(role, mode)],
                                   "first_call_s": warm[(role, mode)]["first_call_s"],
                                   "settle_median_s": float(np.median(settled[role]))}
        return out

    def cold(self, w, env):
        """fastnn's first step in a fresh interpreter."""
        try:
            p = subprocess.run([sys.executable, str(PEERS_PY), "--cold", w.key,
                                str(self.args.threads), self.args.backend], env=env,
                               cwd=str(ROOT), capture_output=True, text=True, timeout=900)
            if p.returncode:
                return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else
                        f"exit code {p.returncode}"}
            return json.loads(p.stdout.strip().splitlines()[-1])
        except Exception as exc:
            return {"error": repr(exc)}

    def full_training(self):
        roles = [r for r in ("fastnn", "sklearn") if r in self.workers]
        if len(roles) < 2:
            return {"skip": "needs both the fastnn and the sklearn workers"}
        self.log("full training: digits, fastnn.sklearn.MLPClassifier vs "
                 "sklearn.neural_network.MLPClassifier, same hyperparameters")
        runs = {r: [] for r in roles}
        settled = {r: [] for r in roles}
        # rep -1: an untimed warm-up fit each (compile or cache load, first-call costs);
        # after every fit, the next waits until this worker's threads stop spinning
        for rep in range(-1, self.cfg["fit_repeat"]):
            for role in (roles if rep % 2 == 0 else roles[::-1]):
                r = self.workers[role].call("fit_digits", timeout=1800)
                if r.get("skip"):
                    return {"skip": r["skip"], "hyperparameters": _jsonable(workloads.DIGITS_FIT)}
                wait = self.workers[role].settle()
                if rep >= 0:
                    runs[role].append(r)
                    settled[role].append(wait)
        out = {"hyperparameters": _jsonable(workloads.DIGITS_FIT), "data": "sklearn digits / 16, "
               "70/30 stratified split (random_state=0)"}
        for role, rs in runs.items():
            last = {k: rs[-1][k] for k in ("accuracy", "n_iter", "dropped_params", "dtype")}
            out[role] = {**stats([r["seconds"] for r in rs]), **last,
                         "settle_median_s": float(np.median(settled[role]))}
        out["ratio"] = out["sklearn"]["median"] / out["fastnn"]["median"]
        out["target"] = workloads.FIT_TARGET
        out["verdict"] = "PASS" if out["ratio"] >= workloads.FIT_TARGET else "MISS"
        return out

    # ------------------------------------------------------------------ everything
    def run(self):
        args = self.args
        t_start = time.perf_counter()
        load_start = _loadavg()
        wls = workloads.parse(args.workloads)
        env, removed = worker_env(args.threads, args.backend)
        if removed:
            self.notes.append("removed from the workers' environment: " + ", ".join(
                f"{k}={v}" for k, v in removed.items()))
        peers = list(CUDA_PEERS if args.backend == "cuda" else CPU_PEERS)
        if args.peers:
            wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
            unknown = sorted(set(wanted) - set(CPU_PEERS) - set(CUDA_PEERS))
            if unknown:
                raise SystemExit(f"unknown peers {unknown}; choose from {CPU_PEERS}")
            peers = [p for p in peers if p in wanted]
        roles = ["fastnn"] + peers + (["blas"] if args.backend == "cpu" else [])
        result = {"schema": 1, "date": datetime.datetime.now().astimezone().isoformat(
            timespec="seconds"), "machine": args.machine, **machine_info(),
            "command": " ".join(["python", "bench/compare.py"] + list(args.argv)),
            "options": {"workloads": [w.key for w in wls], "repeat": self.cfg["repeat"],
                        "quick": args.quick, "backend": args.backend, "threads": args.threads,
                        "turn_seconds": self.cfg["turn"], "peers": peers},
            "environment": {"removed": removed, "worker_env": {
                k: env.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                        "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "XLA_FLAGS",
                                        "JAX_PLATFORMS")}},
            "fastnn_step": "Network._step_device (one training-step call; Network.fit runs "
                           "an epoch's steps in compiled loops); inference: "
                           "Network._forward_output",
            "workloads": {}}
        with tempfile.TemporaryDirectory(prefix="fastnn-bench-") as tmp:
            self.log(f"starting workers ({', '.join(roles)}), {args.threads} threads each")
            self.start_workers(roles, env, tmp)
            try:
                if "fastnn" not in self.workers:
                    raise SystemExit("fastnn's worker did not start: "
                                     + self.peer_info["fastnn"].get("note", "?"))
                if args.backend == "cpu":
                    result["gemm_ceiling"] = self.gemm_ceiling(wls)
                else:
                    result["gemm_ceiling"] = {"note": "NumPy's BLAS is a CPU ceiling; not "
                                                      "measured for --backend cuda"}
                for w in wls:
                    result["workloads"][w.key] = self.workload(w, peers, env, tmp)
                if args.backend == "cpu" and not args.no_fit:
                    try:
                        result["full_training"] = self.full_training()
                    except WorkerError as exc:
                        result["full_training"] = {"error": str(exc).splitlines()[0]}
            finally:
                self.close()
        result["peers"] = self.peer_info
        result["versions"] = collect_versions(self.peer_info)
        result["notes"] = self.notes
        result["elapsed_s"] = time.perf_counter() - t_start
        result["loadavg"] = {"start": load_start, "end": _loadavg()}
        summarize(result)
        return result

    def workload(self, w, peers, env, tmp):
        self.log(f"{w.key} {w.name}: {w.spec}")
        entry = {"name": w.name, "spec": w.spec, "sizes": list(w.sizes), "batch": w.batch,
                 "dtype": w.dtype, "l2": w.l2, "flops": {m: w.flops(m) for m in MODES},
                 "gemms": {m: w.gemms(m) for m in MODES}, "targets": w.targets}
        kw, note = workloads.sklearn_mapping(w)
        entry["sklearn_mapping"] = note
        live = [p for p in peers if p in self.workers]
        try:
            entry["check"] = self.check(w, live, tmp)
        except WorkerError as exc:
            entry["error"] = f"fastnn failed the check step: {str(exc).splitlines()[0]}"
            self.notes.append(f"{w.key}: {entry['error']}")
            return entry
        for role in live:
            c = entry["check"][role]
            if not c["ok"]:
                why = c.get("skip") or c.get("error") or "updated parameters differ from fastnn's"
                self.notes.append(f"{w.key} {_label(role)}: not timed: {why}.")
                self.log(f"  {role}: not timed: {why}")
        timed = ["fastnn"] + [p for p in live if entry["check"][p]["ok"]]
        if "blas" in self.workers:  # the GEMM ceiling, in turns with the others
            timed.append("blas")
        entry["timings"] = self.measure_workload(w, timed)
        entry["fastnn_cold"] = self.cold(w, env)
        for mode in MODES:
            t = entry["timings"][mode]
            if "fastnn" in t:
                self.log(f"  {mode}: " + ", ".join(f"{r} {fmt_s(v['median'])}"
                                                   for r, v in t.items()))
        return entry


def _label(role):
    return LABELS.get(role, role)


def _loadavg():
    try:
        return list(os.getloadavg())
    except OSError:  # pragma: no cover
        return None


def _jsonable(d):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def machine_info():
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    try:  # the model name alone ("AMD EPYC") does not tell a Zen 3 from a Zen 5
        import llvmlite.binding as ll

        arch = ll.get_host_cpu_name()
        if ll.get_host_cpu_features().get("avx512f", False):
            arch += ", AVX-512"
    except Exception:  # pragma: no cover - llvmlite comes with numba
        arch = None
    return {"cpu_model": cpu or platform.processor() or platform.machine(), "cpu_arch": arch,
            "cpu_count": os.cpu_count(), "cpus_usable": usable,
            "platform": platform.platform(), "python": platform.python_version()}


def collect_versions(peer_info):
    v = {"python": platform.python_version(), "numpy": np.__version__}
    for role, info in peer_info.items():
        for k, val in (info.get("versions") or {}).items():
            if k in ("fastnn", "numba", "torch", "jax", "jaxlib", "scikit-learn", "scipy"):
                v[k] = val
    try:
        import threadpoolctl

        v["threadpoolctl"] = threadpoolctl.__version__
    except ImportError:  # pragma: no cover
        pass
    return v


# ====================================================================== summary and table

def summarize(result):
    """Ratios, GFLOP/s, ceilings and PASS/MISS into each workload entry."""
    ceil = result.get("gemm_ceiling", {})
    for key, e in result["workloads"].items():
        if "timings" not in e:
            continue
        e["summary"] = {}
        for mode in MODES:
            t = e["timings"][mode]
            f = t.get("fastnn")
            s = {}
            if f:
                peers = {r: v["median"] for r, v in t.items() if r not in ("fastnn", "blas")}
                if peers:
                    best = min(peers, key=peers.get)
                    s["best_peer"] = best
                    s["best_ratio"] = peers[best] / f["median"]
                if "torch" in peers:
                    s["torch_ratio"] = peers["torch"] / f["median"]
                s["gflops"] = {r: e["flops"][mode] / v["median"] / 1e9 for r, v in t.items()}
                if "blas" in t:  # NumPy's BLAS doing only this step's GEMMs
                    s["ceiling_gflops"] = s["gflops"].pop("blas")
                    s["pct_of_ceiling"] = 100 * s["gflops"]["fastnn"] / s["ceiling_gflops"]
                peak = ceil.get("peak_gflops", {}).get(e["dtype"])
                if peak:
                    s["pct_of_peak"] = 100 * s["gflops"]["fastnn"] / peak
            targets = []
            if mode == "step":
                if "best" in e["targets"]:
                    targets.append(("best", e["targets"]["best"], s.get("best_ratio")))
                if "torch" in e["targets"]:
                    targets.append(("torch", e["targets"]["torch"], s.get("torch_ratio")))
            else:
                targets.append(("best", workloads.INFERENCE_TARGET, s.get("best_ratio")))
            s["targets"] = [{"against": a, "target": x, "ratio": r,
                             "verdict": "n/a" if r is None else ("PASS" if r >= x else "MISS")}
                            for a, x, r in targets]
            e["summary"][mode] = s


def fmt_s(s):
    if s is None or not math.isfinite(s):
        return "–"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def fmt_ratio(r, bar=None):
    """r as "1.23×"; with three decimals where two would round it onto the bar (a MISS
    printed as "1.30× (≥1.3 MISS)" reads as a contradiction)."""
    if r is None or not math.isfinite(r):
        return "–"
    if r >= 100:
        return f"{r:.0f}×"
    if bar is not None and (r >= bar) != (round(r, 2) >= bar):
        return f"{r:.3f}×"
    return f"{r:.2f}×"


def _cell(t):
    if t is None:
        return "–"
    return f"{fmt_s(t['median'])} [{fmt_s(t['p10'])}, {fmt_s(t['p90'])}]"


def _target_cell(s, against):
    for t in s.get("targets", []):
        if t["against"] == against:
            r = fmt_ratio(t["ratio"], t["target"])
            return f"{r} (≥{t['target']:g} {t['verdict']})"
    return fmt_ratio(s.get("best_ratio" if against == "best" else "torch_ratio"))


def table(result):
    """The Markdown tables of a result."""
    backend = result["options"]["backend"]
    peers = result["options"]["peers"]
    cols = ["fastnn"] + peers
    lines = []
    for mode, title in (("step", "Training step (forward + backward + SGD update)"),
                        ("infer", "Inference (forward, output activations)")):
        lines += [f"**{title}** — time per call, median [p10, p90]", "",
                  "| workload | " + " | ".join(_label(c) for c in cols)
                  + " | best peer ÷ fastnn | torch ÷ fastnn | fastnn GFLOP/s | BLAS ceiling GFLOP/s"
                    " | % of ceiling |",
                  "|---" * (len(cols) + 6) + "|"]
        for key, e in result["workloads"].items():
            name = f"{key} {e['name']}"
            if "timings" not in e:
                lines.append(f"| {name} | {e.get('error', '–')} |" + " |" * (len(cols) + 4))
                continue
            t, s = e["timings"][mode], e["summary"][mode]
            cells = []
            for c in cols:
                chk = e["check"].get(c, {})
                if c in t:
                    cells.append(_cell(t[c]))
                elif chk.get("skip"):
                    cells.append("n/a")
                elif c != "fastnn" and chk and not chk.get("ok"):
                    cells.append("check failed")
                else:
                    cells.append("–")
            best = s.get("best_peer")
            best_txt = _target_cell(s, "best") + (f" vs {_label(best)}" if best else "")
            num = lambda x, f: "–" if x is None else format(x, f)  # noqa: E731
            cells += [best_txt, _target_cell(s, "torch"),
                      num(s.get("gflops", {}).get("fastnn"), ".3g"),
                      num(s.get("ceiling_gflops"), ".3g"),
                      num(s.get("pct_of_ceiling"), ".0f") + ("%" if "pct_of_ceiling" in s else "")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    ceil = result.get("gemm_ceiling", {})
    if "square_gflops" in ceil:
        sizes = sorted({int(n) for v in ceil["square_gflops"].values() for n in v})
        lines += ["**GEMM ceiling** — NumPy's BLAS, GFLOP/s, n×n×n. (The ceiling columns above: "
                  "NumPy's BLAS doing exactly the GEMMs of that step or inference, timed in "
                  "turns with the peers.)", "",
                  "| dtype | " + " | ".join(f"n={n}" for n in sizes) + " | peak |",
                  "|---" * (len(sizes) + 2) + "|"]
        for dt, v in ceil["square_gflops"].items():
            v = {int(k): x for k, x in v.items()}
            lines.append(f"| {dt} | " + " | ".join(f"{v[n]:.3g}" for n in sizes)
                         + f" | {ceil['peak_gflops'][dt]:.3g} |")
        lines.append("")
    cold = [(k, e["fastnn_cold"]) for k, e in result["workloads"].items() if e.get("fastnn_cold")]
    if cold:
        lines += [f"**fastnn cold start** (fresh interpreter, backend {backend!r})", "",
                  "| workload | import fastnn | first step | second step | first inference |"
                  " Numba cache files before |", "|---|---|---|---|---|---|"]
        for k, c in cold:
            if "error" in c:
                lines.append(f"| {k} | error: {c['error']} | | | | |")
            else:
                lines.append(f"| {k} | {fmt_s(c['import_s'])} | {fmt_s(c['first_step_s'])} | "
                             f"{fmt_s(c['second_step_s'])} | {fmt_s(c['first_infer_s'])} | "
                             f"{c['numba_cache_files_before']} |")
        lines.append("")
    ft = result.get("full_training")
    if ft:
        lines += ["**Full training** — scikit-learn digits, fastnn.sklearn.MLPClassifier vs "
                  "sklearn.neural_network.MLPClassifier, same hyperparameters", ""]
        if "fastnn" in ft and "sklearn" in ft:
            hp = ", ".join(f"{k}={v}" for k, v in ft["hyperparameters"].items())
            lines += ["| estimator | fit time, median [p10, p90] | test accuracy | epochs |",
                      "|---|---|---|---|"]
            for r, label in (("fastnn", "fastnn.sklearn"), ("sklearn", "sklearn")):
                lines.append(f"| {label} | {_cell(ft[r])} | {ft[r]['accuracy']:.4f} | "
                             f"{ft[r]['n_iter']} |")
            target = (f" (≥{ft['target']:g} {ft['verdict']})" if "target" in ft else "")
            ratio = fmt_ratio(ft["ratio"], ft.get("target"))
            lines += ["", f"sklearn ÷ fastnn: {ratio}{target}, over "
                      f"{ft['fastnn'].get('n', '?')} fits each, alternating, after an untimed "
                      f"warm-up fit each. Hyperparameters: {hp}."]
        else:
            lines.append(f"Skipped: {ft.get('skip') or ft.get('error')}")
        lines.append("")
    checks = []
    for key, e in result["workloads"].items():
        for role, c in e.get("check", {}).items():
            if role == "fastnn":
                d = c.get(e["dtype"])
                if d and not d["ok"]:
                    checks.append(f"{key}: fastnn's {e['dtype']} step differs from its float64 "
                                  f"step (max err {d['max_err']:.2e}).")
                continue
            if c.get("ok"):
                continue
            why = c.get("skip") or c.get("error") or "; ".join(
                f"{dt} max err {c[dt]['max_err']:.2e}" for dt in ("float32", "float64")
                if dt in c and not c[dt]["ok"])
            checks.append(f"{key} {_label(role)}: {why}")
    ok_line = ("Parameter check (one SGD step from identical parameters and data; float32 steps "
               "against fastnn's float64 step at float32 tolerance, float64 steps at float64 "
               "tolerance, `fastnn.kernels.allclose`): ")
    lines.append(ok_line + ("every timed peer agrees with fastnn." if not checks else
                            "peers that disagree or cannot run the workload are not timed:"))
    lines += [f"- {c}" for c in checks]
    notes = [f"{k} sklearn: {e['sklearn_mapping']}" for k, e in result["workloads"].items()
             if e.get("sklearn_mapping") and "sklearn" in peers]
    torch_cfg = (result.get("peers", {}).get("torch", {}).get("versions") or {}).get(
        "torch_config", "")
    if "Math Kernel Library" in torch_cfg:
        notes.append("torch eager runs its GEMMs in its bundled oneMKL (threadpoolctl cannot see "
                     "it; torch.set_num_threads sets its threads).")
    if notes or result.get("notes"):
        lines += ["", "Notes:"] + [f"- {n}" for n in notes + result.get("notes", [])]
    return "\n".join(lines)


def blas_summary(result):
    """'openblas 0.3.31 (Haswell, 2 threads): fastnn, numpy, ...; ...' from threadpoolctl."""
    seen = {}
    for role, info in result.get("peers", {}).items():
        for lib in info.get("threadpool_info") or []:
            if lib.get("user_api") != "blas":
                continue
            desc = (f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')}"
                    f" kernels, {lib.get('num_threads')} threads)")
            seen.setdefault(desc, []).append(role)
    return "; ".join(f"{d}: {', '.join(r)}" for d, r in seen.items())


def header(result):
    v = result.get("versions", {})
    vs = ", ".join(f"{k} {v[k]}" for k in ("fastnn", "numpy", "numba", "torch", "jax",
                                            "scikit-learn", "python") if k in v)
    la = result.get("loadavg") or {}
    load = ""
    if la.get("start") and la.get("end"):
        peak = max(la["start"][0], la["end"][0])
        load = (f" (1-min load average {la['start'][0]:.1f} at the start, {la['end'][0]:.1f} at "
                "the end" + (": the machine was busy with other work, which slows down "
                             "multi-threaded calls that wait for every thread, BLAS above all; "
                             "read the ratios with care)"
                             if peak > 0.75 * (result.get("cpus_usable") or 1) else ")"))
    arch = f"{result['cpu_arch']}, " if result.get("cpu_arch") else ""
    return (f"{result['date'][:10]} on `{result['machine']}` ({result['cpu_model']}, {arch}"
            f"{result['cpus_usable']} usable cores), {result['options']['threads']} threads for "
            f"every peer, {result['options']['repeat']} interleaved rounds; `{result['command']}` "
            f"took {result['elapsed_s']:.0f} s{load}. Versions: {vs}. BLAS (threadpoolctl): "
            f"{blas_summary(result) or 'not reported'}.")


# ====================================================================== README section

README_HOWTO = """\
## Benchmarks

Two instruments live in `bench/`:

- **`python bench/compare.py`** (also `fastnn bench`, which runs `--quick`) times fastnn
  against torch eager, JAX jit, scikit-learn's `MLPClassifier.partial_fit` and plain NumPy
  (fastnn's `reference` backend) on five workloads, each peer in its own worker process
  with 2 threads, turns interleaved (each turn starts once the previous worker's BLAS /
  OpenMP threads have stopped spinning), after a warm-up and a parameter check (every peer's
  step must agree with fastnn's). It writes `bench/results/<date>-<machine>.json` and prints
  the tables below; `--readme` rewrites this section (`--readme-from FILE.json` renders it
  from a saved run). Options: `--workloads W1,W3`, `--repeat N`, `--quick`,
  `--backend cpu|cuda`, `--peers torch,jax`, `--threads N`, `--no-fit`.
- **asv** (`asv.conf.json`, `benchmark_dir: bench`): every kernel on each backend over the
  workloads' layer shapes, the training step and inference of each workload (`time_`,
  `peakmem_`, `track_` GFLOP/s and % of the GEMM ceiling) and `timeraw_` cold first calls.

```bash
asv machine --yes   # once per machine
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE asv run --python=same --quick \\
    --launch-method forkserver --set-commit-hash $(git rev-parse HEAD)
asv publish && asv preview   # the HTML dashboard at http://127.0.0.1:8080
```

`--python=same` benchmarks the installed fastnn in the current environment; without
`--set-commit-hash` asv runs but saves nothing for `asv publish`; `forkserver` starts each
benchmark from a process that has already imported fastnn (about twice as fast as the
default, a fresh interpreter per benchmark); drop `--quick` for repeated samples;
`-b Training` selects benchmarks by regex; `asv check --python=same` only imports and
checks the suite. asv keeps results and HTML under `.asv/` (not in git).

Workloads (one step = forward + backward + SGD update, lr 0.01):

| key | network | batch | dtype |
|---|---|---|---|
""" + "\n".join(f"| {w.key} {w.name} | {w.spec.split(', batch')[0]} | {w.batch} | {w.dtype} |"
                for w in workloads.WORKLOADS.values()) + """

Targets (fastnn must reach): best peer ÷ fastnn step time W1 ≥ 1.3×, W2 ≥ 1.5×, W3 ≥ 1.8×,
W4 ≥ 1.0×, W5 ≥ 3×; torch eager ÷ fastnn W1 ≥ 1.8×, W5 ≥ 20×; inference ≥ 1.0× everywhere;
full training (digits, scikit-learn's fit time ÷ fastnn.sklearn's) ≥ 10×.
GFLOP/s count 2·m·n·k for each GEMM of a step (forward, backward-to-input except for the
first layer, weight gradient); the ceiling is NumPy's BLAS doing exactly those GEMMs.
fastnn's step is timed as one call from Python (`Network._step_device`, what `net.step`
runs), like every peer's; `fit` runs an epoch's steps in compiled loops, which is cheaper
per step on small networks (see Kernels, and the full-training row).

The ratios depend on the CPU. Runs up to 2026-11-24 (`bench/results/2026-11-24-*`) were
on a Zen 3 (AVX2; OpenBLAS picks its Haswell kernels). Later runs were on a Zen 5
(AVX-512; SkylakeX kernels), where fastnn's own tiles use AVX-512 too. Both machines
call themselves "AMD EPYC". Results files record the microarchitecture (`cpu_arch`, since
2026-11-25). `bench/results/2026-11-25-vm-zen5.md` has the Zen 5 runs, and for each
missed target where the time goes; `bench/results/2026-11-25-vm-zen5-digits.md` the
changes behind runs O and P, and the misses after them;
`bench/results/2026-11-25-vm-zen5-long-rows.md` W2's own products and runs Q and R (R is
the table below).
"""


def readme_section(result, json_path):
    return (README_HOWTO + "\n### Latest results\n\n" + header(result)
            + f" Raw data: `{json_path}`.\n\n" + table(result) + "\n")


def write_readme(text, path=README):
    path = Path(path)
    doc = path.read_text()
    i, j = doc.find(SECTION_START), doc.find(SECTION_END)
    if i < 0 or j < i:
        raise SystemExit(f"{path} has no {SECTION_START} ... {SECTION_END} region")
    new = doc[:i + len(SECTION_START)] + "\n" + text.strip() + "\n" + doc[j:]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


# ====================================================================== entry point

def cuda_problem(env):
    """None when a CUDA GPU is usable here (by torch or numba.cuda), else why not."""
    if sys.platform.startswith("linux") and not any(os.path.exists(p) for p in (
            "/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/version", "/dev/dxg")):
        return "no NVIDIA driver or device: no /dev/nvidia*, no /proc/driver/nvidia"
    code = ("import json; r = {}\n"
            "try:\n import torch; r['torch'] = bool(torch.cuda.is_available())\n"
            "except Exception as e: r['torch'] = repr(e)\n"
            "try:\n from numba import cuda; r['numba'] = bool(cuda.is_available())\n"
            "except Exception as e: r['numba'] = repr(e)\n"
            "print(json.dumps(r))")
    try:
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=300)
        r = json.loads(p.stdout.strip().splitlines()[-1])
    except Exception as exc:
        return f"could not probe for a GPU ({exc!r})"
    if r.get("torch") is True or r.get("numba") is True:
        return None
    return (f"torch.cuda.is_available(): {r.get('torch')}; "
            f"numba.cuda.is_available(): {r.get('numba')}")


def _machine_name():
    return re.sub(r"[^A-Za-z0-9._-]+", "-", platform.node() or "machine").strip("-") or "machine"


def build_parser():
    p = argparse.ArgumentParser(
        prog="python bench/compare.py",
        description="Time fastnn against torch eager, JAX jit, scikit-learn and NumPy on the "
                    "benchmark workloads, in one run; print a table and save JSON.")
    p.add_argument("--workloads", default="all", metavar="W1,W3",
                   help=f"comma-separated workload keys ({', '.join(workloads.WORKLOADS)}; "
                        "default all)")
    p.add_argument("--repeat", type=int, default=None, metavar="N",
                   help=f"interleaved timing rounds (default {FULL['repeat']}, "
                        f"--quick {QUICK['repeat']})")
    p.add_argument("--quick", action="store_true",
                   help="few, short repetitions (what `fastnn bench` runs)")
    p.add_argument("--backend", default="cpu", choices=["cpu", "cuda"],
                   help="fastnn backend to time (cuda: against torch on the GPU)")
    p.add_argument("--peers", default=None, metavar="torch,jax",
                   help="only these peers (default: all installed)")
    p.add_argument("--threads", type=int, default=2, help="threads for every peer (default 2)")
    p.add_argument("--no-fit", action="store_true",
                   help="skip the full-training row (digits, fastnn.sklearn vs sklearn)")
    p.add_argument("--readme", action="store_true",
                   help="rewrite the benchmarks section of README.md with this run's table")
    p.add_argument("--readme-from", default=None, metavar="JSON",
                   help="rewrite the README section from a saved result; run nothing")
    p.add_argument("--readme-file", default=str(README), help=argparse.SUPPRESS)
    p.add_argument("--output-dir", default=str(RESULTS_DIR),
                   help="where the JSON goes (default bench/results)")
    p.add_argument("--machine", default=None, help="machine name for the file (default: hostname)")
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = [shlex.quote(a) for a in argv]
    args.machine = args.machine or _machine_name()
    if args.repeat is not None and args.repeat < 1:
        raise SystemExit("--repeat must be >= 1")
    if args.threads < 1:
        raise SystemExit("--threads must be >= 1")
    if args.readme_from:
        path = Path(args.readme_from)
        result = json.loads(path.read_text())
        try:
            shown = path.resolve().relative_to(ROOT)
        except ValueError:
            shown = path
        write_readme(readme_section(result, shown), args.readme_file)
        print(f"README: rewrote the benchmarks section of {args.readme_file} from {shown}")
        return 0
    workloads.parse(args.workloads)  # unknown keys fail before anything starts
    if args.backend == "cuda":
        problem = cuda_problem(worker_env(args.threads, "cuda")[0])
        if problem:
            print(f"--backend cuda: no CUDA GPU is usable here ({problem}). Nothing to time: "
                  "the CUDA comparison (fastnn backend='cuda' against torch on the GPU) needs "
                  "an NVIDIA GPU. Run without --backend cuda for the CPU comparison.")
            return 0
    run = Run(args, log=lambda s: print(s, file=sys.stderr, flush=True))
    result = run.run()
    result["table_markdown"] = table(result)
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    suffix += "-cuda" if args.backend == "cuda" else ""
    path = out_dir / f"{result['date'][:10]}-{args.machine}{suffix}.json"
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    try:
        shown = path.resolve().relative_to(ROOT)
    except ValueError:
        shown = path
    print(header(result))
    print()
    print(result["table_markdown"])
    print(f"\nresults: {shown}")
    if args.readme:
        write_readme(readme_section(result, shown), args.readme_file)
        print(f"README: rewrote the benchmarks section of {args.readme_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
