"""The cpu backend's products along long rows (kernels/cpu_long.py): X @ W and X.T @ dZ
against float64 NumPy within their summation-order bounds, on awkward shapes (rows,
columns and vector lanes left over); the entries around the output untouched; the bits
against the thread count; the in-register transpose; which shapes the kernels route
there, and the kernels on such shapes against the reference backend."""
import multiprocessing
import os

import numba
import numpy as np
import pytest
from numba import njit

from fastnn.kernels import cpu as C
from fastnn.kernels import cpu_long as L
from fastnn.kernels import reference as R
from fastnn.kernels import IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, TANH

from conftest import DTYPES, assert_close, run_in_threads

#: (m, K, N): tiles of 4 rows and 5 columns with rows and columns left over, K below,
#: at and above whole vectors and blocks, N across one and two vectors, many rows
SHAPES = [(1, 1, 1), (3, 15, 4), (4, 16, 5), (5, 17, 6), (9, 64, 20), (13, 65, 24),
          (17, 130, 32), (8, 4099, 21), (33, 700, 11), (2, 2000, 3), (1100, 130, 7)]
PAD = 7


def _padded(rng, shape, dtype):
    """A C-contiguous array inside a buffer with PAD guard entries on both sides."""
    n = int(np.prod(shape))
    buf = rng.standard_normal(n + 2 * PAD).astype(dtype)
    return buf, buf[PAD:PAD + n].reshape(shape)


def _guards(buf):
    return np.concatenate([buf[:PAD], buf[-PAD:]]).tobytes()


@pytest.mark.parametrize("add", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,K,N", SHAPES)
def test_forward_is_the_float64_product(m, K, N, dtype, add):
    rng = np.random.default_rng(m * K + N)
    X = rng.standard_normal((m, K)).astype(dtype)
    W = rng.standard_normal((K, N)).astype(dtype)
    buf, A = _padded(rng, (m, N), dtype)
    before, guards = A.astype(np.float64), _guards(buf)
    L.long_forward(X, W, A, add)
    want = X.astype(np.float64) @ W + (before if add else 0.0)
    scale = np.abs(X).astype(np.float64) @ np.abs(W) + np.abs(want)
    vl = L.VECTOR_BYTES // np.dtype(dtype).itemsize
    # lane chains of K / VL terms, log2(VL) halvings, the K % VL terms left over, the add
    limit = (K // vl + 4 + K % vl + 2) * np.finfo(dtype).eps
    assert (np.abs(A - want) <= limit * scale + 1e-300).all(), (m, K, N)
    assert _guards(buf) == guards


@pytest.mark.parametrize("add", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,K,N", SHAPES)
def test_gradient_is_the_float64_product(m, K, N, dtype, add):
    rng = np.random.default_rng(m * K + N + 1)
    X = rng.standard_normal((m, K)).astype(dtype)
    dZ = rng.standard_normal((m, N)).astype(dtype)
    buf, dW = _padded(rng, (K, N), dtype)
    before, guards = dW.astype(np.float64), _guards(buf)
    L.long_gradient(X, dZ, dW, add)
    want = X.T.astype(np.float64) @ dZ + (before if add else 0.0)
    scale = np.abs(X.T).astype(np.float64) @ np.abs(dZ) + np.abs(want)
    limit = (m + 2) * np.finfo(dtype).eps          # one chain over the m examples, the add
    assert (np.abs(dW - want) <= limit * scale + 1e-300).all(), (m, K, N)
    assert _guards(buf) == guards


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("dtype", DTYPES)
def test_bits_do_not_depend_on_the_thread_count(dtype):
    rng = np.random.default_rng(3)
    m, K, N = 41, 4100, 20
    X = rng.standard_normal((m, K)).astype(dtype)
    W = rng.standard_normal((K, N)).astype(dtype)
    dZ = rng.standard_normal((m, N)).astype(dtype)
    before = numba.get_num_threads()
    out = []
    try:
        for n in sorted({1, 2, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(n)
            A, dW = np.empty((m, N), dtype), np.empty((K, N), dtype)
            L.long_forward(X, W, A, False)
            L.long_gradient(X, dZ, dW, False)
            out.append(A.tobytes() + dW.tobytes())
    finally:
        numba.set_num_threads(before)
    assert all(o == out[0] for o in out)


@njit
def _transpose(S, s0, ss, nr, D, d0, ds, nc, add):
    if add:
        L._transpose(True, S, s0, ss, nr, D, d0, ds, nc)
    else:
        L._transpose(False, S, s0, ss, nr, D, d0, ds, nc)


@pytest.mark.parametrize("add", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose_writes_exactly_its_block(dtype, add):
    """D[d0 + j ds + q] (+)= S[s0 + q ss + j] for q < nr, j < nc, every other entry of D
    as it was, for every nr, nc up to a vector."""
    vl = L.VECTOR_BYTES // np.dtype(dtype).itemsize
    rng = np.random.default_rng(5)
    ss, ds = vl + 3, vl + 5
    S = rng.standard_normal(ss * vl + 2).astype(dtype)
    for nr in range(1, vl + 1):
        for nc in range(1, vl + 1):
            D = rng.standard_normal(ds * vl + 4).astype(dtype)
            want = D.copy()
            for q in range(nr):
                for j in range(nc):
                    v = S[1 + q * ss + j]
                    want[2 + j * ds + q] = want[2 + j * ds + q] + v if add else v
            _transpose(S, 1, ss, nr, D, 2, ds, nc, add)
            assert D.tobytes() == want.tobytes(), (nr, nc)


# ------------------------------------------------------------- the kernels' routing

ROUTED = L._AVX512 and L._PARALLEL.value == 1


@pytest.mark.skipif(not ROUTED, reason="the kernels route long rows only on AVX-512, under TBB")
def test_which_shapes_take_the_long_products():
    assert L.long_rows(209, 12288, 20, 4)          # the 64x64 images' first layer (W2)
    assert L.long_rows(400, 4096, 24, 4)
    assert L.long_rows(1000, 4096, 10, 4)
    assert not L.long_rows(64, 12288, 20, 4)       # fewer multiply-adds than MIN_WORK
    assert not L.long_rows(209, 12288, 20, 8)      # float64: BLAS
    assert not L.long_rows(209, 12288, 25, 4)      # wider than MAX_WIDTH
    assert not L.long_rows(209, 4095, 20, 4)       # rows shorter than MIN_K
    assert not L.long_rows(7, 12288, 20, 4)        # fewer examples than MIN_M
    assert not L.long_rows(209, 8192, 2, 4)        # W below MIN_W_BYTES
    assert not L.long_rows(256, 784, 256, 4)       # MNIST's first layer (W1)


ACTS = [IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, SOFTMAX]


@pytest.mark.parametrize("m,K,N", [(410, 4096, 20), (343, 4103, 24), (801, 6000, 7)])
def test_kernels_on_long_rows_equal_the_reference(m, K, N):
    """Both variants of the forward and delta kernels, on shapes the rule routes to the
    long products (on AVX-512 hosts, under TBB), against the reference; the two variants
    bit-equal."""
    dtype = np.float32
    rng = np.random.default_rng(K + N)
    X = rng.standard_normal((m, K)).astype(dtype)
    W = (rng.standard_normal((K, N)) / 40).astype(dtype)
    b = rng.standard_normal(N).astype(dtype)
    dZ = rng.standard_normal((m, N)).astype(dtype)
    assert L.long_rows(m, K, N, 4) == ROUTED
    for act in ACTS:
        out = []
        for variant in (0, 1):
            A = np.empty((m, N), dtype)
            C._FWD[act][variant](X, W, b, 0.01, A)
            out.append(A)
        A_r = np.empty((m, N), dtype)
        R.linear_forward(X, W, b, act, 0.01, A_r)
        assert_close(out[0], A_r, dtype)
        assert out[0].tobytes() == out[1].tobytes()
    for l2 in (0.0, 0.7):
        out = []
        for delta in (C._delta_ser, C._delta_par):
            dW, db = np.full((K, N), 9, dtype), np.full(N, 9, dtype)
            delta(X, dZ, W, l2, dW, db)
            out.append((dW, db))
        dW_r, db_r = np.empty((K, N), dtype), np.empty(N, dtype)
        R.accumulate_delta(X, dZ, W, l2, dW_r, db_r)
        assert_close(out[0][0], dW_r, dtype)
        assert_close(out[0][1], db_r, dtype)
        assert out[0][0].tobytes() == out[1][0].tobytes()


# ------------------------------------------------------------ threads and processes

def _w2_like(seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((41, 4100)).astype(dtype)
    W = rng.standard_normal((4100, 20)).astype(dtype)
    dZ = rng.standard_normal((41, 20)).astype(dtype)
    return X, W, dZ


def _products(X, W, dZ):
    A, dW = np.empty((X.shape[0], W.shape[1]), X.dtype), np.empty_like(W)
    L.long_forward(X, W, A, False)
    L.long_gradient(X, dZ, dW, False)
    return A.tobytes() + dW.tobytes()


def _in_child(queue):
    queue.put(_products(*_w2_like(8)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_computes_the_same_bits():
    """After the products ran here (on several threads under TBB), a forked child runs
    them too and gets the same bits."""
    want = _products(*_w2_like(8))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_in_child, args=(queue,))
    child.start()
    got = queue.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0
    assert got == want


def test_threads_may_run_the_products_at_once():
    want = [_products(*_w2_like(s)) for s in range(4)]
    got = [None] * 4

    def work(i):
        for _ in range(3):
            got[i] = _products(*_w2_like(i))

    assert run_in_threads(work, 4) == []
    assert got == want
