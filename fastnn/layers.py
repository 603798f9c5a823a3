"""Dense(units, activation): one fully connected layer, A = g(A_prev @ W + b).

A layer is a description (units, activation, initializer); its parameters W (n_in, n_out)
and b (n_out,) live as views into the network's unrolled parameter vector.
"""
import math
import numbers

import numpy as np

from . import kernels

INITIALIZERS = ("auto", "glorot", "he", "uniform")


class Dense:
    """A fully connected layer: ``A = g(A_prev @ W + b)``.

    Parameters
    ----------
    units : int
        n_out, the number of units (> 0).
    activation : str
        "sigmoid", "tanh", "relu", "leaky_relu", "identity" (alias "linear"), or "softmax"
        (output layer only).
    alpha : float
        The leaky ReLU slope for z < 0 (default 0.01); ignored by other activations.
    init : str
        "auto" (Glorot for sigmoid/tanh/identity/softmax, He for relu/leaky_relu),
        "glorot" (uniform ±sqrt(6/(n_in+n_out))), "he" (normal, std sqrt(2/n_in)), or
        "uniform" (the seeds' uniform ±init_epsilon).  Biases start at zero; W is random,
        which breaks the symmetry between units.
    init_epsilon : float
        The half-width for init="uniform" (the seeds' ε_init = 0.12).
    """

    def __init__(self, units, activation="relu", alpha=0.01, init="auto", init_epsilon=0.12):
        if isinstance(units, bool) or not isinstance(units, numbers.Integral):
            raise TypeError(f"units must be a positive int; got {units!r}")
        if units <= 0:
            raise ValueError(f"units must be a positive int; got {units}")
        if not isinstance(activation, str):
            raise TypeError(f"activation must be a string, one of {sorted(kernels.ACTIVATIONS)}; "
                            f"got {activation!r}")
        if activation not in kernels.ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(kernels.ACTIVATIONS)}; "
                             f"got {activation!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha):
            raise ValueError(f"alpha must be a finite number; got {alpha!r}")
        if alpha < 0:  # g'(z) is read from the sign of A = g(z): that needs alpha >= 0
            raise ValueError(f"alpha (the leaky_relu slope) must be >= 0; got {alpha!r}")
        if not isinstance(init, str) or init not in INITIALIZERS:
            raise ValueError(f"init must be one of {INITIALIZERS}; got {init!r}")
        if (isinstance(init_epsilon, bool) or not isinstance(init_epsilon, numbers.Real)
                or not init_epsilon > 0 or not math.isfinite(init_epsilon)):
            raise ValueError(f"init_epsilon must be a positive number; got {init_epsilon!r}")
        set_ = object.__setattr__    # a layer is immutable: see __setattr__
        set_(self, "units", int(units))
        set_(self, "activation", "identity" if activation == "linear" else activation)
        set_(self, "alpha", float(alpha))
        set_(self, "init", init)
        set_(self, "init_epsilon", float(init_epsilon))

    def __setattr__(self, name, value):
        # A network copies a layer's sizes and codes into its kernels' arguments when it is
        # built, and saves / copies the layer's config: a change made afterwards would make
        # the two disagree (or, before the build, skip the checks above).
        raise AttributeError(f"Dense layers are immutable (cannot set {name!r}); make a new "
                             f"Dense(...) and a new Network from it")

    def __delattr__(self, name):
        raise AttributeError(f"Dense layers are immutable (cannot delete {name!r})")

    @property
    def act(self):
        """The activation's integer code (fastnn.kernels)."""
        return kernels.ACTIVATIONS[self.activation]

    def get_config(self):
        return {"units": self.units, "activation": self.activation, "alpha": self.alpha,
                "init": self.init, "init_epsilon": self.init_epsilon}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def initial_W(self, n_in, rng, dtype):
        """A fresh random W (n_in, units) from the layer's initializer."""
        n_out = self.units
        init = self.init
        if init == "auto":
            init = "he" if self.activation in ("relu", "leaky_relu") else "glorot"
        if init == "uniform":
            eps = self.init_epsilon
            try:
                with np.errstate(over="ignore"):
                    W = rng.uniform(-eps, eps, (n_in, n_out)).astype(dtype)
            except OverflowError:   # numpy: 2 eps overflows float64
                W = None
            if W is None or not np.isfinite(W).all():
                raise ValueError(f"init_epsilon={eps!r} is too large for "
                                 f"{np.dtype(dtype).name}: the initial weights overflow")
            return W
        elif init == "he":
            W = rng.standard_normal((n_in, n_out)) * math.sqrt(2.0 / n_in)
        else:
            limit = math.sqrt(6.0 / (n_in + n_out))
            W = rng.uniform(-limit, limit, (n_in, n_out))
        return W.astype(dtype)

    def __repr__(self):
        extra = f", alpha={self.alpha}" if self.activation == "leaky_relu" else ""
        return f"Dense({self.units}, {self.activation!r}{extra})"

    def __eq__(self, other):
        return isinstance(other, Dense) and self.get_config() == other.get_config()

    __hash__ = None
