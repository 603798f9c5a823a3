"""Small data sets for demos and tests: scikit-learn's bundled ones when installed (no
download), otherwise generated with a fixed seed."""
import numpy as np


def digits(test_size=0.3, seed=0):
    """(X_train, X_test, y_train, y_test, name): 8x8 digit images scaled to [0, 1], 10 classes.

    Uses scikit-learn's bundled digits; without scikit-learn, a generated 10-class set of
    the same shape (noisy class prototypes), so the demo still runs.
    """
    try:
        from sklearn.datasets import load_digits
        data = load_digits()
        X, y, name = data.data / 16.0, data.target, "scikit-learn digits (1797 x 64, 10 classes)"
    except ImportError:
        X, y = generated_classes(1797, 64, 10, seed=seed)
        name = "generated digits-like data (1797 x 64, 10 classes; scikit-learn not installed)"
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))
    n_test = int(round(test_size * len(y)))
    test, train = idx[:n_test], idx[n_test:]
    return X[train], X[test], y[train], y[test], name


def generated_classes(m, n, k, seed=0, noise=0.35):
    """m examples of n features in k classes: a random prototype per class plus noise."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((k, n))
    y = rng.integers(0, k, m)
    X = np.clip(prototypes[y] + noise * rng.standard_normal((m, n)), 0, 1)
    return X, y


def xor(m=None):
    """The XOR/XNOR truth table: X (4, 2), y_xor, y_xnor."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y_xor = np.array([0, 1, 1, 0])
    return X, y_xor, 1 - y_xor
