"""scikit-learn's ``MLPClassifier`` / ``MLPRegressor``, trained by fastnn's kernels.

Changing the import is the whole migration::

    from sklearn.neural_network import MLPClassifier     # before
    from fastnn.sklearn import MLPClassifier             # after

The parameters have scikit-learn's names, defaults and meanings, and the fitted attributes
(``coefs_``, ``intercepts_``, ``loss_``, ``loss_curve_``, ``best_loss_``, ``n_iter_``,
``classes_``, ``n_features_in_``, ``out_activation_`` ...) its shapes.  The estimators are
built on :class:`fastnn.Network`: every forward, backward and update is a fused fastnn
kernel; this module only prepares arrays once per fit and runs scikit-learn's epoch logic.

scikit-learn semantics matched on purpose
-----------------------------------------
* ``alpha`` is the L2 penalty ``0.5 * alpha * ||W||² / n_samples_in_batch`` added to the
  batch loss (weights only, not intercepts).  That is exactly fastnn's ``l2 / (2m) Σ W²``
  with ``l2 = alpha``, so ``alpha`` is passed straight through as fastnn's ``l2``.
* ``batch_size="auto"`` is ``min(200, n_samples)``; a larger batch size is clipped to
  n_samples with a warning.
* Initialization is scikit-learn's: weights *and* intercepts uniform in ±sqrt(6 / (fan_in +
  fan_out)) (±sqrt(2 / ...) for ``activation="logistic"``), drawn from
  ``check_random_state(random_state)`` in scikit-learn's order.  Shuffling and the
  early-stopping split draw from the same generator in the same order, so with the same
  ``random_state`` fastnn starts from, and visits the data in, the same order as
  scikit-learn.
* ``max_iter`` is epochs for ``"sgd"``/``"adam"`` and L-BFGS iterations for ``"lbfgs"``
  (with ``max_fun`` cost evaluations at most and ``tol`` as the gradient tolerance).
* Stopping (sgd/adam): after every epoch, when the training loss has not improved on the
  best by more than ``tol`` for more than ``n_iter_no_change`` consecutive epochs, training
  stops (``learning_rate="adaptive"``: the step is divided by 5 instead, until it falls
  below 1e-6).  With ``early_stopping=True``, ``validation_fraction`` of the data is held
  out (``train_test_split`` with ``random_state``; stratified for binary classification —
  scikit-learn stratifies only when there is one output column), the validation score
  (accuracy, or R² for the regressor) is monitored instead, and the best epoch's parameters
  are restored at the end.
* A :class:`~sklearn.exceptions.ConvergenceWarning` is raised when ``max_iter`` is reached
  without convergence.
* Outputs: binary classification is one logistic unit (``out_activation_ == "logistic"``),
  multi-class a softmax, multi-label (``y`` an (n, k) 0/1 indicator matrix) k logistic
  units with the summed binary cross-entropy; the regressor's output is the identity with
  the squared error ``((y - p)**2).mean() / 2`` (averaged over outputs, as in
  scikit-learn, for the reported loss).

Differences (all documented)
----------------------------
* ``dtype`` (fastnn's own parameter, default ``"float64"``): parameters, activations and
  the fitted ``coefs_`` use it whatever the input dtype.  The estimators default to float64
  (fastnn's ``Network`` defaults to float32) so that they agree with scikit-learn to
  rounding and pass its numerical estimator checks; ``dtype="float32"`` is faster.
* ``backend`` (fastnn's own): ``"cpu"`` (Numba, default), ``"reference"`` (NumPy) or
  ``"cuda"``.  On the host backends ``coefs_`` / ``intercepts_`` are views of the
  network's parameters (editing them in place changes the model; assigning a new list, or
  an item of the list, calls ``Network.set_params``); on ``"cuda"`` they are read-only
  host copies (an in-place edit raises; assign an item or a new list instead).
* ``fit`` takes no ``sample_weight``.  Sparse input is accepted and densified.
* Adam's ε is added to sqrt(v̂) (Kingma & Ba) rather than to sqrt(v) as scikit-learn
  does; the two differ only in ε's scale.
* ``loss_curve_`` and ``best_loss_`` are also set for ``solver="lbfgs"`` (one entry per
  iteration); scikit-learn leaves them unset there.
* The regressor also accepts ``loss="absolute_error"`` (fastnn's MAE); ``"poisson"`` is not
  supported.
"""
import contextlib
import numbers
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state, column_or_1d
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import (_check_partial_fit_first_call,
                                          check_classification_targets, type_of_target,
                                          unique_labels)
    from sklearn.utils.validation import check_is_fitted
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("fastnn.sklearn needs scikit-learn: pip install scikit-learn "
                      f"({exc})") from None

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

from .backend import BACKENDS, DEFAULT_BACKEND, available_backends
from .layers import Dense
from .network import Network
from .optim import LBFGS, SGD, Adam
from .validation import check_dtype, writable_contiguous

__all__ = ["MLPClassifier", "MLPRegressor"]

#: scikit-learn's activation names -> fastnn's
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
#: fastnn's output activation -> scikit-learn's out_activation_ name
_OUT_NAMES = {"sigmoid": "logistic", "softmax": "softmax", "identity": "identity"}
_STOCHASTIC = ("sgd", "adam")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    return (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
            and np.isfinite(value))


def _shuffled(sample_idx, random_state):
    """``sklearn.utils.shuffle(sample_idx, random_state=random_state)``: the same draw from
    the same RandomState (a shuffle of arange(n)) and the same result, without the input
    checks that cost ~1 ms a call (an epoch of a small problem is a few ms)."""
    order = np.arange(sample_idx.shape[0])
    random_state.shuffle(order)
    return sample_idx[order]


def _indicators(binarizer, y, dtype):
    """``binarizer.transform(y)`` as `dtype`, computed directly for the usual case: 1-D y
    of binary or multiclass labels, all of them in ``binarizer.classes_`` (sorted, as a
    fitted LabelBinarizer keeps them) with 0/1 labels: one column (y == classes_[1]) for
    two classes, else one-hot columns.  None in any other case (the caller then runs the
    binarizer).  The binarizer's own transform re-checks the targets' type twice: 1.5 ms
    of a ~45 ms digits fit, against 0.03 ms here."""
    classes = binarizer.classes_
    k = len(classes)
    if (y.ndim != 1 or binarizer.y_type_ not in ("binary", "multiclass") or k < 2
            or binarizer.sparse_output or binarizer.neg_label != 0 or binarizer.pos_label != 1
            or not isinstance(classes, np.ndarray)):
        return None
    try:
        pos = np.searchsorted(classes, y)
        found = classes[np.minimum(pos, k - 1)] == y
    except (TypeError, ValueError):
        return None
    if not (isinstance(found, np.ndarray) and found.shape == y.shape and found.all()):
        return None
    if k == 2:
        return (pos == 1).astype(dtype).reshape(-1, 1)
    Y = np.zeros((y.shape[0], k), dtype)
    Y[np.arange(y.shape[0]), pos] = 1
    return Y


def _integer_labels(y):
    """(type_of_target(y), unique_labels(y)) computed directly for the usual targets: a
    non-empty 1-D NumPy array of integers or booleans, whose type is "binary" (at most two
    distinct values) or "multiclass" and whose labels are its sorted distinct values, of
    its dtype.  None for anything else (the caller then runs scikit-learn's checks, which
    take ~0.35 ms a call: a few % of a small fit, most of a small partial_fit).  Like
    scikit-learn's own MLPClassifier, which does not run check_classification_targets,
    this never warns that many distinct integer labels look like a regression target."""
    if type(y) is not np.ndarray or y.ndim != 1 or y.dtype.kind not in "iub" or not y.size:
        return None
    classes = np.unique(y)
    return ("binary" if classes.shape[0] <= 2 else "multiclass"), classes


def _fitted_binarizer(y_type, classes):
    """``LabelBinarizer().fit(y)`` for targets of _integer_labels: its fitted attributes
    (y_type_, sparse_input_, classes_) set from the labels."""
    binarizer = LabelBinarizer()
    binarizer.y_type_ = y_type
    binarizer.sparse_input_ = False
    binarizer.classes_ = classes
    return binarizer


try:
    from sklearn.utils._param_validation import InvalidParameterError
except ImportError:  # pragma: no cover - scikit-learn < 1.2
    class InvalidParameterError(ValueError, TypeError):
        """A constructor parameter has a bad type or value."""


def _read_only(a):
    """A host copy that refuses in-place edits (which could not reach the device)."""
    a.flags.writeable = False
    return a


class _LayerList(list):
    """``coefs_`` / ``intercepts_``: one array per layer.  Assigning an item (or a slice)
    writes it through to the network, as an item of scikit-learn's plain list would change
    its model; what would change the length is refused.  A list taken before a refit no
    longer writes (the model it came from is gone, as in scikit-learn).  Copies, pickles
    and ``+=`` give plain lists."""

    def __init__(self, items, owner, name):
        super().__init__(items)
        self._owner, self._name = owner, name
        self._net = owner.__dict__.get("network_")

    def __setitem__(self, index, value):
        if self._owner.__dict__.get("network_") is not self._net:   # refitted since
            return super().__setitem__(index, value)
        items = list(self)
        items[index] = value
        if len(items) != len(self):
            raise ValueError(f"{self._name} has one array per layer ({len(self)})")
        setattr(self._owner, self._name, items)   # the property's setter: checked, written
        super().__setitem__(slice(None), getattr(self._owner, self._name))

    def __iadd__(self, other):   # c += [x] rebinds c to a new plain list
        return list(self) + list(other)

    def __reduce__(self):
        return list, (list(self),)

    def _fixed_length(self, *args, **kwargs):
        raise TypeError(f"{self._name} has one array per layer: assign an item or a whole "
                        "new list")

    append = extend = insert = pop = remove = clear = sort = reverse = _fixed_length
    __delitem__ = __imul__ = _fixed_length


class _Diverged(ValueError):
    """A batch's loss turned non-finite (the step was not applied)."""


class _BaseMLP(BaseEstimator):
    """The shared machinery; use MLPClassifier or MLPRegressor."""

    # ------------------------------------------------------------------ parameters
    def _check_params(self):
        """Validate the constructor parameters (at fit, as scikit-learn does)."""
        hls = self.hidden_layer_sizes
        if _is_int(hls):
            hls = [hls]
        elif isinstance(hls, str) or not hasattr(hls, "__iter__"):
            raise ValueError("hidden_layer_sizes must be an int or a sequence of ints; "
                             f"got {self.hidden_layer_sizes!r}")
        hls = list(hls)
        if not all(_is_int(h) for h in hls):
            raise ValueError(f"hidden_layer_sizes must hold ints; got {self.hidden_layer_sizes!r}")
        if any(h <= 0 for h in hls):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hls}.")

        def options(name, allowed):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in allowed:
                raise ValueError(f"The '{name}' parameter of {type(self).__name__} must be one "
                                 f"of {sorted(allowed)}; got {value!r}.")

        def real(name, low, high=None, low_open=False, high_open=False):
            value = getattr(self, name)
            if not _is_real(value) or value < low or (low_open and value == low) or (
                    high is not None and (value > high or (high_open and value == high))):
                lo, hi = "(" if low_open else "[", ")" if high_open or high is None else "]"
                raise ValueError(f"The '{name}' parameter of {type(self).__name__} must be a "
                                 f"number in {lo}{low}, {'inf' if high is None else high}{hi}; "
                                 f"got {value!r}.")

        def integer(name, low=1):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ValueError(f"The '{name}' parameter of {type(self).__name__} must be an "
                                 f"int >= {low}; got {value!r}.")

        def boolean(name):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"The '{name}' parameter of {type(self).__name__} must be a "
                                 f"bool; got {getattr(self, name)!r}.")

        options("activation", set(ACTIVATIONS))
        options("solver", {"lbfgs", "sgd", "adam"})
        options("learning_rate", {"constant", "invscaling", "adaptive"})
        real("alpha", 0.0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            integer("batch_size")
        real("learning_rate_init", 0.0, low_open=True)
        real("power_t", 0.0)
        integer("max_iter")
        integer("max_fun")
        real("tol", 0.0)
        real("momentum", 0.0, 1.0)
        if self.solver == "sgd" and self.momentum >= 1.0:
            raise ValueError("momentum=1 (no decay) is not supported by fastnn's SGD; use "
                             "momentum < 1")
        real("validation_fraction", 0.0, 1.0, high_open=True)
        real("beta_1", 0.0, 1.0, high_open=True)
        real("beta_2", 0.0, 1.0, high_open=True)
        real("epsilon", 0.0, low_open=True)
        if not (self.n_iter_no_change == np.inf or _is_int(self.n_iter_no_change)) or \
                self.n_iter_no_change < 1:
            raise ValueError(f"The 'n_iter_no_change' parameter of {type(self).__name__} must "
                             f"be an int >= 1 or numpy.inf; got {self.n_iter_no_change!r}.")
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            boolean(name)
        if not (isinstance(self.verbose, (bool, np.bool_)) or _is_int(self.verbose)):
            raise ValueError(f"verbose must be a bool or an int; got {self.verbose!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}; got {self.backend!r}")
        self._dtype = check_dtype(self.dtype)
        return hls

    # ------------------------------------------------------------------ fitted attributes
    @property
    def coefs_(self):
        """Weights per layer, W of shape (n_in, n_out) (views of the network's parameters
        on the host backends)."""
        net = self._fitted_net()
        if net.backend == "cuda":
            return _LayerList([_read_only(W) for W, _ in net.params], self, "coefs_")
        return _LayerList([W for W, _ in net._Wb], self, "coefs_")

    @coefs_.setter
    def coefs_(self, value):
        net = self._fitted_net()
        if len(value) != len(net.layers):
            raise ValueError(f"coefs_ must be a list of {len(net.layers)} arrays")
        net.set_params([(W, b) for W, (_, b) in zip(value, net.params)])

    @property
    def intercepts_(self):
        """Biases per layer, b of shape (n_out,)."""
        net = self._fitted_net()
        if net.backend == "cuda":
            return _LayerList([_read_only(b) for _, b in net.params], self, "intercepts_")
        return _LayerList([b for _, b in net._Wb], self, "intercepts_")

    @intercepts_.setter
    def intercepts_(self, value):
        net = self._fitted_net()
        if len(value) != len(net.layers):
            raise ValueError(f"intercepts_ must be a list of {len(net.layers)} arrays")
        net.set_params([(W, b) for (W, _), b in zip(net.params, value)])

    def __setstate__(self, state):
        """As scikit-learn's, and a model pickled on a backend not available here (its
        network was unpickled on "cpu", with a warning) takes backend="cpu" too, so that
        predict does not rebuild it on the missing one."""
        super().__setstate__(state)
        net = self.__dict__.get("network_")
        if (net is not None and self.__dict__.get("backend") not in (None, net.backend)
                and self.backend not in available_backends()):
            warnings.warn(f"{type(self).__name__} was pickled with backend={self.backend!r}, "
                          "which is not available here; its backend is set to 'cpu'",
                          stacklevel=2)
            self.backend = net.backend

    def _fitted_net(self):
        net = self.__dict__.get("network_")
        if net is None:
            raise AttributeError(f"This {type(self).__name__} instance is not fitted yet")
        return net

    def _follow_params(self):
        """network_, rebuilt with the same weights when set_params changed `activation`,
        `dtype` or `backend` since the fit: scikit-learn's forward pass reads `activation`
        at every call, so predict and a warm-started or partial fit use the current one
        (fastnn's network fixes its activations, dtype and backend when built).  The
        optimizer's moments carry on where dtype and backend are unchanged."""
        old = self.network_
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise ValueError(f"The 'activation' parameter of {type(self).__name__} must be one "
                             f"of {sorted(ACTIVATIONS)}; got {self.activation!r}.")
        act = ACTIVATIONS[self.activation]
        dtype, backend = check_dtype(self.dtype), self.backend
        if (all(layer.activation == act for layer in old.layers[:-1])
                and old.dtype == dtype and old.backend == backend):
            return old
        layers = [Dense(layer.units, act) for layer in old.layers[:-1]] + [old.layers[-1]]
        net = Network(layers, old.n_inputs, loss=old.loss, dtype=dtype, backend=backend,
                      seed=0)
        net.set_params(old.params)
        if old.dtype == dtype and old.backend == backend:
            net._opt, net._opt_state = old._opt, old._opt_state
        self.network_ = net
        return net

    # ------------------------------------------------------------------ building
    def _build(self, hidden, n_features, n_outputs, out_activation, loss):
        """A fresh network with scikit-learn's initialization (first pass of a fit)."""
        act = ACTIVATIONS[self.activation]
        layers = [Dense(h, act) for h in hidden] + [Dense(n_outputs, out_activation)]
        net = Network(layers, n_features, loss=loss, dtype=self._dtype, backend=self.backend,
                      seed=0)
        # scikit-learn's _init_coef: Glorot uniform, factor 2 for logistic, intercepts too
        factor = 2.0 if self.activation == "logistic" else 6.0
        params = []
        for fan_in, fan_out in net._shapes:
            bound = np.sqrt(factor / (fan_in + fan_out))
            W = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            b = self._random_state.uniform(-bound, bound, fan_out)
            params.append((W, b))
        net.set_params(params)
        self.network_ = net
        self.n_layers_ = len(layers) + 1
        self.n_outputs_ = n_outputs
        self.out_activation_ = _OUT_NAMES[out_activation]
        self.n_iter_ = 0
        self.t_ = 0
        if self.solver in _STOCHASTIC:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
        self.__dict__.pop("_optimizer", None)

    def _make_optimizer(self):
        if self.solver == "sgd":
            return SGD(lr=float(self.learning_rate_init), momentum=float(self.momentum),
                       nesterov=bool(self.nesterovs_momentum) and self.momentum > 0)
        return Adam(lr=float(self.learning_rate_init), beta1=float(self.beta_1),
                    beta2=float(self.beta_2), eps=float(self.epsilon))

    # ------------------------------------------------------------------ fit
    @contextlib.contextmanager
    def _unchanged_on_error(self, saved=None):
        """Put every attribute back as it was (``saved``, a copy of ``__dict__``, or the
        one taken on entry) if the block raises."""
        saved = dict(self.__dict__) if saved is None else saved
        try:
            yield saved
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _fit(self, X, y, incremental=False, saved=None):
        """Validate, build (or follow) the network, train.  Anything that fails before the
        training starts (a parameter, the data, the backend) leaves the estimator exactly
        as it was: its attributes are put back from ``saved`` (taken here when None)."""
        with self._unchanged_on_error(saved):
            try:
                hidden = self._check_params()
            except (TypeError, ValueError) as exc:   # as scikit-learn: both at once
                raise InvalidParameterError(str(exc)) from None
            random_state = self.random_state
            try:
                self._random_state = check_random_state(random_state)
            except ValueError as exc:
                raise ValueError(f"The 'random_state' parameter of {type(self).__name__} must "
                                 "be an int in [0, 2**32 - 1], a numpy RandomState or None; got "
                                 f"{random_state!r}.") from exc
            first_pass = self.__dict__.get("network_") is None or (
                not self.warm_start and not incremental)
            X, Y, y_labels = self._validate_input(X, y, incremental, reset=first_pass)
            n_samples, n_features = X.shape
            out_activation, loss = self._output_for(Y)
            if first_pass:
                self._build(hidden, n_features, Y.shape[1], out_activation, loss)
            else:
                net = self._follow_params()
                expected = (n_features, *hidden, Y.shape[1])
                if net.sizes != expected:
                    raise ValueError(f"warm_start / partial_fit: the network has layer sizes "
                                     f"{net.sizes} but these data and parameters need "
                                     f"{expected}")
            if self.solver in _STOCHASTIC:   # its checks and split: before anything trains
                data = self._stochastic_data(X, Y, y_labels, incremental)
        if self.solver in _STOCHASTIC:
            self._fit_stochastic(*data, incremental)
        else:
            self._fit_lbfgs(X, Y)
        return self

    def _fit_lbfgs(self, X, Y):
        net = self.network_
        alpha = float(self.alpha)
        m = X.shape[0]
        curve = []

        def record(epoch, logs):  # θ is this iteration's when callbacks run
            curve.append(self._batch_loss(net, logs["loss"], alpha, m))
            if self.verbose:
                print(f"Iteration {epoch + 1}, loss = {curve[-1]:.8f}")

        history = net.fit(X, Y, optimizer=LBFGS(maxiter=self.max_iter, tol=float(self.tol),
                                                maxfun=self.max_fun),
                          epochs=self.max_iter, l2=alpha, progress=False, callbacks=[record])
        self.n_iter_ = len(history)
        self.loss_curve_ = curve
        self.loss_ = self._batch_loss(net, net.cost(X, Y, l2=alpha), alpha, m)
        self.best_loss_ = min(curve + [self.loss_])
        self.validation_scores_ = self.best_validation_score_ = None
        reason = history.stop_reason or ""
        if not reason.upper().startswith("CONVERGENCE"):
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) "
                          f"({reason}). Increase the number of iterations (max_iter) or scale "
                          "the data.", ConvergenceWarning, stacklevel=4)
        self._check_finite()

    def _stochastic_data(self, X, Y, y_labels, incremental):
        """(X, Y, X_val, y_val): the training rows and, with early_stopping, the held-out
        validation rows (scikit-learn's split, drawn after the initialization)."""
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        if not self.early_stopping:
            return X, Y, None, None
        net = self.network_
        stratify = y_labels if (self._stratify and self.n_outputs_ == 1) else None
        X, X_val, Y, _, _, y_val = train_test_split(
            X, Y, y_labels, random_state=self._random_state,
            test_size=self.validation_fraction, stratify=stratify)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase "
                             "'validation_fraction' or the size of your dataset.")
        X, Y = writable_contiguous(X, net.dtype), writable_contiguous(Y, net.dtype)
        return X, Y, writable_contiguous(X_val, net.dtype), y_val

    def _fit_stochastic(self, X, Y, X_val, y_val, incremental):
        net = self.network_
        if not incremental or "_optimizer" not in self.__dict__:
            self._optimizer = self._make_optimizer()
        optimizer = self._optimizer
        early_stopping = self.early_stopping
        n = X.shape[0]
        sample_idx = np.arange(n)
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", stacklevel=4)
            batch_size = int(np.clip(self.batch_size, 1, n))
        alpha = float(self.alpha)
        starts = range(0, n, batch_size)
        sizes = [min(batch_size, n - i) for i in starts]
        Xd, Yd = net._device(X, Y)
        Xs = Ys = None  # the shuffled copies, for the step-by-step path
        fused = True    # the compiled loop over steps (net._run_epoch) until it says no
        losses = np.empty((len(starts), 2))
        # a batch's reported loss is its J, unless a subclass says otherwise (the regressor)
        plain_loss = type(self)._batch_loss is _BaseMLP._batch_loss
        self.n_iter_ = 0
        try:
            for _ in range(self.max_iter):
                if self.shuffle:
                    sample_idx = _shuffled(sample_idx, self._random_state)
                total = 0.0
                done = (net._run_epoch(Xd, Yd, sample_idx, batch_size, optimizer, alpha, losses)
                        if fused else None)
                if done is not None:
                    if plain_loss:
                        for J, mb in zip(losses[:done, 0].tolist(), sizes):
                            total += J * mb
                    else:
                        for j in range(done):  # J with the L2 term of θ before its step
                            total += self._batch_loss(net, losses[j, 0], alpha, sizes[j],
                                                      losses[j, 1]) * sizes[j]
                    if done < len(starts):
                        self._diverged(losses[done, 0])
                else:
                    fused = False
                    if self.shuffle:
                        if Xs is None:
                            Xs, Ys = np.empty_like(X), np.empty_like(Y)
                        np.take(X, sample_idx, axis=0, out=Xs)
                        np.take(Y, sample_idx, axis=0, out=Ys)
                        Xd, Yd = net._device(Xs, Ys)
                    for i in starts:
                        Xb, Yb = Xd[i:i + batch_size], Yd[i:i + batch_size]
                        # the regressor's reported loss needs the penalty of θ before the step
                        penalty = self._step_penalty(net, alpha, Xb.shape[0])
                        J = net._step_device(Xb, Yb, optimizer, alpha)  # no update unless finite
                        if not np.isfinite(J):
                            self._diverged(J)
                        total += self._batch_loss(net, J, alpha, Xb.shape[0], penalty) * Xb.shape[0]
                self.n_iter_ += 1
                self.loss_ = total / n
                self.t_ += n
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                self._update_no_improvement_count(early_stopping, X_val, y_val)
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    optimizer.lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if early_stopping else "Training loss"
                    msg = (f"{what} did not improve more than tol={self.tol:f} for "
                           f"{self.n_iter_no_change} consecutive epochs.")
                    if self._trigger_stopping(optimizer, msg):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                                  "reached and the optimization hasn't converged yet.",
                                  ConvergenceWarning, stacklevel=4)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=4)
        except _Diverged as exc:
            # scikit-learn trains on with non-finite weights until the patience runs out,
            # then restores the best validation epoch: the same end, reached at once
            if not (early_stopping and self._best_theta is not None):
                raise
            warnings.warn(f"{exc.args[0].split(' The input')[0]}; the parameters of the best "
                          "validation epoch were restored.", ConvergenceWarning, stacklevel=4)
        if early_stopping and self._best_theta is not None:
            net.set_flat_params(self._best_theta)
            self._best_theta = None
        self._check_finite()

    def _diverged(self, J):
        raise _Diverged(
            "Solver produced non-finite parameter weights (the loss became "
            f"{J} at epoch {self.n_iter_ + 1}). The input data may contain "
            "large values and need to be preprocessed, or lower "
            "learning_rate_init.")

    def _batch_loss(self, net, J, alpha, m, penalty=None):
        """A batch's cost J as scikit-learn reports it (the regressor averages over outputs;
        penalty: the L2 term of J, when θ has changed since J)."""
        return J

    def _step_penalty(self, net, alpha, m):
        """The L2 term that _batch_loss will need, computed before a step changes θ."""
        return None

    def _trigger_stopping(self, optimizer, msg):
        """scikit-learn's trigger_stopping: adaptive sgd divides the step by 5 instead."""
        if self.solver == "sgd" and self.learning_rate == "adaptive":
            if optimizer.lr > 1e-6:
                optimizer.lr /= 5.0
                if self.verbose:
                    print(msg + f" Setting learning rate to {optimizer.lr:f}")
                return False
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        if self.verbose:
            print(msg + " Stopping.")
        return True

    def _update_no_improvement_count(self, early_stopping, X_val, y_val):
        if early_stopping:
            score = self._score_validation(X_val, y_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_theta = self.network_.get_flat_params()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    _best_theta = None

    def _score_validation(self, X_val, y_val):
        try:
            y_pred = self._predict(X_val, check_input=False)
        except ValueError:  # the outputs overflowed: no score (scikit-learn: NaN)
            return np.nan
        if np.issubdtype(np.asarray(y_pred).dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        with np.errstate(over="ignore", invalid="ignore"):  # huge predictions: a -inf / NaN score
            return self._score_function(y_val, y_pred)

    def _check_finite(self):
        if not np.isfinite(self.network_.get_flat_params()).all():
            raise ValueError("Solver produced non-finite parameter weights. The input data may "
                             "contain large values and need to be preprocessed.")

    # ------------------------------------------------------------------ predict
    def _forward(self, X, check_input=True):
        """The output activations.  check_input=False: X is already a dense array of the
        network's dtype (the held-out rows of early stopping; validating them again would
        warn about feature names, which a split array has lost, as scikit-learn avoids)."""
        check_is_fitted(self)
        net = self._follow_params()
        if check_input:
            X = _dense(_validate_data(self, X, accept_sparse=True, reset=False, dtype=net.dtype))
        return net.forward(X)

    def fit(self, X, y):
        """Fit the model to data matrix X and target(s) y (sample weights: not supported).

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (classification; a 0/1 indicator matrix for multi-label) or real
            targets (regression).

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False)

    def _partial_fit_check(self):
        if self.solver not in _STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {}


def _dense(X):
    return X.toarray() if hasattr(X, "toarray") else X


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier``, on fastnn.

    Optimizes the log-loss with L-BFGS, SGD or Adam.  Binary: one logistic output;
    multi-class: softmax; multi-label (y an (n_samples, n_classes) 0/1 indicator matrix):
    one logistic output per label with the summed binary cross-entropy.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer; ``()`` is logistic regression (no hidden layer).
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Hidden-layer activation (fastnn: identity, sigmoid, tanh, relu).
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
    alpha : float, default=1e-4
        L2 penalty: ``0.5 * alpha * ||W||² / n_samples_in_batch`` is added to each batch's
        loss (weights only) — scikit-learn's scaling, which is fastnn's ``l2`` exactly.
    batch_size : int or 'auto', default='auto'
        Mini-batch size for sgd/adam; 'auto' is ``min(200, n_samples)`` as in scikit-learn.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Step-size schedule for solver='sgd' (ignored by adam, as in scikit-learn).
        invscaling: ``learning_rate_init / (t + 1) ** power_t`` after each epoch, t the
        number of samples seen; adaptive: divide by 5 when the loss stalls.
    learning_rate_init : float, default=1e-3
    power_t : float, default=0.5
    max_iter : int, default=200
        Epochs for sgd/adam; iterations for lbfgs.
    shuffle : bool, default=True
        Shuffle the samples every epoch (sgd/adam).
    random_state : int, RandomState instance or None, default=None
        Initialization, shuffling and the early-stopping split, in scikit-learn's order.
    tol : float, default=1e-4
    verbose : bool or int, default=False
        Print the loss after every epoch (iteration, for lbfgs).
    warm_start : bool, default=False
        Continue from the current parameters on the next fit.
    momentum : float, default=0.9
        SGD momentum, in [0, 1) (fastnn does not support momentum=1).
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` (stratified for binary targets, as scikit-learn)
        and stop when its accuracy stops improving by ``tol`` for ``n_iter_no_change``
        epochs; the best epoch's parameters are kept.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's parameters.
    n_iter_no_change : int, default=10
    max_fun : int, default=15000
        Most cost evaluations for lbfgs.
    backend : {'cpu', 'reference', 'cuda'}, default='cpu'
        fastnn's kernels backend.
    dtype : {'float64', 'float32'}, default='float64'
        fastnn's compute dtype (float64 by default, to agree with scikit-learn to rounding).

    Attributes
    ----------
    classes_, coefs_, intercepts_, loss_, loss_curve_, best_loss_, validation_scores_,
    best_validation_score_, n_iter_, t_, n_layers_, n_outputs_, out_activation_,
    n_features_in_, feature_names_in_ : as in scikit-learn.
    network_ : fastnn.Network
        The trained network (``network_.save(path)`` to keep it as a fastnn model file).
    """

    _stratify = True

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 backend=DEFAULT_BACKEND, dtype="float64"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.dtype = dtype

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_data(self, X, y, accept_sparse=True, multi_output=True,
                              dtype=check_dtype(self.dtype), reset=reset)
        X = _dense(X)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        labels = _integer_labels(y)
        if labels is None:
            check_classification_targets(y)
        if "classes_" not in self.__dict__ or (not self.warm_start and not incremental):
            if labels is None:
                self._label_binarizer = LabelBinarizer()
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer = _fitted_binarizer(*labels)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y) if labels is None else labels[1]
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same "
                                     "classes as in the previous call to fit. Previously got "
                                     f"{self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        dtype = check_dtype(self.dtype)
        Y = _indicators(self._label_binarizer, y, dtype)
        if Y is None:
            Y = writable_contiguous(self._label_binarizer.transform(y), dtype)
        return writable_contiguous(X, dtype), Y, y

    def _output_for(self, Y):
        if self._label_binarizer.y_type_ == "multiclass":
            return "softmax", "cross_entropy"
        return "sigmoid", "bce"

    def _score_function(self, y_true, y_pred):
        return accuracy_score(y_true, y_pred)

    def _predict(self, X, check_input=True):
        A = self._forward(X, check_input)
        if self.n_outputs_ == 1:
            A = A.ravel()
        return self._label_binarizer.inverse_transform(A)

    def predict(self, X):
        """Predicted class labels (n_samples,), or a 0/1 indicator matrix for multi-label."""
        check_is_fitted(self)
        return self._predict(X)

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), columns ordered as ``classes_``.

        Binary: ``[1 - p, p]``; multi-label: each label's independent probability.
        """
        check_is_fitted(self)
        A = self._forward(X)
        if self.n_outputs_ == 1:
            p = A.ravel()
            return np.vstack([1 - p, p]).T
        return A

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        p = self.predict_proba(X)
        return np.log(p, out=p)

    @available_if(lambda est: est._partial_fit_check())
    def partial_fit(self, X, y, classes=None):
        """One epoch of sgd/adam over (X, y), keeping the optimizer's state between calls.

        classes : every class over all calls (required on the first call, as in
        scikit-learn, multi-label indicator y included).  The third positional argument:
        scikit-learn >= 1.7 puts ``sample_weight`` there, so pass ``classes=`` by name.
        """
        with self._unchanged_on_error() as saved:
            if _check_partial_fit_first_call(self, classes):
                self._label_binarizer = LabelBinarizer()
                if type_of_target(y).startswith("multilabel"):
                    self._label_binarizer.fit(y)
                else:
                    self._label_binarizer.fit(classes)
        return self._fit(X, y, incremental=True, saved=saved)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multilabel": True}


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor``, on fastnn.

    Identity output, squared error ``((y - p)**2).mean() / 2`` (+ the L2 term), with
    L-BFGS, SGD or Adam.  Parameters and attributes are MLPClassifier's (see there), plus:

    loss : {'squared_error', 'absolute_error'}, default='squared_error'
        'squared_error' as in scikit-learn; 'absolute_error' is fastnn's MAE (an extra).
        With several outputs ``loss_`` averages either over the outputs.
        scikit-learn's 'poisson' is not supported.

    Multi-output y (n_samples, n_outputs) is supported; the gradient is scikit-learn's
    (the squared error summed over outputs), and the reported loss averages over outputs
    as scikit-learn's does.
    """

    _stratify = False

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 backend=DEFAULT_BACKEND, dtype="float64"):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.dtype = dtype

    def _check_params(self):
        if self.loss == "poisson":
            raise ValueError("loss='poisson' is not supported by fastnn (no exponential "
                             "output); use 'squared_error' or 'absolute_error'")
        if self.loss not in ("squared_error", "absolute_error"):
            raise ValueError("The 'loss' parameter of MLPRegressor must be 'squared_error' or "
                             f"'absolute_error'; got {self.loss!r}.")
        return super()._check_params()

    def _validate_input(self, X, y, incremental, reset):
        dtype = check_dtype(self.dtype)
        X, y = _validate_data(self, X, y, accept_sparse=True, multi_output=True,
                              y_numeric=True, dtype=dtype, reset=reset)
        X = _dense(X)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        Y = writable_contiguous(Y, dtype)
        if not np.isfinite(Y).all():
            raise ValueError(f"y does not fit in {dtype.name} (overflow to Inf)")
        return writable_contiguous(X, dtype), Y, y

    def _output_for(self, Y):
        return "identity", "mse" if self.loss == "squared_error" else "mae"

    def _batch_loss(self, net, J, alpha, m, penalty=None):
        k = self.n_outputs_
        if k == 1:
            return J
        if penalty is None:
            penalty = net._penalty(alpha, m) if alpha else 0.0
        return (J - penalty) / k + penalty

    def _step_penalty(self, net, alpha, m):
        if self.n_outputs_ == 1 or not alpha:
            return None
        return net._penalty(alpha, m)

    def _score_function(self, y_true, y_pred):
        return r2_score(y_true, y_pred)

    def _predict(self, X, check_input=True):
        A = self._forward(X, check_input)
        return A.ravel() if A.shape[1] == 1 else A

    def predict(self, X):
        """Predicted values (n_samples,) or (n_samples, n_outputs)."""
        check_is_fitted(self)
        return self._predict(X)

    @available_if(lambda est: est._partial_fit_check())
    def partial_fit(self, X, y):
        """One epoch of sgd/adam over (X, y), keeping the optimizer's state between calls."""
        return self._fit(X, y, incremental=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multioutput": True}
