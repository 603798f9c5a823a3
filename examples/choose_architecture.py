"""Choosing an architecture by validation accuracy over a small grid.

The seeds: nobody knows the right number of layers and units in advance -- train several
architectures, compare their accuracy on held-out data, keep the best.  With fastnn's
scikit-learn estimator that is scikit-learn's own GridSearchCV (here 3-fold
cross-validation on the training set), and the chosen model is scored once on a test set
it never saw.
"""
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split

from fastnn.sklearn import MLPClassifier

warnings.simplefilter("ignore", ConvergenceWarning)  # short training runs, on purpose
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.3,
                                                    random_state=0, stratify=y)

grid = {"hidden_layer_sizes": [(4,), (16,), (64,), (32, 32)]}
search = GridSearchCV(MLPClassifier(max_iter=25, learning_rate_init=0.01, random_state=0,
                                    dtype="float32"), grid, cv=3)
search.fit(X_train, y_train)

results = search.cv_results_
print(f"{'hidden layers':16s} {'params':>7s}  validation accuracy (3-fold mean ± std)")
for sizes, mean, std in zip(results["param_hidden_layer_sizes"], results["mean_test_score"],
                            results["std_test_score"]):
    units = [64, *sizes, 10]
    n_params = sum(a * b + b for a, b in zip(units[:-1], units[1:]))
    print(f"{str(sizes):16s} {n_params:7d}  {mean:.4f} ± {std:.4f}")
best = search.best_params_["hidden_layer_sizes"]
print(f"\nchosen: hidden_layer_sizes={best} (validation accuracy {search.best_score_:.4f})")
test = search.score(X_test, y_test)
print(f"its accuracy on the untouched test set: {test:.4f}")
assert best != (4,) and test > 0.9
assert np.argmax(results["mean_test_score"]) == search.best_index_
