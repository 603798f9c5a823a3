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


def _positive(name, value, allow_zero=False, upper=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}; got {value!r}")
    if upper is not None and value >= upper:
        raise ValueError(f"{name} must be < {upper}; got {value!r}")
    return float(value)


class Optimizer:
    """Base class: per-network state is made by ``init_state`` and kept by the network."""

    def init_state(self, backend, n, dtype):
        return {}

    def update(self, backend, theta, grad, state):  # pragma: no cover - interface
        raise NotImplementedError

    def fused_args(self, state):
        """(code, lr, h1, h2, eps, s1, s2, t) for a backend's one-call ``train_step``, or
        None: this optimizer only runs through ``update`` (so does any subclass of SGD or
        Adam that overrides ``update``)."""
        return None

    def fused_done(self, state, t):
        """After a fused step that updated θ (t as given by ``fused_args``)."""

    def get_config(self):
        return dict(self.__dict__)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Gradient descent with optional momentum μ and Nesterov's look-ahead.

    Parameters: lr (α > 0), momentum (μ in [0, 1)), nesterov (bool, needs momentum > 0).
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False):
        self.lr = _positive("lr", lr)
        self.momentum = _positive("momentum", momentum, allow_zero=True, upper=1.0)
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be a bool; got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = nesterov

    def init_state(self, backend, n, dtype):
        return {"velocity": backend.zeros((n,), dtype) if self.momentum else backend.zeros((1,), dtype)}

    def update(self, backend, theta, grad, state):
        backend.sgd_update(theta, grad, state["velocity"], self.lr, self.momentum, self.nesterov)

    def fused_args(self, state):
        if type(self).update is not SGD.update:  # a subclass's own update must run
            return None
        v = state["velocity"]
        nesterov = 1.0 if self.nesterov else 0.0
        return (kernels.OPT_SGD, self.lr, self.momentum, nesterov, 0.0, v, v, 0)


class Adam(Optimizer):
    """Adam with bias-corrected first and second moments (Kingma & Ba, 2015).

    Parameters: lr (α > 0), beta1, beta2 (in [0, 1)), eps (> 0).
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr = _positive("lr", lr)
        self.beta1 = _positive("beta1", beta1, allow_zero=True, upper=1.0)
        self.beta2 = _positive("beta2", beta2, allow_zero=True, upper=1.0)
        self.eps = _positive("eps", eps)

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
        return (kernels.OPT_ADAM, self.lr, self.beta1, self.beta2, self.eps, state["m1"],
                state["m2"], state["t"] + 1)

    def fused_done(self, state, t):
        state["t"] = t


class LBFGS(Optimizer):
    """L-BFGS over the unrolled parameters via scipy.optimize.minimize (full batch).

    Parameters: maxiter (iterations; ``fit(epochs=...)`` overrides it when given),
    tol (gradient tolerance ``gtol``), maxfun (cost evaluations; default 15000 as in scikit-learn).
    """

    def __init__(self, maxiter=200, tol=1e-5, maxfun=15000):
        if isinstance(maxiter, bool) or not isinstance(maxiter, numbers.Integral) or maxiter <= 0:
            raise ValueError(f"maxiter must be a positive int; got {maxiter!r}")
        self.maxiter = int(maxiter)
        self.tol = _positive("tol", tol, allow_zero=True)
        if isinstance(maxfun, bool) or not isinstance(maxfun, numbers.Integral) or maxfun <= 0:
            raise ValueError(f"maxfun must be a positive int; got {maxfun!r}")
        self.maxfun = int(maxfun)

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
