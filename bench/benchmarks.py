"""asv benchmarks (``asv run --python=same --quick``; see asv.conf.json and the README).

* ``Kernels`` / ``LossKernels`` / ``UpdateKernels``: each kernel of ``fastnn.kernels`` on
  each backend ("reference", "cpu") over the layer shapes of the benchmark workloads:
  ``time_`` per kernel, and per layer shape ``track_`` GFLOP/s of its three GEMM kernels
  and their % of the GEMM ceiling (NumPy's BLAS doing the same three GEMMs, measured in the
  same process, alternating with the kernels).
* ``Training``: a full training step (forward + backward + SGD update) and inference of
  each workload: ``time_``, ``peakmem_``, ``track_`` GFLOP/s and % of the ceiling (NumPy's
  BLAS doing only that step's GEMMs).
* ``FullTraining``: fastnn.sklearn.MLPClassifier fitting digits, ``time_`` and ``track_``
  its speed-up over scikit-learn's MLPClassifier (same hyperparameters, same process).
* ``ColdStart``: ``timeraw_`` the first step in a fresh interpreter (JIT compile or Numba
  cache load) and ``import fastnn``.
* ``GemmCeiling`` / ``WorkloadGemmCeiling``: the ceiling itself (sgemm / dgemm GFLOP/s).

``setup`` builds the arrays (cached per process) and calls every kernel once, so that JIT
compilation is never timed.  A backend that cannot be imported here is skipped
(``NotImplementedError`` from setup).  Threads: ``FASTNN_BENCH_THREADS`` (default 2).
"""
import functools
import os
import sys
import zlib

import numpy as np

if __package__ in (None, ""):  # pragma: no cover - asv imports this as bench.benchmarks
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import gemm, workloads  # noqa: E402

try:  # imported once here, so that asv's forkserver children start with it loaded
    import fastnn  # noqa: F401
except Exception:  # setup() skips the benchmarks (NotImplementedError) with the reason
    pass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREADS = int(os.environ.get("FASTNN_BENCH_THREADS", "2"))
BACKENDS = ["reference", "cpu"]
WORKLOAD_KEYS = list(workloads.WORKLOADS)
ALPHA = 0.01  # leaky relu slope (unused by the workloads' activations)


def _layer_shapes():
    """{label: (m, n_in, n_out, act, prev_act, dtype)} for every distinct layer shape."""
    out = {}
    for w in workloads.WORKLOADS.values():
        for i, (n_in, n_out) in enumerate(w.shapes):
            act = w.hidden if i < len(w.shapes) - 1 else "identity"  # training forward
            label = f"{w.batch}x{n_in}x{n_out} {w.dtype}"
            if label not in out:
                out[label] = (w.batch, n_in, n_out, act, w.hidden, w.dtype, f"{w.key} L{i + 1}")
    return out


LAYER_SHAPES = _layer_shapes()
OUTPUT_SHAPES = {f"{w.batch}x{w.sizes[-1]} {w.output}+{w.loss} {w.dtype}": w
                 for w in workloads.WORKLOADS.values()}


# ---------------------------------------------------------------------------- helpers

@functools.lru_cache(maxsize=None)
def _fastnn():
    """fastnn with THREADS threads, or NotImplementedError (asv: skip) if not importable."""
    try:
        import fastnn
    except Exception as exc:
        raise NotImplementedError(f"fastnn is not importable: {exc!r}") from None
    fastnn.set_num_threads(max(1, min(THREADS, _numba_max_threads())))
    return fastnn


def _numba_max_threads():
    import numba

    return numba.config.NUMBA_NUM_THREADS


def _backend(name):
    fastnn = _fastnn()
    try:
        return fastnn.get_backend(name)
    except Exception as exc:
        raise NotImplementedError(f"backend {name!r} is not available: {exc!r}") from None


def _codes(act):
    from fastnn import kernels

    return kernels.ACTIVATIONS[act]


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _seconds(fn, min_sample=0.01, samples=3):
    """Median over `samples` of the mean time per call (each sample >= min_sample s)."""
    return gemm.seconds_per_call(fn, min_sample=min_sample, samples=samples, max_total=1.0)


def _paired(fn, ref, rounds=3, min_sample=0.01):
    """(median seconds per call of fn, of ref), sampled alternately: fn, ref, fn, ref ..."""
    nf, _ = gemm.calls_per_sample(fn, min_sample)
    nr, _ = gemm.calls_per_sample(ref, min_sample)
    a, b = [], []
    for _ in range(rounds):
        a.append(gemm.sample(fn, nf))
        b.append(gemm.sample(ref, nr))
    return float(np.median(a)), float(np.median(b))


def _unit(unit):
    """Decorator: the unit asv shows for a track_ benchmark."""
    def deco(f):
        f.unit = unit
        return f
    return deco


def _gemm_call(M, K, N, dtype, layout, seed=0):
    A, B, C = gemm.operands(M, K, N, dtype, layout, seed)
    return lambda: np.matmul(A, B, out=C)


@functools.lru_cache(maxsize=None)
def _layer_arrays(label):
    m, n_in, n_out, act, prev_act, dtype, _ = LAYER_SHAPES[label]
    rng = _rng("layer", label)
    r = lambda *s: rng.random(s).astype(dtype)  # noqa: E731
    return {"A_prev": r(m, n_in), "W": (r(n_in, n_out) - 0.5) * 0.1, "b": r(n_out) * 0.1,
            "A": np.empty((m, n_out), dtype), "dZ": (r(m, n_out) - 0.5) / m,
            "dZ_prev": np.empty((m, n_in), dtype), "dW": np.empty((n_in, n_out), dtype),
            "db": np.empty(n_out, dtype)}


# ---------------------------------------------------------------------------- kernels

class Kernels:
    """The GEMM-bearing kernels on one layer shape (m x n_in x n_out)."""

    params = (BACKENDS, list(LAYER_SHAPES))
    param_names = ("backend", "shape")
    timeout = 300

    def setup(self, backend, shape):
        self.K = _backend(backend)
        m, n_in, n_out, act, prev_act, dtype, _ = LAYER_SHAPES[shape]
        self.m, self.n_in, self.n_out, self.dtype = m, n_in, n_out, dtype
        self.act, self.prev_act = _codes(act), _codes(prev_act)
        self.a = _layer_arrays(shape)
        self.linear_forward()  # JIT warm-up (compile or cache load), never timed
        self.activation_backward()
        self.accumulate_delta()

    # the calls
    def linear_forward(self):
        a = self.a
        self.K.linear_forward(a["A_prev"], a["W"], a["b"], self.act, ALPHA, a["A"])

    def activation_backward(self):
        a = self.a
        self.K.activation_backward(a["dZ"], a["W"], a["A_prev"], self.prev_act, ALPHA,
                                   a["dZ_prev"])

    def accumulate_delta(self):
        a = self.a
        self.K.accumulate_delta(a["A_prev"], a["dZ"], a["W"], 0.5, a["dW"], a["db"])

    def layer(self):
        """The layer's share of a training step: its three GEMM kernels."""
        self.linear_forward()
        self.activation_backward()
        self.accumulate_delta()

    def _layer_ceiling(self):
        """NumPy's BLAS doing the layer's three GEMMs (same shapes and operand layouts)."""
        m, n_in, n_out, dt = self.m, self.n_in, self.n_out, self.dtype
        calls = [_gemm_call(m, n_in, n_out, dt, "NN"), _gemm_call(m, n_out, n_in, dt, "NT"),
                 _gemm_call(n_in, m, n_out, dt, "TN")]

        def run():
            for c in calls:
                c()
        return run

    # time_ (each of these kernels does 2 m n_in n_out flops: GFLOP/s = that / time)
    def time_linear_forward(self, backend, shape):
        self.linear_forward()

    def time_activation_backward(self, backend, shape):
        self.activation_backward()

    def time_accumulate_delta(self, backend, shape):
        self.accumulate_delta()

    @_unit("GFLOP/s")
    def track_layer_gflops(self, backend, shape):
        """The three kernels of the layer together: 3 x 2 m n_in n_out flops."""
        return 6.0 * self.m * self.n_in * self.n_out / _seconds(self.layer) / 1e9

    @_unit("%")
    def track_layer_pct_ceiling(self, backend, shape):
        """100 x (BLAS time for the layer's three GEMMs) / (the three kernels' time)."""
        mine, blas = _paired(self.layer, self._layer_ceiling())
        return 100.0 * blas / mine


class LossKernels:
    """loss_grad on each workload's output layer (m x k)."""

    params = (BACKENDS, list(OUTPUT_SHAPES))
    param_names = ("backend", "output")

    def setup(self, backend, output):
        from fastnn import kernels

        self.K = _backend(backend)
        w = OUTPUT_SHAPES[output]
        m, k = w.batch, w.sizes[-1]
        rng = _rng("loss", output)
        _, _, Y = workloads.data(w)
        self.Z = (rng.standard_normal((m, k)) * 3).astype(w.dtype)
        self.Y = Y.astype(w.dtype)
        self.A = np.empty_like(self.Z)
        self.dZ = np.empty_like(self.Z)
        self.act, self.loss = kernels.ACTIVATIONS[w.output], kernels.LOSSES[w.loss]
        self.time_loss_grad(backend, output)

    def time_loss_grad(self, backend, output):
        self.K.loss_grad(self.Z, self.Y, self.act, ALPHA, self.loss, self.A, self.dZ)


class UpdateKernels:
    """sgd_update, adam_update and sum_squares over each workload's unrolled parameters."""

    params = (BACKENDS, WORKLOAD_KEYS)
    param_names = ("backend", "workload")

    def setup(self, backend, key):
        self.K = _backend(backend)
        w = workloads.get(key)
        rng = _rng("update", key)
        n = w.n_params
        self.theta = rng.standard_normal(n).astype(w.dtype)
        self.grad = (rng.standard_normal(n) * 1e-3).astype(w.dtype)
        self.v = np.zeros(n, w.dtype)
        self.m1 = np.zeros(n, w.dtype)
        self.m2 = np.zeros(n, w.dtype)
        self.W = self.theta[: w.shapes[0][0] * w.shapes[0][1]]
        self.time_sgd_update(backend, key)
        self.time_adam_update(backend, key)
        self.time_sum_squares(backend, key)

    def time_sgd_update(self, backend, key):
        self.K.sgd_update(self.theta, self.grad, self.v, workloads.LR, 0.0, False)

    def time_adam_update(self, backend, key):
        self.K.adam_update(self.theta, self.grad, self.m1, self.m2, 1e-3, 0.9, 0.999, 1e-8, 1)

    def time_sum_squares(self, backend, key):
        self.K.sum_squares(self.W)


# ---------------------------------------------------------------------------- workloads

@functools.lru_cache(maxsize=None)
def _peer(backend, key):
    """A fastnn network of the workload on `backend`, its data loaded (bench.peers)."""
    _fastnn()
    _backend(backend)
    from bench import peers

    w = workloads.get(key)
    p = peers.FastnnPeer(max(1, min(THREADS, _numba_max_threads())), backend)
    p.load(w, w.dtype, *peers._workload_arrays(w))
    return p


@functools.lru_cache(maxsize=None)
def _ceiling_call(key, mode):
    """NumPy's BLAS doing exactly the GEMMs of one step (or inference) of the workload."""
    w = workloads.get(key)
    calls = [_gemm_call(M, K, N, w.dtype, gemm.layout(what), i)
             for i, (what, M, K, N) in enumerate(w.gemms(mode))]

    def run():
        for c in calls:
            c()
    return run


class Training:
    """One training step (forward + backward + SGD update, lr 0.01) and one inference of
    each workload, one call each (Network._step_device, inputs already validated)."""

    params = (BACKENDS, WORKLOAD_KEYS)
    param_names = ("backend", "workload")
    timeout = 600

    def setup(self, backend, key):
        self.p = _peer(backend, key)
        self.w = workloads.get(key)
        self.p.step()  # JIT warm-up
        self.p.infer()

    def time_step(self, backend, key):
        self.p.step()

    def time_inference(self, backend, key):
        self.p.infer()

    def peakmem_step(self, backend, key):
        self.p.step()

    def peakmem_inference(self, backend, key):
        self.p.infer()

    @_unit("GFLOP/s")
    def track_step_gflops(self, backend, key):
        return self.w.flops("step") / _seconds(self.p.step) / 1e9

    @_unit("GFLOP/s")
    def track_inference_gflops(self, backend, key):
        return self.w.flops("infer") / _seconds(self.p.infer) / 1e9

    @_unit("%")
    def track_step_pct_ceiling(self, backend, key):
        mine, blas = _paired(self.p.step, _ceiling_call(key, "step"))
        return 100.0 * blas / mine

    @_unit("%")
    def track_inference_pct_ceiling(self, backend, key):
        mine, blas = _paired(self.p.infer, _ceiling_call(key, "infer"))
        return 100.0 * blas / mine


class FullTraining:
    """The full-training target: fastnn.sklearn.MLPClassifier fitting scikit-learn's digits
    (workloads.DIGITS_FIT, 30 epochs of mini-batch SGD), and its speed-up over
    scikit-learn's MLPClassifier with the same hyperparameters, fitted alternately in the
    same process (target: workloads.FIT_TARGET)."""

    params = (BACKENDS,)
    param_names = ("backend",)
    timeout = 600

    def setup(self, backend):
        _backend(backend)
        import warnings

        from fastnn.sklearn import MLPClassifier

        X, _, y, _ = workloads.digits_split()
        params = dict(workloads.DIGITS_FIT, backend=backend)

        def fit(cls=MLPClassifier, params=params):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning: a fixed epoch count
                cls(**params).fit(X, y)
        self.fit = fit
        self.fit()  # JIT warm-up (or cache load)

    def time_fit_digits(self, backend):
        self.fit()

    @_unit("x")
    def track_fit_speedup_vs_sklearn(self, backend):
        from sklearn.neural_network import MLPClassifier

        X, _, y, _ = workloads.digits_split()

        def reference():
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                MLPClassifier(**workloads.DIGITS_FIT).fit(X, y)
        mine, theirs = _paired(self.fit, reference, rounds=3, min_sample=0.0)
        return theirs / mine


class ColdStart:
    """The first call in a fresh interpreter: JIT compile, or load from Numba's cache."""

    params = (BACKENDS, WORKLOAD_KEYS)
    param_names = ("backend", "workload")
    number = 1
    repeat = (1, 3, 60.0)
    warmup_time = 0  # each sample is a new process; no warm-up processes
    timeout = 600

    def setup(self, backend, key):
        _backend(backend)

    def timeraw_first_step(self, backend, key):
        setup = (f"import sys; sys.path.insert(0, {ROOT!r})\n"
                 "from bench import peers, workloads\n"
                 f"w = workloads.get({key!r})\n"
                 f"p = peers.FastnnPeer({THREADS}, {backend!r})\n"
                 "p.load(w, w.dtype, *peers._workload_arrays(w))\n")
        return "p.step()", setup


class Import:
    number = 1
    repeat = (1, 3, 60.0)
    warmup_time = 0

    def timeraw_import_fastnn(self):
        return "import fastnn"


# ---------------------------------------------------------------------------- the ceiling

class GemmCeiling:
    """NumPy's BLAS: sgemm / dgemm GFLOP/s for n x n x n."""

    params = (["float32", "float64"], list(gemm.SQUARE_SIZES))
    param_names = ("dtype", "n")
    unit = "GFLOP/s"

    def setup(self, dtype, n):
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(THREADS, user_api="blas")

    def track_gflops(self, dtype, n):
        return 2.0 * n ** 3 / gemm.gemm_seconds(n, n, n, dtype, min_sample=0.01, samples=3) / 1e9


class WorkloadGemmCeiling:
    """NumPy's BLAS doing exactly one step's (or inference's) GEMMs of each workload."""

    params = (WORKLOAD_KEYS, ["step", "infer"])
    param_names = ("workload", "mode")
    unit = "GFLOP/s"

    def setup(self, key, mode):
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(THREADS, user_api="blas")

    def track_gflops(self, key, mode):
        w = workloads.get(key)
        return w.flops(mode) / _seconds(_ceiling_call(key, mode)) / 1e9
