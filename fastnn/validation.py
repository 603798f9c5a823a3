"""Input checks shared by the public entry points: every array a kernel will read is
checked here first (Numba does no bounds checking), and converted once to a C-contiguous
array of the network's dtype.  Errors name the argument and what was expected."""
import math
import numbers

import numpy as np

FLOAT_DTYPES = ("float32", "float64")


def check_dtype(dtype, name="dtype"):
    if dtype is None:  # np.dtype(None) is float64: too easy to pass by accident
        raise TypeError(f"{name} must be 'float32' or 'float64'; got None")
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be 'float32' or 'float64'; got {dtype!r}") from None
    if dt.name not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be 'float32' or 'float64'; got {dt.name!r}")
    return np.dtype(dt.name)   # native byte order ('>f8' is float64 here; kernels need it)


def check_int(value, name, minimum=1, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value}")
    return int(value)


def check_real(value, name, minimum=0.0, allow_equal=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if value < minimum or (value == minimum and not allow_equal):
        raise ValueError(f"{name} must be {'>=' if allow_equal else '>'} {minimum}; got {value}")
    return float(value)


def writable_contiguous(a, dtype):
    """a as a C-contiguous, writeable array of dtype (copied only when needed).

    Kernels only read their inputs, but a read-only array is a different Numba type and
    would compile a second specialization of every kernel; a copy is cheaper.
    """
    out = np.asarray(a, dtype=dtype)
    flags = out.flags
    if flags.c_contiguous and flags.aligned and flags.writeable:
        return out
    # read-only, strided, unaligned (e.g. np.frombuffer at an odd offset): a fresh copy
    return np.array(out, dtype=dtype, order="C", copy=True)


def as_numeric_array(value, name, what="a numeric array"):
    """np.asarray(value), refusing what a kernel cannot read: strings, objects, complex,
    sparse matrices, ragged nested lists.  Errors name the argument."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be {what}; got a string")
    if _is_sparse(value):
        raise TypeError(f"{name} is a sparse matrix; pass a dense array ({name}.toarray())")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ValueError(f"{name} must be {what} ({exc})") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be {what} of real numbers (bool, int or float); "
                        f"got dtype {arr.dtype}")
    return arr


def _is_sparse(value):
    """A scipy.sparse matrix or array (without importing scipy.sparse for every call)."""
    module = type(value).__module__ or ""
    if not module.startswith("scipy.sparse"):
        return False
    from scipy import sparse

    return sparse.issparse(value)


def as_features(X, n_inputs, dtype, name="X"):
    """X as a C-contiguous (m, n_inputs) array of dtype, m >= 1, all finite.

    Booleans and integers are converted; object, string and complex arrays are refused.
    The input is never modified: a new array is made unless X already fits exactly.
    """
    X = as_numeric_array(X, name, "a 2-D numeric array")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (m examples, {n_inputs} features); got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 examples)")
    if X.shape[1] != n_inputs:
        raise ValueError(f"{name} has {X.shape[1]} features but the network expects "
                         f"n_inputs={n_inputs}")
    out = writable_contiguous(X, dtype)
    if not np.isfinite(out).all():
        what = "NaN or Inf" if X.dtype.kind == "f" and not np.isfinite(X).all() else \
            f"values too large for {np.dtype(dtype).name} (overflow to Inf)"
        raise ValueError(f"{name} contains {what}")
    return out
