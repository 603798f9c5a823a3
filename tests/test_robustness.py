"""Training that goes wrong, interrupted work, and load: divergence, Ctrl-C, a save killed
mid-write, a 200-network soak, concurrent trainings in threads, determinism.

The tests whose failure could be a crash (the soak and the threads) run their body in a
child process (``run_in_child``): a segfault or abort fails the test with the signal's
name instead of taking pytest down.
"""
import gc
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import run_in_threads

import fastnn as fn

BACKENDS = ["cpu", "reference"]
TESTS = os.path.dirname(os.path.abspath(__file__))


def run_in_child(function, *args, timeout=300):
    """Run test_robustness.<function>(*args) in a fresh interpreter; return its stdout.
    Fails (never crashes pytest) if the child dies of a signal or exits non-zero."""
    code = (f"import sys; sys.path.insert(0, {TESTS!r}); import test_robustness as t; "
            f"t.{function}(*{args!r})")
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code],
                          capture_output=True, text=True, timeout=timeout)
    output = proc.stdout[-4000:] + "\n" + proc.stderr[-6000:]
    if proc.returncode < 0:
        pytest.fail(f"{function}{args} killed by {signal.Signals(-proc.returncode).name}:\n"
                    f"{output}")
    assert proc.returncode == 0, output
    return proc.stdout


def regression_data(m=96, n=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n))
    return X, X @ rng.standard_normal(n) * 3 + rng.standard_normal(m)


def make_reg(backend, seed=0):
    return fn.Network([fn.Dense(12, "tanh"), fn.Dense(1, "identity")], n_inputs=5, loss="mse",
                      backend=backend, seed=seed)


def twin_after(make, X, Y, optimizer, batch_size, steps, seed=0, shuffle=True):
    """A fresh network trained with net.step for exactly `steps` steps, visiting the
    batches in the order fit visits them (fit's seeded permutation per epoch)."""
    net = make()
    m = X.shape[0]
    batch_size = m if batch_size is None else batch_size
    rng = np.random.default_rng(seed)
    done = 0
    while done < steps:
        perm = rng.permutation(m) if shuffle else np.arange(m)
        for i in range(0, m, batch_size):
            if done == steps:
                break
            idx = perm[i:i + batch_size]
            net.step(X[idx], Y[idx], optimizer)
            done += 1
    return net


def n_batches(m, batch_size):
    return 1 if batch_size is None else -(-m // batch_size)


# ------------------------------------------------------------------------ divergence

@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_size", [16, None])
def test_huge_learning_rate_stops_with_the_last_finite_parameters(backend, batch_size):
    X, y = regression_data()
    net = make_reg(backend)
    with pytest.raises(fn.TrainingDiverged,
                       match=r"training diverged at epoch \d+ \(0-based\), batch \d+: ") as info:
        net.fit(X, y, optimizer=fn.SGD(lr=50.0), epochs=200, batch_size=batch_size,
                progress=False, seed=1)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert f"epoch {err.epoch} (0-based), batch {err.batch}" in str(err)
    theta = net.get_flat_params()
    assert np.isfinite(theta).all()
    # History keeps exactly the epochs completed before the failure, all finite
    assert err.history is net.history and len(err.history.loss) == err.epoch
    assert all(np.isfinite(err.history.loss))
    # "the last finite parameters": those after every step before the failing one
    steps = err.epoch * n_batches(96, batch_size) + err.batch
    twin = twin_after(lambda: make_reg(backend), X, y, fn.SGD(lr=50.0), batch_size, steps, seed=1)
    np.testing.assert_array_equal(theta, twin.get_flat_params())
    # and the network still works: predictions are finite
    assert np.isfinite(net.predict(X)).all()


class OverflowAt(fn.SGD):
    """Plain SGD whose `at`-th update (1-based) overflows θ, as a huge step would.  The
    count lives in the optimizer state, so (like a real overflow) it is reproducible."""

    def __init__(self, lr, at):
        super().__init__(lr)
        self.at = at

    def init_state(self, backend, n, dtype):
        return dict(super().init_state(backend, n, dtype), n=0)

    def update(self, backend, theta, grad, state):
        super().update(backend, theta, grad, state)
        state["n"] += 1
        if state["n"] == self.at:
            theta[:3] = np.inf


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_size, at", [
    (16, 4),     # mid-epoch: θ is Inf when step 4's cost is computed
    (16, 6),     # the last step of epoch 0: found by the end-of-epoch check
    (16, 9),     # epoch 1, batch 2
    (None, 1),   # full batch: the very first update
    (None, 3),   # full batch, epoch 2: batch 0 of a later epoch
])
def test_an_update_that_overflows_theta_is_undone(backend, batch_size, at):
    """θ itself overflows: fit goes back to the parameters from just before that update
    (the epoch's start, plus its earlier steps replayed), with the optimizer state."""
    X, y = regression_data()
    net = make_reg(backend)
    with pytest.raises(fn.TrainingDiverged, match="the parameter update overflowed") as info:
        net.fit(X, y, optimizer=OverflowAt(0.01, at), epochs=5, batch_size=batch_size,
                progress=False, seed=3)
    nb = n_batches(96, batch_size)
    err = info.value
    assert (err.epoch, err.batch) == divmod(at - 1, nb)
    assert len(net.history.loss) == err.epoch
    twin = twin_after(lambda: make_reg(backend), X, y, fn.SGD(0.01), batch_size, at - 1, seed=3)
    np.testing.assert_array_equal(net.get_flat_params(), twin.get_flat_params())


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_with_adam_keeps_a_consistent_optimizer_state(backend):
    """After a divergence in a later epoch, continuing with the same Adam instance and a
    smaller step works from the restored state."""
    X, y = regression_data()
    net = make_reg(backend)
    adam = OverflowAdam(lr=0.01, at=13)
    with pytest.raises(fn.TrainingDiverged):
        net.fit(X, y, optimizer=adam, epochs=5, batch_size=16, progress=False, seed=0)
    assert np.isfinite(net.get_flat_params()).all()
    # update 13 is epoch 2's first (6 steps per epoch): back to the state after 12 steps
    twin = twin_after(lambda: make_reg(backend), X, y, fn.Adam(lr=0.01), 16, 12)
    np.testing.assert_array_equal(net.get_flat_params(), twin.get_flat_params())
    assert sorted(net._opt_state) == sorted(twin._opt_state) == ["m1", "m2", "t"]
    for key in ("m1", "m2", "t"):
        np.testing.assert_array_equal(net._opt_state[key], twin._opt_state[key])


class OverflowAdam(fn.Adam):
    """Adam whose `at`-th update makes θ NaN (Adam's own step counter t decides)."""

    def __init__(self, lr, at):
        super().__init__(lr)
        self.at = at

    def update(self, backend, theta, grad, state):
        super().update(backend, theta, grad, state)
        if state["t"] == self.at:
            theta[-1] = np.nan


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_step_refuses_to_diverge(backend):
    X, y = regression_data()
    linear = fn.Network([fn.Dense(1, "identity")], n_inputs=5, loss="mse", backend=backend,
                        seed=0)
    theta = linear.get_flat_params()
    with pytest.raises(fn.TrainingDiverged, match="the cost is (inf|nan); no update was applied"):
        linear.step(np.full((4, 5), 3e38), np.zeros(4), fn.SGD(0.1))
    np.testing.assert_array_equal(linear.get_flat_params(), theta)
    with pytest.raises(fn.TrainingDiverged, match="update overflowed the parameters"):
        linear.step(X, y * 1e6, fn.SGD(1e38))  # |lr * grad| > float32's max
    np.testing.assert_array_equal(linear.get_flat_params(), theta)
    assert np.isfinite(linear.step(X, y, fn.SGD(0.01)))  # and it still trains


def _trained_pair(backend, make_opt):
    X, y = regression_data()
    nets = [fn.Network([fn.Dense(4, "tanh"), fn.Dense(1, "identity")], n_inputs=5, loss="mse",
                       backend=backend, seed=0) for _ in range(2)]
    opts = [make_opt(), make_opt()]
    for _ in range(3):
        for net, opt in zip(nets, opts):
            net.step(X, y, opt)
    return X, y, nets, opts


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make_opt", [lambda: fn.SGD(0.01, momentum=0.9), lambda: fn.Adam(0.01)],
                         ids=["momentum", "adam"])
def test_a_step_that_raises_keeps_the_optimizer_state(backend, make_opt):
    """A rejected step (an L-BFGS optimizer, an overflowing update) leaves θ *and* the
    momentum / Adam state as they were: the next step is the one an untouched twin takes."""
    X, y, (a, b), (oa, ob) = _trained_pair(backend, make_opt)
    with pytest.raises(ValueError, match="full-batch"):
        b.step(X, y, "lbfgs")
    lr = ob.lr
    ob.lr = 1e38                      # |lr * grad| overflows float32
    with pytest.raises(fn.TrainingDiverged, match="update overflowed"):
        b.step(X * 1e3, y * 1e6, ob)
    ob.lr = lr
    for _ in range(2):
        a.step(X, y, oa)
        b.step(X, y, ob)
    np.testing.assert_array_equal(b.get_flat_params(), a.get_flat_params())


@pytest.mark.parametrize("backend", BACKENDS)
def test_lbfgs_early_stopping_restores_the_best_iterate(backend):
    rng = np.random.default_rng(0)
    X, Xv = rng.standard_normal((40, 5)), rng.standard_normal((40, 5))
    y, yv = X[:, 0] + 0.3 * rng.standard_normal(40), rng.standard_normal(40)  # yv: noise
    net = fn.Network([fn.Dense(16, "tanh"), fn.Dense(1, "identity")], n_inputs=5, loss="mse",
                     backend=backend, seed=0)
    h = net.fit(X, y, optimizer="lbfgs", epochs=200, early_stopping=3,
                validation_data=(Xv, yv), progress=False)
    assert h.stopped_early and "3 iterations" in h.stop_reason
    assert len(h.epoch) == h.best_epoch + 4          # patience 3 after the best
    best = min(h["val_loss"])
    assert h["val_loss"][h.best_epoch] == best
    np.testing.assert_allclose(net.evaluate(Xv, yv)["loss"], best, rtol=1e-5)
    # restore_best=False keeps the last iterate
    net2 = fn.Network([fn.Dense(16, "tanh"), fn.Dense(1, "identity")], n_inputs=5, loss="mse",
                      backend=backend, seed=0)
    h2 = net2.fit(X, y, optimizer="lbfgs", epochs=200, early_stopping=3,
                  validation_data=(Xv, yv), progress=False, restore_best=False)
    np.testing.assert_allclose(net2.evaluate(Xv, yv)["loss"], h2["val_loss"][-1], rtol=1e-5)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_lbfgs_on_inputs_that_overflow(backend):
    net = fn.Network([fn.Dense(1, "identity")], n_inputs=5, loss="mse", backend=backend, seed=0)
    theta = net.get_flat_params()
    with pytest.raises(fn.TrainingDiverged, match=r"epoch 0 \(0-based\), batch 0: the cost is"):
        net.fit(np.full((8, 5), 3e38), np.zeros(8), optimizer="lbfgs", epochs=5, progress=False)
    np.testing.assert_array_equal(net.get_flat_params(), theta)


# ------------------------------------------------------------------------ interrupts

def classification(m=64, n=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, n)), rng.integers(0, k, m)


def make_clf(backend, seed=0):
    return fn.Network([fn.Dense(8, "relu"), fn.Dense(3, "softmax")], n_inputs=5, backend=backend,
                      seed=seed)


def patch_kernel(monkeypatch, net, name, on_call):
    """Wrap the backend's kernel `name`: on_call(n) runs before the n-th call (1-based).

    A per-step kernel can only be interrupted in the per-kernel step, so for those the
    backend's one-call train_step (and its loop over steps) is switched off; "train_steps"
    wraps that loop itself."""
    real = getattr(net._B, name)
    calls = [0]
    if name != "train_steps":
        monkeypatch.setattr(net._B, "train_step_fits", lambda *a: False, raising=False)

    def wrapper(*args):
        calls[0] += 1
        on_call(calls[0])
        return real(*args)

    monkeypatch.setattr(net._B, name, wrapper)
    return calls


def raise_at(n):
    def on_call(i):
        if i == n:
            raise KeyboardInterrupt

    return on_call


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kernel, call, completed", [
    ("linear_forward", 11, 5),   # 2 forward calls per step: the 6th step's first layer
    ("linear_forward", 12, 5),   # the 6th step's output layer
    ("loss_grad", 6, 5),         # the 6th step's loss
    ("adam_update", 6, 5),       # the 6th step's update (t must not count it)
    ("adam_update", 9, 8),       # epoch 1's first update (8 steps per epoch)
    ("train_steps", 2, 8),       # the cpu backend's compiled loop: one call an epoch
])
def test_keyboard_interrupt_leaves_the_last_completed_step(monkeypatch, backend, kernel, call,
                                                           completed):
    X, y = classification()
    net = make_clf(backend)
    if not hasattr(net._B, kernel):
        pytest.skip(f"the {backend} backend has no {kernel}")
    adam = fn.Adam(lr=0.01)
    patch_kernel(monkeypatch, net, kernel, raise_at(call))
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, optimizer=adam, epochs=3, batch_size=8, progress=False, shuffle=False)
    monkeypatch.undo()
    twin_adam = fn.Adam(lr=0.01)
    twin = twin_after(lambda: make_clf(backend), X, y, twin_adam, 8, completed, shuffle=False)
    np.testing.assert_array_equal(net.get_flat_params(), twin.get_flat_params())
    assert net._opt_state["t"] == twin._opt_state["t"] == completed
    assert len(net.history.loss) == completed // 8
    # training goes on from there exactly as if it had never been interrupted
    for i in range(completed * 8 % 64, 64, 8):
        net.step(X[i:i + 8], y[i:i + 8], adam)
        twin.step(X[i:i + 8], y[i:i + 8], twin_adam)
    np.testing.assert_array_equal(net.get_flat_params(), twin.get_flat_params())


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_takes_effect_between_steps(monkeypatch, backend):
    """A real SIGINT in the middle of a step: the step finishes, then fit stops."""
    assert threading.current_thread() is threading.main_thread()
    X, y = classification()
    net = make_clf(backend)

    def on_call(i):
        if i == 7:  # inside step 4 (0-based 3), between its two layers
            signal.raise_signal(signal.SIGINT)

    patch_kernel(monkeypatch, net, "linear_forward", on_call)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, optimizer=fn.SGD(0.1, momentum=0.9), epochs=3, batch_size=8,
                progress=False, shuffle=False)
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    twin = twin_after(lambda: make_clf(backend), X, y, fn.SGD(0.1, momentum=0.9), 8, 4,
                      shuffle=False)
    np.testing.assert_array_equal(net.get_flat_params(), twin.get_flat_params())


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_ctrl_c_interrupts_at_once(monkeypatch, backend):
    X, y = classification()
    net = make_clf(backend)

    def on_call(i):
        if i == 7:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # impatient: interrupts inside the step

    patch_kernel(monkeypatch, net, "linear_forward", on_call)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, optimizer="sgd", epochs=3, batch_size=8, progress=False, shuffle=False)
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    twin = twin_after(lambda: make_clf(backend), X, y, fn.SGD(), 8, 3, shuffle=False)
    np.testing.assert_array_equal(net.get_flat_params(), twin.get_flat_params())


@pytest.mark.parametrize("backend", BACKENDS)
def test_interrupted_lbfgs_keeps_its_last_iterate(monkeypatch, backend):
    X, y = classification()
    net = make_clf(backend)
    iterates = [net.get_flat_params()]
    patch_kernel(monkeypatch, net, "loss_grad", raise_at(9))
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, optimizer="lbfgs", epochs=50, progress=False,
                callbacks=[lambda epoch, logs: iterates.append(net.get_flat_params())])
    monkeypatch.undo()
    assert len(iterates) >= 2  # some iterations were accepted before the interrupt
    np.testing.assert_array_equal(net.get_flat_params(), iterates[-1])
    assert len(net.history.loss) == len(iterates) - 1


# ------------------------------------------------------------------------ save and load

SAVER = r"""
import sys
import numpy as np
import fastnn as fn

path, base = sys.argv[1], int(sys.argv[2])
net = fn.Network([fn.Dense(600, "relu"), fn.Dense(400, "identity")], n_inputs=500, loss="mse",
                 dtype="float64", backend="reference", seed=0)
theta = np.empty(net.count_params())
k = 0
while True:
    k += 1
    theta.fill(base + k)
    net.set_flat_params(theta)
    net.save(path)
    print(base + k, flush=True)
"""


def test_save_killed_at_random_moments_never_leaves_a_broken_model(tmp_path):
    """SIGKILL a process that saves a 4.3 MB model in a loop, at random moments, 6 times:
    the path always loads as one of the models that was being saved."""
    path = str(tmp_path / "model.fnn")
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    rnd = random.Random(0)
    current = None  # the θ value the file must hold (None: no save has completed yet)
    for trial in range(6):
        base = (trial + 1) * 1_000_000
        proc = subprocess.Popen([sys.executable, str(script), path, str(base)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # one save done: the loop is running
        assert first, proc.stderr.read()
        time.sleep(rnd.uniform(0.0, 0.25))
        proc.kill()
        out, _ = proc.communicate()
        done = [int(v) for v in (first + out).split()]
        assert proc.returncode == -signal.SIGKILL
        back = fn.load(path)  # never ModelFileError: the rename is atomic
        value = back.get_flat_params()[0]
        assert np.all(back.get_flat_params() == value)
        # the last reported save, or the one after it (renamed, killed before printing)
        assert value in (done[-1], done[-1] + 1), (value, done[-3:])
        assert current is None or value >= current  # never an older model than before
        current = value
    leftovers = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert all(p.startswith(".model.fnn.") for p in leftovers)  # never at `path` itself


def test_a_failed_save_keeps_the_old_file_and_cleans_up(tmp_path, monkeypatch):
    import fastnn.io as fio

    net = make_clf("reference")
    path = tmp_path / "m.fnn"
    net.save(path)
    before = path.read_bytes()
    other = make_clf("reference", seed=5)

    def broken_savez(f, **members):
        f.write(b"PK\x03\x04 half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fio.np, "savez", broken_savez)
    with pytest.raises(OSError, match="No space left"):
        other.save(path)
    monkeypatch.undo()

    def broken_replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(fio.os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.fnn"]
    np.testing.assert_array_equal(fn.load(path).get_flat_params(), net.get_flat_params())


def test_saved_file_honours_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        make_clf("reference").save(tmp_path / "m")
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "m").st_mode & 0o777) == 0o644


def test_every_truncation_of_a_model_file_is_refused(tmp_path):
    net = make_clf("reference")
    path = tmp_path / "m"
    net.save(path)
    data = path.read_bytes()
    for cut in sorted({0, 1, 3, 4, 30, 100} | set(range(0, len(data), max(1, len(data) // 60)))):
        if cut >= len(data):
            continue
        path.write_bytes(data[:cut])
        with pytest.raises(fn.ModelFileError):
            fn.load(path)


# ------------------------------------------------------------------------ soak

def _soak(n_networks=200):
    """Train n small networks in a row; print RSS, live objects and the number of compiled
    kernel specializations after each (JSON)."""
    import tempfile
    import warnings

    from fastnn.backend import get_backend

    warnings.simplefilter("ignore")
    cpu = get_backend("cpu")

    def dispatchers(values, seen):
        for obj in values:
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if hasattr(obj, "signatures") and hasattr(obj, "py_func"):
                yield obj
            elif isinstance(obj, dict):
                yield from dispatchers(obj.values(), seen)
            elif isinstance(obj, (list, tuple)):
                yield from dispatchers(obj, seen)

    def compiled():  # specializations of every Numba function the cpu backend holds
        return sum(len(d.signatures) for d in dispatchers(vars(cpu).values(), set()))

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((192, 12)), rng.integers(0, 3, 192)
    Xv, yv = rng.standard_normal((40, 12)), rng.integers(0, 3, 40)
    specs = [
        dict(layers=[("relu", 16), ("softmax", 3)], dtype="float32", opt=lambda: fn.Adam(1e-2)),
        dict(layers=[("tanh", 8), ("tanh", 8), ("softmax", 3)], dtype="float64",
             opt=lambda: fn.SGD(0.1, momentum=0.9, nesterov=True)),
        dict(layers=[("leaky_relu", 24), ("softmax", 3)], dtype="float32", opt=lambda: "sgd"),
        dict(layers=[("sigmoid", 10), ("softmax", 3)], dtype="float64", opt=lambda: "lbfgs"),
    ]
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n_networks):
            spec = specs[i % len(specs)]
            net = fn.Network([fn.Dense(u, a) for a, u in spec["layers"]], n_inputs=12,
                             dtype=spec["dtype"], backend="cpu", seed=i)
            net.fit(X, y, optimizer=spec["opt"](), epochs=3, batch_size=32, progress=False,
                    validation_data=(Xv, yv), early_stopping=2)
            net.predict(Xv)
            net.evaluate(Xv, yv)
            net.save(os.path.join(tmp, "m.fnn"))
            fn.load(os.path.join(tmp, "m.fnn"))
            del net
            gc.collect()  # count live objects, not cyclic garbage awaiting collection
            records.append((rss(), len(gc.get_objects()), compiled()))
    print(json.dumps(records))


def test_soak_200_networks_memory_stops_growing():
    t0 = time.perf_counter()
    records = json.loads(run_in_child("_soak", 200).strip().splitlines()[-1])
    rss, objects, compiled = (np.array(col) for col in zip(*records))
    warm = 40
    mb = (rss[-1] - rss[warm]) / 2**20
    # no leaked workspaces (each fit allocates several, freed with the network), no
    # growing compiled-function caches, no objects piling up
    assert compiled[warm:].max() == compiled[warm], compiled
    assert objects[-1] - objects[warm] < 500, (objects[warm], objects[-1])
    assert mb < 8, f"RSS grew {mb:.1f} MiB from network {warm} to 200: {rss[::20] / 2**20}"
    # RSS is flat: the second half grows no more than the first half after warm-up
    assert rss[-1] - rss[120] <= max(rss[120] - rss[warm], 0) + 2 * 2**20
    assert time.perf_counter() - t0 < 120


# ------------------------------------------------------------------------ threads

JOBS = [  # (seed, hidden units, dtype, optimizer, batch size): small and BLAS-sized steps
    (0, 16, "float32", "adam", 16),
    (1, 64, "float64", "sgd-momentum", 128),
    (2, 32, "float64", "adam", 32),
    (3, 48, "float32", "lbfgs", None),
]


def _train(backend, job, epochs=3):
    seed, hidden, dtype, opt, batch = job
    rng = np.random.default_rng(100 + seed)
    X, y = rng.standard_normal((256, 32)), rng.integers(0, 4, 256)
    net = fn.Network([fn.Dense(hidden, "relu"), fn.Dense(hidden, "tanh"), fn.Dense(4, "softmax")],
                     n_inputs=32, dtype=dtype, backend=backend, seed=seed)
    optimizer = {"adam": fn.Adam(3e-3), "sgd-momentum": fn.SGD(0.05, momentum=0.9),
                 "lbfgs": fn.LBFGS(maxiter=10)}[opt]
    net.fit(X, y, optimizer=optimizer, epochs=epochs if opt != "lbfgs" else 10,
            batch_size=batch, progress=False, validation_data=(X[:64], y[:64]))
    return net.get_flat_params(), list(net.history.loss), net.predict_proba(X[:32])


def _threads_vs_serial(backend, rounds=1):
    serial = [_train(backend, job) for job in JOBS]
    for _ in range(rounds):
        results = [None] * len(JOBS)
        barrier = threading.Barrier(len(JOBS))

        def worker(i):
            barrier.wait()
            results[i] = _train(backend, JOBS[i])

        errors = run_in_threads(worker, len(JOBS))
        assert not errors, errors
        for job, (theta, loss, proba), (theta0, loss0, proba0) in zip(JOBS, results, serial):
            np.testing.assert_array_equal(theta, theta0, err_msg=f"job {job}")
            assert loss == loss0, job
            np.testing.assert_array_equal(proba, proba0, err_msg=f"job {job}")
    print("threads ok")


@pytest.mark.parametrize("backend", BACKENDS)
def test_four_trainings_in_threads_equal_their_serial_twins(backend):
    assert "threads ok" in run_in_child("_threads_vs_serial", backend)


def _one_network_in_threads(backend):
    """Eight threads predict with and evaluate one trained network at once (two batch
    sizes); every result equals the one computed alone."""
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((300, 32)), rng.integers(0, 4, 300)
    net = fn.Network([fn.Dense(48, "relu"), fn.Dense(4, "softmax")], n_inputs=32,
                     backend=backend, seed=0)
    net.fit(X, y, epochs=2, progress=False)
    batches = [X[:64], X[64:300]]
    want = [(net.predict_proba(b), net.evaluate(b, y[i * 64:i * 64 + len(b)]))
            for i, b in enumerate(batches)]
    bad = []
    barrier = threading.Barrier(8)

    def worker(k):
        barrier.wait()
        for r in range(40):
            i = (k + r) % 2
            p = net.predict_proba(batches[i])
            e = net.evaluate(batches[i], y[i * 64:i * 64 + len(batches[i])])
            if not (np.array_equal(p, want[i][0]) and e == want[i][1]):
                bad.append((k, r))

    errors = run_in_threads(worker, 8)
    assert not errors, errors
    assert not bad, f"{len(bad)} of 320 calls differ from the serial results"
    print("shared ok")


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_predicting_with_one_network_get_the_serial_results(backend):
    assert "shared ok" in run_in_child("_one_network_in_threads", backend)


# ------------------------------------------------------------------------ determinism

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("job", JOBS, ids=[j[3] for j in JOBS])
def test_same_seed_same_threads_is_bitwise_identical(backend, job):
    (a, la, pa), (b, lb, pb) = _train(backend, job, epochs=2), _train(backend, job, epochs=2)
    np.testing.assert_array_equal(a, b)
    assert la == lb
    np.testing.assert_array_equal(pa, pb)


def _thread_counts(backend):
    """Train every job with 1 thread and with each other count up to the cores; check the
    results agree within the tolerance table, and print which were bitwise equal."""
    import numba

    from fastnn.kernels import allclose

    results = {}
    for n in range(1, numba.config.NUMBA_NUM_THREADS + 1):
        fn.set_num_threads(n)
        results[n] = [_train(backend, job, epochs=2) for job in JOBS]
    bitwise = {}
    for job, *per_count in zip(JOBS, *(results[n] for n in sorted(results))):
        first = per_count[0][0]
        for n, (theta, _, _) in zip(sorted(results), per_count):
            assert allclose(theta, first, job[2]), (job, n)
        bitwise[job[3] + "/" + job[2]] = all(np.array_equal(t, first) for t, _, _ in per_count)
    print(json.dumps({"threads": sorted(results), "bitwise_equal": bitwise}))


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_thread_count_changes_at_most_the_last_bits(backend):
    """The same thread count reproduces the bits; another thread count may change the
    last bits (BLAS, which large matrix products go to, splits them by thread count:
    float32 products differ), within the tolerance table."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one core: nothing to compare")
    out = run_in_child("_thread_counts", backend)
    report = json.loads(out.strip().splitlines()[-1])
    print(report)
