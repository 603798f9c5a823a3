"""The cpu backend's one-call training step (kernels/cpu_step.py) against the step made of
one call per kernel: the same bits (it runs the same serial kernels), and both against the
NumPy reference within the tolerance table; plus when it is (not) used, and a non-finite
cost leaving θ and the optimizer state as they were."""
import warnings

import numpy as np
import pytest

import fastnn as fn
from fastnn import kernels as K
from fastnn.kernels import cpu as C

from conftest import DTYPES, assert_close, network_data as _data

HIDDEN = ["identity", "sigmoid", "tanh", "relu", "leaky_relu"]
OUTPUTS = [("sigmoid", "bce"), ("softmax", "cross_entropy"), ("identity", "mse"),
           ("tanh", "mae")]
OPTIMIZERS = [lambda: fn.SGD(lr=0.1), lambda: fn.SGD(lr=0.05, momentum=0.9),
              lambda: fn.SGD(lr=0.05, momentum=0.8, nesterov=True), lambda: fn.Adam(lr=0.01)]


def _net(hidden, out, loss, units, dtype, backend, n_in=5, k=3):
    layers = [fn.Dense(u, hidden) for u in units] + [fn.Dense(k, out)]
    return fn.Network(layers, n_inputs=n_in, loss=loss, dtype=dtype, backend=backend, seed=4)


def _steps(net, X, Y, opt, l2, n, fused, validate=True):
    """n steps on device arrays; fused=False forces one call per kernel."""
    Xd, Yd = net._device(*net._XY(X, Y)) if validate else net._device(X, Y)
    ws = net._workspace(Xd.shape[0])
    ws.fused = fused and ws.fused
    return [net._step_device(Xd, Yd, opt, l2) for _ in range(n)]


def _state(net):
    return {k: (net._B.to_host(v) if hasattr(v, "shape") else v)
            for k, v in (net._opt_state or {}).items()}


#: every hidden activation with every output / loss pair, the optimizers (and l2 on / off)
#: cycled through them (each combination is its own compiled step: they are not free)
COMBOS = [(h, o, loss, (i + j) % len(OPTIMIZERS)) for i, h in enumerate(HIDDEN)
          for j, (o, loss) in enumerate(OUTPUTS)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden,out,loss,opt_i", COMBOS)
@pytest.mark.parametrize("units,m", [((), 7), ((4,), 1), ((6, 3), 9)])
def test_one_call_step_equals_per_kernel_step_bitwise(dtype, hidden, out, loss, opt_i, units,
                                                      m):
    l2 = 0.7 if (opt_i + len(units)) % 2 else 0.0
    X, Y = _data(m, 5, 3, loss, dtype)
    fused, plain = (_net(hidden, out, loss, units, dtype, "cpu") for _ in range(2))
    opt_f, opt_p = OPTIMIZERS[opt_i](), OPTIMIZERS[opt_i]()
    assert fused._workspace(m).fused
    J_f = _steps(fused, X, Y, opt_f, l2, 3, fused=True)
    J_p = _steps(plain, X, Y, opt_p, l2, 3, fused=False)
    assert J_f == J_p
    assert fused.get_flat_params().tobytes() == plain.get_flat_params().tobytes()
    sf, sp = _state(fused), _state(plain)
    assert sf.keys() == sp.keys()
    for k in sf:
        assert np.asarray(sf[k]).tobytes() == np.asarray(sp[k]).tobytes(), k


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt_i", range(len(OPTIMIZERS)))
def test_one_call_step_equals_the_reference(dtype, opt_i):
    X, Y = _data(11, 5, 3, "cross_entropy", dtype, seed=2)
    fast = _net("tanh", "softmax", "cross_entropy", (8, 4), dtype, "cpu")
    ref = _net("tanh", "softmax", "cross_entropy", (8, 4), dtype, "reference")
    J_f = _steps(fast, X, Y, OPTIMIZERS[opt_i](), 0.3, 4, fused=True)
    J_r = _steps(ref, X, Y, OPTIMIZERS[opt_i](), 0.3, 4, fused=False)
    assert_close(np.array(J_f), np.array(J_r), dtype)
    assert_close(fast.get_flat_params(), ref.get_flat_params(), dtype)


def test_fit_and_step_use_it_and_mixed_activations_do_not(monkeypatch):
    calls, loops = [], []
    real_fn, real_loop = C.train_step_function, C.train_steps

    def counted(*codes):               # the network calls the compiled step it binds
        step = real_fn(*codes)
        return lambda *a: calls.append(1) or step(*a)

    monkeypatch.setattr(C, "train_step_function", counted)
    monkeypatch.setattr(C, "train_steps", lambda *a: loops.append(a[5]) or real_loop(*a))
    X, Y = _data(40, 5, 3, "cross_entropy", np.float32)
    net = _net("relu", "softmax", "cross_entropy", (6,), np.float32, "cpu")
    net.fit(X, Y, optimizer=fn.SGD(lr=0.1), epochs=2, batch_size=10, progress=False)
    assert loops == [4, 4] and not calls   # one compiled call an epoch, 4 steps each
    net.step(X, Y, fn.Adam())
    assert len(calls) == 1
    mixed = fn.Network([fn.Dense(4, "relu"), fn.Dense(4, "tanh"), fn.Dense(3, "softmax")],
                       n_inputs=5, seed=0)
    assert mixed._hidden is None and not mixed._workspace(10).fused
    before = mixed.get_flat_params()
    mixed.fit(X, Y, optimizer="sgd", epochs=1, batch_size=10, progress=False)
    assert len(calls) == 1 and len(loops) == 2
    assert not np.array_equal(before, mixed.get_flat_params())
    # other alphas of leaky_relu are different activations too
    leaky = fn.Network([fn.Dense(4, "leaky_relu"), fn.Dense(4, "leaky_relu", alpha=0.2),
                        fn.Dense(3, "softmax")], n_inputs=5, seed=0)
    assert leaky._hidden is None


#: (hidden act, output act, loss, hidden units): the loop over steps calls the same step
LOOPS = [("relu", "softmax", "cross_entropy", (6,)), ("tanh", "sigmoid", "bce", (4, 3)),
         ("identity", "identity", "mse", ())]


def _gathered_steps(net, X, Y, idx, batch, opt, l2):
    """train_step on each batch of the rows idx, one call a step: [(J, L2 term)]."""
    Xs, Ys = X[idx], Y[idx]
    out = []
    for i in range(0, len(idx), batch):
        P = net._penalty(l2, Xs[i:i + batch].shape[0]) if l2 else 0.0
        out.append((net._step_device(Xs[i:i + batch], Ys[i:i + batch], opt, l2), P))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loop_i", range(len(LOOPS)))
@pytest.mark.parametrize("opt_i", range(len(OPTIMIZERS)))
def test_loop_over_steps_equals_one_call_steps_bitwise(dtype, loop_i, opt_i):
    """train_steps over a permutation (a short last batch, split over three calls) gives
    the bits of train_step on the gathered batches: θ, the optimizer state, J and P."""
    hidden, out_act, loss, units = LOOPS[loop_i]
    l2 = 0.0 if opt_i % 2 else 0.3
    X, Y = _data(23, 5, 3, loss, dtype, seed=opt_i)
    idx = np.random.default_rng(loop_i).permutation(23)
    one, many = (_net(hidden, out_act, loss, units, dtype, "cpu") for _ in range(2))
    opt_one, opt_many = OPTIMIZERS[opt_i](), OPTIMIZERS[opt_i]()
    expected = _gathered_steps(one, X, Y, idx, 5, opt_one, l2)
    got = np.full((5, 2), np.nan)
    for first, count in ((0, 2), (2, 0), (2, 1), (3, 2)):
        assert many._run_steps(X, Y, idx, 5, first, count, opt_many, l2,
                               got[first:]) == count
    assert got.tobytes() == np.array(expected, dtype=np.float64).tobytes()
    assert many.get_flat_params().tobytes() == one.get_flat_params().tobytes()
    a, b = _state(many), _state(one)
    assert a.keys() == b.keys()
    for k in a:
        assert np.asarray(a[k]).tobytes() == np.asarray(b[k]).tobytes(), k


@pytest.mark.parametrize("opt_i", [1, 3])
def test_loop_over_steps_stops_at_a_non_finite_cost(opt_i):
    X, Y = _data(12, 5, 3, "mse", np.float32)
    X[7, 2] = np.inf      # past the API's validation: what an overflowing forward gives
    net, twin = (_net("identity", "identity", "mse", (4,), np.float32, "cpu") for _ in range(2))
    opt, twin_opt = OPTIMIZERS[opt_i](), OPTIMIZERS[opt_i]()
    out = np.zeros((4, 2))
    idx = np.arange(12)
    assert net._run_steps(X, Y, idx, 3, 0, 4, opt, 0.0, out) == 2  # batch 2 holds row 7
    assert not np.isfinite(out[2, 0])
    _gathered_steps(twin, X[:6], Y[:6], idx[:6], 3, twin_opt, 0.0)
    assert net.get_flat_params().tobytes() == twin.get_flat_params().tobytes()
    a, b = _state(net), _state(twin)
    for k in a:
        assert np.asarray(a[k]).tobytes() == np.asarray(b[k]).tobytes(), k


def test_loop_over_steps_validates_its_arguments():
    X, Y = _data(12, 5, 3, "cross_entropy", np.float32)
    net = _net("relu", "softmax", "cross_entropy", (4,), np.float32, "cpu")
    opt, out = fn.SGD(lr=0.1), np.zeros((4, 2))
    theta = net.get_flat_params()
    with pytest.raises(ValueError, match="idx must index"):
        net._run_steps(X, Y, np.array([0, 1, 12]), 3, 0, 1, opt, 0.0, out)
    with pytest.raises(ValueError, match="idx must index"):
        net._run_steps(X, Y, np.array([-1, 0, 1]), 3, 0, 1, opt, 0.0, out)
    for args in [(np.arange(12), 3, 2, 3),                 # steps 2..4 of 4
                 (np.arange(12, dtype=np.int32), 3, 0, 1),  # idx not int64
                 (np.arange(12), 3, 0, 5)]:                 # 5 of 4 steps
        with pytest.raises(ValueError, match="inconsistent shapes"):
            net._run_steps(X, Y, *args, opt, 0.0, out)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        net._run_steps(X, Y, np.arange(12), 3, 0, 4, opt, 0.0, np.zeros((3, 2)))
    assert net.get_flat_params().tobytes() == theta.tobytes()


def test_large_steps_use_the_per_kernel_path(monkeypatch):
    """Above cpu.py's parallel thresholds the kernels' parallel variants must run."""
    net = _net("relu", "sigmoid", "bce", (6,), np.float32, "cpu")
    assert net._workspace(10).fused
    monkeypatch.setattr(C, "_BWD_PAR_MIN", 30)
    net._workspaces.clear()
    assert not net._workspace(10).fused
    assert net._workspace(2).fused       # 2 x 6 = 12 entries: still under 30


@pytest.mark.parametrize("opt_i", [0, 3])
def test_non_finite_cost_leaves_theta_and_state(opt_i):
    X, Y = _data(6, 5, 3, "mse", np.float32)
    net = _net("identity", "identity", "mse", (4,), np.float32, "cpu")
    opt = OPTIMIZERS[opt_i]()
    _steps(net, X, Y, opt, 0.0, 1, fused=True)
    theta, state = net.get_flat_params(), _state(net)
    X[2, 1] = np.inf      # past the API's validation: what an overflowing forward gives
    J = _steps(net, X, Y, opt, 0.0, 1, fused=True, validate=False)[0]
    assert not np.isfinite(J)
    assert net.get_flat_params().tobytes() == theta.tobytes()
    after = _state(net)
    for k in state:
        assert np.asarray(after[k]).tobytes() == np.asarray(state[k]).tobytes(), k


def test_work_buffer_layout():
    from fastnn.kernels import cpu_step

    net = _net("relu", "softmax", "cross_entropy", (6, 4), np.float32, "cpu")
    ws = net._workspace(3)
    assert ws.work.size == cpu_step.work_size(3, net.sizes) == 3 * (2 * (6 + 4 + 3) + 3)
    assert [a.shape for a in ws.A] == [(3, 6), (3, 4), (3, 3)]
    assert ws.A_out.shape == (3, 3) and [d.shape for d in ws.dZ] == [(3, 6), (3, 4), (3, 3)]
    for a in ws.A + [ws.A_out] + ws.dZ:
        assert np.shares_memory(a, ws.work)
    assert K.OPT_SGD != K.OPT_ADAM


def test_compiled_step_is_loaded_from_the_disk_cache_by_a_new_process():
    """The step's closure holds dispatchers (pickled differently in every process): its
    cache key must not depend on them, or every process compiles the step again."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np, fastnn as fn\n"
            "net = fn.Network([fn.Dense(5, 'tanh'), fn.Dense(1, 'sigmoid')], n_inputs=3, "
            "seed=0)\n"
            "X = np.ones((4, 3), np.float32); Y = np.ones((4, 1), np.float32)\n"
            "net.step(X, Y, fn.SGD(lr=0.1))\n")
    env = dict(os.environ, NUMBA_DEBUG_CACHE="1")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=300) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    second = [line for line in runs[1].stdout.splitlines() if "cpu_step" in line]
    assert any("data loaded" in line for line in second), runs[1].stdout[-2000:]
    assert not any("saved" in line for line in second), second


def test_specialised_kernels_from_other_processes_do_not_collide_in_the_cache(tmp_path):
    """Two specialisations compiled in two processes (the same per-process counter) and
    loaded from a fresh on-disk cache into a third: each caller still runs its own.

    Numba names a closure's symbols after its __qualname__ and a per-process counter; with
    one qualname for every activation, the tanh forward (process 2) and the leaky-ReLU
    forward linked into the step (process 1) carried one symbol, and process 3's
    leaky-ReLU step ran tanh (its cost was the tanh network's)."""
    import os
    import subprocess
    import sys

    data = ("import numpy as np, fastnn as fn\n"
            "X = np.random.default_rng(0).standard_normal((12, 5)); Y = X[:, :1] ** 2\n"
            "def leaky(backend):\n"
            "    return fn.Network([fn.Dense(6, 'leaky_relu'), fn.Dense(1, 'identity')], "
            "n_inputs=5, seed=3, backend=backend)\n"
            "def tanh_forward():\n"
            "    fn.Network([fn.Dense(3, 'tanh'), fn.Dense(1, 'identity')], n_inputs=5, "
            "seed=3).forward(np.ones((4, 5)))\n")
    first = data + "net = leaky('cpu'); net.forward(X); net.step(X, Y, fn.SGD(0.05))\n"
    second = data + "tanh_forward()\n"
    third = data + ("tanh_forward()\n"
                    "print(repr(leaky('cpu').step(X, Y, fn.SGD(0.05))))\n"
                    "print(repr(leaky('reference').step(X, Y, fn.SGD(0.05))))\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), PYTHONHASHSEED="0")
    for code in (first, second, third):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=300)
        assert r.returncode == 0, r.stderr
    J_cpu, J_ref = (float(v) for v in r.stdout.split())
    assert abs(J_cpu - J_ref) <= 1e-9 * abs(J_ref), (J_cpu, J_ref)


def test_every_specialised_kernel_has_a_name_of_its_own():
    from fastnn.kernels import cpu_step

    acts = [K.IDENTITY, K.SIGMOID, K.TANH, K.RELU, K.LEAKY_RELU]
    names = [f.py_func.__qualname__ for a in acts + [K.SOFTMAX] for f in C._FWD[a][:2]]
    names += [f.py_func.__qualname__ for a in acts for f in C._BWD[a][:2]]
    names += [f.py_func.__qualname__ for key in (K.SIGMOID * 8 + K.BCE, K.TANH * 8 + K.MAE)
              for f in C._LOSS[key][:2]]
    names += [cpu_step._steps()[(a, K.SIGMOID, K.BCE, K.OPT_SGD, 0)].py_func.__qualname__
              for a in acts]
    # identity's forward and backward have one variant (listed twice); all others differ
    assert len(set(names)) == len(names) - 2, sorted(names)


def test_cpu_step_module_imports_first():
    """cpu.py imports cpu_step at its end; importing cpu_step first must work too."""
    import subprocess
    import sys

    code = ("from fastnn.kernels import cpu_step\n"
            "from fastnn.kernels import cpu\n"
            "assert cpu.train_step is cpu_step.train_step\n"
            "assert cpu.train_step_fits is cpu_step.fits\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr


def _fit_both(monkeypatch, fit):
    """fit() with the loop over steps, then with one call a step (train_steps removed)."""
    with_loop = fit()
    with monkeypatch.context() as mp:
        mp.delattr(C, "train_steps")
        without = fit()
    return with_loop, without


@pytest.mark.parametrize("shuffle", [True, False])
def test_fit_gives_the_same_bits_with_and_without_the_loop(monkeypatch, shuffle):
    X, Y = _data(40, 5, 3, "cross_entropy", np.float64)

    def fit():
        net = _net("tanh", "softmax", "cross_entropy", (6,), np.float64, "cpu")
        hist = net.fit(X, Y, optimizer=fn.Adam(lr=0.01), epochs=3, batch_size=7, l2=0.1,
                       progress=False, shuffle=shuffle, seed=3)
        return net.get_flat_params(), hist.loss, net._opt_state["t"]

    (theta_a, loss_a, t_a), (theta_b, loss_b, t_b) = _fit_both(monkeypatch, fit)
    assert theta_a.tobytes() == theta_b.tobytes()
    assert loss_a == loss_b and t_a == t_b == 18


@pytest.mark.parametrize("which", ["classifier", "regressor"])
def test_sklearn_gives_the_same_bits_with_and_without_the_loop(monkeypatch, which):
    from fastnn.sklearn import MLPClassifier, MLPRegressor

    rng = np.random.default_rng(5)
    X = rng.standard_normal((45, 4))
    common = dict(hidden_layer_sizes=(5,), batch_size=8, max_iter=4, random_state=0)
    if which == "classifier":
        y = rng.integers(0, 3, 45)
        cls, params = MLPClassifier, dict(common, alpha=0.01, momentum=0.9)
    else:
        y = rng.standard_normal((45, 2))  # 2 outputs: the reported loss uses the L2 term
        cls, params = MLPRegressor, dict(common, alpha=0.5, solver="adam")

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = cls(**params).fit(X, y)
        return [c.tobytes() for c in est.coefs_ + est.intercepts_], est.loss_curve_

    (coefs_a, curve_a), (coefs_b, curve_b) = _fit_both(monkeypatch, fit)
    assert coefs_a == coefs_b and curve_a == curve_b and len(curve_a) == 4
