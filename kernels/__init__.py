"""fastnn.kernels: the compute interface shared by every backend.

Notation (the seeds transposed, rows = examples)::

    A_prev  (m, n_in)    activations of the previous layer (X for the first layer)
    W       (n_in, n_out) weights,  b (n_out,) biases
    Z       (m, n_out)   Z = A_prev @ W + b
    A       (m, n_out)   A = g(Z)
    dZ      (m, n_out)   dJ/dZ  (already divided by m)
    dW, db               dJ/dW = A_prev.T @ dZ + (l2/m) W,  dJ/db = dZ.sum(0)

Every backend module (``reference``, ``cpu``, ``cuda``) exports the functions named in
``KERNEL_NAMES`` with these signatures.  Outputs are written into arrays passed by the
caller; kernels never allocate a result.  Arrays are C-contiguous, of one float dtype
(float32 or float64), and their shapes have been validated by the caller: kernels do no
bounds checking.

``linear_forward(A_prev, W, b, act, alpha, A)``
    A = g(A_prev @ W + b).  ``act`` may be any activation code, SOFTMAX included.
``activation_backward(dZ, W, A_prev, act, alpha, dZ_prev)``
    dZ_prev = (dZ @ W.T) * g'(A_prev), with g' computed from A_prev = g(Z_prev) alone.
``loss_grad(Z, Y, act, alpha, loss, A, dZ) -> float``
    From the output layer's pre-activation Z (m, k) and targets Y (m, k):
    A = g(Z), dZ = dJ/dZ, returns J (mean over the m rows, no L2 term).
    sigmoid+BCE and softmax+CE work from the logits (no log(0)); both give dZ = (A - Y)/m.
    MSE: J = 1/(2m) sum (A-Y)^2, MAE: J = 1/m sum |A-Y|; dZ = dJ/dA * g'(A).
``accumulate_delta(A_prev, dZ, W, l2, dW, db)``
    dW = A_prev.T @ dZ + (l2/m) W,  db = dZ.sum(0), where m = A_prev.shape[0].
``sum_squares(W) -> float``
    sum of W**2 (the L2 penalty's sum; the caller scales it by l2 / (2m)).
``sgd_update(theta, grad, velocity, lr, momentum, nesterov)``
    momentum == 0:  theta -= lr * grad  (velocity untouched)
    otherwise:      velocity = momentum * velocity - lr * grad
                    theta += momentum * velocity - lr * grad   if nesterov
                    theta += velocity                           otherwise
``adam_update(theta, grad, m1, m2, lr, beta1, beta2, eps, t)``
    m1 = beta1 m1 + (1-beta1) grad; m2 = beta2 m2 + (1-beta2) grad^2;
    theta -= lr * (m1 / (1-beta1^t)) / (sqrt(m2 / (1-beta2^t)) + eps);  t >= 1.
    theta, grad, velocity, m1, m2 are 1-D (the unrolled parameter vector).

Optional, a backend may also export a whole training step in one call (the cpu backend
does, ``cpu_step.py``): ``train_step(X, Y, theta, grad, work, sizes, hidden_act,
hidden_alpha, out_act, out_alpha, loss, l2, opt, lr, h1, h2, eps, s1, s2, t) -> float``
runs exactly the kernels above in the order a step runs them (forward, loss_grad + L2
penalty, accumulate_delta / activation_backward per layer, sgd_update or adam_update by
the optimizer code ``opt``: OPT_SGD or OPT_ADAM), ``train_step_fits(m, sizes,
hidden_act)`` says whether a step of that size may use it, and
``train_step_function(hidden_act, out_act, loss, opt, skinny=None)`` returns the compiled
step itself, ``f(X, Y, theta, grad, work, sizes, hidden_alpha, out_alpha, l2, lr, h1, h2,
eps, s1, s2, t) -> (J, its L2 term)``, which ``fastnn.Network`` keeps and calls directly.
With them may come a loop over such steps, ``train_steps(X, Y, idx, first, batch, count,
Xb, Yb, theta, grad, work, sizes, ..., t, out) -> steps done``: steps first ..
first+count-1 of an epoch whose batches are the rows idx[s:s+batch] of X and Y, gathered
into Xb, Yb; out[k] = (J, its L2 term); it stops after a step whose J is not finite
(nothing updated).  The bits are those of ``train_step`` on each gathered batch.

The cpu backend adds a path for *skinny* networks (``cpu_skinny.py``): where
``train_step_skinny(m, sizes, dtype)`` holds, ``train_step`` and ``train_steps`` run
another step (no BLAS; within the tolerance table of the one above, not bit for bit),
``train_step_function(..., skinny=dtype)`` returns it, and
``skinny_forward_function(hidden_act, out_act, dtype)`` returns the matching inference,
``f(X, theta, work, sizes, hidden_alpha, out_alpha) -> A[L]``.

Array helpers, so that the API layer never touches a device array itself:
``empty(shape, dtype)``, ``zeros(shape, dtype)``, ``to_device(x)`` (a C-contiguous host
array -> backend array, copying), ``to_host(x)`` (backend array -> new NumPy array).

Activation derivatives from the output A = g(Z):
sigmoid A(1-A), tanh 1-A^2, relu A>0, leaky_relu A>0 ? 1 : alpha, identity 1.
"""

IDENTITY = 0
SIGMOID = 1
TANH = 2
RELU = 3
LEAKY_RELU = 4
SOFTMAX = 5

ACTIVATIONS = {
    "identity": IDENTITY,
    "linear": IDENTITY,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "softmax": SOFTMAX,
}
#: activations allowed on hidden layers (softmax is an output only).
HIDDEN_ACTIVATIONS = (IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU)
ACTIVATION_NAMES = {IDENTITY: "identity", SIGMOID: "sigmoid", TANH: "tanh",
                    RELU: "relu", LEAKY_RELU: "leaky_relu", SOFTMAX: "softmax"}

BCE = 0
CROSS_ENTROPY = 1
MSE = 2
MAE = 3

LOSSES = {"bce": BCE, "cross_entropy": CROSS_ENTROPY, "mse": MSE, "mae": MAE}
LOSS_NAMES = {v: k for k, v in LOSSES.items()}

#: optimizer codes of the optional fused ``train_step``
OPT_SGD = 0
OPT_ADAM = 1

KERNEL_NAMES = (
    "linear_forward",
    "activation_backward",
    "loss_grad",
    "accumulate_delta",
    "sum_squares",
    "sgd_update",
    "adam_update",
    "empty",
    "zeros",
    "to_device",
    "to_host",
)

__all__ = [
    "IDENTITY", "SIGMOID", "TANH", "RELU", "LEAKY_RELU", "SOFTMAX", "ACTIVATIONS",
    "HIDDEN_ACTIVATIONS", "ACTIVATION_NAMES", "BCE", "CROSS_ENTROPY", "MSE", "MAE",
    "LOSSES", "LOSS_NAMES", "OPT_SGD", "OPT_ADAM", "KERNEL_NAMES", "TOLERANCES", "tolerance", "allclose",
]

#: The one tolerance table, per dtype name, shared by the equivalence tests and the
#: benchmark's parameter check.  Two arrays are equal when
#: |actual - desired| <= atol + rtol * |desired|, with atol = rtol * max(1, max|desired|)
#: (so an entry that cancels to ~0 inside a long sum is judged on the sum's scale).
TOLERANCES = {
    "float64": {"rtol": 1e-10},
    "float32": {"rtol": 1e-4},
}


def tolerance(dtype):
    """The relative tolerance for a dtype, from TOLERANCES."""
    import numpy as np  # kept local: the interface module imports nothing at load

    return TOLERANCES[np.dtype(dtype).name]["rtol"]


def allclose(actual, desired, dtype=None):
    """True when actual equals desired within the dtype's tolerance (see TOLERANCES)."""
    import numpy as np

    desired = np.asarray(desired)
    rtol = tolerance(dtype if dtype is not None else desired.dtype)   # desired's own dtype
    actual = np.asarray(actual, dtype=np.float64)
    desired = desired.astype(np.float64)
    scale = max(1.0, float(np.max(np.abs(desired)))) if desired.size else 1.0
    return actual.shape == desired.shape and bool(
        np.all(np.abs(actual - desired) <= rtol * scale + rtol * np.abs(desired)))
