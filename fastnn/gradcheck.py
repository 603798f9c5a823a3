"""Two-sided numerical gradient check (the seeds' gradient checking).

For each parameter θ_i:  dθ_i ≈ (J(θ + ε e_i) - J(θ - ε e_i)) / (2ε).
The result is the relative error ||g_num - g|| / (||g_num|| + ||g||) between the numerical
and the analytic (backprop) gradient; below 1e-7 in float64 means backprop is right.
"""
import numpy as np

from .validation import check_int, check_real


def numerical_gradient(net, X, Y, l2=0.0, eps=1e-4, indices=None):
    """Two-sided difference quotients of net.cost for θ's entries (all, or `indices`), float64."""
    eps = check_real(eps, "eps", minimum=0.0, allow_equal=False)
    l2 = check_real(l2, "l2")
    X, Y = net._device(*net._XY(X, Y))
    theta = net.get_flat_params()
    indices = np.arange(theta.shape[0]) if indices is None else np.asarray(indices)
    grad = np.empty(indices.shape[0], dtype=np.float64)
    probe = theta.copy()
    try:
        for j, i in enumerate(indices):
            probe[i] = theta[i] + eps
            net._write_theta(probe)
            plus = net._cost_only(X, Y, l2)
            probe[i] = theta[i] - eps
            net._write_theta(probe)
            minus = net._cost_only(X, Y, l2)
            probe[i] = theta[i]
            grad[j] = (plus - minus) / (2 * eps)
    finally:
        net._write_theta(theta)
    return grad


def gradcheck(net, X, Y, l2=0.0, eps=1e-4, max_params=None, seed=0):
    """Relative error between numerical and backprop gradients of J(X, Y, l2).

    max_params: check only a random subset of that many parameters (large networks).
    Use float64 networks: float32 cannot resolve a difference quotient to 1e-7.
    """
    l2 = check_real(l2, "l2")
    analytic = np.concatenate([np.concatenate([dW.ravel(), db]) for dW, db in
                               net.gradients(X, Y, l2)]).astype(np.float64)
    indices = None
    if max_params is not None:
        max_params = check_int(max_params, "max_params")
        indices = np.sort(np.random.default_rng(seed).choice(
            analytic.size, min(max_params, analytic.size), replace=False))
        analytic = analytic[indices]
    numeric = numerical_gradient(net, X, Y, l2, eps, indices)
    denom = np.linalg.norm(numeric) + np.linalg.norm(analytic)
    return 0.0 if denom == 0.0 else float(np.linalg.norm(numeric - analytic) / denom)
