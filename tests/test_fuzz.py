"""Fuzzing the public API: random shapes, dtypes, layouts, NaNs, huge values and wrong
label types thrown at Network, Dense, forward / predict*, cost / gradients / step /
evaluate, fit, set_params / set_flat_params and save / load.

The contract every call is held to:

* it returns finite results of the documented shape, or raises ValueError / TypeError
  (fit and step may also raise fastnn.TrainingDiverged, a FloatingPointError, when the
  cost or an update overflows);
* the network's parameters stay finite, and a call that raised left them unchanged
  (bitwise);
* the caller's arrays are never modified;
* load of a saved file with random corruption (flipped bytes, truncation, garbage)
  returns the very model that was saved or raises ModelFileError.

Crash detection: Numba kernels do no bounds checking, so a missed check could segfault
instead of raising.  Each backend's fuzz run is a child process (``child(backend)``); the
parent test fails with the signal's name and the last call the child was making (the
child writes a one-line description of every call to a trace file before making it) when
the child dies of a signal.  Hypothesis runs with a fixed profile ("fastnn-fuzz":
derandomized, no example database) so CI is reproducible; about 1 minute for both
backends on 2 cores.  To debug one group in-process::

    python -c "import sys; sys.path.insert(0, 'tests'); import test_fuzz; test_fuzz.child('cpu', 'fit')"
"""
import math
import os
import signal
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fastnn as fn

BACKENDS = ["cpu", "reference"]
TESTS = os.path.dirname(os.path.abspath(__file__))

settings.register_profile("fastnn-fuzz", deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck), print_blob=False)
PROFILE = settings.get_profile("fastnn-fuzz")
#: examples per group (one child runs every group for one backend)
EXAMPLES = {"construct": 150, "forward": 200, "cost": 250, "fit": 150, "params": 120,
            "io": 80}

ERRORS = (ValueError, TypeError)
#: how calls ended, per (method, outcome): printed by the child, so that a run that only
#: ever hits errors (and never the success path) is visible
OUTCOMES = {}
TRAIN_ERRORS = (ValueError, TypeError, FloatingPointError)

# ------------------------------------------------------------------------ tracing

_trace_fd = None


def note(text):
    """Record the call about to be made (read by the parent if the child crashes).  os.write
    reaches the kernel at once, so it survives a segfault."""
    global _trace_fd
    path = os.environ.get("FASTNN_FUZZ_TRACE")
    if not path:
        return
    if _trace_fd is None:
        _trace_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    data = text[:4000].encode("utf-8", "replace")
    os.ftruncate(_trace_fd, 0)
    os.pwrite(_trace_fd, data, 0)


def describe(value):
    if isinstance(value, np.ndarray):
        body = np.array2string(value.ravel()[:12], threshold=12) if value.dtype != object else \
            repr(value.ravel()[:12].tolist())
        return (f"ndarray(shape={value.shape}, dtype={value.dtype}, C={value.flags.c_contiguous}, "
                f"writeable={value.flags.writeable}, first={body})")
    return repr(value)[:300]


# ------------------------------------------------------------------------ strategies

SPECIALS = [np.nan, np.inf, -np.inf, 1e300, -1e300, 3e38, 1e30, -1e30, 1e10, 5e-324, -0.0]
#: dtypes fastnn accepts (converted) and refuses (TypeError)
GOOD_DTYPES = ["float64", "float32", "float16", "int64", "int8", "uint8", "bool"]
BAD_DTYPES = ["complex128", "object", "str", "datetime64[s]"]
DTYPES = GOOD_DTYPES * 2 + BAD_DTYPES
LAYOUTS = ["C", "C", "C", "F", "strided", "readonly", "list", "unaligned"]


@st.composite
def values(draw, shape, clean=False):
    """float64 values of `shape` in [-3, 3]; unless clean, sometimes with specials
    (NaN, Inf, huge, subnormal) injected or everything scaled up enormously."""
    size = math.prod(shape)
    base = draw(hnp.arrays(np.float64, shape, elements=st.floats(-3, 3, width=32)))
    if clean or not size:
        return base
    if draw(st.integers(0, 3)) == 0:
        for pos, special in draw(st.lists(st.tuples(st.integers(0, 10**6),
                                                    st.sampled_from(SPECIALS)),
                                          min_size=1, max_size=3)):
            base.flat[pos % size] = special
    if draw(st.integers(0, 9)) == 0:
        base = base * draw(st.sampled_from([1e20, 1e38, 1e200]))
    return base


def convert(base, dtype, layout):
    """base (float64) as the given dtype and memory layout."""
    with np.errstate(all="ignore"):
        if dtype.startswith(("float", "complex")):
            a = base.astype(dtype)
        elif dtype in ("int64", "int8", "uint8"):
            info = np.iinfo(dtype)
            a = np.clip(np.nan_to_num(base), info.min, info.max).astype(dtype)
        elif dtype == "bool":
            a = base > 0
        elif dtype == "object":
            a = base.astype(object)
        elif dtype == "str":
            a = base.astype(str)
        else:
            a = np.zeros(base.shape, dtype)
    a = np.asarray(a)  # (base > 0 on a 0-d array is a scalar)
    if layout == "F":
        a = np.asfortranarray(a)
    elif layout == "strided" and a.ndim:
        a = np.repeat(a, 2, axis=0)[::2]
    elif layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
    elif layout == "list":
        return a.tolist()
    elif layout == "unaligned" and a.dtype.kind in "fiu" and a.dtype.itemsize > 1:
        raw = np.frombuffer(b"\0" + a.tobytes(), np.uint8, offset=1)
        a = np.frombuffer(raw, a.dtype).reshape(a.shape)
    return a


@st.composite
def arrays_like(draw, shape, clean=False):
    """An array of `shape`: any dtype and layout (clean: accepted dtypes, finite values)."""
    dtype = draw(st.sampled_from(GOOD_DTYPES if clean else DTYPES))
    layout = draw(st.sampled_from(LAYOUTS))
    return convert(draw(values(shape, clean)), dtype, layout)


@st.composite
def X_for(draw, n_inputs, valid_rows=None, clean=False):
    """X for a network of n_inputs: clean, a valid X (any accepted dtype and layout);
    otherwise usually the right shape, sometimes anything, with any dtype and values."""
    rows = valid_rows if valid_rows is not None else draw(st.integers(1, 9))
    if clean:
        return draw(arrays_like((rows, n_inputs), clean=True))
    shape = draw(st.one_of(
        st.just((rows, n_inputs)), st.just((rows, n_inputs)), st.just((rows, n_inputs)),
        st.just((rows, n_inputs)), st.tuples(st.integers(0, 4), st.integers(0, 6)),
        st.tuples(st.integers(0, 6)),
        st.tuples(st.integers(1, 3), st.just(n_inputs), st.integers(1, 2)),
        st.just(())))
    return draw(arrays_like(shape))


@st.composite
def Y_for(draw, net, m, clean=False):
    """Targets for net on m examples.  clean: valid targets for the loss (labels, one-hot
    rows, 0/1 indicators or real values, as the loss allows); otherwise also wrong kinds,
    shapes, values, label ranges and dtypes."""
    k, loss = net.n_outputs, net.loss
    if clean:
        labels = draw(hnp.arrays(np.int64, (m,), elements=st.integers(0, k - 1)))
        if loss == "cross_entropy":
            how = draw(st.sampled_from(["int64", "int8", "float64", "onehot"]))
            return np.eye(k)[labels] if how == "onehot" else labels.astype(how)
        if loss == "bce":
            Y = draw(hnp.arrays(np.int64, (m, k), elements=st.integers(0, 1)))
            how = draw(st.sampled_from(["int64", "bool", "float32", "1-D"]))
            return (Y[:, 0] if k == 1 else Y) if how == "1-D" else Y.astype(how)
        Y = draw(values((m, k), clean=True))
        return Y[:, 0] if k == 1 and draw(st.booleans()) else Y
    kind = draw(st.sampled_from(["labels", "labels", "onehot", "values", "values", "any"]))
    if kind == "labels":
        labels = draw(hnp.arrays(np.int64, (m,), elements=st.integers(0, k - 1)))
        if draw(st.integers(0, 2)) == 0:
            labels[draw(st.integers(0, m - 1))] = draw(st.sampled_from([-1, k, k + 7]))
        dtype = draw(st.sampled_from(["int64", "int64", "int8", "uint8", "float64", "float32",
                                      "bool", "str", "object"]))
        if dtype == "float64" and draw(st.booleans()):
            return labels + draw(st.sampled_from([0.5, 1e20, np.nan, -np.inf]))
        return labels.astype(dtype)
    if kind == "onehot":
        labels = draw(hnp.arrays(np.int64, (m,), elements=st.integers(0, max(k - 1, 0))))
        width = draw(st.sampled_from([k, k, k + 1, max(k - 1, 1)]))
        return np.eye(width)[np.minimum(labels, width - 1)]
    if kind == "values":
        shape = draw(st.sampled_from([(m, k), (m, k), (m,), (m, k + 1)]))
        base = np.abs(draw(values(shape))) if draw(st.booleans()) else draw(values(shape))
        return convert(np.minimum(base, 1.0) if loss == "bce" else base,
                       draw(st.sampled_from(DTYPES[:6])), draw(st.sampled_from(LAYOUTS)))
    shape = draw(st.one_of(st.tuples(st.integers(0, 10)), st.tuples(st.integers(0, 10),
                                                                     st.integers(0, 5)),
                           st.just(()), st.just((m, k, 1))))
    return draw(arrays_like(shape))


OUTPUTS = {  # loss -> output activations it may pair with
    "cross_entropy": ["softmax"], "bce": ["sigmoid"],
    "mse": ["identity", "sigmoid", "tanh", "relu", "leaky_relu"],
    "mae": ["identity", "sigmoid", "tanh", "leaky_relu"],
}
HIDDEN = ["sigmoid", "tanh", "relu", "leaky_relu", "identity"]


@st.composite
def networks(draw, backend):
    """A valid, small Network on `backend`."""
    loss = draw(st.sampled_from(sorted(OUTPUTS)))
    hidden = draw(st.lists(st.tuples(st.integers(1, 6), st.sampled_from(HIDDEN)), max_size=2))
    out = draw(st.sampled_from(OUTPUTS[loss]))
    k = draw(st.integers(1, 4))
    alpha = draw(st.sampled_from([0.0, 0.01, 0.3]))
    layers = [fn.Dense(u, a, alpha=alpha) for u, a in hidden] + [fn.Dense(k, out, alpha=alpha)]
    return fn.Network(layers, n_inputs=draw(st.integers(1, 5)), loss=loss,
                      dtype=draw(st.sampled_from(["float32", "float64"])), backend=backend,
                      seed=draw(st.integers(0, 3)))


def junk():
    return st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=3),
                     st.integers(-3, 3), st.just([1, 2]), st.just(np.ones(2)))


# ------------------------------------------------------------------------ checks

def snapshot(obj):
    """A copy of a caller's argument to compare with after the call."""
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if isinstance(obj, list):
        return [snapshot(v) for v in obj]
    return obj


def unchanged(before, after):
    if isinstance(after, np.ndarray):
        if after.dtype == object:
            return all(a is b for a, b in zip(after.ravel(), before.ravel()))
        return after.shape == before.shape and after.tobytes() == before.tobytes()
    if isinstance(after, list):
        return len(before) == len(after) and all(unchanged(b, a) for b, a in zip(before, after))
    return True


def call(net, method, args, allowed=ERRORS, **kwargs):
    """Call net.method(*args, **kwargs) under the contract; returns (ok, result)."""
    note(f"{net!r}.{method}(" + ", ".join(describe(a) for a in args)
         + "".join(f", {k}={describe(v)}" for k, v in kwargs.items()) + ")")
    theta = net.get_flat_params()
    saved = [snapshot(a) for a in args]
    try:
        result = getattr(net, method)(*args, **kwargs)
        ok = True
    except allowed as exc:
        result, ok = exc, False
    OUTCOMES[(method, "ok" if ok else type(result).__name__)] = \
        OUTCOMES.get((method, "ok" if ok else type(result).__name__), 0) + 1
    for before, arg in zip(saved, args):
        assert unchanged(before, arg), f"{method} modified its argument"
    after = net.get_flat_params()
    assert np.isfinite(after).all(), f"{method} left non-finite parameters"
    if not ok and not isinstance(result, FloatingPointError):
        assert after.tobytes() == theta.tobytes(), f"{method} raised {result!r} but changed θ"
    return ok, result


def assert_finite(a, shape=None, what=""):
    a = np.asarray(a)
    assert a.dtype.kind in "fiu", (what, a.dtype)
    assert np.isfinite(a).all(), f"{what}: not finite: {a}"
    if shape is not None:
        assert a.shape == shape, f"{what}: shape {a.shape}, expected {shape}"


def rows(X):
    return np.asarray(X).shape[0]


# ------------------------------------------------------------------------ properties

def fuzz_construct(backend):
    @given(clean=st.booleans(), net=networks(backend), layers=st.lists(st.tuples(st.one_of(st.integers(-1, 5), junk()),
                                     st.one_of(st.sampled_from(HIDDEN + ["softmax", "linear",
                                                                         "swish", "Relu"]),
                                               junk()),
                                     st.one_of(st.sampled_from([0.0, 0.01, 2.0, -0.5]), junk())),
                           max_size=3),
           n_inputs=st.one_of(st.integers(-1, 6), junk()),
           loss=st.one_of(st.none(), st.sampled_from(["mse", "mae", "bce", "cross_entropy", "ce",
                                                      "hinge", "MSE"]), junk()),
           dtype=st.one_of(st.sampled_from(["float32", "float64", "float16", "int32", "f8"]),
                           junk()),
           seed=st.one_of(st.none(), st.integers(-1, 5), junk()))
    @settings(PROFILE, max_examples=EXAMPLES["construct"])
    def prop(clean, net, layers, n_inputs, loss, dtype, seed):
        if clean:  # a valid network, built from its config as a user would
            cfg = net.get_config()
            layers = [(c["units"], c["activation"], c["alpha"]) for c in cfg["layers"]]
            n_inputs, loss, dtype, seed = cfg["n_inputs"], cfg["loss"], cfg["dtype"], cfg["seed"]
        note(f"Network({layers!r}, n_inputs={n_inputs!r}, loss={loss!r}, dtype={dtype!r}, "
             f"backend={backend!r}, seed={seed!r})")
        try:
            dense = [fn.Dense(u, a, alpha=al) for u, a, al in layers]
            net = fn.Network(dense, n_inputs=n_inputs, loss=loss, dtype=dtype, backend=backend,
                             seed=seed)
        except ERRORS:
            assert not clean, "a valid network was refused"
            return
        X = np.random.default_rng(0).standard_normal((3, net.n_inputs))
        ok, A = call(net, "forward", (X,))
        assert ok, A
        assert_finite(A, (3, net.n_outputs), "forward")
        assert net.count_params() == net.get_flat_params().size
        net.summary(print_fn=None)

    return prop


def fuzz_forward(backend):
    @given(data=st.data(), method=st.sampled_from(["forward", "predict", "predict_proba",
                                                   "evaluate"]), clean=st.booleans())
    @settings(PROFILE, max_examples=EXAMPLES["forward"])
    def prop(data, method, clean):
        net = data.draw(networks(backend))
        X = data.draw(X_for(net.n_inputs, clean=clean))
        if method == "evaluate":
            m = max(rows(X), 1) if np.ndim(X) else 1
            Y = net.predict(np.zeros((m, net.n_inputs))) if net.loss != "bce" else \
                np.zeros((m, net.n_outputs))
            if net.loss == "cross_entropy":
                Y = np.asarray(Y)
            ok, result = call(net, method, (X, Y))
            if ok:
                assert set(result) <= {"loss", "accuracy"} and math.isfinite(result["loss"])
            return
        ok, result = call(net, method, (X,))
        if not ok:
            assert not clean or (method == "predict_proba" and net.loss not in ("bce",
                                                                                "cross_entropy")), result
            return
        m, k = rows(X), net.n_outputs
        if method in ("forward", "predict_proba"):
            assert_finite(result, (m, k), method)
            assert result.dtype == net.dtype
        elif net.loss == "cross_entropy" or (net.loss == "bce" and k == 1):
            assert_finite(result, (m,), method)
            assert result.min() >= 0 and result.max() < max(k, 2)
        else:
            assert_finite(result, (m, k), method)

    return prop


def fuzz_cost(backend):
    @given(data=st.data(), method=st.sampled_from(["cost", "gradients", "evaluate", "step",
                                                   "numerical_gradient"]),
           l2=st.one_of(st.sampled_from([0.0, 0.0, 0.1, 1e300]), junk()), clean=st.booleans())
    @settings(PROFILE, max_examples=EXAMPLES["cost"])
    def prop(data, method, l2, clean):
        net = data.draw(networks(backend))
        m = data.draw(st.integers(1, 7))
        X = data.draw(X_for(net.n_inputs, valid_rows=m, clean=clean))
        Y = data.draw(Y_for(net, m, clean=clean))
        if clean:
            l2 = data.draw(st.sampled_from([0.0, 0.1, 3]))
        if method == "step":
            opt = data.draw(st.sampled_from([fn.SGD(0.1), fn.Adam(1e-2), fn.SGD(1e30), "sgd"]))
            ok, J = call(net, "step", (X, Y, opt), allowed=TRAIN_ERRORS, l2=l2)
            if ok:
                assert math.isfinite(J)
            else:
                assert not clean or isinstance(J, FloatingPointError), J
            return
        if method == "numerical_gradient":
            note(f"numerical_gradient({net!r}, {describe(X)}, {describe(Y)}, l2={l2!r})")
            theta = net.get_flat_params()
            try:
                g = fn.numerical_gradient(net, X, Y, l2=l2, indices=[0])
                assert_finite(g, (1,), "numerical_gradient")
            except ERRORS:
                pass
            assert net.get_flat_params().tobytes() == theta.tobytes()
            return
        ok, result = call(net, method, (X, Y), l2=l2)
        if not ok:
            assert not clean, result
            return
        if method == "cost":
            assert isinstance(result, float) and math.isfinite(result)
        elif method == "evaluate":
            assert math.isfinite(result["loss"])
            if "accuracy" in result:
                assert 0.0 <= result["accuracy"] <= 1.0
        else:
            assert len(result) == len(net.layers)
            for (dW, db), (n_in, n_out) in zip(result, net._shapes):
                assert_finite(dW, (n_in, n_out), "dW")
                assert_finite(db, (n_out,), "db")

    return prop


def fuzz_fit(backend):
    @given(data=st.data(),
           optimizer=st.sampled_from(["adam", "sgd", "lbfgs", "SGD-momentum", "huge-lr", "junk"]),
           epochs=st.one_of(st.integers(1, 3), st.sampled_from([0, -1, 2.5, None, "3"])),
           batch_size=st.one_of(st.integers(1, 12), st.sampled_from([None, 0, -4, 10**9, 1.5])),
           l2=st.sampled_from([0.0, 0.0, 0.5, 1e300, -1.0]),
           validation=st.sampled_from(["none", "none", "same", "bad"]),
           early_stopping=st.sampled_from([False, True, 1, 0]),
           shuffle=st.booleans(), clean=st.booleans())
    @settings(PROFILE, max_examples=EXAMPLES["fit"])
    def prop(data, optimizer, epochs, batch_size, l2, validation, early_stopping, shuffle,
             clean):
        net = data.draw(networks(backend))
        m = data.draw(st.integers(1, 12))
        X = data.draw(X_for(net.n_inputs, valid_rows=m, clean=clean))
        Y = data.draw(Y_for(net, m, clean=clean))
        if clean:  # valid hyperparameters (a huge learning rate is valid: it may diverge)
            optimizer = data.draw(st.sampled_from(["adam", "sgd", "lbfgs", "SGD-momentum",
                                                   "huge-lr"]))
            epochs = data.draw(st.integers(1, 3))
            batch_size = data.draw(st.sampled_from([None, 1, 3, 10**9]))
            l2 = data.draw(st.sampled_from([0.0, 0.5]))
            validation = data.draw(st.sampled_from(["none", "same"]))
            early_stopping = data.draw(st.sampled_from([False, 1]))
        opt = {"SGD-momentum": fn.SGD(0.05, momentum=0.9, nesterov=True),
               "huge-lr": fn.SGD(1e36), "junk": 3.0,
               "lbfgs": fn.LBFGS(maxiter=3)}.get(optimizer, optimizer)
        val = {"none": None, "same": (X, Y), "bad": (X,)}[validation]
        ok, history = call(net, "fit", (X, Y), allowed=TRAIN_ERRORS, optimizer=opt, epochs=epochs,
                           batch_size=batch_size, l2=l2, validation_data=val,
                           early_stopping=early_stopping, shuffle=shuffle, progress=False, seed=0)
        if isinstance(history, FloatingPointError):
            assert isinstance(history, fn.TrainingDiverged), history
            history = history.history
            assert history is net.history
        elif not ok:
            assert not clean, history
            return
        assert all(math.isfinite(v) for v in history.loss), history.loss
        assert len(history.loss) == len(history.epoch)
        if isinstance(epochs, int):
            assert len(history.loss) <= epochs
        if ok:
            assert len(history.loss) >= 1 or optimizer == "lbfgs"
            A = net.forward(np.zeros((2, net.n_inputs)))
            assert_finite(A, (2, net.n_outputs), "forward after fit")

    return prop


def fuzz_params(backend):
    @given(data=st.data(), how=st.sampled_from(["set_params", "set_flat_params"]),
           clean=st.booleans())
    @settings(PROFILE, max_examples=EXAMPLES["params"])
    def prop(data, how, clean):
        net = data.draw(networks(backend))
        floats = st.sampled_from(["float64", "float32", "float16"])
        if how == "set_flat_params":
            n = net.count_params()
            if clean:
                theta = convert(data.draw(values((n,), clean=True)), data.draw(floats),
                                data.draw(st.sampled_from(LAYOUTS)))
            else:
                shape = data.draw(st.sampled_from([(n,), (n,), (n + 1,), (n, 1), (),
                                                   (max(n - 1, 0),)]))
                theta = data.draw(arrays_like(shape))
            ok, result = call(net, "set_flat_params", (theta,))
            assert ok or not clean, result
            if ok:
                got = net.get_flat_params()
                with np.errstate(all="ignore"):
                    want = np.asarray(theta).astype(net.dtype)
                np.testing.assert_array_equal(got, want)
            return
        params = []
        for (n_in, n_out) in net._shapes:
            pair = []
            for shape in ((n_in, n_out), (n_out,)):
                if clean:
                    pair.append(convert(data.draw(values(shape, clean=True)), data.draw(floats),
                                        data.draw(st.sampled_from(LAYOUTS[:-3]))))
                    continue
                shape = data.draw(st.sampled_from([shape, shape, shape, shape[::-1],
                                                   (shape[0] + 1,) + shape[1:]]))
                pair.append(data.draw(arrays_like(shape)))
            params.append(tuple(pair) if clean or data.draw(st.integers(0, 9)) else (pair[0],))
        if not clean and data.draw(st.integers(0, 9)) == 0:
            params = params[:-1]
        ok, result = call(net, "set_params", (params,))
        assert ok or not clean, result
        if ok:
            for (W, b), (W0, b0) in zip(net.params, params):
                with np.errstate(all="ignore"):
                    np.testing.assert_array_equal(W, np.asarray(W0).astype(net.dtype))
                    np.testing.assert_array_equal(b, np.asarray(b0).astype(net.dtype))

    return prop


def fuzz_io(backend):
    @given(data=st.data(), damage=st.sampled_from(["flip", "flip", "truncate", "append",
                                                   "zero-run", "none"]))
    @settings(PROFILE, max_examples=EXAMPLES["io"])
    def prop(data, damage):
        net = data.draw(networks(backend))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.fnn")
            net.save(path)
            with open(path, "rb") as f:
                raw = bytearray(f.read())
            n = len(raw)
            if damage == "flip":
                for pos, bit in data.draw(st.lists(st.tuples(st.integers(0, n - 1),
                                                             st.integers(0, 7)),
                                                   min_size=1, max_size=3)):
                    raw[pos] ^= 1 << bit
            elif damage == "truncate":
                raw = raw[:data.draw(st.integers(0, n - 1))]
            elif damage == "append":
                raw += bytes(data.draw(st.binary(min_size=1, max_size=64)))
            elif damage == "zero-run":
                start = data.draw(st.integers(0, n - 1))
                end = min(n, start + data.draw(st.integers(1, 64)))
                raw[start:end] = bytes(end - start)
            with open(path, "wb") as f:
                f.write(raw)
            note(f"load(<{damage}ed copy of a saved {net!r}>)")
            try:
                back = fn.load(path, backend=backend)
            except fn.ModelFileError:
                assert damage != "none"
                return
        assert back.get_config() == net.get_config()
        assert back.get_flat_params().tobytes() == net.get_flat_params().tobytes()

    return prop


GROUPS = {"construct": fuzz_construct, "forward": fuzz_forward, "cost": fuzz_cost,
          "fit": fuzz_fit, "params": fuzz_params, "io": fuzz_io}


def child(backend, *groups):
    """Run the fuzz groups (all by default) for one backend; exit status 1 on any failure."""
    import time
    import traceback

    warnings.simplefilter("ignore")  # overflow RuntimeWarnings from NumPy are expected here
    failed = []
    for name in groups or GROUPS:
        t0 = time.perf_counter()
        try:
            GROUPS[name](backend)()
            status = "ok"
        except Exception:
            traceback.print_exc()
            failed.append(name)
            status = "FAILED"
        print(f"fuzz {backend}/{name}: {status} ({time.perf_counter() - t0:.1f} s)", flush=True)
    print("outcomes:", ", ".join(f"{m} {o}: {n}" for (m, o), n in sorted(OUTCOMES.items())),
          flush=True)
    if failed:
        print(f"failed groups: {failed}", flush=True)
        sys.exit(1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fuzz_public_api(backend, tmp_path):
    trace = tmp_path / "last_call.txt"
    env = dict(os.environ, FASTNN_FUZZ_TRACE=str(trace))
    code = (f"import sys; sys.path.insert(0, {TESTS!r}); import test_fuzz; "
            f"test_fuzz.child({backend!r})")
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], env=env,
                          capture_output=True, text=True, timeout=600)
    output = proc.stdout[-6000:] + "\n" + proc.stderr[-8000:]
    if proc.returncode < 0:
        last = trace.read_text() if trace.exists() else "(no call recorded)"
        pytest.fail(f"the fuzz child ({backend}) was killed by "
                    f"{signal.Signals(-proc.returncode).name} during:\n{last}\n\n{output}")
    assert proc.returncode == 0, output
    for name in GROUPS:
        assert f"fuzz {backend}/{name}: ok" in proc.stdout, output


def test_crash_detection_works(tmp_path):
    """The wrapper itself: a child that segfaults is reported with its last call."""
    trace = tmp_path / "last_call.txt"
    env = dict(os.environ, FASTNN_FUZZ_TRACE=str(trace))
    code = (f"import sys; sys.path.insert(0, {TESTS!r}); import test_fuzz, ctypes; "
            "test_fuzz.note('about to crash'); ctypes.string_at(0)")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGSEGV
    assert trace.read_text() == "about to crash"
