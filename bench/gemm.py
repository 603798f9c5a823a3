"""The GEMM ceiling: what NumPy's BLAS (sgemm / dgemm) achieves on this machine.

Two ceilings, measured with the operand layouts a training step uses:

* square: C = A @ B for n x n x n, several n; the peak is the best of them;
* per workload: exactly the GEMMs of one step (or one inference) of that workload
  (``Workload.gemms``): forward ``A_prev @ W``, backward ``dZ @ W.T`` and weight gradient
  ``A_prev.T @ dZ``.  Its ceiling is the workload's GEMM flops divided by the time BLAS
  takes for those GEMMs alone: the speed a step would have if it were nothing but BLAS.

Imports NumPy only; the caller sets the thread count (threadpoolctl) beforehand.
"""
import time

import numpy as np

SQUARE_SIZES = (128, 256, 512, 1024)

_LAYOUT = {"forward": "NN", "backward": "NT", "dW": "TN"}


def layout(what):
    """The operand layout of a GEMM named by Workload.gemms ('L2 backward' -> 'NT')."""
    return _LAYOUT[what.split()[-1]]


def operands(M, K, N, dtype, layout="NN", seed=0):
    """A (M, K), B (K, N) in the given layout ('N' C-order, 'T' a transposed view), C (M, N)."""
    rng = np.random.default_rng(seed)
    A = rng.random((M, K)).astype(dtype) if layout[0] == "N" else rng.random((K, M)).astype(dtype).T
    B = rng.random((K, N)).astype(dtype) if layout[1] == "N" else rng.random((N, K)).astype(dtype).T
    return A, B, np.empty((M, N), dtype=dtype)


def calls_per_sample(fn, min_sample):
    """Call fn once (warm-up), time one more call; the calls a sample of min_sample needs."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-9)
    return max(1, int(np.ceil(min_sample / one))), one


def sample(fn, number):
    """Mean seconds per call over `number` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def seconds_per_call(fn, min_sample=0.02, samples=7, max_total=2.0):
    """The median over `samples` samples of the mean time per call; each sample runs enough
    calls to last at least `min_sample` seconds (fewer samples if that would pass
    `max_total` seconds).  Warm-up calls first."""
    number, one = calls_per_sample(fn, min_sample)
    samples = max(1, min(samples, int(max_total / (one * number))))
    return float(np.median([sample(fn, number) for _ in range(samples)]))


def gemm_seconds(M, K, N, dtype, layout="NN", **kw):
    A, B, C = operands(M, K, N, dtype, layout)
    return seconds_per_call(lambda: np.matmul(A, B, out=C), **kw)


def square(dtypes=("float32", "float64"), sizes=SQUARE_SIZES, **kw):
    """{dtype: {n: GFLOP/s}} for n x n x n GEMMs."""
    return {dt: {int(n): 2.0 * n ** 3 / gemm_seconds(n, n, n, dt, **kw) / 1e9 for n in sizes}
            for dt in dtypes}


def workload_ceiling(w, mode="step", **kw):
    """{"gflops": ceiling, "seconds": BLAS time for the GEMMs, "flops": ..., "gemms": [...]}
    for one step (mode "step") or one inference (mode "infer") of workload w, in w.dtype."""
    gemms, total_s, total_f = [], 0.0, 0
    for what, M, K, N in w.gemms(mode):
        s = gemm_seconds(M, K, N, w.dtype, layout(what), **kw)
        f = 2 * M * K * N
        gemms.append({"gemm": what, "M": M, "K": K, "N": N, "seconds": s, "gflops": f / s / 1e9})
        total_s += s
        total_f += f
    return {"gflops": total_f / total_s / 1e9, "seconds": total_s, "flops": total_f,
            "dtype": w.dtype, "gemms": gemms}
