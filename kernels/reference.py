"""The NumPy reference backend: the specification every fast backend is held equal to.

Written to read like the course notes, with examples in rows (see ``fastnn.kernels``).
Every function writes its result into the output arrays it is given.
"""
import numpy as np

from . import (BCE, CROSS_ENTROPY, IDENTITY, LEAKY_RELU, MAE, MSE, RELU, SIGMOID,
               SOFTMAX, TANH)


# ---------------------------------------------------------------- activations, g and g'

def sigmoid(Z):
    """g(z) = 1 / (1 + e^-z), without overflow: e^-|z| never exceeds 1."""
    E = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1.0 / (1.0 + E), E / (1.0 + E)).astype(Z.dtype, copy=False)


def softmax(Z):
    """Row-wise e^z / sum e^z, with the row max subtracted first (no overflow)."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def activate(Z, act, alpha):
    """A = g(Z) for an activation code."""
    if act == IDENTITY:
        return Z.copy()
    if act == SIGMOID:
        return sigmoid(Z)
    if act == TANH:
        return np.tanh(Z)
    if act == RELU:
        return np.maximum(Z, 0)
    if act == LEAKY_RELU:
        return np.where(Z > 0, Z, alpha * Z).astype(Z.dtype, copy=False)
    if act == SOFTMAX:
        return softmax(Z)
    raise ValueError(f"unknown activation code {act}")


def derivative(A, act, alpha):
    """g'(z) written in terms of the output A = g(z) alone."""
    if act == IDENTITY:
        return np.ones_like(A)
    if act == SIGMOID:
        return A * (1 - A)
    if act == TANH:
        return 1 - A * A
    if act == RELU:
        return (A > 0).astype(A.dtype)
    if act == LEAKY_RELU:
        return np.where(A > 0, 1, alpha).astype(A.dtype)
    raise ValueError(f"activation code {act} has no elementwise derivative")


# ---------------------------------------------------------------------------- kernels

def linear_forward(A_prev, W, b, act, alpha, A):
    """Forward propagation, z[l] = W[l] a[l-1] + b[l], a[l] = g(z[l]):  A = g(A_prev @ W + b).

    A_prev (m, n_in), W (n_in, n_out), b (n_out,) -> A (m, n_out), written in place.
    """
    Z = A_prev @ W + b
    A[...] = activate(Z, act, alpha)


def activation_backward(dZ, W, A_prev, act, alpha, dZ_prev):
    """The delta recurrence δ(l) = Θ(l)ᵀ δ(l+1) .* g'(z(l)):  dZ_prev = (dZ @ W.T) * g'(A_prev).

    dZ (m, n_out), W (n_in, n_out), A_prev (m, n_in) -> dZ_prev (m, n_in), in place.
    """
    dZ_prev[...] = (dZ @ W.T) * derivative(A_prev, act, alpha)


def loss_grad(Z, Y, act, alpha, loss, A, dZ):
    """The output layer: A = g(Z), dZ = dJ/dZ, returns J (mean over the m rows).

    Z, Y, A, dZ are (m, k).  The log-losses are computed from the logits Z:
      BCE (sigmoid):      J = 1/m sum[ max(z,0) - y z + log(1 + e^-|z|) ]
                          (= -1/m sum[y log a + (1-y) log(1-a)]),   dZ = (A - Y)/m
      CE (softmax):       J = 1/m sum_i sum_k y_ik (logsumexp(z_i) - z_ik)
                          (= -1/m sum y log a),                     dZ = (A - Y)/m
      MSE (any g):        J = 1/(2m) sum (A - Y)^2,   dZ = (A - Y) g'(A) / m
      MAE (any g):        J = 1/m sum |A - Y|,        dZ = sign(A - Y) g'(A) / m
    """
    m = Z.shape[0]
    A[...] = activate(Z, act, alpha)
    if loss == BCE:
        J = np.sum(np.maximum(Z, 0) - Y * Z + np.log1p(np.exp(-np.abs(Z))), dtype=np.float64)
        dZ[...] = (A - Y) / m
    elif loss == CROSS_ENTROPY:
        z_max = Z.max(axis=1, keepdims=True)
        lse = z_max + np.log(np.exp(Z - z_max).sum(axis=1, keepdims=True))
        J = np.sum(Y * (lse - Z), dtype=np.float64)
        dZ[...] = (A - Y) / m
    elif loss == MSE:
        J = 0.5 * np.sum((A - Y) ** 2, dtype=np.float64)
        dZ[...] = (A - Y) * derivative(A, act, alpha) / m
    elif loss == MAE:
        J = np.sum(np.abs(A - Y), dtype=np.float64)
        dZ[...] = np.sign(A - Y) * derivative(A, act, alpha) / m
    else:
        raise ValueError(f"unknown loss code {loss}")
    return float(J / m)


def accumulate_delta(A_prev, dZ, W, l2, dW, db):
    """Δ(l) = δ(l+1) a(l)ᵀ summed over examples, D = Δ/m + λΘ (bias spared):

    dW = A_prev.T @ dZ + (l2/m) W,  db = dZ.sum(0);  m = A_prev.shape[0].
    dZ already carries the 1/m.  dW (n_in, n_out), db (n_out,), in place.
    """
    m = A_prev.shape[0]
    dW[...] = A_prev.T @ dZ
    if l2 != 0.0:
        dW += (l2 / m) * W
    # float32 over many rows: a float64 sum, as the cpu kernel's (no drift); few rows: the
    # plain float32 sum (2.5x faster: this backend is also the plain-NumPy benchmark peer)
    db[...] = dZ.sum(axis=0, dtype=np.float64 if m > 256 else None)


def sum_squares(W):
    """sum of W**2, accumulated in float64."""
    return float(np.sum(np.square(W, dtype=np.float64)))


def sgd_update(theta, grad, velocity, lr, momentum, nesterov):
    """Gradient descent W := W - α D, with optional (Nesterov) momentum, on the unrolled vector."""
    if momentum == 0.0:
        theta -= lr * grad
        return
    velocity *= momentum
    velocity -= lr * grad
    if nesterov:
        theta += momentum * velocity - lr * grad
    else:
        theta += velocity


def adam_update(theta, grad, m1, m2, lr, beta1, beta2, eps, t):
    """Adam (Kingma & Ba), bias-corrected moments, on the unrolled vector; t counts from 1."""
    m1 *= beta1
    m1 += (1 - beta1) * grad
    m2 *= beta2
    m2 += (1 - beta2) * grad * grad
    m_hat = m1 / (1 - beta1 ** t)
    v_hat = m2 / (1 - beta2 ** t)
    theta -= (lr * m_hat / (np.sqrt(v_hat) + eps)).astype(theta.dtype, copy=False)


# ------------------------------------------------------------------------ array helpers

def empty(shape, dtype):
    return np.empty(shape, dtype=dtype)


def zeros(shape, dtype):
    return np.zeros(shape, dtype=dtype)


def to_device(x):
    return np.array(x, order="C", copy=True)


def to_host(x):
    return np.array(x, copy=True)
