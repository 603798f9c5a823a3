"""The cuda backend's own behaviour, beyond kernel equivalence (tests/test_kernels.py):
array helpers, views of a flat parameter buffer, grid-stride loops under launch
configurations smaller than the data, tile-boundary shapes, the GPU launch geometry,
float64 loss accumulation, overflow-free activations, lazy compilation.

Runs only under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1), in the pytest process that
tests/test_cuda_sim.py starts; the module skips itself anywhere else.  (It uses the
simulator's small default launch geometry and the GPU geometry on purpose.)
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import CUDASIM, DTYPES, assert_close, rand, run_in_threads, targets

if not CUDASIM:
    pytest.skip("cuda backend tests run under NUMBA_ENABLE_CUDASIM=1 (tests/test_cuda_sim.py)",
                allow_module_level=True)

from fastnn import kernels as K  # noqa: E402
from fastnn.kernels import cuda as C  # noqa: E402
from fastnn.kernels import reference as R  # noqa: E402

ALPHA = 0.01
HIDDEN = list(K.HIDDEN_ACTIVATIONS)
PAIRS = [(K.SIGMOID, K.BCE), (K.SOFTMAX, K.CROSS_ENTROPY), (K.TANH, K.MSE), (K.RELU, K.MAE)]



def check_all_kernels(m, n_in, n_out, dtype, seed=0, light=False):
    """Every kernel on one shape, against the reference (on the current launch geometry).

    light: one activation / loss per kernel instead of all (for slow geometries).
    """
    rng = np.random.default_rng(seed)
    X, W = rand(rng, (m, n_in), dtype), rand(rng, (n_in, n_out), dtype, 0.5)
    b = rand(rng, n_out, dtype)
    dX, dW_, db_ = C.to_device(X), C.to_device(W), C.to_device(b)
    for act in [K.LEAKY_RELU, K.SOFTMAX] if light else HIDDEN + [K.SOFTMAX]:
        ref = np.empty((m, n_out), dtype)
        R.linear_forward(X, W, b, act, ALPHA, ref)
        out = C.to_device(np.full((m, n_out), np.nan, dtype))
        C.linear_forward(dX, dW_, db_, act, ALPHA, out)
        assert_close(C.to_host(out), ref, dtype)
    dZ = rand(rng, (m, n_out), dtype)
    ddZ = C.to_device(dZ)
    for act in [K.SIGMOID] if light else HIDDEN:
        A_prev = R.activate(X, act, ALPHA).astype(dtype)
        ref = np.empty((m, n_in), dtype)
        R.activation_backward(dZ, W, A_prev, act, ALPHA, ref)
        out = C.to_device(np.full((m, n_in), np.nan, dtype))
        C.activation_backward(ddZ, dW_, C.to_device(A_prev), act, ALPHA, out)
        assert_close(C.to_host(out), ref, dtype)
    for l2 in (0.7,) if light else (0.0, 0.7):
        dW_ref, db_ref = np.empty((n_in, n_out), dtype), np.empty(n_out, dtype)
        R.accumulate_delta(X, dZ, W, l2, dW_ref, db_ref)
        gW = C.to_device(np.full((n_in, n_out), 7, dtype))
        gb = C.to_device(np.full(n_out, 7, dtype))
        C.accumulate_delta(dX, ddZ, dW_, l2, gW, gb)
        assert_close(C.to_host(gW), dW_ref, dtype)
        assert_close(C.to_host(gb), db_ref, dtype)
    Z = rand(rng, (m, n_out), dtype, 3.0)
    for act, loss in PAIRS[1:2] if light else PAIRS:
        Y = targets(rng, m, n_out, loss, dtype)
        A_ref, dZ_ref = np.empty_like(Z), np.empty_like(Z)
        J_ref = R.loss_grad(Z, Y, act, ALPHA, loss, A_ref, dZ_ref)
        A, G = C.empty((m, n_out), dtype), C.empty((m, n_out), dtype)
        J = C.loss_grad(C.to_device(Z), C.to_device(Y), act, ALPHA, loss, A, G)
        assert isinstance(J, float)
        assert_close(J, J_ref, dtype)
        assert_close(C.to_host(A), A_ref, dtype)
        assert_close(C.to_host(G), dZ_ref, dtype)
    assert_close(C.sum_squares(dW_), R.sum_squares(W), dtype)


# ------------------------------------------------------------------ registry, import, helpers

def test_get_backend_cuda_under_simulator():
    import fastnn
    from fastnn.backend import get_backend

    B = get_backend("cuda")
    assert B is C
    assert "cuda" in fastnn.available_backends()
    for name in K.KERNEL_NAMES:
        assert callable(getattr(B, name)), name
    assert C.SIMULATOR


def test_import_is_lazy_and_kernels_are_cached_per_dtype():
    """Importing compiles nothing; a dtype's kernels are built on first use, once."""
    code = ("from fastnn.kernels import cuda as C\n"
            "assert C._cache == {}, C._cache\n"
            "import numpy as np\n"
            "x = C.to_device(np.ones(3, np.float32))\n"
            "assert C._cache == {}\n"
            "C.sum_squares(x); C.sum_squares(x)\n"
            "assert len(C._cache) == 1\n"
            "C.sum_squares(C.to_device(np.ones(3)))\n"
            "assert len(C._cache) == 2\n")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 3, 4)])
def test_to_device_to_host_round_trip(dtype, shape):
    x = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    d = C.to_device(x)
    assert d.shape == x.shape and d.dtype == x.dtype
    x[...] = 0                      # to_device copied: the device array is independent
    back = C.to_host(d)
    assert isinstance(back, np.ndarray) and back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, np.arange(back.size, dtype=dtype).reshape(shape))
    back[...] = -1                  # to_host copied too
    np.testing.assert_array_equal(C.to_host(d), np.arange(back.size, dtype=dtype).reshape(shape))
    d2 = C.to_device(d)             # device -> new device array
    assert d2 is not d
    np.testing.assert_array_equal(C.to_host(d2), C.to_host(d))


def test_to_device_makes_non_contiguous_input_contiguous():
    x = np.arange(24.0).reshape(4, 6)[:, ::2]
    d = C.to_device(x)
    np.testing.assert_array_equal(C.to_host(d), x)


@pytest.mark.parametrize("dtype", DTYPES + [np.int32])
@pytest.mark.parametrize("shape", [(1,), (37,), (5, 3), (2, 3, 3)])
def test_empty_and_zeros(dtype, shape):
    e = C.empty(shape, dtype)
    assert e.shape == shape and e.dtype == np.dtype(dtype)
    z = C.zeros(shape, dtype)
    assert z.shape == shape and z.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(C.to_host(z), np.zeros(shape, dtype))


def test_zeros_fills_with_a_grid_smaller_than_the_array():
    with C.launch_config(max_blocks=1):
        z = C.zeros((101,), np.float32)
    np.testing.assert_array_equal(C.to_host(z), np.zeros(101, np.float32))


# ------------------------------------------------------------------ views of a flat buffer

@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_accept_views_of_a_flat_parameter_buffer(dtype):
    """Network code keeps W and b as views theta[a:b].reshape(n_in, n_out) of one vector."""
    rng = np.random.default_rng(3)
    m, n_in, n_out = 5, 3, 6
    sizes = [n_in * n_out, n_out]
    n = 2 + sum(sizes) + 3          # guard entries around the layer's slice
    host = rand(rng, n, dtype)
    theta = C.to_device(host)
    a = 2
    W = theta[a:a + n_in * n_out].reshape(n_in, n_out)
    b = theta[a + n_in * n_out:a + n_in * n_out + n_out]
    W_h = host[a:a + n_in * n_out].reshape(n_in, n_out)
    b_h = host[a + n_in * n_out:a + n_in * n_out + n_out]
    X = rand(rng, (m, n_in), dtype)
    A = C.empty((m, n_out), dtype)
    A_ref = np.empty((m, n_out), dtype)
    for act in (K.TANH, K.SOFTMAX):
        C.linear_forward(C.to_device(X), W, b, act, ALPHA, A)
        R.linear_forward(X, W_h, b_h, act, ALPHA, A_ref)
        assert_close(C.to_host(A), A_ref, dtype)
    # gradients written into views of a flat gradient buffer leave the rest untouched
    grad = C.to_device(np.full(n, 99, dtype))
    gW = grad[a:a + n_in * n_out].reshape(n_in, n_out)
    gb = grad[a + n_in * n_out:a + n_in * n_out + n_out]
    dZ = rand(rng, (m, n_out), dtype)
    C.accumulate_delta(C.to_device(X), C.to_device(dZ), W, 0.5, gW, gb)
    gW_ref, gb_ref = np.empty((n_in, n_out), dtype), np.empty(n_out, dtype)
    R.accumulate_delta(X, dZ, W_h, 0.5, gW_ref, gb_ref)
    g = C.to_host(grad)
    assert_close(g[a:a + n_in * n_out].reshape(n_in, n_out), gW_ref, dtype)
    assert_close(g[a + n_in * n_out:a + n_in * n_out + n_out], gb_ref, dtype)
    np.testing.assert_array_equal(g[:a], 99)
    np.testing.assert_array_equal(g[a + n_in * n_out + n_out:], 99)
    # backward through the view, then an update of the whole flat vector
    dprev = C.empty((m, n_in), dtype)
    C.activation_backward(C.to_device(dZ), W, C.to_device(np.tanh(X)), K.TANH, ALPHA, dprev)
    ref = np.empty((m, n_in), dtype)
    R.activation_backward(dZ, W_h, np.tanh(X), K.TANH, ALPHA, ref)
    assert_close(C.to_host(dprev), ref, dtype)
    assert_close(C.sum_squares(W), R.sum_squares(W_h), dtype)
    t_ref, g_ref, v_ref = host.copy(), g.copy(), np.zeros(n, dtype)
    C.sgd_update(theta, grad, C.zeros(n, dtype), 0.1, 0.9, True)
    R.sgd_update(t_ref, g_ref, v_ref, 0.1, 0.9, True)
    assert_close(C.to_host(theta), t_ref, dtype)


# ------------------------------------------------------------------ grid-stride, tile edges

@pytest.mark.parametrize("max_blocks", [1, 2])
def test_grid_stride_covers_data_larger_than_the_grid(max_blocks):
    """With 1 or 2 blocks per grid dimension every tile, row and element is still done."""
    with C.launch_config(max_blocks=max_blocks, partials=max_blocks):
        check_all_kernels(13, 10, 9, np.float64, seed=max_blocks)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 17, 100])
def test_flat_kernels_with_one_small_block(dtype, n):
    rng = np.random.default_rng(n)
    theta, grad, m1, m2 = (rand(rng, n, dtype) for _ in range(4))
    m2 = np.abs(m2)
    with C.launch_config(max_blocks=1, tpb=4, partials=1):
        t_d, g_d, m1_d, m2_d = (C.to_device(x) for x in (theta, grad, m1, m2))
        C.adam_update(t_d, g_d, m1_d, m2_d, 1e-2, 0.9, 0.999, 1e-8, 2)
        R.adam_update(theta, grad, m1, m2, 1e-2, 0.9, 0.999, 1e-8, 2)
        assert_close(C.to_host(t_d), theta, dtype)
        assert_close(C.to_host(m1_d), m1, dtype)
        assert_close(C.to_host(m2_d), m2, dtype)
        v = C.to_device(m1)
        C.sgd_update(t_d, g_d, v, 0.1, 0.5, False)
        R.sgd_update(theta, grad, m1, 0.1, 0.5, False)
        assert_close(C.to_host(t_d), theta, dtype)
        assert_close(C.to_host(v), m1, dtype)
        assert_close(C.sum_squares(t_d), R.sum_squares(theta), dtype)


@pytest.mark.parametrize("m,n_in,n_out", [(1, 1, 1), (4, 4, 4), (5, 9, 3), (3, 17, 1),
                                          (9, 1, 8), (2, 3, 13)])
def test_shapes_across_tile_boundaries(m, n_in, n_out):
    """Shapes below, at and just past multiples of the tile (4 under the simulator)."""
    check_all_kernels(m, n_in, n_out, np.float32, seed=m + n_in + n_out)


def test_gpu_launch_geometry_on_odd_shapes():
    """The geometry a real GPU gets (16x16 tiles, 256-thread blocks) on 17/33-sized data."""
    with C.launch_config(**dict(C.GPU_GEOMETRY, flat_blocks=2)):
        check_all_kernels(17, 18, 3, np.float32, seed=1, light=True)


def test_launch_config_validates_and_restores():
    before = dict(C._geometry)
    with pytest.raises(ValueError, match="unknown"):
        with C.launch_config(tiles=3):
            pass
    with pytest.raises(ValueError, match="power of two"):
        with C.launch_config(tpb=12):
            pass
    with C.launch_config(tile=2):
        assert C._geometry["tile"] == 2
    assert C._geometry == before


# ------------------------------------------------------------------ numerics

def test_loss_is_accumulated_in_float64():
    """float32 inputs, but the sum 2^24 + 1 + 1 is exact only in float64."""
    Z = np.array([[4096.0, 1.0, 1.0]], np.float32)
    Y = np.zeros((1, 3), np.float32)
    A, G = C.empty((1, 3), np.float32), C.empty((1, 3), np.float32)
    J = C.loss_grad(C.to_device(Z), C.to_device(Y), K.IDENTITY, ALPHA, K.MSE, A, G)
    assert J == 0.5 * (4096.0 ** 2 + 2)
    x = C.to_device(np.array([4096.0, 1.0, 1.0], np.float32))
    assert C.sum_squares(x) == 4096.0 ** 2 + 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_logits_stay_finite(dtype):
    """|z| > 700 (and float32's ~88) would overflow exp(-z); the simulator raises on it."""
    Z = np.array([[-800.0, 800.0, 0.0], [1000.0, -1000.0, 5.0]], dtype)
    Y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype)
    for act, loss in [(K.SIGMOID, K.BCE), (K.SOFTMAX, K.CROSS_ENTROPY), (K.SIGMOID, K.MSE)]:
        A_ref, dZ_ref = np.empty_like(Z), np.empty_like(Z)
        J_ref = R.loss_grad(Z, Y, act, ALPHA, loss, A_ref, dZ_ref)
        A, G = C.empty(Z.shape, dtype), C.empty(Z.shape, dtype)
        J = C.loss_grad(C.to_device(Z), C.to_device(Y), act, ALPHA, loss, A, G)
        assert np.isfinite(J)
        assert_close(J, J_ref, dtype)
        assert_close(C.to_host(A), A_ref, dtype)
        assert_close(C.to_host(G), dZ_ref, dtype)
    X = np.eye(3, dtype=dtype)
    W = np.array([[-800.0] * 3, [800.0] * 3, [0.0] * 3], dtype)
    for act in (K.SIGMOID, K.TANH, K.SOFTMAX):
        A = C.empty((3, 3), dtype)
        C.linear_forward(C.to_device(X), C.to_device(W), C.zeros(3, dtype), act, ALPHA, A)
        ref = np.empty((3, 3), dtype)
        R.linear_forward(X, W, np.zeros(3, dtype), act, ALPHA, ref)
        assert_close(C.to_host(A), ref, dtype)


def test_nan_in_any_row_makes_the_loss_nan():
    Z = np.array([[0.0, 1.0], [2.0, 3.0], [1.0, np.nan]])
    Y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    for act, loss in PAIRS + [(K.IDENTITY, K.MSE), (K.LEAKY_RELU, K.MAE)]:
        A, G = C.empty(Z.shape, np.float64), C.empty(Z.shape, np.float64)
        with C.launch_config(max_blocks=1, tpb=2):
            J = C.loss_grad(C.to_device(Z), C.to_device(Y), act, ALPHA, loss, A, G)
        assert np.isnan(J), (act, loss)
    x = C.to_device(np.array([1.0, np.nan, 2.0]))
    assert np.isnan(C.sum_squares(x))


def test_bad_codes_raise():
    Z = C.zeros((2, 2), np.float64)
    A, G = C.empty((2, 2), np.float64), C.empty((2, 2), np.float64)
    with pytest.raises(ValueError):
        C.loss_grad(Z, Z, 99, ALPHA, K.MSE, A, G)
    with pytest.raises(ValueError):
        C.loss_grad(Z, Z, K.IDENTITY, ALPHA, 99, A, G)
    with pytest.raises(ValueError):
        C.loss_grad(Z, Z, K.SOFTMAX, ALPHA, K.MSE, A, G)
    with pytest.raises(ValueError):
        C.activation_backward(Z, Z, Z, K.SOFTMAX, ALPHA, C.empty((2, 2), np.float64))
    with pytest.raises(TypeError):
        C.sum_squares(C.to_device(np.ones(3, np.int32)))


def test_simulated_threads_of_a_block_share_one_shared_array():
    """The simulator's shared-array lookup is patched (kernels/_cudasim.py): threads that ask
    at the same moment get one array, not one each.  (Unpatched, about 4% of these rounds
    split the array, so 100 rounds catch it with probability ~98%.)"""
    import sys
    import threading

    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    shared = FakeCUDAShared(0)
    n = 32
    got = [None] * n
    start = threading.Barrier(n)

    def thread(i):
        start.wait()
        got[i] = shared.array((4, 5), np.float32)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(100):
            shared._allocations.clear()
            threads = [threading.Thread(target=thread, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert all(a is got[0] for a in got)
            assert got[0].shape == (4, 5) and got[0].dtype == np.float32
    finally:
        sys.setswitchinterval(old)


def test_threads_predicting_with_one_cuda_network_get_the_serial_results():
    """Under the simulator the backend takes one host thread at a time (kernels/_cudasim.py):
    it cannot run two launches at once."""
    import fastnn as fn

    net = fn.Network([fn.Dense(5, "tanh"), fn.Dense(3, "softmax")], n_inputs=4, seed=0,
                     backend="cuda")
    Xs = [np.random.default_rng(i).standard_normal((6 + i, 4)) for i in range(3)]
    serial = [net.predict_proba(X) for X in Xs]
    got = [None] * 3

    def work(i):
        for _ in range(3):
            got[i] = net.predict_proba(Xs[i])

    errors = run_in_threads(work, 3)
    assert not errors, errors
    for a, b in zip(got, serial):
        np.testing.assert_array_equal(a, b)


def test_cuda_estimator_coefs_refuse_in_place_edits():
    """On cuda coefs_ / intercepts_ are host copies: an in-place edit could not reach the
    model, so it raises; assigning an item writes through."""
    from fastnn.sklearn import MLPClassifier

    X = np.random.default_rng(0).standard_normal((12, 3))
    y = np.arange(12) % 3
    clf = MLPClassifier(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=3, random_state=0,
                        backend="cuda")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    with pytest.raises(ValueError, match="read-only"):
        clf.coefs_[0][...] = 0.0
    clf.coefs_[-1] = np.zeros_like(clf.coefs_[-1])
    clf.intercepts_[-1] = np.zeros_like(clf.intercepts_[-1])
    np.testing.assert_allclose(clf.predict_proba(X[:2]), 1 / 3)
