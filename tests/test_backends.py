"""Trust, step two, at the network level: a whole gradients() call, a step and a fit on a
fast backend equal the reference backend.  Under NUMBA_ENABLE_CUDASIM=1 the fast backend
is cuda, on tiny problems."""
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fn

from conftest import CUDASIM, DTYPES, FAST_BACKENDS, assert_close

HIDDEN = ["sigmoid", "tanh", "relu", "leaky_relu", "identity"]
OUTPUTS = [("bce", "sigmoid"), ("cross_entropy", "softmax"), ("mse", "identity"),
           ("mae", "identity"), ("mse", "relu")]
SHAPES = [(1, 1, 1, 1), (5, 3, 4, 2)] if CUDASIM else [(1, 1, 1, 1), (33, 17, 9, 10),
                                                       (257, 40, 33, 3), (64, 300, 64, 1)]


def targets(loss, m, k, rng):
    if loss == "cross_entropy":
        return rng.integers(0, k, m)
    if loss == "bce":
        return (rng.random((m, k)) < 0.5).astype(float)
    return rng.standard_normal((m, k))


def twins(backend, hidden, out, loss, n_in, n_h, k, dtype, seed=0):
    layers = lambda: [fn.Dense(n_h, hidden), fn.Dense(n_h + 2, hidden), fn.Dense(k, out)]  # noqa: E731
    ref = fn.Network(layers(), n_inputs=n_in, loss=loss, dtype=dtype, backend="reference", seed=seed)
    fast = fn.Network(layers(), n_inputs=n_in, loss=loss, dtype=dtype, backend=backend, seed=seed)
    rng = np.random.default_rng(seed + 1)
    params = [(W, 0.1 * rng.standard_normal(b.shape)) for W, b in ref.params]
    ref.set_params(params)
    fast.set_params(params)
    return ref, fast


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss,out", OUTPUTS)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("m,n_in,n_h,k", SHAPES)
@pytest.mark.parametrize("l2", [0.0, 1.0])
def test_gradients_equal_reference(fast_backend, dtype, hidden, loss, out, m, n_in, n_h, k, l2):
    if k == 1 and loss == "cross_entropy":
        k = 2
    backend = fast_backend.__name__.rsplit(".", 1)[-1]
    ref, fast = twins(backend, hidden, out, loss, n_in, n_h, k, dtype)
    rng = np.random.default_rng(m + n_in)
    X = rng.standard_normal((m, n_in))
    Y = targets(loss, m, k, rng)
    X0 = X.copy()
    assert_close(fast.cost(X, Y, l2), ref.cost(X, Y, l2), dtype)
    for (dW, db), (dW_ref, db_ref) in zip(fast.gradients(X, Y, l2), ref.gradients(X, Y, l2)):
        assert dW.dtype == np.dtype(dtype) and db.dtype == np.dtype(dtype)
        assert_close(dW, dW_ref, dtype)
        assert_close(db, db_ref, dtype)
    assert_close(fast.forward(X), ref.forward(X), dtype)
    np.testing.assert_array_equal(X, X0)


@pytest.mark.cudasim
@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_equal_reference_every_activation_and_loss(fast_backend, dtype):
    """Every hidden activation and every loss/output pair, each in one small network: cost,
    gradients and forward agree (the compact version of the test above, which also runs
    under the CUDA simulator, where each kernel launch costs ~0.1 s)."""
    backend = fast_backend.__name__.rsplit(".", 1)[-1]
    rng = np.random.default_rng(1)
    m, n_in, n_h, k = 5, 3, 4, 2
    X = rng.standard_normal((m, n_in))
    for hidden, (loss, out) in zip(HIDDEN, OUTPUTS):
        ref, fast = twins(backend, hidden, out, loss, n_in, n_h, k, dtype)
        Y = targets(loss, m, k, rng)
        assert_close(fast.cost(X, Y, 1.0), ref.cost(X, Y, 1.0), dtype)
        for (dW, db), (dW_ref, db_ref) in zip(fast.gradients(X, Y, 1.0),
                                              ref.gradients(X, Y, 1.0)):
            assert_close(dW, dW_ref, dtype)
            assert_close(db, db_ref, dtype)
        assert_close(fast.forward(X), ref.forward(X), dtype)


@pytest.mark.cudasim
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", [fn.SGD(0.1), fn.SGD(0.1, momentum=0.9, nesterov=True),
                                       fn.Adam(1e-2)])
def test_steps_equal_reference(fast_backend, dtype, optimizer):
    backend = fast_backend.__name__.rsplit(".", 1)[-1]
    ref, fast = twins(backend, "tanh", "softmax", "cross_entropy", 6, 5, 3, dtype)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 6)), rng.integers(0, 3, 16)
    for _ in range(3):
        assert_close(fast.step(X, y, optimizer, l2=0.5), ref.step(X, y, optimizer, l2=0.5), dtype)
    assert_close(fast.get_flat_params(), ref.get_flat_params(), dtype)


@pytest.mark.cudasim
def test_fit_history_equals_reference(fast_backend):
    """Mini-batch Adam, 3 epochs: the same History for the same seed (digits; a tiny
    problem under the CUDA simulator)."""
    backend = fast_backend.__name__.rsplit(".", 1)[-1]
    if CUDASIM:
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((24, 4)), rng.integers(0, 3, 24)
        Xv, yv = X[:6], y[:6]
        layers = lambda: [fn.Dense(5, "relu"), fn.Dense(3, "softmax")]  # noqa: E731
        n_in, batch = 4, 8
    else:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        X, Xv, y, yv = train_test_split(d.data / 16, d.target, test_size=0.3, random_state=0)
        layers = lambda: [fn.Dense(32, "relu"), fn.Dense(10, "softmax")]  # noqa: E731
        n_in, batch = 64, 32
    histories = []
    for b in ("reference", backend):
        net = fn.Network(layers(), n_inputs=n_in, backend=b, seed=0, dtype="float64")
        histories.append(net.fit(X, y, optimizer=fn.Adam(1e-2), epochs=3, batch_size=batch,
                                 validation_data=(Xv, yv), progress=False))
    for key in ("loss", "val_loss", "val_accuracy"):
        assert_close(histories[1][key], histories[0][key], np.float64)


@pytest.mark.skipif(CUDASIM, reason="host workspaces only")
def test_training_step_reuses_its_workspace():
    """After the first step nothing is re-allocated: buffer addresses are stable."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 20)).astype(np.float32), rng.integers(0, 5, 64)
    net = fn.Network([fn.Dense(16, "relu"), fn.Dense(5, "softmax")], n_inputs=20, seed=0)
    opt = fn.Adam()
    net.step(X, y, opt)

    def addresses():
        ws = net._workspace(64)
        arrays = ws.A + ws.dZ + [ws.A_out, net._theta, net._grad, net._opt_state["m1"],
                                 net._opt_state["m2"]]
        return [a.ctypes.data for a in arrays]

    before = addresses()
    for _ in range(5):
        net.step(X, y, opt)
    assert addresses() == before
    net.step(X[:10], y[:10], opt)  # another batch size gets its own workspace ...
    net.step(X, y, opt)
    assert addresses() == before   # ... and the first is still cached


def test_workspaces_are_kept_for_the_most_recent_batch_sizes():
    """A workspace per batch size, the _MAX_WORKSPACES most recently used ones kept (the
    step's path returns the most recent one without reordering)."""
    from fastnn.network import _MAX_WORKSPACES as K

    net = fn.Network([fn.Dense(4, "relu"), fn.Dense(3, "softmax")], n_inputs=5, seed=0)
    first = {m: net._workspace(m) for m in range(1, K + 1)}
    assert net._workspace(K) is first[K] and net._workspace(K) is first[K]
    assert net._workspace(1) is first[1]             # 1 becomes the most recent ...
    net._workspace(K + 1)                            # ... so 2, the least recent, goes
    assert list(net._workspaces) == list(range(3, K + 1)) + [1, K + 1]
    assert net._workspace(2) is not first[2] and net._workspace(2).A[0].shape == (2, 4)
    assert net._workspace(1) is first[1]
    net._workspaces.clear()                          # nothing cached: a fresh one
    assert net._workspace(1) is not first[1]


@pytest.mark.skipif(CUDASIM, reason="fresh-process determinism is checked on the cpu backend")
def test_training_is_bitwise_reproducible_in_fresh_processes():
    code = (
        "import numpy as np, fastnn as fn, hashlib\n"
        "fn.set_num_threads(2)\n"
        "from sklearn.datasets import load_digits\n"
        "d = load_digits()\n"
        "net = fn.Network([fn.Dense(64, 'relu'), fn.Dense(10, 'softmax')], n_inputs=64, seed=5)\n"
        "net.fit(d.data / 16, d.target, optimizer=fn.Adam(1e-2), epochs=2, batch_size=100,"
        " progress=False)\n"
        "print(hashlib.sha256(net.get_flat_params().tobytes()).hexdigest())\n")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip() for _ in range(2)}
    assert len(digests) == 1


def test_default_backend_is_cpu():
    assert fn.Network([fn.Dense(2)], n_inputs=2).backend == "cpu"
    assert fn.available_backends()[0] == "cpu"


@pytest.mark.skipif(CUDASIM, reason="demo runs on the cpu backend")
def test_demo_runs_on_cpu_and_is_accurate():
    out = subprocess.run([sys.executable, "-m", "fastnn", "demo", "--quiet"], capture_output=True,
                         text=True, check=True, timeout=300).stdout
    assert "backend='cpu'" in out
    accuracy = float(out.split("test accuracy:")[1].split()[0])
    assert accuracy >= 0.95
    assert "time:" in out
