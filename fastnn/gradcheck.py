"""Two-sided numerical gradient check (the seeds' gradient checking).

For each parameter θ_i:  dθ_i ≈ (J(θ + ε e_i) - J(θ - ε e_i)) / (2ε).
The result is the relative error ||g_num - g|| / (||g_num|| + ||g||) between the numerical
and the analytic (backprop) gradient; below 1e-7 in float64 means backprop is right.
"""
import numpy as np

from .validation import check_int, check_real


def numerical_gradient(net, X, Y, l2=0.0, eps=1e-4, indices=None):
    """Two-sided difference quotients of net.cost for θ's entries (all, or `indices`), float64."""
    _check_net(net)
    eps = check_real(eps, "eps", minimum=0.0, allow_equal=False)
    l2 = check_real(l2, "l2")
    X, Y = net._device(*net._XY(X, Y))
    theta = net.get_flat_params()
    indices = np.arange(theta.shape[0]) if indices is None else _check_indices(indices, theta.shape[0])
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
    if not np.isfinite(grad).all():
        raise ValueError("the numerical gradient is not finite (Inf or NaN): the values of X, Y "
                         "or l2 are too large for this network's dtype, or eps is too large")
    return grad


def _check_net(net):
    from .network import Network

    if not isinstance(net, Network):
        raise TypeError(f"net must be a fastnn.Network; got {type(net).__name__}")


def _check_indices(indices, n):
    """indices as a 1-D int64 array of positions in [0, n) (θ has n entries)."""
    try:
        idx = np.asarray(indices)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"indices must be a 1-D array of ints ({exc})") from None
    if idx.size == 0 and idx.ndim == 1:   # [] is float64 to NumPy: no entries, no type
        return np.empty(0, np.int64)
    if idx.dtype.kind not in "iu" or idx.ndim != 1:
        raise TypeError(f"indices must be a 1-D array of ints; got dtype {idx.dtype}, "
                        f"shape {idx.shape}") if idx.dtype.kind not in "iu" else \
            ValueError(f"indices must be 1-D; got shape {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"indices must lie in [0, {n}) (count_params()); "
                         f"got range [{idx.min()}, {idx.max()}]")
    return idx.astype(np.int64)


def gradcheck(net, X, Y, l2=0.0, eps=1e-4, max_params=None, seed=0):
    """Relative error between numerical and backprop gradients of J(X, Y, l2).

    max_params: check only a random subset of that many parameters (large networks).
    Use float64 networks: float32 cannot resolve a difference quotient to 1e-7.
    """
    _check_net(net)
    l2 = check_real(l2, "l2")
    seed = check_int(seed, "seed", minimum=0)
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
