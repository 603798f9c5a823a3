"""The bad-input table: distinct wrong calls across the public API, each with the exception
type it must raise and a fragment of the message (which names the argument and what was
expected).  Numba kernels do no bounds checking, so every one of these must be stopped in
Python before a kernel runs: none may crash the process (the last test replays the whole
table in a child process and checks that it exits normally), none may change the network
(its parameters are compared bitwise before and after), and none may modify the caller's
arrays.

Run on the "cpu" backend (the default, Numba) and on "reference" (NumPy).
"""
import contextlib
import io
import json
import operator
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import pytest

import fastnn as fn
from fastnn.io import FORMAT_VERSION

BACKENDS = ["cpu", "reference"]


class Ctx:
    """What the table's calls act on: three small networks, data, and model files."""

    def __init__(self, backend, tmp):
        self.backend = backend
        self.tmp = tmp
        self.net = fn.Network([fn.Dense(5, "relu"), fn.Dense(3, "softmax")], n_inputs=4,
                              backend=backend, seed=0)                      # cross_entropy
        self.reg = fn.Network([fn.Dense(2, "identity")], n_inputs=4, loss="mse",
                              backend=backend, seed=0)
        self.bce = fn.Network([fn.Dense(1, "sigmoid")], n_inputs=4, backend=backend, seed=0)
        rng = np.random.default_rng(0)
        self.X = rng.standard_normal((6, 4))
        self.y = np.array([0, 1, 2, 0, 1, 2])
        self.Y2 = rng.standard_normal((6, 2))
        self._model = None

    @property
    def model(self):
        """The path of self.net saved (made on first use)."""
        if self._model is None:
            self._model = os.path.join(self.tmp, "model.fnn")
            self.net.save(self._model)
        return self._model

    def networks(self):
        return (self.net, self.reg, self.bce)

    def file(self, name, data):
        """A file in the temporary directory holding `data` (bytes); returns its path."""
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def model_bytes(self):
        with open(self.model, "rb") as f:
            return f.read()

    def rewritten_model(self, name, **changes):
        """A copy of the saved model with some members replaced (np.savez, no pickle)."""
        with np.load(self.model, allow_pickle=False) as data:
            members = {k: data[k] for k in data.files}
        members.update(changes)
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            np.savez(f, **members)
        return path

    def flipped_theta_byte(self, name):
        """The saved model with one byte of the parameters' data changed (CRC and checksum
        both disagree now)."""
        data = bytearray(self.model_bytes())
        with zipfile.ZipFile(self.model) as z:
            info = z.getinfo("theta.npy")
        # local header: 30 bytes + name + extra; the .npy header follows, then the data
        name_len = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little")
        extra_len = int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
        start = info.header_offset + 30 + name_len + extra_len
        data[start + info.file_size - 3] ^= 0xFF  # inside the last parameter
        return self.file(name, bytes(data))


class CLIError(Exception):
    """The CLI exited with a non-zero status; the message is what it printed to stderr."""


def cli(argv):
    from fastnn import cli as fastnn_cli

    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = fastnn_cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    if code not in (0, None):
        raise CLIError(err.getvalue() or out.getvalue())
    return code


def sparse_X(c):
    from scipy import sparse

    return sparse.csr_matrix(c.X)


def strided(a):
    """A non-contiguous view with a's values (every other row of a doubled array)."""
    big = np.repeat(a, 2, axis=0)
    return big[::2]


def sk(name):
    from fastnn import sklearn as fsk

    return getattr(fsk, name)


Dense, Network, nan, inf = fn.Dense, fn.Network, np.nan, np.inf

#: (id, call, exception type(s), message fragment (a regex, searched))
TABLE = [
    # ------------------------------------------------------------------- Dense
    ("dense-units-zero", lambda c: Dense(0), ValueError, "units must be a positive int"),
    ("dense-units-negative", lambda c: Dense(-3), ValueError, "units must be a positive int"),
    ("dense-units-float", lambda c: Dense(2.5), TypeError, "units must be a positive int"),
    ("dense-units-bool", lambda c: Dense(True), TypeError, "units must be a positive int"),
    ("dense-unknown-activation", lambda c: Dense(4, "swish"), ValueError,
     "activation must be one of"),
    ("dense-activation-not-str", lambda c: Dense(4, None), TypeError,
     "activation must be a string"),
    ("dense-negative-alpha", lambda c: Dense(4, "leaky_relu", alpha=-0.1), ValueError,
     r"alpha \(the leaky_relu slope\) must be >= 0"),
    ("dense-nan-alpha", lambda c: Dense(4, "leaky_relu", alpha=nan), ValueError,
     "alpha must be a finite number"),
    ("dense-unknown-init", lambda c: Dense(4, init="xavier"), ValueError, "init must be one of"),
    ("dense-init-not-str", lambda c: Dense(4, init=np.array([1, 2])), ValueError,
     "init must be one of"),
    ("dense-zero-init-epsilon", lambda c: Dense(4, init="uniform", init_epsilon=0), ValueError,
     "init_epsilon must be a positive number"),
    ("network-init-epsilon-overflows-float32", lambda c: Network(
        [Dense(3, "tanh", init="uniform", init_epsilon=1e39), Dense(1)], 4), ValueError,
     "init_epsilon=1e[+]?39 is too large for float32"),
    ("network-init-epsilon-overflows-float64", lambda c: Network(
        [Dense(3, "tanh", init="uniform", init_epsilon=1e308), Dense(1)], 4, dtype="float64"),
     ValueError, "init_epsilon=1e[+]?308 is too large for float64"),
    # ------------------------------------------------------------------- Network
    ("network-no-layers", lambda c: Network([], n_inputs=3), ValueError, "at least one Dense"),
    ("network-layers-not-list", lambda c: Network(Dense(3), n_inputs=3), TypeError,
     "layers must be a list of fastnn.Dense"),
    ("network-layer-not-dense", lambda c: Network([Dense(3), "relu"], n_inputs=3), TypeError,
     r"layers\[1\] must be a fastnn.Dense"),
    ("network-hidden-softmax", lambda c: Network([Dense(3, "softmax"), Dense(2, "softmax")], 3),
     ValueError, "softmax is allowed on the output layer only"),
    ("network-zero-inputs", lambda c: Network([Dense(2)], n_inputs=0), ValueError,
     "n_inputs must be an int >= 1"),
    ("network-negative-inputs", lambda c: Network([Dense(2)], n_inputs=-4), ValueError,
     "n_inputs must be an int >= 1"),
    ("network-float-inputs", lambda c: Network([Dense(2)], n_inputs=3.0), TypeError,
     "n_inputs must be an int"),
    ("network-unknown-loss", lambda c: Network([Dense(2)], 3, loss="hinge"), ValueError,
     "loss must be one of"),
    ("network-loss-not-str", lambda c: Network([Dense(2)], 3, loss=2), TypeError,
     "loss must be a string"),
    ("network-ce-needs-softmax", lambda c: Network([Dense(2, "relu")], 3, loss="cross_entropy"),
     ValueError, "needs a 'softmax' output layer"),
    ("network-mse-after-softmax", lambda c: Network([Dense(2, "softmax")], 3, loss="mse"),
     ValueError, "cannot follow a 'softmax' output layer"),
    ("network-float16", lambda c: Network([Dense(2)], 3, dtype="float16"), ValueError,
     "dtype must be 'float32' or 'float64'"),
    ("network-int-dtype", lambda c: Network([Dense(2)], 3, dtype=np.int32), ValueError,
     "dtype must be 'float32' or 'float64'"),
    ("network-dtype-none", lambda c: Network([Dense(2)], 3, dtype=None), TypeError,
     "dtype must be 'float32' or 'float64'; got None"),
    ("network-dtype-nonsense", lambda c: Network([Dense(2)], 3, dtype="fp32"), TypeError,
     "dtype must be 'float32' or 'float64'"),
    ("network-unknown-backend", lambda c: Network([Dense(2)], 3, backend="gpu"), ValueError,
     "backend must be one of"),
    ("network-negative-seed", lambda c: Network([Dense(2)], 3, seed=-1), ValueError,
     "seed must be an int >= 0"),
    ("network-str-seed", lambda c: Network([Dense(2)], 3, seed="0"), TypeError,
     "seed must be an int"),
    ("to-unknown-backend", lambda c: c.net.to("tpu"), ValueError, "backend must be one of"),
    # ------------------------------------------------------------------- X
    ("forward-1d-X", lambda c: c.net.forward(c.X[0]), ValueError,
     r"X must be 2-D \(m examples, 4 features\); got shape \(4,\)"),
    ("forward-3d-X", lambda c: c.net.forward(c.X.reshape(3, 2, 4)), ValueError,
     "X must be 2-D"),
    ("forward-0d-X", lambda c: c.net.forward(np.float64(1.0)), ValueError, "X must be 2-D"),
    ("forward-wrong-width", lambda c: c.net.forward(c.X[:, :3]), ValueError,
     "X has 3 features but the network expects n_inputs=4"),
    ("forward-too-wide", lambda c: c.net.forward(np.ones((2, 40))), ValueError,
     "X has 40 features but the network expects n_inputs=4"),
    ("forward-empty-X", lambda c: c.net.forward(np.empty((0, 4))), ValueError,
     r"X is empty \(0 examples\)"),
    ("forward-nan-X", lambda c: c.net.forward(np.where(c.X > 1, nan, c.X)), ValueError,
     "X contains NaN or Inf"),
    ("forward-inf-X", lambda c: c.net.forward(np.where(c.X > 1, -inf, c.X)), ValueError,
     "X contains NaN or Inf"),
    ("forward-X-overflows-float32", lambda c: c.net.forward(c.X * 1e300), ValueError,
     "X contains values too large for float32"),
    ("forward-object-X", lambda c: c.net.forward(c.X.astype(object)), TypeError,
     "X must be a 2-D numeric array of real numbers.*got dtype object"),
    ("forward-string-X", lambda c: c.net.forward(c.X.astype(str)), TypeError,
     "X must be a 2-D numeric array.*got dtype <U"),
    ("forward-complex-X", lambda c: c.net.forward(c.X + 1j), TypeError,
     "X must be a 2-D numeric array.*got dtype complex128"),
    ("forward-datetime-X", lambda c: c.net.forward(np.zeros((2, 4), "datetime64[s]")), TypeError,
     "got dtype datetime64"),
    ("forward-str-X", lambda c: c.net.forward("1,2,3,4"), TypeError,
     "X must be a 2-D numeric array; got a string"),
    ("forward-ragged-X", lambda c: c.net.forward([[1, 2, 3, 4], [1, 2]]), ValueError,
     "X must be a 2-D numeric array"),
    ("forward-sparse-X", lambda c: c.net.forward(sparse_X(c)), TypeError,
     r"X is a sparse matrix; pass a dense array"),
    ("forward-output-overflows", lambda c: c.reg.forward(np.full((2, 4), 3e38)), ValueError,
     "the output is not finite.*scale the inputs"),
    ("predict-nan-X", lambda c: c.net.predict(np.full((2, 4), nan)), ValueError,
     "X contains NaN or Inf"),
    ("predict-proba-regression", lambda c: c.reg.predict_proba(c.X), ValueError,
     "predict_proba needs a classification loss"),
    ("predict-proba-wrong-width", lambda c: c.bce.predict_proba(c.X.T), ValueError,
     "X has 6 features but the network expects n_inputs=4"),
    # ------------------------------------------------------------------- Y
    ("cost-Y-rows", lambda c: c.net.cost(c.X, c.y[:5]), ValueError,
     "Y has 5 rows but X has 6"),
    ("cost-labels-too-big", lambda c: c.net.cost(c.X, c.y + 1), ValueError,
     r"labels must lie in \[0, 3\) for 3 output units; got range \[1, 3\]"),
    ("cost-labels-negative", lambda c: c.net.cost(c.X, c.y - 1), ValueError,
     r"labels must lie in \[0, 3\)"),
    ("cost-labels-huge-float", lambda c: c.net.cost(c.X, np.full(6, 1e20)), ValueError,
     r"labels must lie in \[0, 3\)"),
    ("cost-labels-uint64-wrap", lambda c: c.net.cost(c.X, np.full(6, 2**64 - 1, np.uint64)),
     ValueError, r"labels must lie in \[0, 3\)"),
    ("cost-fractional-labels", lambda c: c.net.cost(c.X, c.y + 0.5), ValueError,
     "class labels for loss='cross_entropy' must be integers"),
    ("cost-string-labels", lambda c: c.net.cost(c.X, np.array(list("abcabc"))), TypeError,
     "Y must be a numeric array"),
    ("cost-object-labels", lambda c: c.net.cost(c.X, c.y.astype(object)), TypeError,
     "Y must be a numeric array.*got dtype object"),
    ("cost-complex-Y", lambda c: c.reg.cost(c.X, c.Y2 + 1j), TypeError,
     "Y must be a numeric array.*complex"),
    ("cost-nan-Y", lambda c: c.reg.cost(c.X, np.where(c.Y2 > 0, nan, c.Y2)), ValueError,
     "Y contains NaN or Inf"),
    ("cost-Y-overflows-float32", lambda c: c.reg.cost(c.X, c.Y2 * 1e300), ValueError,
     "Y does not fit in float32"),
    ("cost-onehot-wrong-width", lambda c: c.net.cost(c.X, np.eye(4)[[0, 1, 2, 3, 0, 1]]),
     ValueError, "Y has 4 columns but the network has 3 outputs"),
    ("cost-label-column", lambda c: c.net.cost(c.X, c.y[:, None]), ValueError,
     r"pass class labels as a 1-D array of shape \(m,\)"),
    ("cost-rows-not-distributions", lambda c: c.net.cost(c.X, np.full((6, 3), 0.5)), ValueError,
     "must be one-hot or probabilities summing to 1"),
    ("cost-bce-target-2", lambda c: c.bce.cost(c.X, c.y), ValueError,
     r"targets for loss='bce' must lie in \[0, 1\]"),
    ("cost-1d-Y-for-2-outputs", lambda c: c.reg.cost(c.X, c.Y2[:, 0]), ValueError,
     r"Y is 1-D but the network has 2 outputs"),
    ("cost-3d-Y", lambda c: c.reg.cost(c.X, c.Y2[:, :, None]), ValueError,
     "Y must be 1-D or 2-D"),
    ("cost-0d-Y", lambda c: c.reg.cost(c.X, 1.0), ValueError, "Y must be 1-D or 2-D"),
    ("cost-negative-l2", lambda c: c.net.cost(c.X, c.y, l2=-1.0), ValueError,
     "l2 must be >= 0"),
    ("cost-nan-l2", lambda c: c.net.cost(c.X, c.y, l2=nan), ValueError, "l2 must be finite"),
    ("cost-str-l2", lambda c: c.net.cost(c.X, c.y, l2="0.1"), TypeError, "l2 must be a number"),
    ("cost-overflows", lambda c: c.reg.cost(np.full((2, 4), 3e38), np.zeros((2, 2))), ValueError,
     r"the cost \(inf\) is not finite"),
    ("gradients-labels-out-of-range", lambda c: c.net.gradients(c.X, c.y * 7), ValueError,
     r"labels must lie in \[0, 3\)"),
    ("gradients-X-width", lambda c: c.net.gradients(c.X[:, :2], c.y), ValueError,
     "X has 2 features"),
    ("evaluate-Y-rows", lambda c: c.bce.evaluate(c.X, c.y[:2] % 2), ValueError,
     "Y has 2 rows but X has 6"),
    ("step-lbfgs", lambda c: c.net.step(c.X, c.y, "lbfgs"), ValueError,
     "LBFGS is a full-batch method"),
    ("step-bool-Y-wrong-shape", lambda c: c.bce.step(c.X, np.ones((6, 2), bool), "sgd"),
     ValueError, "Y has 2 columns but the network has 1 outputs"),
    # ------------------------------------------------------------------- fit / optimizers
    ("fit-zero-epochs", lambda c: c.net.fit(c.X, c.y, epochs=0, progress=False), ValueError,
     "epochs must be an int >= 1; got 0"),
    ("fit-float-epochs", lambda c: c.net.fit(c.X, c.y, epochs=2.5, progress=False), TypeError,
     "epochs must be an int"),
    ("fit-zero-batch", lambda c: c.net.fit(c.X, c.y, batch_size=0, progress=False), ValueError,
     "batch_size must be an int >= 1; got 0"),
    ("fit-negative-batch", lambda c: c.net.fit(c.X, c.y, batch_size=-8, progress=False),
     ValueError, "batch_size must be an int >= 1"),
    ("fit-unknown-optimizer", lambda c: c.net.fit(c.X, c.y, optimizer="rmsprop"), ValueError,
     "optimizer must be 'sgd', 'adam', 'lbfgs' or an optimizer instance"),
    ("fit-optimizer-number", lambda c: c.net.fit(c.X, c.y, optimizer=0.1), TypeError,
     "optimizer must be"),
    ("fit-X-Y-rows", lambda c: c.net.fit(c.X, c.y[:4], progress=False), ValueError,
     "Y has 4 rows but X has 6"),
    ("fit-integer-Y-for-regression-width", lambda c: c.reg.fit(c.X, c.y, progress=False),
     ValueError, "Y is 1-D but the network has 2 outputs"),
    ("fit-validation-not-pair", lambda c: c.net.fit(c.X, c.y, validation_data=(c.X,)),
     ValueError, r"validation_data must be a pair \(X_val, Y_val\)"),
    ("fit-validation-width", lambda c: c.net.fit(c.X, c.y, validation_data=(c.X[:, :3], c.y),
                                                 progress=False),
     ValueError, "validation_data X has 3 features"),
    ("fit-validation-labels", lambda c: c.net.fit(c.X, c.y, validation_data=(c.X, c.y + 5),
                                                  progress=False),
     ValueError, r"validation_data Y: labels must lie in \[0, 3\)"),
    ("fit-zero-patience", lambda c: c.net.fit(c.X, c.y, early_stopping=0, progress=False),
     ValueError, r"early_stopping \(patience\) must be an int >= 1"),
    ("fit-callbacks-not-list", lambda c: c.net.fit(c.X, c.y, callbacks=print, progress=False),
     TypeError, "callbacks must be a list of callables"),
    ("fit-callback-not-callable", lambda c: c.net.fit(c.X, c.y, callbacks=[1], progress=False),
     TypeError, "callbacks must be callables"),
    ("fit-progress-str", lambda c: c.net.fit(c.X, c.y, progress="yes"), TypeError,
     "progress must be a bool"),
    ("fit-negative-seed", lambda c: c.net.fit(c.X, c.y, seed=-2, progress=False), ValueError,
     "seed must be an int >= 0"),
    ("fit-negative-l2", lambda c: c.net.fit(c.X, c.y, l2=-0.5, progress=False), ValueError,
     "l2 must be >= 0"),
    ("fit-nan-X", lambda c: c.net.fit(np.full((6, 4), nan), c.y, progress=False), ValueError,
     "X contains NaN or Inf"),
    ("fit-empty", lambda c: c.net.fit(np.empty((0, 4)), np.empty(0), progress=False),
     ValueError, "X is empty"),
    ("sgd-zero-lr", lambda c: fn.SGD(lr=0), ValueError, "lr must be > 0"),
    ("sgd-negative-lr", lambda c: fn.SGD(lr=-0.1), ValueError, "lr must be > 0"),
    ("sgd-nan-lr", lambda c: fn.SGD(lr=nan), ValueError, "lr must be a finite number"),
    ("sgd-momentum-1", lambda c: fn.SGD(0.1, momentum=1.0), ValueError, "momentum must be < 1"),
    ("sgd-nesterov-without-momentum", lambda c: fn.SGD(0.1, nesterov=True), ValueError,
     "nesterov=True needs momentum > 0"),
    ("adam-beta1", lambda c: fn.Adam(beta1=1.5), ValueError, "beta1 must be < 1"),
    ("adam-zero-eps", lambda c: fn.Adam(eps=0.0), ValueError, "eps must be > 0"),
    ("lbfgs-zero-maxiter", lambda c: fn.LBFGS(maxiter=0), ValueError,
     "maxiter must be an int >= 1"),
    # a built network's structure and its layers are read-only (the kernels' shapes and
    # codes derive from them: net.sizes[1] = 100 once reached BLAS with a wrong shape)
    ("net-set-sizes", lambda c: setattr(c.net, "sizes", (4, 100, 3)), AttributeError,
     r"Network.sizes is fixed when the network is built"),
    ("net-item-sizes", lambda c: operator.setitem(c.net.sizes, 1, 100), TypeError,
     "does not support item assignment"),
    ("net-set-dtype", lambda c: setattr(c.net, "dtype", np.float64), AttributeError,
     r"Network.dtype is fixed"),
    ("net-set-n-inputs", lambda c: setattr(c.net, "n_inputs", 3), AttributeError,
     r"Network.n_inputs is fixed"),
    ("net-set-backend", lambda c: setattr(c.net, "backend", "reference"), AttributeError,
     r"net.to\(backend\) moves one"),
    ("net-set-loss", lambda c: setattr(c.net, "loss", "mse"), AttributeError,
     r"Network.loss is fixed"),
    ("net-append-layer", lambda c: c.net.layers.append(fn.Dense(3)), AttributeError,
     "'tuple' object has no attribute 'append'"),
    ("dense-set-units", lambda c: setattr(c.net.layers[0], "units", 0), AttributeError,
     r"Dense layers are immutable \(cannot set 'units'\)"),
    ("dense-set-activation", lambda c: setattr(fn.Dense(3), "activation", "softmax"),
     AttributeError, "Dense layers are immutable"),
    # hyperparameters set after construction are checked the same way
    ("sgd-set-negative-lr", lambda c: setattr(fn.SGD(0.1), "lr", -5), ValueError,
     "lr must be > 0"),
    ("sgd-set-momentum-1", lambda c: setattr(fn.SGD(0.1), "momentum", 1.0), ValueError,
     "momentum must be < 1"),
    ("sgd-set-momentum-0-with-nesterov",
     lambda c: setattr(fn.SGD(0.1, momentum=0.9, nesterov=True), "momentum", 0.0), ValueError,
     r"momentum must be > 0 while nesterov=True \(set nesterov=False first\)"),
    ("sgd-set-nesterov-without-momentum", lambda c: setattr(fn.SGD(0.1), "nesterov", True),
     ValueError, "nesterov=True needs momentum > 0"),
    ("sgd-set-nesterov-int", lambda c: setattr(fn.SGD(0.1, momentum=0.5), "nesterov", 1),
     TypeError, "nesterov must be a bool"),
    ("adam-set-beta2", lambda c: setattr(fn.Adam(), "beta2", 1.0), ValueError,
     "beta2 must be < 1"),
    ("adam-set-nan-lr", lambda c: setattr(fn.Adam(), "lr", nan), ValueError,
     "lr must be a finite number"),
    ("lbfgs-set-maxfun", lambda c: setattr(fn.LBFGS(), "maxfun", 2.5), TypeError,
     "maxfun must be an int >= 1"),
    # ------------------------------------------------------------------- parameters
    ("set-params-count", lambda c: c.net.set_params(c.net.params[:1]), ValueError,
     r"params must be a list of 2 \(W, b\) pairs"),
    ("set-params-shape", lambda c: c.net.set_params([(np.zeros((5, 4)), np.zeros(5)),
                                                     c.net.params[1]]),
     ValueError, r"params\[0\] W must have shape \(4, 5\); got \(5, 4\)"),
    ("set-params-bias-shape", lambda c: c.net.set_params([c.net.params[0],
                                                          (c.net.params[1][0], np.zeros(4))]),
     ValueError, r"params\[1\] b must have shape \(3,\)"),
    ("set-params-int", lambda c: c.net.set_params([(np.zeros((4, 5), int), np.zeros(5)),
                                                   c.net.params[1]]),
     TypeError, r"params\[0\] W must be a float array; got dtype int64"),
    ("set-params-nan", lambda c: c.net.set_params([(np.full((4, 5), nan), np.zeros(5)),
                                                   c.net.params[1]]),
     ValueError, r"params\[0\] W contains NaN or Inf"),
    ("set-params-overflow-float32", lambda c: c.net.set_params(
        [c.net.params[0], (np.full((5, 3), 1e300), np.zeros(3))]),
     ValueError, r"params\[1\] W has values too large for float32"),
    ("set-params-not-pair", lambda c: c.net.set_params([c.net.params[0], (1, 2, 3)]), ValueError,
     r"params\[1\] must be a \(W, b\) pair"),
    ("set-flat-length", lambda c: c.net.set_flat_params(np.zeros(7)), ValueError,
     r"theta must have shape \(43,\); got \(7,\)"),
    ("set-flat-2d", lambda c: c.net.set_flat_params(np.zeros((43, 1))), ValueError,
     r"theta must have shape \(43,\)"),
    ("set-flat-complex", lambda c: c.net.set_flat_params(np.zeros(43, complex)), TypeError,
     "theta must be a float array"),
    ("set-flat-inf", lambda c: c.net.set_flat_params(np.full(43, inf)), ValueError,
     "theta contains NaN or Inf"),
    ("set-flat-overflow-float32", lambda c: c.net.set_flat_params(np.full(43, -1e39)),
     ValueError, "theta has values too large for float32"),
    ("set-flat-int", lambda c: c.net.set_flat_params(np.zeros(43, np.int64)), TypeError,
     "theta must be a float array; got dtype int64"),
    # ------------------------------------------------------------------- gradcheck
    ("gradcheck-zero-eps", lambda c: fn.gradcheck(c.net, c.X, c.y, eps=0.0), ValueError,
     "eps must be > 0"),
    ("gradcheck-max-params", lambda c: fn.gradcheck(c.net, c.X, c.y, max_params=0), ValueError,
     "max_params must be an int >= 1"),
    ("numgrad-index-out-of-range", lambda c: fn.numerical_gradient(c.net, c.X, c.y,
                                                                   indices=[0, 43]),
     ValueError, r"indices must lie in \[0, 43\)"),
    ("numgrad-float-indices", lambda c: fn.numerical_gradient(c.net, c.X, c.y, indices=[0.5]),
     TypeError, "indices must be a 1-D array of ints"),
    ("gradcheck-net-none", lambda c: fn.gradcheck(None, c.X, c.y), TypeError,
     "net must be a fastnn.Network; got NoneType"),
    ("gradcheck-negative-seed", lambda c: fn.gradcheck(c.net, c.X, c.y, max_params=3, seed=-1),
     ValueError, "seed must be an int >= 0"),
    ("gradcheck-str-seed", lambda c: fn.gradcheck(c.net, c.X, c.y, max_params=3, seed="a"),
     TypeError, "seed must be an int >= 0"),
    ("numgrad-net-str", lambda c: fn.numerical_gradient("net", c.X, c.y), TypeError,
     "net must be a fastnn.Network; got str"),
    ("set-num-threads-zero", lambda c: fn.set_num_threads(0), ValueError, "n must be between 1"),
    # ------------------------------------------------------------------- save / load
    ("load-missing", lambda c: fn.load(os.path.join(c.tmp, "missing.fnn")), FileNotFoundError,
     "no model file at"),
    ("load-path-int", lambda c: fn.load(42), TypeError, "path must be a str or os.PathLike"),
    ("load-empty-path", lambda c: fn.load(""), ValueError, "path is empty"),
    ("load-directory", lambda c: fn.load(c.tmp), fn.ModelFileError, "is a directory"),
    ("load-unknown-backend", lambda c: fn.load(c.model, backend="gpu"), ValueError,
     "backend must be one of"),
    ("load-empty-file", lambda c: fn.load(c.file("empty", b"")), fn.ModelFileError,
     r"is empty \(0 bytes\)"),
    ("load-text-file", lambda c: fn.load(c.file("notes.txt", b"hello world")), fn.ModelFileError,
     "is not a fastnn model file"),
    ("load-npy-file", lambda c: fn.load(c.file("a.npy", _npy_bytes())), fn.ModelFileError,
     "is not a fastnn model file"),
    ("load-pickle-file", lambda c: fn.load(c.file("m.pkl", pickle.dumps(c.net))),
     fn.ModelFileError, "is not a fastnn model file"),
    ("load-foreign-npz", lambda c: fn.load(c.rewritten_model("f.npz", format=np.arange(3))),
     fn.ModelFileError, "is not a fastnn model file"),
    ("load-truncated", lambda c: fn.load(c.file("half", c.model_bytes()[:len(c.model_bytes()) // 2])),
     fn.ModelFileError, "truncated or corrupted"),
    ("load-truncated-tail", lambda c: fn.load(c.file("tail", c.model_bytes()[:-10])),
     fn.ModelFileError, "truncated or corrupted"),
    ("load-flipped-byte", lambda c: fn.load(c.flipped_theta_byte("flip")), fn.ModelFileError,
     "corrupted"),
    ("load-bad-checksum", lambda c: fn.load(c.rewritten_model(
        "sum", checksum=np.frombuffer(b"0" * 64, np.uint8))), fn.ModelFileError,
     "checksum does not match"),
    ("load-newer-version", lambda c: fn.load(c.rewritten_model(
        "v2", version=np.array([FORMAT_VERSION + 1]))), fn.ModelFileError,
     "newer than this fastnn reads"),
    ("load-version-zero", lambda c: fn.load(c.rewritten_model("v0", version=np.array([0]))),
     fn.ModelFileError, "invalid format version 0"),
    ("load-missing-member", lambda c: fn.load(_without_member(c, "theta")), fn.ModelFileError,
     r"lacks \['theta'\]"),
    ("load-object-member", lambda c: fn.load(c.rewritten_model(
        "obj", config=np.array([{"evil": 1}], dtype=object))), fn.ModelFileError,
     "object arrays are never loaded"),
    ("load-wrong-architecture", lambda c: fn.load(_with_config(c, n_inputs=5)),
     fn.ModelFileError, r"parameters \(43,\) float32 do not fit the architecture"),
    ("load-bad-layer", lambda c: fn.load(_with_config(c, layers=[{"units": -1}])),
     fn.ModelFileError, "invalid architecture.*units must be a positive int"),
    ("load-not-json", lambda c: fn.load(_with_config_bytes(c, b"{not json")), fn.ModelFileError,
     "invalid architecture"),
    ("save-to-directory", lambda c: c.net.save(c.tmp), ValueError, "is a directory"),
    ("save-missing-directory", lambda c: c.net.save(os.path.join(c.tmp, "no", "m.fnn")),
     FileNotFoundError, "does not exist"),
    ("save-path-none", lambda c: c.net.save(None), TypeError, "path must be a str"),
    # ------------------------------------------------------------------- estimators, CLI
    ("sk-hidden-zero", lambda c: sk("MLPClassifier")(hidden_layer_sizes=(0,), backend=c.backend)
     .fit(c.X, c.y), ValueError, "hidden_layer_sizes must be > 0"),
    ("sk-nan-X", lambda c: sk("MLPClassifier")(max_iter=2, backend=c.backend)
     .fit(np.where(c.X > 1, nan, c.X), c.y), ValueError, "Input X contains NaN"),
    ("sk-unknown-solver", lambda c: sk("MLPRegressor")(solver="newton", backend=c.backend)
     .fit(c.X, c.Y2), ValueError, "'solver' parameter of MLPRegressor must be one of"),
    ("sk-zero-learning-rate", lambda c: sk("MLPClassifier")(learning_rate_init=0.0,
                                                            backend=c.backend).fit(c.X, c.y),
     ValueError, "'learning_rate_init' parameter"),
    ("sk-predict-unfitted", lambda c: sk("MLPClassifier")(backend=c.backend).predict(c.X),
     ValueError, "not fitted"),
    ("sk-continuous-y", lambda c: sk("MLPClassifier")(max_iter=2, backend=c.backend)
     .fit(c.X, c.Y2[:, 0]), ValueError, "Unknown label type: continuous"),
    ("sk-inconsistent-rows", lambda c: sk("MLPRegressor")(max_iter=2, backend=c.backend)
     .fit(c.X, c.Y2[:4]), ValueError, "inconsistent numbers of samples"),
    ("sk-unknown-backend", lambda c: sk("MLPRegressor")(backend="gpu").fit(c.X, c.Y2),
     ValueError, "backend must be one of"),
    ("sk-partial-fit-new-layers", lambda c: _refit_with(c, hidden_layer_sizes=(6, 2)),
     ValueError, r"the network has layer sizes \(4, 5, 3\) but these data and parameters "
                 r"need \(4, 6, 2, 3\)"),
    ("cli-unknown-command", lambda c: cli(["train-everything"]), CLIError, "invalid choice"),
    ("cli-unknown-backend", lambda c: cli(["demo", "--backend", "gpu"]), CLIError,
     "argument --backend: invalid choice"),
    ("cli-epochs-not-int", lambda c: cli(["demo", "--epochs", "ten"]), CLIError,
     "argument --epochs: 'ten' is not an int"),
    ("cli-zero-epochs", lambda c: cli(["demo", "--epochs", "0", "--quiet"]), (ValueError, CLIError),
     "epochs"),
]


def _npy_bytes():
    buf = io.BytesIO()
    np.save(buf, np.arange(5))
    return buf.getvalue()


def _refit_with(c, **changes):
    """partial_fit after set_params changed the architecture of a fitted estimator."""
    est = sk("MLPClassifier")(hidden_layer_sizes=(5,), max_iter=2, backend=c.backend)
    est.partial_fit(c.X, c.y, classes=np.unique(c.y))
    before = est.network_.get_flat_params()
    try:
        est.set_params(**changes).partial_fit(c.X, c.y)
    finally:
        np.testing.assert_array_equal(est.network_.get_flat_params(), before)


def _without_member(c, name):
    with np.load(c.model, allow_pickle=False) as data:
        members = {k: data[k] for k in data.files if k != name}
    path = os.path.join(c.tmp, "without-" + name)
    with open(path, "wb") as f:
        np.savez(f, **members)
    return path


def _with_config_bytes(c, config_bytes):
    """The saved model with its config replaced and the checksum recomputed to match, so
    that the architecture check (not the checksum) is what must catch it."""
    from fastnn.io import _checksum

    with np.load(c.model, allow_pickle=False) as data:
        theta = data["theta"]
    return c.rewritten_model(f"config-{abs(hash(config_bytes))}",
                             config=np.frombuffer(config_bytes, np.uint8),
                             checksum=np.frombuffer(_checksum(config_bytes, theta), np.uint8))


def _with_config(c, **changes):
    with np.load(c.model, allow_pickle=False) as data:
        config = json.loads(data["config"].tobytes())
    config.update(changes)
    return _with_config_bytes(c, json.dumps(config).encode())


IDS = [row[0] for row in TABLE]


def test_table_is_large_and_distinct():
    assert len(TABLE) >= 40
    assert len(set(IDS)) == len(IDS), "duplicate ids"


def run_row(ctx, row):
    """Run one row: the right exception and message, the networks and the input arrays
    unchanged.  Returns nothing; raises AssertionError (or the unexpected exception)."""
    name, call, exc_type, fragment = row
    thetas = [net.get_flat_params() for net in ctx.networks()]
    arrays = {"X": ctx.X.copy(), "y": ctx.y.copy(), "Y2": ctx.Y2.copy()}
    with pytest.raises(exc_type, match=fragment):
        call(ctx)
    for net, theta in zip(ctx.networks(), thetas):
        np.testing.assert_array_equal(net.get_flat_params(), theta, err_msg=f"{name}: θ changed")
    for key, value in arrays.items():
        np.testing.assert_array_equal(getattr(ctx, key), value, err_msg=f"{name}: {key} modified")


@pytest.fixture(params=BACKENDS)
def ctx(request, tmp_path):
    return Ctx(request.param, str(tmp_path))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("row", TABLE, ids=IDS)
def test_bad_call(ctx, row):
    run_row(ctx, row)


def test_non_contiguous_and_read_only_inputs_are_accepted_and_never_written(tmp_path):
    """Not errors: strided, transposed, read-only, big-endian, integer and bool inputs are
    converted (copied) and give the same results as a plain float array."""
    c = Ctx("cpu", str(tmp_path))
    X = c.X.astype(np.float32)
    variants = {
        "strided": strided(X),
        "fortran": np.asfortranarray(X),
        "transposed": np.ascontiguousarray(X.T).T,
        "big-endian": X.astype(">f8"),
        "read-only": np.frombuffer(X.tobytes(), np.float32).reshape(X.shape),
        "unaligned": np.frombuffer(b"\0" + X.tobytes(), np.float32, offset=1).reshape(X.shape),
        "float16": X.astype(np.float16).astype(np.float32),
    }
    expected = c.net.forward(X)
    for name, V in variants.items():
        before = V.copy()
        got = c.net.forward(V)
        if name == "float16":
            assert got.shape == expected.shape
        else:
            np.testing.assert_array_equal(got, expected, err_msg=name)
        np.testing.assert_array_equal(V, before, err_msg=f"{name} was modified")
    y_ro = c.y.copy()
    y_ro.flags.writeable = False
    X_ro = X.copy()
    X_ro.flags.writeable = False
    assert np.isfinite(c.net.cost(X_ro, y_ro))
    c.net.fit(X_ro, y_ro, epochs=2, batch_size=3, progress=False, shuffle=False)
    Xi = np.arange(24).reshape(6, 4)
    np.testing.assert_array_equal(c.net.forward(Xi), c.net.forward(Xi.astype(np.float32)))
    np.testing.assert_array_equal(c.bce.forward(Xi > 5), c.bce.forward((Xi > 5).astype(float)))


CHILD = """
import sys, tempfile
sys.path.insert(0, {tests!r})
import warnings
warnings.simplefilter("ignore")
import test_bad_input as t
n = 0
for row in t.TABLE:
    with tempfile.TemporaryDirectory() as tmp:
        t.run_row(t.Ctx("cpu", tmp), row)
    n += 1
print("rows run:", n)
"""


def test_table_never_crashes_the_process():
    """The whole table on the compiled "cpu" backend, in a child process: it must exit
    normally (a segfault or an abort in a kernel would show as a negative return code)."""
    tests = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-c", CHILD.format(tests=tests)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode >= 0, f"child killed by signal {-proc.returncode}:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert f"rows run: {len(TABLE)}" in proc.stdout
