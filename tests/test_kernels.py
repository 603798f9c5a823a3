"""Each fast backend's kernels equal the NumPy reference (kernels/reference.py).

Parametrized over backend x dtype x activation x loss x awkward shapes, plus
hypothesis-drawn shapes and values.  Every test also checks that inputs are unchanged,
and the output's dtype and shape.  Under NUMBA_ENABLE_CUDASIM=1 the fast backend is
cuda, on tiny shapes (the simulator is slow).
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from fastnn import kernels as K
from fastnn.kernels import reference as R

from conftest import CUDASIM, DTYPES, assert_close, rand, targets

if CUDASIM:
    SHAPES = [(1, 1, 1), (3, 2, 5), (5, 7, 3), (17, 33, 2)]
else:
    SHAPES = [(1, 1, 1), (1, 5, 3), (4, 1, 1), (33, 17, 10), (257, 33, 7), (64, 300, 257),
              (200, 784, 64), (2, 3000, 20)]
HIDDEN = [K.IDENTITY, K.SIGMOID, K.TANH, K.RELU, K.LEAKY_RELU]
OUTPUT_PAIRS = [(K.SIGMOID, K.BCE), (K.SOFTMAX, K.CROSS_ENTROPY), (K.IDENTITY, K.MSE),
                (K.IDENTITY, K.MAE), (K.RELU, K.MSE), (K.SIGMOID, K.MSE), (K.TANH, K.MAE),
                (K.LEAKY_RELU, K.MSE)]
ALPHA = 0.01



def run(B, fn, inputs, outputs, *scalars):
    """Call B.fn on device copies; return host outputs and check inputs were not modified."""
    before = [x.copy() for x in inputs]
    dev_in = [B.to_device(x) for x in inputs]
    dev_out = [B.to_device(x) for x in outputs]
    ret = getattr(B, fn)(*dev_in, *scalars, *dev_out)
    for x, x0, d in zip(inputs, before, dev_in):
        np.testing.assert_array_equal(B.to_host(d), x0)
        np.testing.assert_array_equal(x, x0)
    return ret, [B.to_host(d) for d in dev_out]


def reference_activation_input(rng, shape, act, dtype):
    """A_prev as a forward pass would leave it: g(Z) for the activation code."""
    return R.activate(rand(rng, shape, dtype), act, ALPHA).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", HIDDEN + [K.SOFTMAX])
@pytest.mark.parametrize("m,n_in,n_out", SHAPES)
def test_linear_forward(fast_backend, dtype, act, m, n_in, n_out):
    rng = np.random.default_rng(m * 1000 + n_in + n_out)
    A_prev, W, b = rand(rng, (m, n_in), dtype), rand(rng, (n_in, n_out), dtype, 0.3), rand(rng, n_out, dtype)
    A_ref = np.empty((m, n_out), dtype)
    R.linear_forward(A_prev, W, b, act, ALPHA, A_ref)
    _, (A,) = run(fast_backend, "linear_forward", [A_prev, W, b], [np.zeros((m, n_out), dtype)],
                  act, ALPHA)
    assert A.dtype == dtype
    assert_close(A, A_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", HIDDEN)
@pytest.mark.parametrize("m,n_in,n_out", SHAPES)
def test_activation_backward(fast_backend, dtype, act, m, n_in, n_out):
    rng = np.random.default_rng(7 + m + n_in * 3 + n_out * 11)
    dZ, W = rand(rng, (m, n_out), dtype), rand(rng, (n_in, n_out), dtype)
    A_prev = reference_activation_input(rng, (m, n_in), act, dtype)
    ref = np.empty((m, n_in), dtype)
    R.activation_backward(dZ, W, A_prev, act, ALPHA, ref)
    _, (out,) = run(fast_backend, "activation_backward", [dZ, W, A_prev], [np.zeros((m, n_in), dtype)],
                    act, ALPHA)
    assert out.dtype == dtype
    assert_close(out, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act,loss", OUTPUT_PAIRS)
@pytest.mark.parametrize("m,k", [(s[0], s[2]) for s in SHAPES])
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_loss_grad(fast_backend, dtype, act, loss, m, k, scale):
    rng = np.random.default_rng(m + 13 * k)
    Z = rand(rng, (m, k), dtype, scale)  # scale 50: large logits, exp overflows if unstable
    Y = targets(rng, m, k, loss, dtype)
    A_ref, dZ_ref = np.empty((m, k), dtype), np.empty((m, k), dtype)
    J_ref = R.loss_grad(Z, Y, act, ALPHA, loss, A_ref, dZ_ref)
    J, (A, dZ) = run(fast_backend, "loss_grad", [Z, Y], [np.zeros((m, k), dtype)] * 2,
                     act, ALPHA, loss)
    assert np.isfinite(J_ref) and np.isfinite(J)
    assert_close(J, J_ref, dtype)
    assert_close(A, A_ref, dtype)
    assert_close(dZ, dZ_ref, dtype)
    assert A.dtype == dtype and dZ.dtype == dtype


def test_loss_grad_extreme_logits_reference():
    """|z| > 700 overflows a naive exp(-z) in float64; the reference must stay finite."""
    Z = np.array([[-800.0, 800.0, 0.0]])
    Y = np.array([[0.0, 1.0, 0.0]])
    for act, loss in [(K.SIGMOID, K.BCE), (K.SOFTMAX, K.CROSS_ENTROPY)]:
        A, dZ = np.empty_like(Z), np.empty_like(Z)
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            J = R.loss_grad(Z, Y, act, ALPHA, loss, A, dZ)
        assert np.isfinite(J) and np.all(np.isfinite(A)) and np.all(np.isfinite(dZ))
    A = np.empty((3, 3))
    R.linear_forward(np.eye(3), Z.reshape(3, 1) * np.ones((1, 3)), np.zeros(3), K.SIGMOID, ALPHA, A)
    assert np.all(np.isfinite(A)) and A.max() <= 1 and A.min() >= 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("l2", [0.0, 1.0])
@pytest.mark.parametrize("m,n_in,n_out", SHAPES)
def test_accumulate_delta(fast_backend, dtype, l2, m, n_in, n_out):
    rng = np.random.default_rng(3 * m + n_in + 5 * n_out)
    A_prev, dZ, W = rand(rng, (m, n_in), dtype), rand(rng, (m, n_out), dtype), rand(rng, (n_in, n_out), dtype)
    dW_ref, db_ref = np.empty((n_in, n_out), dtype), np.empty(n_out, dtype)
    R.accumulate_delta(A_prev, dZ, W, l2, dW_ref, db_ref)
    # garbage in the outputs: the kernel overwrites, never adds to what was there
    _, (dW, db) = run(fast_backend, "accumulate_delta", [A_prev, dZ, W],
                      [np.full((n_in, n_out), 7, dtype), np.full(n_out, 7, dtype)], l2)
    assert dW.dtype == dtype and db.dtype == dtype
    assert_close(dW, dW_ref, dtype)
    assert_close(db, db_ref, dtype)


@pytest.mark.parametrize("n_out", [1, 3])
def test_bias_gradient_over_many_rows_does_not_drift_in_float32(fast_backend, n_out):
    """dZ = c/m on every row (a saturated or freshly initialized output over a full
    batch): db must be c, not a float32 running sum's drift (0.1% at 100k rows)."""
    m = 2_000 if CUDASIM else 100_000
    dZ = np.full((m, n_out), np.float32(0.5) / np.float32(m), np.float32)
    A_prev, W = np.ones((m, 1), np.float32), np.zeros((1, n_out), np.float32)
    exact = dZ.astype(np.float64).sum(0)
    for backend in (R, fast_backend):
        _, (dW, db) = run(backend, "accumulate_delta", [A_prev, dZ, W],
                          [np.empty((1, n_out), np.float32), np.empty(n_out, np.float32)], 0.0)
        assert_close(db, exact.astype(np.float32), np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 33, 1000, 100_003])
def test_sum_squares(fast_backend, dtype, n):
    if CUDASIM and n > 1000:
        pytest.skip("simulator: tiny shapes only")
    W = rand(np.random.default_rng(n), (n,), dtype).reshape(-1, 1)
    ref = R.sum_squares(W)
    got = fast_backend.sum_squares(fast_backend.to_device(W))
    assert isinstance(got, float)
    assert_close(got, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
@pytest.mark.parametrize("n", [1, 33, 4097])
def test_sgd_update(fast_backend, dtype, momentum, nesterov, n):
    rng = np.random.default_rng(n)
    theta, grad, vel = rand(rng, n, dtype), rand(rng, n, dtype), rand(rng, n, dtype)
    t_ref, v_ref = theta.copy(), vel.copy()
    R.sgd_update(t_ref, grad, v_ref, 0.1, momentum, nesterov)
    g0 = grad.copy()
    B = fast_backend
    t_d, g_d, v_d = B.to_device(theta), B.to_device(grad), B.to_device(vel)
    for _ in range(1):
        B.sgd_update(t_d, g_d, v_d, 0.1, momentum, nesterov)
    np.testing.assert_array_equal(B.to_host(g_d), g0)
    assert_close(B.to_host(t_d), t_ref, dtype)
    assert_close(B.to_host(v_d), v_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 33, 4097])
def test_adam_update(fast_backend, dtype, n):
    rng = np.random.default_rng(n + 1)
    theta, m1, m2 = rand(rng, n, dtype), rand(rng, n, dtype), np.abs(rand(rng, n, dtype))
    t_ref, m1_ref, m2_ref = theta.copy(), m1.copy(), m2.copy()
    B = fast_backend
    t_d, m1_d, m2_d = B.to_device(theta), B.to_device(m1), B.to_device(m2)
    for t in (1, 2, 3):
        grad = rand(rng, n, dtype)
        R.adam_update(t_ref, grad, m1_ref, m2_ref, 1e-3, 0.9, 0.999, 1e-8, t)
        B.adam_update(t_d, B.to_device(grad), m1_d, m2_d, 1e-3, 0.9, 0.999, 1e-8, t)
    assert_close(B.to_host(t_d), t_ref, dtype)
    assert_close(B.to_host(m1_d), m1_ref, dtype)
    assert_close(B.to_host(m2_d), m2_ref, dtype)


@given(m=st.integers(1, 8 if CUDASIM else 70), n_in=st.integers(1, 8 if CUDASIM else 70),
       n_out=st.integers(1, 8 if CUDASIM else 40), act=st.sampled_from(HIDDEN),
       pair=st.sampled_from(OUTPUT_PAIRS), dtype=st.sampled_from(DTYPES),
       scale=st.floats(0.01, 30.0), seed=st.integers(0, 2**31 - 1))
def test_kernels_hypothesis(fast_backend, m, n_in, n_out, act, pair, dtype, scale, seed):
    """Random shapes and bounded values: a forward, the loss and a backward step all agree."""
    rng = np.random.default_rng(seed)
    out_act, loss = pair
    X, W, b = rand(rng, (m, n_in), dtype, scale), rand(rng, (n_in, n_out), dtype), rand(rng, n_out, dtype)
    Y = targets(rng, m, n_out, loss, dtype)
    Z_ref = np.empty((m, n_out), dtype)
    R.linear_forward(X, W, b, K.IDENTITY, ALPHA, Z_ref)
    _, (Z,) = run(fast_backend, "linear_forward", [X, W, b], [np.empty((m, n_out), dtype)], K.IDENTITY, ALPHA)
    assert_close(Z, Z_ref, dtype)
    A_ref, dZ_ref = np.empty_like(Z_ref), np.empty_like(Z_ref)
    J_ref = R.loss_grad(Z_ref, Y, out_act, ALPHA, loss, A_ref, dZ_ref)
    J, (A, dZ) = run(fast_backend, "loss_grad", [Z_ref, Y], [np.empty_like(Z_ref)] * 2, out_act, ALPHA, loss)
    assert_close(J, J_ref, dtype)
    assert_close(dZ, dZ_ref, dtype)
    A_prev = R.activate(X, act, ALPHA).astype(dtype)
    back_ref = np.empty((m, n_in), dtype)
    R.activation_backward(dZ_ref, W, A_prev, act, ALPHA, back_ref)
    _, (back,) = run(fast_backend, "activation_backward", [dZ_ref, W, A_prev], [np.empty((m, n_in), dtype)],
                     act, ALPHA)
    assert_close(back, back_ref, dtype)


def test_nan_propagates(fast_backend):
    """fastmath flags keep NaN semantics: a NaN in gives a NaN out, never a finite number."""
    X = np.array([[np.nan, 1.0], [0.5, 2.0]])
    W = np.ones((2, 3))
    b = np.zeros(3)
    for act in HIDDEN + [K.SOFTMAX]:
        _, (A,) = run(fast_backend, "linear_forward", [X, W, b], [np.zeros((2, 3))], act, ALPHA)
        assert np.all(np.isnan(A[0])), (act, A)
        assert np.all(np.isfinite(A[1]))
    Z = np.array([[np.nan, 0.0], [1.0, 2.0]])
    Y = np.array([[1.0, 0.0], [0.0, 1.0]])
    for act, loss in OUTPUT_PAIRS:
        J, (A, dZ) = run(fast_backend, "loss_grad", [Z, Y], [np.zeros((2, 2))] * 2, act, ALPHA, loss)
        assert np.isnan(J), (act, loss)


@pytest.mark.parametrize("dtype", DTYPES)
def test_allclose_reads_the_tolerance_of_desired_dtype(dtype):
    """Without dtype=, allclose judges by desired's own dtype (not by the float64 copy it
    compares in): a float32 result one rounding away is equal, a float64 one is not."""
    rtol = K.tolerance(dtype)
    desired = np.array([1.0, -2.0, 3.0], dtype=dtype)
    assert K.allclose(desired * (1 + rtol / 4), desired)
    assert not K.allclose(desired * (1 + 4 * rtol), desired)
    assert K.allclose(desired.astype(np.float64) + 1e-6, desired) == (rtol > 1e-6)
