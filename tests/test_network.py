"""The Network API: parameters, forward, predict, summary, XNOR from the seeds, training."""
import numpy as np
import pytest

import fastnn as fn

BACKENDS = ["reference", "cpu"]
XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XNOR_Y = np.array([1, 0, 0, 1])


def xnor_net(backend="reference", dtype="float64"):
    """The seeds' XNOR: a1 = AND = g(-30 + 20x1 + 20x2), a2 = NOR = g(10 - 20x1 - 20x2),
    h = OR(a1, a2) = g(-10 + 20a1 + 20a2).  W_fastnn = Θ[:, 1:].T, b = Θ[:, 0]."""
    net = fn.Network([fn.Dense(2, "sigmoid"), fn.Dense(1, "sigmoid")], n_inputs=2, loss="bce",
                     dtype=dtype, backend=backend)
    theta1 = np.array([[-30, 20, 20], [10, -20, -20]], dtype=float)
    theta2 = np.array([[-10, 20, 20]], dtype=float)
    net.set_params([(theta1[:, 1:].T, theta1[:, 0]), (theta2[:, 1:].T, theta2[:, 0])])
    return net


@pytest.mark.parametrize("backend", BACKENDS)
def test_xnor_hand_set_weights(backend):
    net = xnor_net(backend)
    A = net.forward(XOR_X)
    assert A.shape == (4, 1)
    np.testing.assert_array_equal(net.predict(XOR_X), XNOR_Y)
    assert np.all(np.abs(A[:, 0] - XNOR_Y) < 1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_xnor_learned_from_random_start(backend):
    net = fn.Network([fn.Dense(4, "tanh"), fn.Dense(1, "sigmoid")], n_inputs=2, loss="bce",
                     dtype="float64", backend=backend, seed=3)
    history = net.fit(XOR_X, XNOR_Y, optimizer=fn.Adam(lr=0.05), epochs=600, batch_size=4,
                      progress=False)
    np.testing.assert_array_equal(net.predict(XOR_X), XNOR_Y)
    assert history.loss[-1] < 0.05 < history.loss[0]


def test_logistic_regression_is_one_neuron():
    """A Network with no hidden layer is logistic regression: forward = σ(X w + b)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    net = fn.Network([fn.Dense(1, "sigmoid")], n_inputs=4, loss="bce", dtype="float64",
                     backend="reference")
    w, b = net.params[0]
    np.testing.assert_allclose(net.forward(X)[:, 0], 1 / (1 + np.exp(-(X @ w[:, 0] + b[0]))))


def test_params_are_copies_and_set_params_validates():
    net = fn.Network([fn.Dense(3, "relu"), fn.Dense(2, "softmax")], n_inputs=4, seed=0)
    params = net.params
    assert [(W.shape, b.shape) for W, b in params] == [((4, 3), (3,)), ((3, 2), (2,))]
    assert all(W.dtype == np.float32 and b.dtype == np.float32 for W, b in params)
    params[0][0][...] = 99
    assert not np.any(net.params[0][0] == 99)
    with pytest.raises(ValueError, match=r"params\[1\] W must have shape \(3, 2\)"):
        net.set_params([params[0], (np.zeros((2, 3)), np.zeros(2))])
    with pytest.raises(TypeError, match="float array"):
        net.set_params([params[0], (np.zeros((3, 2), dtype=int), np.zeros(2))])
    with pytest.raises(ValueError, match="NaN"):
        net.set_params([params[0], (np.full((3, 2), np.nan), np.zeros(2))])
    with pytest.raises(ValueError, match="2 \\(W, b\\) pairs"):
        net.set_params(params[:1])


def test_flat_params_are_the_seeds_unrolling():
    net = fn.Network([fn.Dense(3, "tanh"), fn.Dense(2, "sigmoid")], n_inputs=4, seed=0,
                     dtype="float64")
    theta = net.get_flat_params()
    (W1, b1), (W2, b2) = net.params
    np.testing.assert_array_equal(theta, np.concatenate([W1.ravel(), b1, W2.ravel(), b2]))
    assert net.count_params() == theta.size == 4 * 3 + 3 + 3 * 2 + 2
    net.set_flat_params(np.arange(theta.size, dtype=float))
    np.testing.assert_array_equal(net.params[0][1], [12, 13, 14])


def test_initialization_is_seeded_and_breaks_symmetry():
    make = lambda seed, init="auto": fn.Network(  # noqa: E731
        [fn.Dense(5, "relu", init=init), fn.Dense(3, "sigmoid", init=init)], n_inputs=6, seed=seed)
    np.testing.assert_array_equal(make(1).get_flat_params(), make(1).get_flat_params())
    assert not np.array_equal(make(1).get_flat_params(), make(2).get_flat_params())
    W, b = make(1).params[0]
    assert np.all(b == 0) and len(np.unique(W)) == W.size
    Wu, _ = make(1, "uniform").params[0]
    assert np.abs(Wu).max() <= 0.12
    Wh, _ = fn.Network([fn.Dense(400, "relu")], n_inputs=1000, seed=0, loss="mse").params[0]
    assert abs(Wh.std() - np.sqrt(2 / 1000)) < 0.002  # He


def test_predict_kinds():
    X = np.random.default_rng(0).standard_normal((6, 3))
    ce = fn.Network([fn.Dense(4, "softmax")], n_inputs=3, seed=0)
    assert ce.loss == "cross_entropy"
    P = ce.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(ce.predict(X), P.argmax(axis=1))
    ml = fn.Network([fn.Dense(3, "sigmoid")], n_inputs=3, seed=0)
    assert ml.loss == "bce" and ml.predict(X).shape == (6, 3)
    reg = fn.Network([fn.Dense(2, "identity")], n_inputs=3, seed=0)
    assert reg.loss == "mse" and reg.predict(X).shape == (6, 2)
    with pytest.raises(ValueError, match="predict_proba needs a classification loss"):
        reg.predict_proba(X)


def test_summary_lists_layers():
    net = fn.Network([fn.Dense(25, "sigmoid"), fn.Dense(10, "sigmoid")], n_inputs=400,
                     loss="bce", dtype="float64", backend="reference", seed=0)
    text = net.summary(print_fn=None)
    assert "(400, 25)" in text and "(25, 10)" in text and "10,285" in text
    assert net.count_params() == 400 * 25 + 25 + 25 * 10 + 10


@pytest.mark.parametrize("backend", BACKENDS)
def test_cost_matches_the_seeds_formula(backend):
    """J = -1/m ΣΣ [y log a + (1-y) log(1-a)] + λ/(2m) Σ W² (the seeds' regularized cost)."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((50, 8)), (rng.random((50, 4)) < 0.3).astype(float)
    net = fn.Network([fn.Dense(6, "sigmoid"), fn.Dense(4, "sigmoid")], n_inputs=8, loss="bce",
                     dtype="float64", backend=backend, seed=0)
    A = net.forward(X)
    m = 50
    J = -np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A)) / m
    J += 1.5 / (2 * m) * sum(np.sum(W ** 2) for W, _ in net.params)
    assert abs(net.cost(X, Y, l2=1.5) - J) < 1e-12 * max(1, abs(J)) * 100


@pytest.mark.parametrize("backend", BACKENDS)
def test_l2_spares_biases(backend):
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((20, 3)), rng.integers(0, 2, 20)
    net = fn.Network([fn.Dense(4, "tanh"), fn.Dense(2, "softmax")], n_inputs=3,
                     dtype="float64", backend=backend, seed=0)
    g0, g1 = net.gradients(X, y), net.gradients(X, y, l2=2.0)
    for (dW0, db0), (dW1, db1), (W, _) in zip(g0, g1, net.params):
        np.testing.assert_allclose(dW1 - dW0, 2.0 / 20 * W, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(db1, db0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_is_one_sgd_update(backend):
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((10, 3)), rng.standard_normal((10, 2))
    net = fn.Network([fn.Dense(4, "relu"), fn.Dense(2)], n_inputs=3, loss="mse",
                     dtype="float64", backend=backend, seed=0)
    theta = net.get_flat_params()
    grads = np.concatenate([np.concatenate([dW.ravel(), db]) for dW, db in net.gradients(X, Y, 0.1)])
    J0 = net.cost(X, Y, l2=0.1)
    J = net.step(X, Y, fn.SGD(lr=0.5), l2=0.1)
    assert J == pytest.approx(J0, rel=1e-12)
    np.testing.assert_allclose(net.get_flat_params(), theta - 0.5 * grads, rtol=1e-12, atol=1e-14)


def test_batch_minibatch_stochastic_gd_all_learn():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    for batch_size, lr in ((None, 2.0), (16, 0.5), (1, 0.02)):
        net = fn.Network([fn.Dense(8, "tanh"), fn.Dense(2, "softmax")], n_inputs=2, seed=0,
                         dtype="float64")
        h = net.fit(X, y, optimizer=fn.SGD(lr=lr, momentum=0.9),
                    epochs=200 if batch_size is None else 60, batch_size=batch_size,
                    progress=False)
        assert h.loss[-1] < 0.5 * h.loss[0], batch_size
        assert (net.predict(X) == y).mean() > 0.9, batch_size


def test_nesterov_and_momentum_differ_from_plain_sgd():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((32, 3)), rng.integers(0, 3, 32)
    finals = []
    for opt in (fn.SGD(0.1), fn.SGD(0.1, momentum=0.9), fn.SGD(0.1, momentum=0.9, nesterov=True)):
        net = fn.Network([fn.Dense(5, "relu"), fn.Dense(3, "softmax")], n_inputs=3, seed=0)
        finals.append(net.fit(X, y, optimizer=opt, epochs=5, batch_size=8, progress=False).loss[-1])
    assert len(set(finals)) == 3


def _changed_between_steps(backend, opt, changes):
    """θ after one step per entry of `changes` (a dict of optimizer attributes to set
    before that step), on a network small enough for the cpu backend's one-call step."""
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((16, 3)), rng.standard_normal((16, 2))
    net = fn.Network([fn.Dense(4, "tanh"), fn.Dense(2)], n_inputs=3, loss="mse", seed=1,
                     backend=backend)
    for change in changes:
        for name, value in change.items():
            setattr(opt, name, value)
        net.step(X, Y, opt)
    return net.get_flat_params()


@pytest.mark.parametrize("make,changes", [
    # momentum switched on after plain steps: the velocity must already have θ's size
    # (it once was a length-1 placeholder, and the kernels wrote past its end)
    (lambda: fn.SGD(0.1), [{}, {"momentum": 0.9}, {}, {"nesterov": True}, {"lr": 0.05},
                           {"nesterov": False, "momentum": 0.0}, {}]),
    (lambda: fn.Adam(0.01), [{}, {"lr": 0.05}, {"beta1": 0.5, "beta2": 0.9}, {"eps": 1e-3}, {}]),
], ids=["sgd", "adam"])
def test_hyperparameters_changed_between_steps_take_effect(make, changes):
    expected = _changed_between_steps("reference", make(), changes)
    got = _changed_between_steps("cpu", make(), changes)
    assert fn.kernels.allclose(got, expected)
    unchanged = _changed_between_steps("cpu", make(), [{}] * len(changes))
    assert not fn.kernels.allclose(unchanged, expected)   # the changes mattered


def test_a_rejected_hyperparameter_keeps_the_old_value():
    opt = fn.SGD(0.1, momentum=0.5)
    with pytest.raises(ValueError, match="lr must be > 0"):
        opt.lr = 0.0
    with pytest.raises(ValueError, match="momentum must be < 1"):
        opt.momentum = 2
    assert (opt.lr, opt.momentum) == (0.1, 0.5)
    opt.lr = 1                                  # an int is stored as the float the kernels take
    assert type(opt.lr) is float and repr(opt) == "SGD(lr=1.0, momentum=0.5, nesterov=False)"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_callback_can_schedule_the_learning_rate(backend):
    """fit reads the optimizer's hyperparameters afresh after every epoch: a callback that
    sets lr ~0 after the first epoch leaves θ where one epoch left it."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)

    def fitted(epochs, callbacks=None):
        opt = fn.SGD(0.5, momentum=0.5)
        net = fn.Network([fn.Dense(4, "tanh"), fn.Dense(1, "sigmoid")], n_inputs=3, seed=0,
                         backend=backend)
        cbs = [cb(opt) for cb in (callbacks or [])]
        net.fit(X, y, optimizer=opt, epochs=epochs, batch_size=8, seed=1, progress=False,
                callbacks=cbs)
        return net.get_flat_params()

    def freeze(opt):
        def cb(epoch, logs):
            opt.lr, opt.momentum = 1e-12, 0.0
        return cb

    one = fitted(1)
    assert fn.kernels.allclose(fitted(3, [freeze]), one)
    assert not fn.kernels.allclose(fitted(3), one)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_a_pickled_network_keeps_its_optimizer_state(backend):
    import copy
    import pickle

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 4)), rng.integers(0, 3, 30)
    a = fn.Network([fn.Dense(6, "tanh"), fn.Dense(3, "softmax")], n_inputs=4, backend=backend,
                   seed=1)
    a.fit(X, y, optimizer=fn.Adam(0.01), epochs=2, batch_size=8, progress=False)
    for b in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a)):
        assert b._opt_state["t"] == a._opt_state["t"] > 0
        for k in ("m1", "m2"):
            np.testing.assert_array_equal(np.asarray(b._opt_state[k]), np.asarray(a._opt_state[k]))
    b = pickle.loads(pickle.dumps(a))
    assert isinstance(b.optimizer, fn.Adam) and b.optimizer is not a.optimizer
    a.step(X, y, a.optimizer)
    b.step(X, y, b.optimizer)
    np.testing.assert_array_equal(b.get_flat_params(), a.get_flat_params())
    assert fn.Network([fn.Dense(1)], n_inputs=2).optimizer is None


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_a_non_native_byte_order_dtype_means_the_native_one(backend, tmp_path):
    big = ">f8" if np.little_endian else "<f8"
    net = fn.Network([fn.Dense(3, "tanh"), fn.Dense(1, "identity")], n_inputs=4, dtype=big,
                     backend=backend, seed=0)
    assert net.dtype == np.dtype("float64") and net.dtype.isnative
    X = np.arange(8.0).reshape(2, 4)
    p = net.predict(X)
    net.save(tmp_path / "m.fnn")
    np.testing.assert_array_equal(fn.load(tmp_path / "m.fnn").predict(X), p)


def test_a_thread_other_than_the_builder_trains_with_workspaces_of_its_own():
    """Built in one thread, trained in another: the same bits as training in the builder's
    thread, with the other thread's workspaces kept (not made again every step) and apart
    from the builder's."""
    import threading

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)

    def make():
        return fn.Network([fn.Dense(6, "relu"), fn.Dense(3, "softmax")], n_inputs=4, seed=2)

    here = make()
    here.fit(X, y, optimizer=fn.SGD(0.1, momentum=0.9), epochs=3, batch_size=8, progress=False)
    there, seen = make(), {}
    mine = there._workspace(8)

    def work():
        there.fit(X, y, optimizer=fn.SGD(0.1, momentum=0.9), epochs=3, batch_size=8,
                  progress=False)
        ws = there._workspace(8)
        seen["kept"] = ws is there._workspace(8)
        seen["apart"] = ws is not mine

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == {"kept": True, "apart": True}
    np.testing.assert_array_equal(there.get_flat_params(), here.get_flat_params())
