"""A whole training step of a network in one compiled call (cpu backend).

``train_step`` runs, inside one ``@njit`` function, exactly the serial kernels that the
step made of one call per kernel runs (``fastnn.Network`` without it):

    forward    A[l] = g(A[l-1] @ W[l] + b[l]) for the hidden layers, Z = A[L-1] @ W[L] + b[L]
    loss       J, A_out, dZ[L] = loss_grad(Z, Y)             (+ l2/(2m) sum ||W||^2)
    backward   dW[l], db[l] = accumulate_delta(A[l-1], dZ[l], W[l], l2)
               dZ[l-1] = activation_backward(dZ[l], W[l], A[l-1])
    update     θ := sgd_update(θ, D) or adam_update(θ, D)      (D = the unrolled dW, db)

so its results have the same bits; what it removes is the Python between the kernels
(about 10 calls a step, a few microseconds each: most of a tiny network's step).  It is
specialised, like the kernels, on the constants (hidden activation, output activation,
loss, optimizer) and compiled on first use.  A step whose cost J is not finite returns J
before the backward pass: θ and the optimizer state are left as they were.

Steps of skinny networks (``train_step_skinny``) run ``cpu_skinny``'s step instead: the
tables below hold it under the same codes plus the dtype's itemsize (0 for this one).

Shapes (m examples, layer widths sizes = [n_0, ..., n_L]):
    X (m, n_0), Y (m, n_L), C-contiguous;
    theta, grad: the unrolled parameters, per layer W (n_in, n_out) row-major then b (n_out);
    work: A[1..L] (m, n_l) each, then A_out (m, n_L), then dZ[1..L] (m, n_l), row-major.
"""
import hashlib
import math
import os

import numpy as np

from numba import njit
from numba.core.caching import FunctionCache

from . import IDENTITY, OPT_SGD

# cpu.py imports this module at its end (train_step is part of its interface), so nothing
# here imports cpu.py at import time: either module may be imported first.


def _make_step(key):
    if key[4]:
        from .cpu_skinny import _make_skinny_step

        return _make_skinny_step(key)
    from .cpu import (_BWD, _FWD, _LOSS, _SER, _adam_range, _delta_ser, _plus_penalty,
                      _sgd_range, _ss_ser, _view)

    hidden, out_act, loss, opt = key[:4]
    fwd_hidden = _FWD[hidden][0]
    fwd_out = _FWD[IDENTITY][0]
    loss_fn = _LOSS[out_act * 8 + loss][0]
    bwd_hidden = _BWD[hidden][0]

    def step(X, Y, theta, grad, work, sizes, alpha_h, alpha_o, l2, lr, h1, h2, eps, s1, s2, t):
        L = sizes.shape[0] - 1
        m = X.shape[0]
        # forward: the output layer keeps Z (the fused loss applies its activation)
        A_prev = X
        off = 0
        woff = 0
        for l in range(L):
            n_in, n_out = sizes[l], sizes[l + 1]
            W = _view(theta, off, (n_in, n_out))
            b = _view(theta, off + n_in * n_out, n_out)
            A = _view(work, woff, (m, n_out))
            if l < L - 1:
                fwd_hidden(A_prev, W, b, alpha_h, A)
            else:
                fwd_out(A_prev, W, b, alpha_h, A)
            A_prev = A
            off += n_in * n_out + n_out
            woff += m * n_out
        n_L = sizes[L]
        A_out = _view(work, woff, (m, n_L))
        dz_end = work.shape[0]           # dZ[L] is the last block, dZ[1] the first
        dZ = _view(work, dz_end - m * n_L, (m, n_L))
        J = loss_fn(A_prev, Y, alpha_o, A_out, dZ)
        if l2 != 0.0:
            ss = 0.0
            off = 0
            for l in range(L):
                n_in, n_out = sizes[l], sizes[l + 1]
                ss += _ss_ser(_view(theta, off, (n_in, n_out)))
                off += n_in * n_out + n_out
            J, pen = _plus_penalty(J, l2, m, ss)
        else:
            pen = 0.0
        if not math.isfinite(J):
            return J, pen
        # backward, last layer first; off / woff walk back from the ends
        off = theta.shape[0]
        a_end = woff                     # end of A[L]
        for l in range(L - 1, -1, -1):
            n_in, n_out = sizes[l], sizes[l + 1]
            off -= n_in * n_out + n_out
            W = _view(theta, off, (n_in, n_out))
            dW = _view(grad, off, (n_in, n_out))
            db = _view(grad, off + n_in * n_out, n_out)
            a_end -= m * n_out           # now the end of A[l-1]
            if l > 0:
                A_prev = _view(work, a_end - m * n_in, (m, n_in))
            else:
                A_prev = X
            _delta_ser(A_prev, dZ, W, l2, dW, db)
            if l > 0:
                dz_end -= m * n_out
                dZ_prev = _view(work, dz_end - m * n_in, (m, n_in))
                bwd_hidden(dZ, W, A_prev, alpha_h, dZ_prev)
                dZ = dZ_prev
        if opt == OPT_SGD:
            _sgd_range(theta, grad, s1, lr, h1, h2 != 0.0)
        else:
            _adam_range(theta, grad, s1, s2, lr, h1, h2, eps, t)
        return J, pen

    return _compiled(step, key)


def _make_steps(key):
    from .cpu import _view

    step = _steps()[key]

    def steps(X, Y, idx, first, batch, count, Xb, Yb, theta, grad, work, sizes, alpha_h,
              alpha_o, l2, lr, h1, h2, eps, s1, s2, t, out):
        n = idx.shape[0]
        n_0 = X.shape[1]
        n_L = Y.shape[1]
        for k in range(count):
            s = (first + k) * batch
            mb = min(batch, n - s)
            for r in range(mb):
                i = idx[s + r]
                for j in range(n_0):
                    Xb[r, j] = X[i, j]
                for j in range(n_L):
                    Yb[r, j] = Y[i, j]
            J, pen = step(_view(Xb, 0, (mb, n_0)), _view(Yb, 0, (mb, n_L)), theta, grad,
                          _view(work, 0, _work_size(mb, sizes)), sizes, alpha_h, alpha_o, l2,
                          lr, h1, h2, eps, s1, s2, t + k)
            out[k, 0] = J
            out[k, 1] = pen
            if not math.isfinite(J):
                return k
        return count

    return _compiled(steps, key)


def _compiled(py_func, key):
    """njit(py_func) with the kernels' options, cached on disk under _StepCache's key."""
    from .cpu import _SER, _named

    _named("_".join(map(str, key)))(py_func)   # one symbol name per specialisation
    dispatcher = njit(**dict(_SER, cache=False))(py_func)
    try:
        dispatcher._cache = _StepCache(py_func, key)
    except Exception:  # pragma: no cover - a numba without this cache API: compile per process
        pass
    return dispatcher


@njit(cache=True)
def _work_size(m, sizes):
    """work_size, callable from the compiled loop (sizes: int64 array)."""
    total = sizes[sizes.shape[0] - 1]
    for l in range(1, sizes.shape[0]):
        total += 2 * sizes[l]
    return m * total


def _sources_digest():
    here = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    for name in ("__init__.py", "_codegen.py", "cpu.py", "cpu_blas.py", "cpu_long.py",
                 "cpu_step.py", "cpu_skinny.py", "cpu_tiles.py"):
        with open(os.path.join(here, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


class _StepCache(FunctionCache):
    """Numba's on-disk cache for a step, keyed by its constants (hidden act, output act,
    loss, optimizer) and the kernels' sources instead of its closure cells: the cells hold
    the kernels' dispatchers, whose pickles differ in every process, so numba's own key
    would never match and every process would compile the step again (~2-3 s)."""

    _digest = None

    def __init__(self, py_func, key):
        super().__init__(py_func)
        self._key = key
        if _StepCache._digest is None:
            _StepCache._digest = _sources_digest()

    def _index_key(self, sig, codegen):
        code = hashlib.sha256(self._py_func.__code__.co_code).hexdigest()
        consts = hashlib.sha256(repr((self._key, self._digest)).encode()).hexdigest()
        return (sig, codegen.magic_tuple(), (code, consts))


_STEP = None  # cpu._Table: (hidden act, output act, loss, optimizer, skinny itemsize or 0)
#               -> step (compiled; the skinny ones, Python around compiled parts)
_MANY = None  # the same for the compiled loop over steps (itemsize 0 only)


def _steps():
    global _STEP
    if _STEP is None:
        from .cpu import _Table

        _STEP = _Table(_make_step)
    return _STEP


def _loops():
    global _MANY
    if _MANY is None:
        from .cpu import _Table

        _MANY = _Table(_make_steps)
    return _MANY


def fits(m, sizes, hidden_act):
    """True when every kernel of a step of m examples would run its serial variant (the
    one this step calls) under cpu.py's size thresholds; else the per-kernel step runs."""
    from . import cpu as _cpu

    n = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    big_out = max(m * k for k in sizes[1:])
    big_w = max(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    hidden_min = _cpu._BWD_PAR_MIN       # identity's forward has one variant (threshold 0)
    if hidden_act != IDENTITY:
        hidden_min = min(hidden_min, _cpu._FWD_PAR_MIN[hidden_act])
    return (big_out < min(hidden_min, _cpu._LOSS_PAR_MIN, _cpu._DELTA_PAR_MIN)
            and big_w < min(_cpu._DELTA_PAR_MIN, _cpu._SS_PAR_MIN)
            and n < min(_cpu._SGD_PAR_MIN, _cpu._ADAM_PAR_MIN))


def work_size(m, sizes):
    """Entries of the work buffer for m examples: A[1..L], A_out, dZ[1..L]."""
    return int(_work_size(m, np.asarray(sizes, dtype=np.int64)))


def train_step(X, Y, theta, grad, work, sizes, hidden_act, hidden_alpha, out_act, out_alpha,
               loss, l2, opt, lr, h1, h2, eps, s1, s2, t):
    """One training step (see the module docstring); returns J as a float.

    opt: OPT_SGD (h1 = momentum, h2 = 1.0 for Nesterov else 0.0; s1 = velocity, or a length-1
    placeholder when momentum is 0; s2 unused) or OPT_ADAM (h1, h2 = beta1, beta2; s1, s2 =
    first and second moments; t = the step number, from 1).  sizes: int64 array.
    """
    thin = X.dtype if train_step_skinny(X.shape[0], sizes, X.dtype) else None
    step = train_step_function(hidden_act, out_act, loss, opt, thin)
    return step(X, Y, theta, grad, work, sizes, hidden_alpha, out_alpha, float(l2), float(lr),
                float(h1), float(h2), float(eps), s1, s2, int(t))[0]


def train_step_function(hidden_act, out_act, loss, opt, skinny=None):
    """The compiled step of train_step for these codes, to call without train_step's
    per-call lookup and conversions (a step of a tiny network takes a few microseconds):
    ``f(X, Y, theta, grad, work, sizes, hidden_alpha, out_alpha, l2, lr, h1, h2, eps, s1,
    s2, t) -> (J, P)``, P the L2 term of J; the alphas (as the layers hold them), l2, lr,
    h1, h2 and eps Python floats, t a Python int (other types compile another
    specialization).  skinny: None, or the float dtype of steps for which
    ``train_step_skinny`` holds: then the skinny step (``cpu_skinny.py``), a Python
    function around compiled parts, for those steps only."""
    thin = 0 if skinny is None else np.dtype(skinny).itemsize
    return (_STEP or _steps())[(int(hidden_act), int(out_act), int(loss), int(opt), thin)]


def train_step_skinny(m, sizes, dtype):
    """Whether a step of m examples of this network runs the skinny step
    (``cpu_skinny.skinny``): train_step and train_steps choose it by this rule, and a
    caller of train_step_function must too."""
    from .cpu_skinny import skinny

    return skinny(m, sizes, dtype)


def train_steps(X, Y, idx, first, batch, count, Xb, Yb, theta, grad, work, sizes, hidden_act,
                hidden_alpha, out_act, out_alpha, loss, l2, opt, lr, h1, h2, eps, s1, s2, t, out):
    """`count` training steps in one compiled call: step k (0-based) gathers the rows
    idx[s:s + mb] of X and Y, s = (first + k) * batch, mb = min(batch, len(idx) - s), into
    Xb[:mb], Yb[:mb] and runs train_step on them (Adam's step number t + k).  Writes
    out[k] = (J, P), the cost and its L2 term P = l2/(2 mb) sum ||W||^2, and returns the
    number of steps that updated θ: `count`, or k when step k's J was not finite (θ and the
    state as step k found them; out[k] holds its J).  The bits are those of `count` calls
    of train_step on the gathered batches.

    Shapes: X (n, n_0), Y (n, n_L); idx int64 (N,) with values in [0, n); Xb (batch, n_0),
    Yb (batch, n_L); work >= work_size(batch, sizes) entries; out float64 (>= count, 2).
    """
    n_steps = -(-idx.shape[0] // batch) if batch > 0 else 0
    if not (X.ndim == Y.ndim == 2 and X.shape[0] == Y.shape[0] and idx.ndim == 1
            and idx.dtype == np.int64 and batch >= 1 and 0 <= first and count >= 0
            and first + count <= n_steps and Xb.shape == (batch, X.shape[1])
            and Yb.shape == (batch, Y.shape[1]) and X.shape[1] == sizes[0]
            and Y.shape[1] == sizes[-1] and work.shape[0] >= work_size(batch, sizes)
            and out.ndim == 2 and out.shape[0] >= count and out.shape[1] == 2
            and out.dtype == np.float64):
        raise ValueError("train_steps: inconsistent shapes (X, Y, idx, batch, first, count, "
                         "Xb, Yb, work, out); see its docstring")
    if count and idx.shape[0] and (idx.min() < 0 or idx.max() >= X.shape[0]):
        raise ValueError(f"train_steps: idx must index the {X.shape[0]} rows of X")
    codes = (int(hidden_act), int(out_act), int(loss), int(opt))
    if train_step_skinny(batch, sizes, Xb.dtype):
        return _python_steps(codes, X, Y, idx, first, batch, count, Xb, Yb, theta, grad, work,
                             sizes, hidden_alpha, out_alpha, float(l2), float(lr), float(h1),
                             float(h2), float(eps), s1, s2, int(t), out)
    steps = (_MANY or _loops())[codes + (0,)]
    return steps(X, Y, idx, int(first), int(batch), int(count), Xb, Yb, theta, grad, work,
                 sizes, hidden_alpha, out_alpha, float(l2), float(lr), float(h1), float(h2),
                 float(eps), s1, s2, int(t), out)


def _python_steps(codes, X, Y, idx, first, batch, count, Xb, Yb, theta, grad, work, sizes,
                  alpha_h, alpha_o, l2, lr, h1, h2, eps, s1, s2, t, out):
    """train_steps for a network whose steps are skinny: the same loop in Python (a
    skinny step takes milliseconds; a few microseconds of Python each cost nothing), each
    batch's step chosen as train_step chooses it."""
    n = idx.shape[0]
    table = _STEP or _steps()
    for k in range(count):
        s = (first + k) * batch
        mb = min(batch, n - s)
        rows = idx[s:s + mb]
        np.take(X, rows, axis=0, out=Xb[:mb])
        np.take(Y, rows, axis=0, out=Yb[:mb])
        thin = Xb.itemsize if train_step_skinny(mb, sizes, Xb.dtype) else 0
        J, pen = table[codes + (thin,)](Xb[:mb], Yb[:mb], theta, grad,
                                        work[:work_size(mb, sizes)], sizes, alpha_h,
                                        alpha_o, l2, lr, h1, h2, eps, s1, s2, t + k)
        out[k, 0] = J
        out[k, 1] = pen
        if not math.isfinite(J):
            return k
    return count
