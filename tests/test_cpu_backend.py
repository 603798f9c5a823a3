"""The Numba CPU backend's own promises, beyond equality with the reference.

* size-based dispatch: the wrappers pick the serial variant below a kernel's threshold and
  the parallel one from it on, and both variants equal the reference on both sides;
* determinism: bitwise-identical results on repeated calls, in a fresh process, and (for
  the reductions, whose chunking depends on the shape alone) for any thread count;
* NaN propagation through every kernel and both variants;
* the vectorized exp / sigmoid / tanh / log1p forms are accurate over the whole range;
* fastnn.set_num_threads: validation, and its effect on Numba and on the BLAS pools.
"""
import hashlib
import json
import math
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from fastnn import kernels as K
from fastnn.kernels import cpu as C
from fastnn.kernels import reference as R

from conftest import DTYPES, assert_close, rand, targets

HIDDEN = [K.IDENTITY, K.SIGMOID, K.TANH, K.RELU, K.LEAKY_RELU]
ALL_ACTS = HIDDEN + [K.SOFTMAX]
PAIRS = [(K.SIGMOID, K.BCE), (K.SOFTMAX, K.CROSS_ENTROPY), (K.IDENTITY, K.MSE),
         (K.IDENTITY, K.MAE), (K.RELU, K.MSE), (K.SIGMOID, K.MSE), (K.TANH, K.MAE),
         (K.LEAKY_RELU, K.MSE), (K.TANH, K.BCE), (K.IDENTITY, K.CROSS_ENTROPY)]
ALPHA = 0.01



def rows_for(threshold, n):
    """Rows m so that an (m, n) output sits at or just above the threshold."""
    return max(1, -(-threshold // n))


# ------------------------------------------------------------------ dispatch: which path

class Spy:
    def __init__(self, name, calls, fn):
        self.name, self.calls, self.fn = name, calls, fn

    def __call__(self, *args):
        self.calls.append(self.name)
        return self.fn(*args)


def spy_table(monkeypatch, table, key, calls, big):
    """Wrap a kernel table entry's variants in spies, with the threshold set to big (the
    default thresholds are so high on 2 cores that tests could not reach them)."""
    ser, par, _ = table[key]
    monkeypatch.setitem(table, key, (Spy("ser", calls, ser), Spy("par", calls, par), big))
    return big


@pytest.mark.parametrize("act", [K.RELU, K.SIGMOID, K.SOFTMAX])
def test_forward_dispatch_by_size(monkeypatch, act):
    rng = np.random.default_rng(1)
    calls = []
    big = spy_table(monkeypatch, C._FWD, act, calls, 5000)
    n_out = 64
    for m, expect in ((big // n_out - 1, "ser"), (rows_for(big, n_out), "par")):
        X, W = rand(rng, (m, 20), np.float32), rand(rng, (20, n_out), np.float32)
        b = rand(rng, n_out, np.float32)
        A, A_ref = np.empty((m, n_out), np.float32), np.empty((m, n_out), np.float32)
        C.linear_forward(X, W, b, act, ALPHA, A)
        R.linear_forward(X, W, b, act, ALPHA, A_ref)
        assert calls[-1] == expect, (m, big)
        assert_close(A, A_ref, np.float32)


def test_backward_dispatch_by_size(monkeypatch):
    rng = np.random.default_rng(2)
    calls = []
    big = spy_table(monkeypatch, C._BWD, K.TANH, calls, 6000)
    n_in = 128
    for m, expect in ((big // n_in - 1, "ser"), (rows_for(big, n_in), "par")):
        dZ, W = rand(rng, (m, 16), np.float64), rand(rng, (n_in, 16), np.float64)
        A_prev = np.tanh(rand(rng, (m, n_in), np.float64))
        out, ref = np.empty((m, n_in)), np.empty((m, n_in))
        C.activation_backward(dZ, W, A_prev, K.TANH, ALPHA, out)
        R.activation_backward(dZ, W, A_prev, K.TANH, ALPHA, ref)
        assert calls[-1] == expect
        assert_close(out, ref, np.float64)


def test_loss_dispatch_by_size(monkeypatch):
    rng = np.random.default_rng(3)
    calls = []
    key = K.SOFTMAX * 8 + K.CROSS_ENTROPY
    big = spy_table(monkeypatch, C._LOSS, key, calls, 3000)
    k = 10
    for m, expect in ((big // k - 1, "ser"), (rows_for(big, k), "par")):
        Z, Y = rand(rng, (m, k), np.float32, 5.0), targets(rng, m, k, K.CROSS_ENTROPY, np.float32)
        A, dZ, A_r, dZ_r = (np.empty((m, k), np.float32) for _ in range(4))
        J = C.loss_grad(Z, Y, K.SOFTMAX, ALPHA, K.CROSS_ENTROPY, A, dZ)
        J_r = R.loss_grad(Z, Y, K.SOFTMAX, ALPHA, K.CROSS_ENTROPY, A_r, dZ_r)
        assert calls[-1] == expect
        assert isinstance(J, float)
        assert_close(J, J_r, np.float32)
        assert_close(A, A_r, np.float32)
        assert_close(dZ, dZ_r, np.float32)


@pytest.mark.parametrize("name,threshold,fn", [
    ("_delta_ser", "_DELTA_PAR_MIN", "accumulate_delta"),
    ("_sgd_ser", "_SGD_PAR_MIN", "sgd_update"),
    ("_adam_ser", "_ADAM_PAR_MIN", "adam_update"),
    ("_ss_ser", "_SS_PAR_MIN", "sum_squares")])
def test_module_level_dispatch_by_size(monkeypatch, name, threshold, fn):
    calls = []
    ser_name, par_name = name, name.replace("_ser", "_par")
    monkeypatch.setattr(C, ser_name, Spy("ser", calls, getattr(C, ser_name)))
    monkeypatch.setattr(C, par_name, Spy("par", calls, getattr(C, par_name)))
    big = 7000
    monkeypatch.setattr(C, threshold, big)
    rng = np.random.default_rng(4)
    if fn == "accumulate_delta":
        n_out = 32
        for m, expect in ((8, "ser"), (rows_for(big, n_out), "par")):
            X, dZ, W = (rand(rng, s, np.float32) for s in ((m, 8), (m, n_out), (8, n_out)))
            dW, db = np.empty((8, n_out), np.float32), np.empty(n_out, np.float32)
            dW_r, db_r = np.empty((8, n_out), np.float32), np.empty(n_out, np.float32)
            C.accumulate_delta(X, dZ, W, 0.5, dW, db)
            R.accumulate_delta(X, dZ, W, 0.5, dW_r, db_r)
            assert calls[-1] == expect
            assert_close(dW, dW_r, np.float32)
            assert_close(db, db_r, np.float32)
        return
    for n, expect in ((big - 1, "ser"), (big, "par")):
        v = rand(rng, n, np.float32)
        if fn == "sum_squares":
            assert_close(C.sum_squares(v), R.sum_squares(v), np.float32)
        elif fn == "sgd_update":
            th, th_r, vel, vel_r = v.copy(), v.copy(), v.copy(), v.copy()
            C.sgd_update(th, v, vel, 0.1, 0.9, False)
            R.sgd_update(th_r, v, vel_r, 0.1, 0.9, False)
            assert_close(th, th_r, np.float32)
        else:
            th, th_r = v.copy(), v.copy()
            m1, m2, m1_r, m2_r = v.copy(), np.abs(v), v.copy(), np.abs(v)
            C.adam_update(th, v, m1, m2, 0.1, 0.9, 0.999, 1e-8, 1)
            R.adam_update(th_r, v, m1_r, m2_r, 0.1, 0.9, 0.999, 1e-8, 1)
            assert_close(th, th_r, np.float32)
        assert calls[-1] == expect


def test_default_thresholds_keep_benchmark_shapes_serial():
    """On 2 cores the serial variants win at every workload shape (see cpu.py): the
    largest benchmark outputs stay below every default threshold."""
    largest = 512 * 1024                      # 1024-1024-1024-10 at batch 512
    for act in (K.IDENTITY, K.SIGMOID, K.TANH, K.RELU, K.LEAKY_RELU, K.SOFTMAX):
        assert act == K.IDENTITY or C._FWD[act][2] > largest
    assert C._BWD[K.RELU][2] > largest and C._LOSS[K.SIGMOID * 8 + K.BCE][2] > largest
    assert min(C._DELTA_PAR_MIN, C._SGD_PAR_MIN, C._ADAM_PAR_MIN, C._SS_PAR_MIN) > 2_200_000


# ------------------------------------------------- both variants equal the reference

VARIANT_SHAPES = [(1, 1, 1), (3, 5, 2), (17, 33, 10), (130, 40, 70)]


@pytest.mark.parametrize("variant", [0, 1])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n_in,n_out", VARIANT_SHAPES)
def test_variants_equal_reference(variant, dtype, m, n_in, n_out):
    """Serial and parallel variants called directly, on shapes far from their thresholds."""
    rng = np.random.default_rng(m + n_in + n_out)
    X, W = rand(rng, (m, n_in), dtype, 2.0), rand(rng, (n_in, n_out), dtype)
    b = rand(rng, n_out, dtype)
    for act in ALL_ACTS:
        A, A_r = np.empty((m, n_out), dtype), np.empty((m, n_out), dtype)
        C._FWD[act][variant](X, W, b, ALPHA, A)
        R.linear_forward(X, W, b, act, ALPHA, A_r)
        assert_close(A, A_r, dtype)
    dZ = rand(rng, (m, n_out), dtype)
    for act in HIDDEN:
        A_prev = R.activate(X, act, ALPHA).astype(dtype)
        out, ref = np.empty((m, n_in), dtype), np.empty((m, n_in), dtype)
        C._BWD[act][variant](dZ, W, A_prev, ALPHA, out)
        R.activation_backward(dZ, W, A_prev, act, ALPHA, ref)
        assert_close(out, ref, dtype)
    for act, loss in PAIRS:
        Z, Y = rand(rng, (m, n_out), dtype, 10.0), targets(rng, m, n_out, loss, dtype)
        A, dZ2, A_r, dZ_r = (np.empty((m, n_out), dtype) for _ in range(4))
        J = C._LOSS[act * 8 + loss][variant](Z, Y, ALPHA, A, dZ2)
        J_r = R.loss_grad(Z, Y, act, ALPHA, loss, A_r, dZ_r)
        assert_close(J, J_r, dtype)
        assert_close(A, A_r, dtype)
        assert_close(dZ2, dZ_r, dtype)
    delta = (C._delta_ser, C._delta_par)[variant]
    for l2 in (0.0, 0.7):
        dW, db = np.full((n_in, n_out), 9, dtype), np.full(n_out, 9, dtype)
        dW_r, db_r = np.empty((n_in, n_out), dtype), np.empty(n_out, dtype)
        delta(X, dZ, W, l2, dW, db)
        R.accumulate_delta(X, dZ, W, l2, dW_r, db_r)
        assert_close(dW, dW_r, dtype)
        assert_close(db, db_r, dtype)


@pytest.mark.parametrize("variant", [0, 1])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 4097, 70_001])
def test_vector_variants_equal_reference(variant, dtype, n):
    rng = np.random.default_rng(n)
    W = rand(rng, n, dtype)
    ss = (C._ss_ser, C._ss_par)[variant](W)
    assert_close(ss, R.sum_squares(W), dtype)
    sgd = (C._sgd_ser, C._sgd_par)[variant]
    for momentum, nesterov in ((0.0, False), (0.9, False), (0.9, True)):
        th, g = rand(rng, n, dtype), rand(rng, n, dtype)
        v = rand(rng, n, dtype) if momentum else np.zeros(1, dtype)
        th_r, v_r = th.copy(), v.copy()
        sgd(th, g, v, 0.05, momentum, nesterov)
        R.sgd_update(th_r, g, v_r, 0.05, momentum, nesterov)
        assert_close(th, th_r, dtype)
        assert_close(v, v_r, dtype)
    adam = (C._adam_ser, C._adam_par)[variant]
    th, m1, m2 = rand(rng, n, dtype), rand(rng, n, dtype), np.abs(rand(rng, n, dtype))
    th_r, m1_r, m2_r = th.copy(), m1.copy(), m2.copy()
    for t in (1, 2, 5):
        g = rand(rng, n, dtype)
        adam(th, g, m1, m2, 1e-3, 0.9, 0.999, 1e-8, t)
        R.adam_update(th_r, g, m1_r, m2_r, 1e-3, 0.9, 0.999, 1e-8, t)
    assert_close(th, th_r, dtype)
    assert_close(m1, m1_r, dtype)
    assert_close(m2, m2_r, dtype)


def test_serial_and_parallel_reductions_are_bitwise_equal():
    """The same fixed chunks in both variants: J and sum_squares do not depend on the path."""
    rng = np.random.default_rng(5)
    for dtype in DTYPES:
        # the two fused pairs and one of the generic ones
        for act, loss in ((K.SIGMOID, K.BCE), (K.SOFTMAX, K.CROSS_ENTROPY), (K.TANH, K.MAE)):
            for m in (1, 15, 16, 17, 999, 5000):
                Z, Y = rand(rng, (m, 10), dtype, 4.0), targets(rng, m, 10, loss, dtype)
                ser, par, _ = C._LOSS[act * 8 + loss]
                outs = [np.empty((m, 10), dtype) for _ in range(4)]
                assert ser(Z, Y, ALPHA, outs[0], outs[1]) == par(Z, Y, ALPHA, outs[2], outs[3])
                np.testing.assert_array_equal(outs[0], outs[2])
                np.testing.assert_array_equal(outs[1], outs[3])
        for n in (1, 4095, 4096, 4097, 300_001):
            W = rand(rng, n, dtype)
            assert C._ss_ser(W) == C._ss_par(W)


# ------------------------------------------------------------------------ determinism

def _all_outputs(seed=0):
    """Every kernel through the public wrappers, on shapes that take the serial and the
    parallel paths; returns {name: bytes}."""
    rng = np.random.default_rng(seed)
    out = {}
    for dtype in DTYPES:
        for m, n_in, n_out in ((33, 17, 10), (700, 300, 130)):
            X, W = rand(rng, (m, n_in), dtype), rand(rng, (n_in, n_out), dtype)
            b = rand(rng, n_out, dtype)
            for act in ALL_ACTS:
                A = np.empty((m, n_out), dtype)
                C.linear_forward(X, W, b, act, ALPHA, A)
                out[f"fwd{act}{m}{dtype.__name__}"] = A
            dZ = rand(rng, (m, n_out), dtype)
            for act in HIDDEN:
                o = np.empty((m, n_in), dtype)
                C.activation_backward(dZ, W, np.abs(X) / 4, act, ALPHA, o)
                out[f"bwd{act}{m}{dtype.__name__}"] = o
            for act, loss in PAIRS:
                Y = targets(rng, m, n_out, loss, dtype)
                A, d = np.empty((m, n_out), dtype), np.empty((m, n_out), dtype)
                J = C.loss_grad(X[:, :1] * W[:1] * 5, Y, act, ALPHA, loss, A, d)
                out[f"loss{act},{loss}{m}{dtype.__name__}"] = np.array([J])
                out[f"lossA{act},{loss}{m}{dtype.__name__}"] = A
                out[f"lossdZ{act},{loss}{m}{dtype.__name__}"] = d
            dW, db = np.empty((n_in, n_out), dtype), np.empty(n_out, dtype)
            C.accumulate_delta(X, dZ, W, 0.3, dW, db)
            out[f"dW{m}{dtype.__name__}"], out[f"db{m}{dtype.__name__}"] = dW, db
        for n in (100, 300_000):
            th, g = rand(rng, n, dtype), rand(rng, n, dtype)
            out[f"ss{n}{dtype.__name__}"] = np.array([C.sum_squares(th)])
            v = np.zeros(n, dtype)
            C.sgd_update(th, g, v, 0.1, 0.9, True)
            m1, m2 = np.zeros(n, dtype), np.zeros(n, dtype)
            C.adam_update(th, g, m1, m2, 1e-3, 0.9, 0.999, 1e-8, 1)
            out[f"sgd{n}{dtype.__name__}"], out[f"v{n}{dtype.__name__}"] = th, v
    return {k: np.ascontiguousarray(v).tobytes() for k, v in out.items()}


def _digest(outputs):
    return {k: hashlib.sha256(v).hexdigest() for k, v in sorted(outputs.items())}


def test_repeated_calls_are_bitwise_identical():
    assert _digest(_all_outputs()) == _digest(_all_outputs())


def test_fresh_process_is_bitwise_identical():
    here = _digest(_all_outputs())
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import numba
        from test_cpu_backend import _all_outputs, _digest
        numba.set_num_threads({numba.get_num_threads()})
        print(json.dumps(_digest(_all_outputs())))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    there = json.loads(proc.stdout.strip().splitlines()[-1])
    assert there == here


def test_blas_source_is_numpys_openblas_when_numpy_bundles_one():
    from fastnn.kernels import cpu_blas

    assert C.BLAS_SOURCE in ("numpy", "scipy")
    expected = "scipy" if os.environ.get("FASTNN_BLAS", "").lower() == "scipy" else (
        "numpy" if cpu_blas._numpy_openblas() is not None else "scipy")
    assert C.BLAS_SOURCE == expected


def test_scipy_blas_fallback_agrees_with_the_default(tmp_path):
    """FASTNN_BLAS=scipy (the path used where NumPy bundles no OpenBLAS) runs every kernel
    through SciPy's BLAS; its results equal this process's within the tolerance table
    (different BLAS libraries: not bitwise)."""
    here = _all_outputs(seed=3)
    out = tmp_path / "scipy.npz"
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import numpy as np
        from fastnn.kernels import cpu
        assert cpu.BLAS_SOURCE == "scipy", cpu.BLAS_SOURCE
        from test_cpu_backend import _all_outputs
        np.savez({str(out)!r}, **{{k: np.frombuffer(v, np.uint8) for k, v in
                                  _all_outputs(seed=3).items()}})
    """)
    env = dict(os.environ, FASTNN_BLAS="scipy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    there = np.load(out)
    assert sorted(there.files) == sorted(here)
    for k, v in here.items():
        dtype = np.float32 if "float32" in k else np.float64
        assert_close(np.frombuffer(there[k].tobytes(), dtype),
                     np.frombuffer(v, dtype), dtype)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
def test_reductions_do_not_depend_on_thread_count():
    """loss_grad's J and sum_squares chunk by the shape, not by the thread count."""
    rng = np.random.default_rng(6)
    Z = rand(rng, (4000, 10), np.float32, 3.0)
    Y = targets(rng, 4000, 10, K.CROSS_ENTROPY, np.float32)
    W = rand(rng, 500_000, np.float32)
    before = numba.get_num_threads()
    results = []
    try:
        for n in (1, 2, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(n)
            A, d = np.empty_like(Z), np.empty_like(Z)
            J = C._LOSS[K.SOFTMAX * 8 + K.CROSS_ENTROPY][1](Z, Y, ALPHA, A, d)
            results.append((J, C._ss_par(W), A.tobytes(), d.tobytes()))
    finally:
        numba.set_num_threads(before)
    assert all(r == results[0] for r in results)


# ----------------------------------------------------------------------------- NaN in

@pytest.mark.parametrize("variant", [0, 1])
def test_nan_propagates_through_every_kernel(variant):
    nan = np.nan
    X = np.array([[nan, 1.0, 0.5], [0.5, 2.0, -1.0]])
    W = np.ones((3, 4))
    b = np.zeros(4)
    for act in ALL_ACTS:
        A = np.zeros((2, 4))
        C._FWD[act][variant](X, W, b, ALPHA, A)
        assert np.all(np.isnan(A[0])) and np.all(np.isfinite(A[1])), (act, A)
    # NaN in the bias reaches every row of that column
    bn = np.array([0.0, nan, 0.0, 0.0])
    for act in HIDDEN:
        A = np.zeros((1, 4))
        C._FWD[act][variant](np.abs(X[1:]), W, bn, ALPHA, A)
        assert np.isnan(A[0, 1]) and np.isfinite(A[0, 0]), act
    # backward: NaN in dZ reaches dZ_prev even where g'(A_prev) = 0 (relu's dead units)
    dZ = np.array([[nan, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    A_prev = np.zeros((2, 3))
    for act in HIDDEN:
        out = np.zeros((2, 3))
        C._BWD[act][variant](dZ, W, A_prev, ALPHA, out)
        assert np.all(np.isnan(out[0])), (act, out)
    # loss: a NaN logit makes J NaN, for every pairing, wherever it sits in the row
    Y = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    for col in range(3):
        Z = np.array([[0.5, -1.0, 2.0], [1.0, 2.0, 3.0]])
        Z[0, col] = nan
        for act, loss in PAIRS:
            A, d = np.zeros((2, 3)), np.zeros((2, 3))
            J = C._LOSS[act * 8 + loss][variant](Z, Y, ALPHA, A, d)
            assert np.isnan(J), (act, loss, col)
            assert np.isnan(A[0, col]) and np.isnan(d[0, col]), (act, loss, col)
    # delta: NaN in dZ reaches its dW column and db entry
    delta = (C._delta_ser, C._delta_par)[variant]
    dW, db = np.zeros((3, 4)), np.zeros(4)
    dZ = np.array([[0.0, nan, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    delta(np.ones((2, 3)), dZ, W, 0.5, dW, db)
    assert np.all(np.isnan(dW[:, 1])) and np.isnan(db[1])
    assert np.all(np.isfinite(np.delete(dW, 1, axis=1))) and np.isfinite(np.delete(db, 1)).all()
    # sum of squares and updates
    v = np.array([1.0, nan, 2.0])
    assert np.isnan((C._ss_ser, C._ss_par)[variant](v))
    for momentum, nesterov in ((0.0, False), (0.9, False), (0.9, True)):
        th, vel = np.zeros(3), np.zeros(3)
        (C._sgd_ser, C._sgd_par)[variant](th, v, vel, 0.1, momentum, nesterov)
        assert np.isnan(th[1]) and np.isfinite(th[[0, 2]]).all()
    th, m1, m2 = np.zeros(3), np.zeros(3), np.zeros(3)
    (C._adam_ser, C._adam_par)[variant](th, v, m1, m2, 1e-3, 0.9, 0.999, 1e-8, 1)
    assert np.isnan(th[1]) and np.isnan(m1[1]) and np.isnan(m2[1]) and np.isfinite(th[[0, 2]]).all()


# ---------------------------------------------------- the vectorized elementary functions

@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_accurate_over_the_whole_range(dtype):
    """sigmoid / tanh / softmax from our polynomial exp, against float64 NumPy, |z| to 1000."""
    z = np.concatenate([np.linspace(-1000, 1000, 20001), np.linspace(-30, 30, 20001),
                        np.geomspace(1e-30, 1e-3, 200), -np.geomspace(1e-30, 1e-3, 200),
                        [0.0, -0.0, 700.5, -700.5, 745.2, -745.2, 88.8, -88.8, 1e300]])
    with np.errstate(over="ignore"):          # 1e300 -> inf in float32: fine
        z = z.astype(dtype).astype(np.float64)
    eps = float(np.finfo(dtype).eps)
    A = z.astype(dtype).reshape(1, -1).copy()
    b = np.zeros(A.shape[1], dtype)
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(z))
        sig = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    for fn, ref in ((C._fwd_sigmoid_rows, sig), (C._fwd_tanh_rows, np.tanh(z))):
        out = A.copy()
        fn(out, b, 0.0, 0, 1)
        got = out[0].astype(np.float64)
        assert np.all(np.isfinite(got))
        # absolute error of a few ulp of 1, relative error of a few ulp where |g| >= tiny
        err = np.abs(got - ref)
        tiny = 1e-30 if dtype == np.float32 else 1e-300
        rel = err / np.maximum(np.abs(ref), tiny)
        assert err.max() <= 4 * eps, fn
        big = np.abs(ref) > (1e-37 if dtype == np.float32 else 1e-307)
        assert rel[big].max() <= 8 * eps, (fn, z[big][np.argmax(rel[big])])
    # softmax of rows with huge spreads: no overflow, rows sum to 1
    Zs = np.array([[-1000, 0, 1000], [0.0, 0.0, 0.0], [1e3, 1e3 - 1, -1e3]], dtype)
    out = Zs.copy()
    C._fwd_softmax_rows(out, np.zeros(3, dtype), 0.0, 0, 3)
    ref = np.exp(Zs - Zs.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    assert_close(out, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_loss_accurate_for_extreme_logits(dtype):
    """J = max(z,0) - y z + log1p(e^-|z|): our log1p form against float64 NumPy."""
    z = np.concatenate([np.linspace(-800, 800, 4001), np.geomspace(1e-12, 40, 2000)]).astype(dtype)
    Z = z.reshape(-1, 1).copy()
    for y in (0.0, 1.0):
        Y = np.full_like(Z, y)
        A, d = np.empty_like(Z), np.empty_like(Z)
        ser, _, _ = C._LOSS[K.SIGMOID * 8 + K.BCE]
        J = ser(Z, Y, ALPHA, A, d)
        z64 = Z.astype(np.float64)
        ref = np.mean(np.maximum(z64, 0) - y * z64 + np.log1p(np.exp(-np.abs(z64))))
        assert abs(J - ref) <= 16 * np.finfo(dtype).eps * max(1.0, abs(ref))
        assert np.all(np.isfinite(A)) and np.all(np.isfinite(d))


# ------------------------------------------------------------------------- thread knob

@pytest.fixture
def restore_threads():
    from fastnn import threads

    before = numba.get_num_threads()
    yield threads
    threads.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, numba.config.NUMBA_NUM_THREADS + 1, 1.5, True, "2",
                                 None])
def test_set_num_threads_validates(restore_threads, bad):
    with pytest.raises(ValueError, match=r"\bn\b"):
        restore_threads.set_num_threads(bad)


def test_set_num_threads_sets_numba_and_blas(restore_threads):
    from threadpoolctl import threadpool_info

    T = restore_threads
    for n in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        T.set_num_threads(np.int64(n))
        assert T.get_num_threads() == n == numba.get_num_threads()
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        assert blas, "no BLAS pool found by threadpoolctl"
        assert all(i["num_threads"] == n for i in blas), blas
        # and the kernels still agree with the reference under the new count
        rng = np.random.default_rng(n)
        X, W = rand(rng, (300, 200), np.float32), rand(rng, (200, 300), np.float32)
        b = rand(rng, 300, np.float32)
        A, A_r = np.empty((300, 300), np.float32), np.empty((300, 300), np.float32)
        C.linear_forward(X, W, b, K.TANH, ALPHA, A)
        R.linear_forward(X, W, b, K.TANH, ALPHA, A_r)
        assert_close(A, A_r, np.float32)


@numba.njit
def _views(buf, off, rows, cols):
    """C._view's 2-D and 1-D views of buf at off, written through, and their shapes."""
    V = C._view(buf, off, (rows, cols))
    for i in range(rows):
        for j in range(cols):
            V[i, j] = 10 * i + j
    v = C._view(buf, off + rows * cols, cols)
    for j in range(cols):
        v[j] = -1 - j
    return V.shape, v.shape, V.strides


@pytest.mark.parametrize("dtype", DTYPES)
def test_view_is_a_c_contiguous_window_on_the_buffer(dtype):
    """cpu._view (the step's slices, without reference counts): a row-major window of the
    parent's buffer at the given offset, written through to it, nothing outside touched."""
    buf = np.zeros(30, dtype)
    shape2, shape1, strides = _views(buf, 3, 4, 5)
    assert shape2 == (4, 5) and shape1 == (5,)
    assert strides == (5 * buf.itemsize, buf.itemsize)
    want = np.zeros(30, dtype)
    want[3:23] = (10 * np.arange(4)[:, None] + np.arange(5)).ravel()
    want[23:28] = -1 - np.arange(5)
    assert buf.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_squares_counts_every_entry_once(dtype):
    """_ss_range's lanes and leftover entries: one entry 3 among zeros sums to exactly 9
    wherever it sits, for lengths around whole multiples of the lanes."""
    L = C._SS_LANES
    for n in (1, L - 1, L, L + 1, 2 * L + 5, C._SS_CHUNK + L + 3):
        for k in sorted({0, 1, n // 2, n - L - 1, n - L, n - 2, n - 1} & set(range(n))):
            x = np.zeros(n, dtype)
            x[k] = 3.0
            assert C.sum_squares(x) == 9.0, (n, k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_squares_is_the_float64_sum(dtype):
    """Against the correctly rounded sum of the float64 squares, at lengths with and
    without leftover entries (the table's float64 tolerance: the sum runs in float64)."""
    rng = np.random.default_rng(11)
    for n in (0, 5, 64, 100, 4096, 4096 + 37, 70001):
        x = rand(rng, n, dtype, 3.0)
        exact = math.fsum(float(v) * float(v) for v in x.tolist())
        got = C.sum_squares(x)
        assert isinstance(got, float)
        assert_close(got, exact, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_in,n_out", [(64, 16), (64, 17), (256, 16), (257, 16), (1, 1),
                                        (300, 1), (16, 1)])
def test_backward_product_on_both_sides_of_the_transposed_copy(dtype, n_in, n_out):
    """dZ @ W.T runs on a copy of W.T for small W with at most _WT_MAX_COLS columns
    (AVX-512 hosts): both sides of both limits equal the reference."""
    rng = np.random.default_rng(n_in * 100 + n_out)
    m = 37
    dZ, W = rand(rng, (m, n_out), dtype), rand(rng, (n_in, n_out), dtype)
    A_prev = rand(rng, (m, n_in), dtype)
    for act in (K.IDENTITY, K.TANH):
        out, out_r = np.empty((m, n_in), dtype), np.empty((m, n_in), dtype)
        C.activation_backward(dZ, W, A_prev, act, ALPHA, out)
        R.activation_backward(dZ, W, A_prev, act, ALPHA, out_r)
        assert_close(out, out_r, dtype)
