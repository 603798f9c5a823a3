"""Loss names -> their code, the output activation they pair with, and target handling.

  loss            output g     J (mean over the m examples; L2 added by the network)
  "bce"           sigmoid      -1/m Σ_i Σ_k [y log a + (1-y) log(1-a)]   (binary, multi-label)
  "cross_entropy" softmax      -1/m Σ_i Σ_k y log a                      (multi-class)
  "mse"           any but softmax   1/(2m) Σ (a - y)^2                   (regression)
  "mae"           any but softmax   1/m Σ |a - y|                        (regression)

For all four the output error is dZ = (A - Y)/m with the paired activation (MSE/MAE with
identity); the fused kernel is ``loss_grad`` in fastnn.kernels.
"""
import numpy as np

from . import kernels
from .validation import as_numeric_array, writable_contiguous

ALIASES = {
    "bce": "bce", "binary_crossentropy": "bce", "binary_cross_entropy": "bce", "log_loss": "bce",
    "cross_entropy": "cross_entropy", "ce": "cross_entropy",
    "categorical_crossentropy": "cross_entropy", "softmax_cross_entropy": "cross_entropy",
    "mse": "mse", "mean_squared_error": "mse", "l2": "mse", "squared_error": "mse",
    "mae": "mae", "mean_absolute_error": "mae", "l1": "mae", "absolute_error": "mae",
}
#: the output activation each classification loss requires
REQUIRED_OUTPUT = {"bce": "sigmoid", "cross_entropy": "softmax"}
CLASSIFICATION = ("bce", "cross_entropy")


def canonical(loss):
    """The canonical loss name; ValueError/TypeError naming `loss` otherwise."""
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a string, one of {sorted(set(ALIASES.values()))}; got {loss!r}")
    try:
        return ALIASES[loss.lower()]
    except KeyError:
        raise ValueError(f"loss must be one of {sorted(set(ALIASES.values()))} "
                         f"(or an alias: {sorted(ALIASES)}); got {loss!r}") from None


def check_output_activation(loss, activation):
    """Raise ValueError when the last layer's activation cannot pair with the loss."""
    need = REQUIRED_OUTPUT.get(loss)
    if need is not None and activation != need:
        raise ValueError(f"loss={loss!r} needs a {need!r} output layer; the last Dense has "
                         f"activation {activation!r}")
    if need is None and activation == "softmax":
        raise ValueError(f"loss={loss!r} cannot follow a 'softmax' output layer "
                         "(use loss='cross_entropy', or an elementwise output activation)")


def prepare_targets(Y, loss, n_out, m, dtype, name="Y", xname="X"):
    """Y as a C-contiguous (m, n_out) array of `dtype`, validated for the loss.

    cross_entropy: integer labels (m,) in [0, n_out) become one-hot rows; an (m, n_out)
    array must hold probabilities (each row ≥ 0 and summing to 1 within 1e-3; the rows
    are rescaled to sum to 1, since dZ = (A - Y)/m is the gradient of J only when Σ_k y_k
    = 1).
    bce: 0/1 (or any value in [0, 1]) of shape (m, n_out), or (m,) when n_out == 1.
    mse/mae: real targets (m, n_out), or (m,) when n_out == 1.
    """
    Y = as_numeric_array(Y, name, "a numeric array")
    if Y.ndim == 0 or Y.ndim > 2:
        raise ValueError(f"{name} must be 1-D or 2-D; got shape {Y.shape}")
    if Y.shape[0] != m:
        raise ValueError(f"{name} has {Y.shape[0]} rows but {xname} has {m}")
    if Y.dtype.kind == "f" and not np.all(np.isfinite(Y)):
        raise ValueError(f"{name} contains NaN or Inf")
    if loss == "cross_entropy" and Y.ndim == 1:
        if Y.dtype.kind == "f":
            if not np.all(Y == np.round(Y)):
                raise ValueError(f"{name}: class labels for loss='cross_entropy' must be "
                                 "integers 0..n_classes-1 (or pass one-hot rows)")
        # the range is checked on the values as given, before any cast can wrap them
        if Y.size and (Y.min() < 0 or Y.max() >= n_out):
            raise ValueError(f"{name}: labels must lie in [0, {n_out}) for {n_out} output units; "
                             f"got range [{Y.min()}, {Y.max()}]")
        labels = Y.astype(np.int64)
        out = np.zeros((m, n_out), dtype=dtype)
        out[np.arange(m), labels] = 1
        return out
    if Y.ndim == 1:
        if n_out != 1:
            raise ValueError(f"{name} is 1-D but the network has {n_out} outputs; "
                             f"pass {name} with shape (m, {n_out})")
        Y = Y.reshape(m, 1)
    if Y.shape[1] != n_out:
        hint = (f"; pass class labels as a 1-D array of shape (m,)"
                if loss == "cross_entropy" and Y.shape[1] == 1 else "")
        raise ValueError(f"{name} has {Y.shape[1]} columns but the network has {n_out} "
                         f"outputs{hint}")
    out = writable_contiguous(Y, dtype)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} does not fit in {np.dtype(dtype).name} (overflow to Inf)")
    if loss == "bce" and out.size and (out.min() < 0 or out.max() > 1):
        raise ValueError(f"{name}: targets for loss='bce' must lie in [0, 1]")
    if loss == "cross_entropy" and out.size:
        if out.min() < 0 or not np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
            raise ValueError(f"{name}: rows for loss='cross_entropy' must be one-hot or "
                             "probabilities summing to 1 (or pass integer labels of shape (m,))")
        total = out.sum(axis=1, dtype=np.float64, keepdims=True)
        if (total != 1.0).any():   # a new array: `out` may be the caller's Y
            out = np.ascontiguousarray(out / total, dtype=dtype)
    return out
