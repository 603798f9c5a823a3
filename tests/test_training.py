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
