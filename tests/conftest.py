"""Shared test configuration.

The cuda backend is tested under the CUDA simulator in a separate pytest process
(tests/test_cuda_sim.py starts it), because NUMBA_ENABLE_CUDASIM must be set before numba
is imported and must not leak into the other tests.
"""
import os

import numpy as np
import pytest
from hypothesis import settings

CUDASIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
if CUDASIM:
    from fastnn.kernels import _cudasim

    _cudasim.install()  # (kernels/cuda.py installs it too, when first imported)

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: the fast backends held equal to the reference in this process
FAST_BACKENDS = ["cuda"] if CUDASIM else ["cpu"]
DTYPES = [np.float32, np.float64]


def run_in_threads(work, n):
    """Call work(i) for i in range(n), each in a thread of its own, all at once; returns
    the exceptions they raised (empty when none did)."""
    import threading

    errors = []

    def run(i):
        try:
            work(i)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def assert_close(actual, desired, dtype):
    """Equality within the one tolerance table (fastnn.kernels.TOLERANCES)."""
    from fastnn.kernels import allclose, tolerance

    actual = np.asarray(actual)
    desired = np.asarray(desired)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    if not allclose(actual, desired, dtype):
        err = np.max(np.abs(actual.astype(np.float64) - desired.astype(np.float64)))
        raise AssertionError(
            f"not equal within rtol={tolerance(dtype)} ({np.dtype(dtype).name}): "
            f"max abs diff {err:.3e}, max |desired| {np.max(np.abs(desired)):.3e}")


def rand(rng, shape, dtype, scale=1.0):
    """Standard-normal values times scale, in dtype."""
    return (scale * rng.standard_normal(shape)).astype(dtype)


def network_data(m, n_in, k, loss, dtype, seed=0):
    """Network-level data: X (m, n_in) standard normal, Y (m, k) for a loss name (one-hot
    rows for cross_entropy, 0/1 for bce, real values otherwise)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n_in)).astype(dtype)
    if loss == "cross_entropy":
        Y = np.eye(k, dtype=dtype)[rng.integers(0, k, m)]
    elif loss == "bce":
        Y = (rng.random((m, k)) < 0.5).astype(dtype)
    else:
        Y = rng.standard_normal((m, k)).astype(dtype)
    return X, Y


def targets(rng, m, k, loss, dtype):
    """Kernel-level targets Y (m, k) for a loss code: one-hot rows, 0/1, or real values."""
    from fastnn import kernels as K

    if loss == K.CROSS_ENTROPY:
        Y = np.zeros((m, k), dtype)
        Y[np.arange(m), rng.integers(0, k, m)] = 1
        return Y
    if loss == K.BCE:
        return (rng.random((m, k)) < 0.5).astype(dtype)
    return rand(rng, (m, k), dtype)


@pytest.fixture(params=FAST_BACKENDS, scope="session")
def fast_backend(request):
    from fastnn.backend import get_backend

    return get_backend(request.param)
