"""fastnn.sklearn: scikit-learn's estimator checks, parity with scikit-learn's own MLP, and
the semantics the estimators promise to match (alpha scaling, 'auto' batch size, stopping)."""
import os
import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastnn.kernels import allclose as fn_allclose  # noqa: E402
from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

#: the kernels backend these tests train on (default: fastnn's default, the Numba CPU one)
BACKEND = os.environ.get("FASTNN_TEST_BACKEND", "cpu")

# ---------------------------------------------------------------- scikit-learn's checks

#: checks expected to fail, with the reason (kept to a handful)
EXPECTED_FAILED_CHECKS = {}


def _expected_failed(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks(
    [MLPClassifier(max_iter=100, backend=BACKEND),
     MLPRegressor(max_iter=100, backend=BACKEND)],
    expected_failed_checks=_expected_failed)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# ---------------------------------------------------------------- parity with scikit-learn

def _split(loader):
    X, y = loader(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                        stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


@pytest.mark.parametrize("loader", [load_digits, load_iris, load_breast_cancer],
                         ids=["digits", "iris", "breast_cancer"])
def test_accuracy_parity_with_sklearn(loader):
    """Same hyperparameters and random_state as scikit-learn's own MLPClassifier: test
    accuracy within 2 points."""
    X_train, X_test, y_train, y_test = _split(loader)
    params = dict(hidden_layer_sizes=(64,), learning_rate_init=0.01, max_iter=100,
                  random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = SkMLPClassifier(**params).fit(X_train, y_train).score(X_test, y_test)
        ours = MLPClassifier(backend=BACKEND, **params).fit(X_train, y_train).score(X_test, y_test)
    print(f"{loader.__name__}: fastnn {ours:.4f} scikit-learn {theirs:.4f}")
    assert abs(ours - theirs) <= 0.02


# ---------------------------------------------------------------- the semantics matched

def _pair(cls_sk, cls_fn, **params):
    return cls_sk(**params), cls_fn(backend=BACKEND, **params)


def _assert_same_params(sk, ours, rtol=1e-9, atol=1e-11):
    assert len(sk.coefs_) == len(ours.coefs_)
    for a, b in zip(sk.coefs_ + sk.intercepts_, ours.coefs_ + ours.intercepts_):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol)


@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_same_trajectory_as_sklearn(solver):
    """sklearn's initialization, shuffling order, alpha scaling ('0.5 * alpha * ||W||² /
    n_samples_in_batch', fastnn's l2/(2m) with l2 = alpha) and 'auto' batch size
    (min(200, n)): with float64 and the same random_state, sgd and lbfgs follow
    scikit-learn's parameter trajectory to rounding."""
    X_train, _, y_train, _ = _split(load_iris)
    X = np.vstack([X_train] * 3)  # 315 samples: 'auto' makes a 200 batch and a 115 batch
    y = np.concatenate([y_train] * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk, ours = _pair(SkMLPClassifier, MLPClassifier, hidden_layer_sizes=(7, 5),
                         solver=solver, alpha=0.3, max_iter=12, random_state=3,
                         learning_rate_init=0.05, activation="tanh")
        sk.fit(X, y)
        ours.fit(X, y)
    _assert_same_params(sk, ours, rtol=1e-7, atol=1e-9)
    assert ours.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(ours.loss_, sk.loss_, rtol=1e-9)
    if solver == "sgd":
        np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-9)


def test_alpha_is_fastnn_l2():
    """The loss after one full-batch step is J + 0.5 * alpha * ||W||² / n, as fastnn's l2."""
    import fastnn as fn

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)
    clf = MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", max_iter=1, shuffle=False,
                        alpha=2.5, learning_rate_init=1e-12, momentum=0.0,
                        random_state=0, backend=BACKEND)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    net = clf.network_
    penalty = 0.5 * 2.5 * sum(float((W ** 2).sum()) for W in clf.coefs_) / 40
    assert net.cost(X, y, l2=2.5) == pytest.approx(net.cost(X, y) + penalty, rel=1e-10)
    assert clf.loss_ == pytest.approx(net.cost(X, y, l2=2.5), rel=1e-8)
    assert isinstance(net, fn.Network)


@pytest.mark.parametrize("n, expected", [(150, 150), (450, 200)])
def test_auto_batch_size(n, expected):
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((n, 4)), rng.integers(0, 3, n)
    fits = []
    for batch_size in ("auto", expected):
        clf = MLPClassifier(hidden_layer_sizes=(5,), solver="sgd", max_iter=2, random_state=0,
                            batch_size=batch_size, backend=BACKEND)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits.append(clf.fit(X, y))
    _assert_same_params(fits[0], fits[1], rtol=0, atol=0)


@pytest.mark.parametrize("params", [
    dict(solver="sgd", tol=1e-2, n_iter_no_change=3),                       # training loss
    dict(solver="sgd", early_stopping=True, n_iter_no_change=3),            # validation score
    dict(solver="sgd", learning_rate="adaptive", tol=1e-2, n_iter_no_change=2),
    dict(solver="sgd", learning_rate="invscaling", power_t=0.25, learning_rate_init=0.5),
    dict(solver="sgd", momentum=0.5, nesterovs_momentum=False, batch_size=17),
], ids=["tol", "early_stopping", "adaptive", "invscaling", "momentum"])
def test_stopping_and_schedules_match_sklearn(params):
    X_train, _, y_train, _ = _split(load_breast_cancer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk, ours = _pair(SkMLPClassifier, MLPClassifier, hidden_layer_sizes=(6,), max_iter=60,
                         random_state=0, **params)
        sk.fit(X_train, y_train)
        ours.fit(X_train, y_train)
    assert ours.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-7)
    _assert_same_params(sk, ours, rtol=1e-6, atol=1e-8)
    if params.get("early_stopping"):
        assert ours.best_loss_ is None
        np.testing.assert_allclose(ours.validation_scores_, sk.validation_scores_)
        assert ours.best_validation_score_ == max(ours.validation_scores_)
    else:
        assert ours.best_loss_ == pytest.approx(sk.best_loss_, rel=1e-7)


def test_adam_close_to_sklearn():
    """Adam differs only in where ε enters; the curves agree closely."""
    X_train, _, y_train, _ = _split(load_iris)
    sk, ours = _pair(SkMLPClassifier, MLPClassifier, hidden_layer_sizes=(10,), max_iter=30,
                     random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X_train, y_train)
        ours.fit(X_train, y_train)
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-3)


def test_convergence_warning():
    X, y = load_iris(return_X_y=True)
    for solver in ("adam", "lbfgs"):
        with pytest.warns(ConvergenceWarning):
            MLPClassifier(hidden_layer_sizes=(5,), solver=solver, max_iter=2, random_state=0,
                          backend=BACKEND).fit(X, y)


def test_activation_changed_after_fit_is_followed_as_sklearn_does():
    """scikit-learn's forward pass reads `activation` at every call: after
    set_params(activation=...), predict and partial_fit use the new one with the fitted
    weights (and the optimizer's velocities carry on).  fastnn rebuilds its network so."""
    X_train, X_test, y_train, _ = _split(load_iris)
    sk, ours = _pair(SkMLPClassifier, MLPClassifier, hidden_layer_sizes=(8,), solver="sgd",
                     random_state=0, learning_rate_init=0.1, momentum=0.9)
    classes = np.unique(y_train)
    for est in (sk, ours):
        est.partial_fit(X_train, y_train, classes=classes)
        est.set_params(activation="tanh")
    np.testing.assert_allclose(ours.predict_proba(X_test), sk.predict_proba(X_test), rtol=1e-9)
    for est in (sk, ours):
        est.partial_fit(X_train, y_train)
    _assert_same_params(sk, ours)
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-9)
    assert [layer.activation for layer in ours.network_.layers] == ["tanh", "softmax"]
    ours.set_params(activation="softplus")
    with pytest.raises(ValueError, match="'activation' parameter of MLPClassifier"):
        ours.predict(X_test)


def test_dtype_and_backend_changed_after_fit_keep_the_weights():
    X_train, X_test, y_train, _ = _split(load_iris)
    est = MLPClassifier(hidden_layer_sizes=(6,), max_iter=20, random_state=0, backend="cpu",
                        dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X_train, y_train)
    before = est.predict_proba(X_test)
    est.set_params(backend="reference")
    assert fn_allclose(est.predict_proba(X_test), before, "float64")
    assert est.network_.backend == "reference"
    est.set_params(dtype="float32")
    assert fn_allclose(est.predict_proba(X_test), before, "float32")
    assert est.network_.dtype == np.float32
    t = est.t_
    est.partial_fit(X_train, y_train)                  # trains on from those weights, in float32
    assert est.network_.dtype == np.float32 and est.t_ == t + len(X_train)
    assert not fn_allclose(est.predict_proba(X_test), before, "float32")


def test_partial_fit_matches_sklearn():
    X_train, _, y_train, _ = _split(load_iris)
    sk, ours = _pair(SkMLPClassifier, MLPClassifier, hidden_layer_sizes=(8,), solver="sgd",
                     random_state=0, learning_rate_init=0.1)
    classes = np.unique(y_train)
    for i in range(3):
        part = slice(i * 30, (i + 1) * 30)
        sk.partial_fit(X_train[part], y_train[part], classes=classes)
        ours.partial_fit(X_train[part], y_train[part], classes=classes)
    _assert_same_params(sk, ours)
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-9)
    assert ours.n_iter_ == sk.n_iter_ == 1 and ours.t_ == sk.t_
    with pytest.raises(ValueError, match="classes"):
        MLPClassifier(backend=BACKEND).partial_fit(X_train, y_train)
    for cls in (MLPClassifier, MLPRegressor):  # as scikit-learn: only sgd / adam have it
        assert not hasattr(cls(solver="lbfgs", backend=BACKEND), "partial_fit")
        assert hasattr(cls(solver="sgd", backend=BACKEND), "partial_fit")


def test_output_layers_and_attributes():
    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        multi = MLPClassifier((5, 4), max_iter=5, random_state=0, backend=BACKEND).fit(X, y)
        binary = MLPClassifier((5,), max_iter=5, random_state=0, backend=BACKEND).fit(X, y == 2)
        Y = np.stack([y == 0, y == 1, X[:, 0] > 5.8], axis=1).astype(int)
        multilabel = MLPClassifier((5,), max_iter=5, random_state=0, backend=BACKEND).fit(X, Y)
        reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0,
                           backend=BACKEND).fit(X[:, :3], X[:, 3])
    assert multi.out_activation_ == "softmax" and multi.network_.loss == "cross_entropy"
    assert [c.shape for c in multi.coefs_] == [(4, 5), (5, 4), (4, 3)]
    assert [b.shape for b in multi.intercepts_] == [(5,), (4,), (3,)]
    assert multi.n_layers_ == 4 and multi.n_outputs_ == 3 and multi.n_features_in_ == 4
    assert all(c.dtype == np.float64 for c in multi.coefs_ + multi.intercepts_)
    assert binary.out_activation_ == "logistic" and binary.coefs_[-1].shape == (5, 1)
    assert binary.predict_proba(X).shape == (150, 2)
    np.testing.assert_array_equal(binary.classes_, [False, True])
    assert multilabel.out_activation_ == "logistic" and multilabel.network_.loss == "bce"
    assert multilabel.predict(X).shape == (150, 3)
    assert set(np.unique(multilabel.predict(X))) <= {0, 1}
    proba = multilabel.predict_proba(X)
    assert proba.shape == (150, 3) and not np.allclose(proba.sum(axis=1), 1)
    assert reg.out_activation_ == "identity" and reg.predict(X[:, :3]).shape == (150,)
    assert len(multi.loss_curve_) == multi.n_iter_ == 5
    for est in (multi, binary, multilabel, reg):
        assert np.isfinite(est.loss_) and est.best_loss_ <= est.loss_curve_[0]


def test_multilabel_parity_with_sklearn():
    """Multi-label: sigmoid outputs with the summed binary cross-entropy, as scikit-learn."""
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    Y = np.stack([y == 0, y == 2, X[:, 1] > 0], axis=1).astype(int)
    sk, ours = _pair(SkMLPClassifier, MLPClassifier, hidden_layer_sizes=(6,), solver="lbfgs",
                     max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X, Y)
        ours.fit(X, Y)
    np.testing.assert_allclose(ours.loss_, sk.loss_, rtol=1e-6)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))


@pytest.mark.parametrize("n_outputs", [1, 2])
def test_regressor_parity_with_sklearn(n_outputs):
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    Y = y if n_outputs == 1 else np.stack([y, -0.5 * y + X[:, 0]], axis=1)
    for solver in ("sgd", "lbfgs"):
        sk, ours = _pair(SkMLPRegressor, MLPRegressor, hidden_layer_sizes=(8,), solver=solver,
                         max_iter=15, random_state=0, alpha=0.01, learning_rate_init=0.01)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sk.fit(X, Y)
            ours.fit(X, Y)
        if solver == "sgd" or n_outputs == 1:  # multi-output lbfgs: sklearn's loss/gradient
            _assert_same_params(sk, ours, rtol=1e-6, atol=1e-8)  # disagree by 1/n_outputs
            assert ours.loss_ == pytest.approx(sk.loss_, rel=1e-8)
        assert ours.predict(X).shape == sk.predict(X).shape
        assert ours.score(X, Y) == pytest.approx(sk.score(X, Y), abs=0.05)


# ---------------------------------------------------------------- API details

@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_a_pickled_estimator_resumes_partial_fit_exactly(solver, how):
    """The copy keeps the optimizer's state (momentum velocity, Adam moments and t), so its
    next partial_fit is the original's, bit for bit, as with scikit-learn."""
    import copy

    X, y = load_iris(return_X_y=True)
    a = MLPClassifier(hidden_layer_sizes=(5,), solver=solver, random_state=0, backend=BACKEND)
    for _ in range(3):
        a.partial_fit(X, y, classes=[0, 1, 2])
    b = pickle.loads(pickle.dumps(a)) if how == "pickle" else copy.deepcopy(a)
    a.partial_fit(X, y)
    b.partial_fit(X, y)
    np.testing.assert_array_equal(b.predict_proba(X), a.predict_proba(X))
    assert b.loss_curve_ == a.loss_curve_


@pytest.mark.parametrize("bad", [
    {"random_state": -1}, {"random_state": "a"}, {"alpha": -1.0},
    {"hidden_layer_sizes": (0,)}, {"backend": "cuda"}])
@pytest.mark.parametrize("call", ["fit", "partial_fit"])
def test_a_rejected_fit_leaves_the_estimator_as_it_was(bad, call):
    """A parameter (or backend) rejected by a refit on other data leaves the fitted
    estimator's attributes (classes_, n_features_in_, the network) untouched, and one
    rejected on the very first partial_fit leaves it unfitted."""
    if bad.get("backend") == "cuda":
        import fastnn as fn

        if "cuda" in fn.available_backends():
            pytest.skip("the cuda backend is available here")
    X, y = load_iris(return_X_y=True)
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0, backend=BACKEND)
    fresh = est.set_params(**bad)
    with pytest.raises((ValueError, RuntimeError), match=next(iter(bad))
                       if "backend" not in bad else "cuda"):
        (fresh.partial_fit(X, y, classes=[0, 1, 2]) if call == "partial_fit"
         else fresh.fit(X, y))
    assert not hasattr(fresh, "classes_") and not hasattr(fresh, "network_")
    with pytest.raises(NotFittedError):
        fresh.predict(X)

    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0, backend=BACKEND)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    before = dict(est.__dict__)
    proba = est.predict_proba(X)
    est.set_params(**bad)
    X2, y2 = np.random.default_rng(0).standard_normal((20, 2)), np.array(["a", "b"] * 10)
    with pytest.raises((ValueError, RuntimeError)):
        est.partial_fit(X2, y2) if call == "partial_fit" else est.fit(X2, y2)
    est.set_params(**{k: before[k] for k in bad})
    assert est.__dict__.keys() == before.keys()
    assert all(est.__dict__[k] is before[k] for k in before)
    np.testing.assert_array_equal(est.predict_proba(X), proba)


def test_divergence_with_early_stopping_restores_the_best_epoch_as_sklearn_does():
    """scikit-learn trains on with non-finite weights, then restores the best validation
    epoch; fastnn stops at the non-finite batch and restores the same epoch (with a
    warning).  Without early stopping both raise."""
    rng = np.random.RandomState(0)
    X = rng.randn(200, 5)
    y = X @ rng.randn(5) + 0.1 * rng.randn(200)
    kw = dict(hidden_layer_sizes=(20,), solver="sgd", learning_rate_init=0.5,
              early_stopping=True, random_state=0, max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkMLPRegressor(**kw).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="best validation epoch were restored"):
        est = MLPRegressor(**kw, backend=BACKEND).fit(X, y)
    assert est.best_validation_score_ == pytest.approx(sk.best_validation_score_, rel=1e-9)
    assert est.score(X, y) == pytest.approx(sk.score(X, y), rel=1e-9)
    worse = dict(kw, early_stopping=False, learning_rate_init=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="non-finite"):
            SkMLPRegressor(**worse).fit(X, y)
    with pytest.raises(ValueError, match="non-finite"):
        MLPRegressor(**worse, backend=BACKEND).fit(X, y)


def test_string_labels_pickle_and_grid_search():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    pipe = make_pipeline(StandardScaler(),
                         MLPClassifier(solver="lbfgs", max_iter=300, random_state=0,
                                       backend=BACKEND))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)]}, cv=3)
    grid.fit(X, names)
    assert grid.best_score_ > 0.85
    assert set(grid.predict(X)) <= set(names)
    clone = pickle.loads(pickle.dumps(grid.best_estimator_))
    np.testing.assert_array_equal(clone.predict(X), grid.predict(X))
    np.testing.assert_allclose(clone.predict_proba(X), grid.predict_proba(X))


def test_coefs_are_the_network_parameters():
    X, y = load_iris(return_X_y=True)
    clf = MLPClassifier((3,), solver="lbfgs", max_iter=50, random_state=0,
                        backend=BACKEND).fit(X, y)
    before = clf.predict_proba(X)
    coefs = [c.copy() for c in clf.coefs_]
    clf.coefs_ = [np.zeros_like(c) for c in coefs]        # assigned: Network.set_params
    np.testing.assert_allclose(clf.predict_proba(X)[0], clf.predict_proba(X)[-1])
    clf.coefs_ = coefs
    np.testing.assert_allclose(clf.predict_proba(X), before)
    clf.intercepts_[-1][:] += [1e4, 0.0, 0.0]            # edited in place: a view
    assert (clf.predict(X) == clf.classes_[0]).all()
    with pytest.raises(AttributeError):
        MLPClassifier().coefs_


def test_warm_start_and_float32():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    clf = MLPClassifier((16,), max_iter=5, warm_start=True, random_state=0, dtype="float32",
                        learning_rate_init=0.01,
                        backend=BACKEND)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        first = clf.loss_
        net = clf.network_
        clf.fit(X, y)
    assert clf.network_ is net and clf.loss_ < first
    assert clf.coefs_[0].dtype == np.float32
    assert clf.score(X, y) > 0.8


def test_errors():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(NotFittedError):
        MLPClassifier(backend=BACKEND).predict(X)
    with pytest.raises(ValueError, match="poisson"):
        MLPRegressor(loss="poisson", backend=BACKEND).fit(X, y)
    with pytest.raises(ValueError, match="momentum"):
        MLPClassifier(solver="sgd", momentum=1.0, backend=BACKEND).fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=(3, 0), backend=BACKEND).fit(X, y)
    with pytest.raises(ValueError, match="activation"):
        MLPClassifier(activation="softmax", backend=BACKEND).fit(X, y)
    with pytest.raises(ValueError, match="backend"):
        MLPClassifier(backend="tpu").fit(X, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier(backend=BACKEND).fit(X, y + 0.5)


def test_logistic_regression_without_hidden_layers():
    X_train, X_test, y_train, y_test = _split(load_breast_cancer)
    clf = MLPClassifier(hidden_layer_sizes=(), solver="lbfgs", random_state=0,
                        backend=BACKEND).fit(X_train, y_train)
    assert [c.shape for c in clf.coefs_] == [(30, 1)]
    assert clf.score(X_test, y_test) > 0.93


def test_epoch_shuffle_draws_what_sklearn_shuffle_draws():
    from sklearn.utils import check_random_state, shuffle

    from fastnn.sklearn import _shuffled

    for seed in (0, 1, 42):
        ours, theirs = check_random_state(seed), check_random_state(seed)
        idx_a = idx_b = np.arange(37)
        for _ in range(3):
            idx_a, idx_b = _shuffled(idx_a, ours), shuffle(idx_b, random_state=theirs)
            np.testing.assert_array_equal(idx_a, idx_b)


@pytest.mark.parametrize("fit_on, y", [
    (np.arange(10), np.random.default_rng(0).integers(0, 10, 200)),     # multiclass
    (np.array([3, 7]), np.array([7, 3, 3, 7, 7])),                       # binary
    (np.array([0, 1, 2]), np.array([0, 2, 2])),                          # a subset (partial_fit)
    (np.array([0, 1]), np.array([1, 1])),                                # one class of two
    (np.array(["b", "a", "c"]), np.array(["c", "a", "b", "a"])),         # strings
    (np.array(["x", "y"], dtype=object), np.array(["y", "x"], dtype=object)),
    (np.array([True, False]), np.array([True, True, False])),            # booleans
    (np.array([5, 5]), np.array([5, 5, 5])),                             # one class: the binarizer
    (np.array([0, 1]), np.array([0, 5])),                                # unseen: the binarizer
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_direct_indicators_are_the_label_binarizers(fit_on, y, dtype):
    from sklearn.preprocessing import LabelBinarizer

    from fastnn.sklearn import _indicators

    lb = LabelBinarizer().fit(fit_on)
    got = _indicators(lb, y, dtype)
    if len(lb.classes_) < 2 or not np.isin(y, lb.classes_).all():
        assert got is None
        return
    want = lb.transform(y)
    assert got.dtype == dtype and got.flags.c_contiguous and got.flags.writeable
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("y", [
    np.random.default_rng(0).integers(0, 10, 200),                      # multiclass
    np.array([7, 3, 3, 7, 7], np.int8), np.array([2, 0, 1, 2], np.uint8),
    np.array([5, 5, 5], np.int32),                                       # one class
    np.array([1, 0], np.uint64), np.array([-4, 9, -4], np.int16),
    np.array([True, True, False]), np.array([False, False]),
    np.array([2**62, -2**62, 0], np.int64),
])
def test_the_direct_labels_are_the_label_binarizers(y):
    """The integer-target fast path of _validate_input: the same binarizer as
    LabelBinarizer().fit(y) (attributes, dtype of classes_, transform and its inverse),
    and None, i.e. scikit-learn's checks, for every other kind of target."""
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils.multiclass import type_of_target

    from fastnn.sklearn import _fitted_binarizer, _integer_labels

    want = LabelBinarizer().fit(y)
    labels = _integer_labels(y)
    assert labels[0] == type_of_target(y) == want.y_type_
    got = _fitted_binarizer(*labels)
    assert got.sparse_input_ is want.sparse_input_ is False
    assert got.classes_.dtype == want.classes_.dtype
    np.testing.assert_array_equal(got.classes_, want.classes_)
    np.testing.assert_array_equal(got.transform(y), want.transform(y))
    T = want.transform(y).astype(float)
    np.testing.assert_array_equal(got.inverse_transform(T), want.inverse_transform(T))
    for other in (y.astype(float), y.reshape(-1, 1), y.astype(str), list(y), y[:0],
                  np.stack([y, y], axis=1)):
        assert _integer_labels(other) is None


def test_many_integer_classes_warn_as_sklearns_estimator_does():
    """Over half of more than 20 integer targets distinct: scikit-learn's
    check_classification_targets would warn of a regression target, but its
    MLPClassifier does not run that check; neither does the fast path."""
    X = np.random.default_rng(0).random((30, 3))
    y = np.arange(30) % 20
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(X, y)
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        SkMLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(X, y)

    def regression_warnings(ws):
        return [str(w.message) for w in ws if "regression problem" in str(w.message)]

    assert regression_warnings(ours) == regression_warnings(theirs)


# ---------------------------------------------------------------- review findings

@pytest.mark.parametrize("case", ["partial_fit with early_stopping", "too small a split",
                                  "no split", "one-member class"])
def test_a_fit_whose_validation_split_fails_leaves_the_estimator_as_it_was(case):
    X, y = load_iris(return_X_y=True)
    est = MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", max_iter=5, random_state=0,
                        backend=BACKEND)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    before = dict(est.__dict__)
    proba = est.predict_proba(X)
    X2, y2 = X, y
    if case == "partial_fit with early_stopping":
        est.set_params(early_stopping=True)
    elif case == "too small a split":
        est.set_params(early_stopping=True, validation_fraction=0.005)
    elif case == "no split":
        est.set_params(early_stopping=True, validation_fraction=0.0)
    else:   # binary labels are split stratified: a class of one member cannot be
        X2, y2 = X[:51], (np.arange(51) == 0).astype(int)
        est.set_params(early_stopping=True)
    with pytest.raises(ValueError):
        est.partial_fit(X2, y2) if case.startswith("partial") else est.fit(X2, y2)
    assert est.__dict__.keys() == before.keys()
    assert all(est.__dict__[k] is before[k] for k in before if k not in (
        "early_stopping", "validation_fraction"))
    np.testing.assert_array_equal(est.predict_proba(X), proba)
    fresh = MLPClassifier(solver="sgd", early_stopping=True, random_state=0, backend=BACKEND)
    with pytest.raises(ValueError, match="early_stopping"):
        fresh.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(NotFittedError):
        fresh.predict(X)


def test_early_stopping_validates_the_data_once(monkeypatch):
    """The held-out rows are scored without validating them again each epoch (that would
    warn about feature names for a DataFrame, which the split rows no longer carry)."""
    import fastnn.sklearn as fsk

    calls = []
    real = fsk._validate_data
    monkeypatch.setattr(fsk, "_validate_data", lambda *a, **k: calls.append(1) or real(*a, **k))
    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", max_iter=6, random_state=0,
                            early_stopping=True, backend=BACKEND).fit(X, y)
    assert len(est.validation_scores_) == 6 and len(calls) == 1


@pytest.mark.parametrize("backend", [BACKEND, "reference"])
def test_assigning_an_item_of_coefs_or_intercepts_changes_the_model_as_in_sklearn(backend):
    X, y = load_iris(return_X_y=True)
    kw = dict(hidden_layer_sizes=(5,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SkMLPClassifier(**kw).fit(X, y)
        ours = MLPClassifier(**kw, backend=backend).fit(X, y)
    for est in (sk, ours):
        est.coefs_[-1] = np.zeros_like(est.coefs_[-1])
        est.intercepts_[-1] = np.zeros_like(est.intercepts_[-1])
    np.testing.assert_allclose(ours.predict_proba(X[:3]), 1 / 3)
    np.testing.assert_allclose(ours.predict_proba(X[:3]), sk.predict_proba(X[:3]))
    coefs = ours.coefs_
    coefs[0] = np.ones_like(coefs[0])        # the list keeps pointing at the model
    coefs[0][0, 0] = 5.0
    assert ours.coefs_[0][0, 0] == 5.0 and ours.coefs_[0][1, 1] == 1.0
    with pytest.raises(TypeError, match="one array per layer"):
        ours.coefs_.append(np.zeros(3))
    with pytest.raises(ValueError):
        ours.coefs_[0] = np.zeros((2, 2))    # a wrong shape: refused, nothing changed
    assert ours.coefs_[0][0, 0] == 5.0
    assert type(pickle.loads(pickle.dumps(ours.coefs_))) is list


def test_a_multi_output_absolute_error_loss_averages_over_the_outputs():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    Y = X[:, :3] * [1.0, 2.0, 3.0]
    for k in (1, 3):
        y = Y[:, 0] if k == 1 else Y
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", alpha=0.0, max_iter=30,
                               loss="absolute_error", random_state=0, backend=BACKEND).fit(X, y)
        pred = est.predict(X)
        assert est.loss_ == pytest.approx(np.mean(np.abs(pred - y)), rel=1e-9)


def test_bad_parameters_raise_sklearns_invalid_parameter_error():
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = load_iris(return_X_y=True)
    for bad in [{"shuffle": 1}, {"solver": "newton"}, {"hidden_layer_sizes": (5.0,)}]:
        with pytest.raises(InvalidParameterError) as info:
            MLPClassifier(**bad, backend=BACKEND).fit(X, y)
        assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
        assert next(iter(bad)) in str(info.value)


def _small_iris_fit(clf=None):
    """(X, y, a small MLPClassifier fitted on iris; or `clf` fitted again)."""
    X, y = load_iris(return_X_y=True)
    clf = clf or MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0,
                               backend=BACKEND)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return X, y, clf.fit(X, y)


def test_a_coefs_list_from_before_a_refit_is_detached_and_plus_equals_gives_a_list():
    X, y, clf = _small_iris_fit()
    stale = clf.coefs_
    _small_iris_fit(clf)
    proba = clf.predict_proba(X[:3])
    stale[0] = np.zeros_like(stale[0])            # as in scikit-learn: the new model is not hit
    np.testing.assert_array_equal(clf.predict_proba(X[:3]), proba)
    c = clf.coefs_
    c += [np.zeros(3)]
    assert type(c) is list and len(c) == 3 and len(clf.coefs_) == 2


def test_an_estimator_pickled_on_an_unavailable_backend_predicts_on_cpu():
    X, y, clf = _small_iris_fit()
    state = dict(clf.__getstate__())
    state["backend"] = "cuda"   # as if fitted on a GPU (its network then unpickles on cpu)
    if "cuda" in __import__("fastnn").available_backends():
        pytest.skip("the cuda backend is available here")
    clone = MLPClassifier.__new__(MLPClassifier)
    with pytest.warns(UserWarning, match="set to 'cpu'"):
        clone.__setstate__(state)
    assert clone.backend == clf.network_.backend
    np.testing.assert_array_equal(clone.predict_proba(X), clf.predict_proba(X))
