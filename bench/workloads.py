"""The benchmark workloads: networks, batches, data, initial parameters, GEMM flop counts.

One training step = forward + backward + plain SGD update (lr 0.01, no momentum) on one
batch; inference = the forward pass (output activations) on the same batch.

Every peer starts from the same parameters and data, made here with fixed seeds.  Values
are generated in float64, rounded to float32 and stored as float64, so that a float32 run
and a float64 run start from exactly the same numbers.

Imports NumPy only (asv imports this module to discover benchmarks).
"""
from dataclasses import dataclass, field

import numpy as np

LR = 0.01


@dataclass(frozen=True)
class Workload:
    key: str
    name: str
    sizes: tuple          # (n_inputs, units of each layer ...)
    hidden: str           # activation of every hidden layer
    output: str           # output activation: "softmax" or "sigmoid"
    loss: str             # fastnn loss name: "cross_entropy" or "bce"
    batch: int
    dtype: str = "float32"
    l2: float = 0.0
    note: str = ""
    targets: dict = field(default_factory=dict)  # {"best": x, "torch": y} for the step

    @property
    def shapes(self):
        """[(n_in, n_out)] per layer."""
        return list(zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def n_params(self):
        return sum(a * b + b for a, b in self.shapes)

    @property
    def n_classes(self):
        return self.sizes[-1]

    @property
    def spec(self):
        """A one-line description, e.g. '784-256-128-10 relu, softmax CE, batch 256'."""
        loss = {"cross_entropy": "softmax CE", "bce": "sigmoid BCE"}[self.loss]
        if self.loss == "bce" and self.sizes[-1] > 1:
            loss = "summed sigmoid BCE"
        l2 = f", L2 {self.l2:g}" if self.l2 else ""
        return (f"{'-'.join(map(str, self.sizes))} {self.hidden}, {loss}{l2}, "
                f"batch {self.batch}, {self.dtype}")

    def gemms(self, mode="step"):
        """The GEMMs of one step (or one inference) as (what, M, K, N): C(M,N) = A(M,K) B(K,N).

        Per layer: forward Z = A_prev @ W (m, n_in, n_out); for a step also the weight
        gradient dW = A_prev.T @ dZ (n_in, m, n_out) and, except for the first layer, the
        backward-to-input dZ @ W.T (m, n_out, n_in).
        """
        m = self.batch
        out = []
        for i, (n_in, n_out) in enumerate(self.shapes):
            out.append((f"L{i + 1} forward", m, n_in, n_out))
            if mode == "step":
                if i:
                    out.append((f"L{i + 1} backward", m, n_out, n_in))
                out.append((f"L{i + 1} dW", n_in, m, n_out))
        return out

    def flops(self, mode="step"):
        """2*M*N*K summed over the GEMMs of one step (or one inference)."""
        return sum(2 * M * K * N for _, M, K, N in self.gemms(mode))


WORKLOADS = {
    "W1": Workload("W1", "mnist", (784, 256, 128, 10), "relu", "softmax", "cross_entropy", 256,
                   targets={"best": 1.3, "torch": 1.8}),
    "W2": Workload("W2", "catvnoncat", (12288, 20, 7, 5, 1), "relu", "sigmoid", "bce", 209,
                   targets={"best": 1.5}),
    "W3": Workload("W3", "ng-ex4", (400, 25, 10), "sigmoid", "sigmoid", "bce", 5000,
                   dtype="float64", l2=1.0, targets={"best": 1.8},
                   note="multi-label indicator targets (Ng ex4), BCE summed over the 10 outputs"),
    "W4": Workload("W4", "wide", (1024, 1024, 1024, 10), "relu", "softmax", "cross_entropy", 512,
                   targets={"best": 1.0}),
    "W5": Workload("W5", "tiny", (2, 16, 16, 1), "tanh", "sigmoid", "bce", 32,
                   targets={"best": 3.0, "torch": 20.0}),
}

#: inference: best peer / fastnn must reach this on every workload
INFERENCE_TARGET = 1.0


def get(key):
    try:
        return WORKLOADS[key]
    except KeyError:
        raise ValueError(f"unknown workload {key!r}; choose from {', '.join(WORKLOADS)}") from None


def _f32(a):
    """Round to float32, keep as float64 (exact in both precisions)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def _seed(w, salt):
    return 1000 * (list(WORKLOADS).index(w.key) + 1) + salt


def data(w):
    """(X (m, n_0), labels (m,) int64, Y (m, n_L) float64 0/1 targets), deterministic.

    cross_entropy: Y is one-hot of labels.  bce with one output: Y[:, 0] = labels (0/1).
    bce with k > 1 outputs (W3, Ng's ex4): labels 0..k-1 recoded as k indicator columns.
    """
    rng = np.random.default_rng(_seed(w, 1))
    m, n0, k = w.batch, w.sizes[0], w.sizes[-1]
    if w.key == "W4":
        X = rng.standard_normal((m, n0))
    elif w.key == "W5":
        X = rng.uniform(-1.0, 1.0, (m, n0))
    else:
        X = rng.random((m, n0))
    X = _f32(X)
    if w.key == "W5":
        labels = (X[:, 0] * X[:, 1] > 0).astype(np.int64)  # XOR of the signs
    else:
        labels = rng.integers(0, max(k, 2), m)
    if k == 1:
        Y = labels.reshape(m, 1).astype(np.float64)
    else:
        Y = np.zeros((m, k))
        Y[np.arange(m), labels] = 1.0
    return X, labels, Y


def init_params(w):
    """[(W (n_in, n_out), b (n_out,))] float64 arrays exact in float32; deterministic.

    He-normal for relu layers, Glorot-uniform otherwise; small random biases (not zero, so
    that the parameter check covers the bias path too).
    """
    rng = np.random.default_rng(_seed(w, 2))
    params = []
    for i, (n_in, n_out) in enumerate(w.shapes):
        act = w.hidden if i < len(w.shapes) - 1 else w.output
        if act == "relu":
            W = rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)
        else:
            lim = np.sqrt(6.0 / (n_in + n_out))
            W = rng.uniform(-lim, lim, (n_in, n_out))
        b = rng.uniform(-0.1, 0.1, n_out)
        params.append((_f32(W), _f32(b)))
    return params


def parse(spec):
    """'W1,W3' -> [Workload, ...]; None or 'all' -> all of them."""
    if spec is None or spec == "all":
        return list(WORKLOADS.values())
    keys = [s.strip().upper() for s in spec.split(",") if s.strip()]
    return [get(k) for k in keys]


# -------------------------------------------------------------- the sklearn mapping

SKLEARN_ACTIVATIONS = {"relu": "relu", "sigmoid": "logistic", "tanh": "tanh",
                       "identity": "identity"}


def sklearn_mapping(w):
    """(kwargs for sklearn.neural_network.MLPClassifier, note) or (None, why not).

    scikit-learn's MLPClassifier has one activation for every hidden layer, a softmax
    output with cross-entropy (multi-class) or logistic outputs with binary cross-entropy
    summed over the outputs (binary, multi-label), and alpha = the L2 penalty
    alpha/(2m) ΣW² on the weights only (fastnn's l2).  A step is one partial_fit on the
    whole batch with solver='sgd', constant lr, no momentum, no shuffling.
    """
    hidden = SKLEARN_ACTIVATIONS.get(w.hidden)
    if hidden is None:
        return None, f"sklearn has no {w.hidden!r} activation"
    if (w.output, w.loss) == ("softmax", "cross_entropy"):
        if w.n_classes < 3:
            return None, "sklearn uses a logistic output for 2 classes, not a 2-unit softmax"
        out = "softmax output, log-loss (multi-class labels)"
    elif (w.output, w.loss) == ("sigmoid", "bce"):
        out = ("logistic output, binary log-loss" if w.n_classes == 1 else
               "logistic outputs, binary log-loss summed over outputs (multi-label indicator y)")
    else:
        return None, f"sklearn's MLPClassifier cannot express {w.output} + {w.loss}"
    kwargs = dict(hidden_layer_sizes=tuple(w.sizes[1:-1]), activation=hidden, solver="sgd",
                  alpha=float(w.l2), batch_size=w.batch, learning_rate="constant",
                  learning_rate_init=LR, momentum=0.0, nesterovs_momentum=False,
                  shuffle=False, max_iter=1, tol=0.0, n_iter_no_change=10 ** 9,
                  early_stopping=False, random_state=0)
    note = f"partial_fit, {out}" + (f", alpha={w.l2:g}" if w.l2 else "")
    return kwargs, note


# -------------------------------------------------------------- the full-training row

#: scikit-learn's digits, fitted by sklearn.neural_network.MLPClassifier and by
#: fastnn.sklearn.MLPClassifier with these same hyperparameters (fixed epoch count).
DIGITS_FIT = dict(hidden_layer_sizes=(64,), activation="relu", solver="sgd", alpha=1e-4,
                  batch_size=32, learning_rate="constant", learning_rate_init=0.05,
                  momentum=0.9, nesterovs_momentum=True, max_iter=30, tol=0.0,
                  n_iter_no_change=10 ** 9, shuffle=True, early_stopping=False,
                  random_state=0)


#: fastnn.sklearn.MLPClassifier must fit DIGITS_FIT at least this many times faster
FIT_TARGET = 10.0


def digits_split():
    """(X_train, X_test, y_train, y_test): digits / 16, a fixed 70/30 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.3, random_state=0, stratify=y)
