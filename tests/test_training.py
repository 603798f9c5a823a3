"""Training on real data that ships with scikit-learn (no download), plus History,
validation, early stopping and L-BFGS."""
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.model_selection import train_test_split

import fastnn as fn

BACKENDS = ["reference", "cpu"]


def digits():
    d = load_digits()
    return train_test_split(d.data / 16.0, d.target, test_size=0.3, random_state=0,
                            stratify=d.target)


def standardize(X_train, X_test):
    mu, sd = X_train.mean(axis=0), X_train.std(axis=0) + 1e-12
    return (X_train - mu) / sd, (X_test - mu) / sd


@pytest.mark.parametrize("backend", BACKENDS)
def test_digits_adam_reaches_95_percent(backend):
    X_train, X_test, y_train, y_test = digits()
    net = fn.Network([fn.Dense(32, "relu"), fn.Dense(10, "softmax")], n_inputs=64,
                     backend=backend, seed=0)
    history = net.fit(X_train, y_train, optimizer=fn.Adam(lr=3e-3), epochs=30, batch_size=32,
                      validation_data=(X_test, y_test), progress=False)
    assert len(history.loss) == 30 and len(history.val_accuracy) == 30
    accuracy = np.mean(net.predict(X_test) == y_test)
    assert accuracy >= 0.95
    assert history.val_accuracy[-1] == pytest.approx(accuracy)


@pytest.mark.parametrize("backend", BACKENDS)
def test_breast_cancer_lbfgs_reaches_95_percent(backend):
    data = load_breast_cancer()
    X_train, X_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.3,
                                                        random_state=0, stratify=data.target)
    X_train, X_test = standardize(X_train, X_test)
    net = fn.Network([fn.Dense(16, "tanh"), fn.Dense(1, "sigmoid")], n_inputs=30, loss="bce",
                     dtype="float64", backend=backend, seed=0)
    history = net.fit(X_train, y_train, optimizer="lbfgs", epochs=100, l2=1.0, progress=False)
    assert 1 <= len(history.loss) <= 100
    assert history.loss[-1] < history.loss[0]
    assert np.mean(net.predict(X_test) == y_test) >= 0.95


@pytest.mark.parametrize("backend", BACKENDS)
def test_diabetes_mse_regression_beats_the_mean(backend):
    data = load_diabetes()
    X_train, X_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.3,
                                                        random_state=0)
    X_train, X_test = standardize(X_train, X_test)
    mu, sd = y_train.mean(), y_train.std()
    net = fn.Network([fn.Dense(16, "relu"), fn.Dense(1, "identity")], n_inputs=10, loss="mse",
                     backend=backend, seed=0)
    net.fit(X_train, (y_train - mu) / sd, optimizer=fn.Adam(1e-2), epochs=60, batch_size=32,
            l2=1.0, progress=False)
    pred = net.predict(X_test)[:, 0] * sd + mu
    r2 = 1 - np.sum((pred - y_test) ** 2) / np.sum((y_test - y_test.mean()) ** 2)
    assert r2 > 0.3


def test_early_stopping_stops_and_restores_best():
    X_train, X_test, y_train, y_test = digits()
    net = fn.Network([fn.Dense(64, "relu"), fn.Dense(10, "softmax")], n_inputs=64, seed=0)
    history = net.fit(X_train[:200], y_train[:200], optimizer=fn.Adam(lr=1e-2), epochs=300,
                      batch_size=16, validation_data=(X_test, y_test), early_stopping=5,
                      progress=False)
    assert history.stopped_early and len(history.loss) < 300
    best = history.best_epoch
    assert history.val_loss[best] == min(history.val_loss)
    assert net.evaluate(X_test, y_test)["loss"] == pytest.approx(history.val_loss[best], rel=1e-5)


def test_fit_is_seeded():
    X_train, _, y_train, _ = digits()
    runs = []
    for _ in range(2):
        net = fn.Network([fn.Dense(16, "relu"), fn.Dense(10, "softmax")], n_inputs=64, seed=4)
        net.fit(X_train, y_train, epochs=2, batch_size=64, progress=False, seed=7)
        runs.append(net.get_flat_params())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_callbacks_can_stop_training():
    X_train, _, y_train, _ = digits()
    net = fn.Network([fn.Dense(10, "softmax")], n_inputs=64, seed=0)
    seen = []
    history = net.fit(X_train, y_train, epochs=10, progress=False,
                      callbacks=[lambda epoch, logs: seen.append(logs["loss"]) or epoch == 2])
    assert len(history.loss) == 3 and seen == history.loss


def test_progress_bar_is_shown(capsys):
    X_train, _, y_train, _ = digits()
    net = fn.Network([fn.Dense(10, "softmax")], n_inputs=64, seed=0)
    net.fit(X_train, y_train, epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "fit" in err and "2/2" in err and "loss" in err


def test_divergence_is_caught_with_last_finite_params():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 5)) * 100, rng.standard_normal(64) * 100
    net = fn.Network([fn.Dense(32, "identity"), fn.Dense(1)], n_inputs=5, loss="mse", seed=0)
    with pytest.raises(FloatingPointError, match=r"diverged at epoch \d+ \(0-based\), batch \d+") as info:
        net.fit(X, y, optimizer=fn.SGD(lr=1e3), epochs=50, batch_size=8, progress=False)
    assert np.isfinite(net.get_flat_params()).all()
    assert info.value.history is net.history
    assert all(np.isfinite(info.value.history.loss))


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_history_holds_python_floats(backend):
    net = fn.Network([fn.Dense(3, "tanh"), fn.Dense(1, "sigmoid")], n_inputs=2, backend=backend)
    X, y = np.ones((8, 2)), np.array([0, 1] * 4)
    h = net.fit(X, y, epochs=2, progress=False, validation_data=(X, y))
    for key in ("loss", "val_loss", "val_accuracy", "time"):
        assert all(type(v) is float for v in h[key]), (key, h[key])


def small_problem(seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(64, 5)), rng.integers(0, 3, 64)


def small_net(backend="cpu", seed=3, act="tanh"):
    return fn.Network([fn.Dense(8, act), fn.Dense(3, "softmax")], n_inputs=5, seed=seed,
                      backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_set_params_keeps_the_optimizer_state(backend):
    """As Keras' set_weights: writing θ (from a callback, or fit's restore_best) does not
    restart Adam's moments and step count."""
    X, y = small_problem()
    plain, edited = small_net(backend), small_net(backend)
    opt_a, opt_b = fn.Adam(lr=0.01), fn.Adam(lr=0.01)
    plain.fit(X, y, optimizer=opt_a, epochs=3, progress=False)
    edited.fit(X, y, optimizer=opt_b, epochs=3, progress=False,
               callbacks=[lambda epoch, logs: edited.set_params(edited.params),
                          lambda epoch, logs: edited.set_flat_params(edited.get_flat_params())])
    np.testing.assert_array_equal(edited.get_flat_params(), plain.get_flat_params())
    assert edited._opt_state["t"] == plain._opt_state["t"] == 6
    # restore_best puts back an earlier θ; the state (t) carries on from the last step
    Xv, yv = small_problem(seed=2)
    net = small_net(backend)
    opt = fn.Adam(lr=0.5)
    history = net.fit(X, y, optimizer=opt, epochs=12, progress=False, early_stopping=2,
                      validation_data=(Xv, yv))
    assert history.best_epoch != history.epoch[-1]
    assert net.optimizer is opt and net._opt_state["t"] == 2 * len(history.epoch)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_callback_sees_every_epoch(backend):
    X, y = small_problem()
    seen = []
    history = small_net(backend).fit(
        X, y, epochs=5, progress=False,
        callbacks=[lambda epoch, logs: epoch == 1, lambda epoch, logs: seen.append(epoch)])
    assert seen == [0, 1] and len(history.epoch) == 2
    seen.clear()
    small_net(backend).fit(X, y, optimizer="lbfgs", epochs=5, progress=False,
                           callbacks=[lambda epoch, logs: True,
                                      lambda epoch, logs: seen.append(epoch)])
    assert seen == [0]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference's NumPy overflow
@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_after_a_callback_edited_theta_keeps_the_callbacks_theta(backend):
    X, y = small_problem()
    net = small_net(backend)
    opt = fn.Adam(lr=0.01)
    zeros = np.zeros(net.count_params(), net.dtype)

    def edit(epoch, logs):
        if epoch == 0:
            net.set_flat_params(zeros)
            opt.lr = 1e39   # a finite double, Inf in float32: epoch 1's first update overflows

    with pytest.raises(fn.TrainingDiverged) as info:
        net.fit(X, y, optimizer=opt, epochs=3, progress=False, callbacks=[edit])
    assert (info.value.epoch, info.value.batch) == (1, 0)
    np.testing.assert_array_equal(net.get_flat_params(), zeros)
    assert net._opt_state["t"] == 2   # epoch 0's two steps; not the diverged one


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference's NumPy overflow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_validation_loss_that_overflows_is_an_error_naming_validation_data(backend):
    X, y = small_problem()
    Xv = np.random.default_rng(0).normal(size=(20, 5)) * 1e38   # finite in float32
    net = small_net(backend, act="relu")
    with pytest.raises(ValueError, match="validation_data X"):
        net.fit(X, y, epochs=3, validation_data=(Xv, y[:20]), early_stopping=2, progress=False)
    with pytest.raises(ValueError, match="validation_data X has 64"):
        net.fit(X, y, epochs=1, validation_data=(X, y[:20]), progress=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_calls_go_on_drawing_permutations(backend):
    """Two fit(epochs=1) calls with one optimizer train as one fit(epochs=2): the second
    epoch gets a new permutation, as in Keras; fit(seed=s) starts a generator of its own."""
    X, y = small_problem()
    once, twice = small_net(backend), small_net(backend)
    opt_once, opt_twice = fn.SGD(0.1, momentum=0.9), fn.SGD(0.1, momentum=0.9)
    once.fit(X, y, optimizer=opt_once, epochs=2, progress=False)
    twice.fit(X, y, optimizer=opt_twice, epochs=1, progress=False)
    after_one = twice.get_flat_params()
    twice.fit(X, y, optimizer=opt_twice, epochs=1, progress=False)
    np.testing.assert_array_equal(twice.get_flat_params(), once.get_flat_params())
    # a repeated permutation would not give the same bits
    same_order = small_net(backend)
    same_order.set_flat_params(after_one)
    same_order.fit(X, y, optimizer=fn.SGD(0.1, momentum=0.9), epochs=1, progress=False, seed=3)
    assert not np.array_equal(same_order.get_flat_params(), once.get_flat_params())
    # the generator travels with a pickle
    import pickle

    clone = pickle.loads(pickle.dumps(twice))
    twice.fit(X, y, optimizer=twice.optimizer, epochs=1, progress=False)
    clone.fit(X, y, optimizer=clone.optimizer, epochs=1, progress=False)
    np.testing.assert_array_equal(clone.get_flat_params(), twice.get_flat_params())


def test_net_optimizer_after_lbfgs_is_that_lbfgs():
    X, y = small_problem()
    net = small_net("cpu")
    net.fit(X, y, optimizer=fn.Adam(), epochs=1, progress=False)
    lbfgs = fn.LBFGS(maxiter=3)
    net.fit(X, y, optimizer=lbfgs, progress=False)
    assert net.optimizer is lbfgs


def test_probability_targets_are_rescaled_so_the_gradient_is_the_costs():
    X, y = small_problem()
    net = fn.Network([fn.Dense(4, "tanh"), fn.Dense(3, "softmax")], n_inputs=5, seed=0,
                     dtype="float64", backend="reference")
    Y = np.eye(3)[y] * 1.0009          # within the accepted 1e-3 of summing to 1
    before = Y.copy()
    assert fn.gradcheck(net, X, Y) < 1e-7
    np.testing.assert_array_equal(Y, before)   # the caller's array is not written
    assert net.cost(X, Y) == pytest.approx(net.cost(X, np.eye(3)[y]), rel=1e-12)


def test_validation_data_that_overflows_is_refused_before_anything_trains():
    X, y = small_problem()
    net = small_net("cpu", act="relu")
    before = net.get_flat_params()
    opt = fn.Adam()
    net.fit(X, y, optimizer=opt, epochs=1, progress=False)
    trained, state = net.get_flat_params(), {k: np.copy(v) for k, v in net._opt_state.items()}
    history = net.history
    Xv, yv = np.ones((4, 5), np.float32), np.zeros(4)
    reg = fn.Network([fn.Dense(4, "tanh"), fn.Dense(1)], n_inputs=5, seed=0)
    with pytest.raises(ValueError, match="validation_data X or Y"):   # Y the cause here
        reg.fit(X, np.zeros(64), epochs=2, progress=False,
                validation_data=(Xv, np.full(4, 1e30)))
    for optimizer in (opt, "lbfgs"):
        with pytest.raises(ValueError, match="validation_data"):
            net.fit(X, y, optimizer=optimizer, epochs=2, progress=False,
                    validation_data=(np.full((4, 5), 3e38, np.float32), yv))
        np.testing.assert_array_equal(net.get_flat_params(), trained)
        assert net.optimizer is opt and net.history is history
        for k, v in state.items():
            np.testing.assert_array_equal(net._opt_state[k], v)
    assert not np.array_equal(before, trained)


def test_a_failed_lbfgs_fit_keeps_the_previous_optimizer():
    X, y = small_problem()
    net = small_net("cpu")
    adam = fn.Adam()
    net.fit(X, y, optimizer=adam, epochs=1, progress=False)
    big = fn.Network([fn.Dense(8, "tanh"), fn.Dense(3, "softmax")], n_inputs=5, seed=3)
    big.fit(X, y, optimizer=adam, epochs=1, progress=False)
    big.set_flat_params(np.full(big.count_params(), 3e38, np.float32))
    with pytest.raises(fn.TrainingDiverged):
        big.fit(X * 1e3, y, optimizer="lbfgs", epochs=3, progress=False)
    assert big.optimizer is adam and big._opt_state is not None


def test_a_shallow_copy_of_a_network_shares_no_generator():
    import copy

    X, y = small_problem()
    net = small_net("cpu")
    net.fit(X, y, epochs=1, progress=False)
    twin = copy.copy(net)
    assert twin._shuffle_rng is not net._shuffle_rng
    a = net._shuffle_rng.permutation(10)
    np.testing.assert_array_equal(twin._shuffle_rng.permutation(10), a)
