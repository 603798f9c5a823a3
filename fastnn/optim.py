"""Optimizers over the unrolled parameter vector θ (all W and b in one 1-D array).

  SGD:   θ := θ - α D                                  (batch, mini-batch or stochastic,
                                                        by the batch size given to fit)
         momentum:  v := μ v - α D;  θ := θ + v
         Nesterov:  v := μ v - α D;  θ := θ + μ v - α D
  Adam:  m := β1 m + (1-β1) D;  s := β2 s + (1-β2) D²
         θ := θ - α m̂ / (sqrt(ŝ) + ε), with m̂ = m/(1-β1^t), ŝ = s/(1-β2^t)
  LBFGS: scipy.optimize.minimize(method="L-BFGS-B") over θ, full batch (fit only).

Each update is one fused kernel call over θ (``sgd_update`` / ``adam_update``).
"""
import math
import numbers

from . import kernels
from .validation import check_int


def _positive(name, value, allow_zero=False, upper=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}; got {value!r}")
    if upper is not None and value >= upper:
        raise ValueError(f"{name} must be < {upper}; got {value!r}")
    return float(value)


class _Hyper:
    """A hyperparameter attribute, checked on every assignment as the constructor checks
    it: a value set between steps (a schedule, a callback, ``opt.lr /= 5``) is then as safe
    as one given to ``__init__``, and the kernels always get a Python float.  Setting one
    drops the optimizer's cached fused-step arguments (``Optimizer._head``)."""

    def __init__(self, check):
        self._check = check

    def __set_name__(self, owner, name):
        self._name = name

    def __get__(self, obj, owner=None):
        return self if obj is None else obj.__dict__[self._name]

    def __set__(self, obj, value):
        obj.__dict__[self._name] = self._check(obj, self._name, value)
        obj.__dict__["_head"] = None


def _count(obj, name, value):
    return check_int(value, name)


def _rate(obj, name, value):
    return _positive(name, value)


def _nonnegative(obj, name, value):
    return _positive(name, value, allow_zero=True)


def _fraction(obj, name, value):
    return _positive(name, value, allow_zero=True, upper=1.0)


class Optimizer:
    """Base class: per-network state is made by ``init_state`` and kept by the network."""

    def init_state(self, backend, n, dtype):
        return {}

    def update(self, backend, theta, grad, state):  # pragma: no cover - interface
        raise NotImplementedError

    def fused_args(self, state):
        """(code, lr, h1, h2, eps, s1, s2, t) for a backend's one-call ``train_step`` (lr,
        h1, h2, eps Python floats, t a Python int), or None: this optimizer only runs
        through ``update`` (so does any subclass of SGD or Adam that overrides ``update``)."""
        return None

    def fused_done(self, state, t):
        """After a fused step that updated θ (t as given by ``fused_args``)."""

    def get_config(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _momentum(obj, name, value):
    value = _fraction(obj, name, value)
    if value == 0 and obj.__dict__.get("nesterov", False):
        raise ValueError("momentum must be > 0 while nesterov=True (set nesterov=False first)")
    return value


def _nesterov(obj, name, value):
    if not isinstance(value, bool):
        raise TypeError(f"nesterov must be a bool; got {value!r}")
    if value and obj.__dict__.get("momentum", 0.0) == 0:
        raise ValueError("nesterov=True needs momentum > 0")
    return value


class SGD(Optimizer):
    """Gradient descent with optional momentum μ and Nesterov's look-ahead.

    Parameters: lr (α > 0), momentum (μ in [0, 1)), nesterov (bool, needs momentum > 0);
    each may be changed between steps (checked again when set).  The velocity v has θ's
    size whatever the momentum, so momentum can be switched on mid-training: v starts from
    0 if the momentum was 0 from the first step (steps with momentum 0 leave v as it is, so
    momentum switched off and on again resumes the v it had).
    """

    lr = _Hyper(_rate)
    momentum = _Hyper(_momentum)
    nesterov = _Hyper(_nesterov)

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False):
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov

    def init_state(self, backend, n, dtype):
        return {"velocity": backend.zeros((n,), dtype)}

    def update(self, backend, theta, grad, state):
        backend.sgd_update(theta, grad, state["velocity"], self.lr, self.momentum, self.nesterov)

    def fused_args(self, state):
        if type(self).update is not SGD.update:  # a subclass's own update must run
            return None
        head = self.__dict__.get("_head")
        if head is None:
            head = self._head = (kernels.OPT_SGD, self.lr, self.momentum,
                                 1.0 if self.nesterov else 0.0, 0.0)
        v = state["velocity"]
        return head + (v, v, 0)


class Adam(Optimizer):
    """Adam with bias-corrected first and second moments (Kingma & Ba, 2015).

    Parameters: lr (α > 0), beta1, beta2 (in [0, 1)), eps (> 0); each may be changed
    between steps (checked again when set).
    """

    lr = _Hyper(_rate)
    beta1 = _Hyper(_fraction)
    beta2 = _Hyper(_fraction)
    eps = _Hyper(_rate)

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps

    def init_state(self, backend, n, dtype):
        return {"m1": backend.zeros((n,), dtype), "m2": backend.zeros((n,), dtype), "t": 0}

    def update(self, backend, theta, grad, state):
        t = state["t"] + 1  # counted only once the update is done (an interrupt leaves t)
        backend.adam_update(theta, grad, state["m1"], state["m2"], self.lr, self.beta1,
                            self.beta2, self.eps, t)
        state["t"] = t

    def fused_args(self, state):
        if type(self).update is not Adam.update:
            return None
        head = self.__dict__.get("_head")
        if head is None:
            head = self._head = (kernels.OPT_ADAM, self.lr, self.beta1, self.beta2, self.eps)
        return head + (state["m1"], state["m2"], state["t"] + 1)

    def fused_done(self, state, t):
        state["t"] = t


class LBFGS(Optimizer):
    """L-BFGS over the unrolled parameters via scipy.optimize.minimize (full batch).

    Parameters: maxiter (iterations; ``fit(epochs=...)`` overrides it when given),
    tol (gradient tolerance ``gtol``), maxfun (cost evaluations; default 15000 as in scikit-learn).
    """

    maxiter = _Hyper(_count)
    tol = _Hyper(_nonnegative)
    maxfun = _Hyper(_count)

    def __init__(self, maxiter=200, tol=1e-5, maxfun=15000):
        self.maxiter = maxiter
        self.tol = tol
        self.maxfun = maxfun

    def update(self, backend, theta, grad, state):
        raise ValueError("LBFGS is a full-batch method: use net.fit(X, Y, optimizer='lbfgs'), "
                         "not net.step")


def get_optimizer(optimizer):
    """An Optimizer from an instance or a name ("sgd", "adam", "lbfgs")."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        name = optimizer.lower()
        if name == "sgd":
            return SGD()
        if name == "adam":
            return Adam()
        if name in ("lbfgs", "l-bfgs", "l-bfgs-b"):
            return LBFGS()
        raise ValueError(f"optimizer must be 'sgd', 'adam', 'lbfgs' or an optimizer instance; "
                         f"got {optimizer!r}")
    raise TypeError(f"optimizer must be 'sgd', 'adam', 'lbfgs' or an optimizer instance "
                    f"(fn.SGD, fn.Adam, fn.LBFGS); got {type(optimizer).__name__}")
