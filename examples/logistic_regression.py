"""Logistic regression is a one-neuron network: ŷ = σ(X w + b), trained on the log-loss.

A fastnn Network with a single Dense(1, "sigmoid") layer and loss="bce" is exactly the
seeds' logistic regression; here it is trained on the breast-cancer set and compared with
scikit-learn's LogisticRegression (the same model and, without a penalty, the same optimum).
"""
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastnn as fn

X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                    stratify=y)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

net = fn.Network([fn.Dense(1, "sigmoid")], n_inputs=X.shape[1], loss="bce", dtype="float64",
                 seed=0)
print(f"one neuron: {net.count_params()} parameters (w: {X.shape[1]}, b: 1)")
l2 = 1.0  # λ: J = mean log-loss + λ/(2m) ||w||², the same as LogisticRegression(C=1/λ)
net.fit(X_train, y_train, optimizer=fn.LBFGS(maxiter=1000, tol=1e-10), l2=l2, progress=False)

(w, b), = net.params
by_hand = 1.0 / (1.0 + np.exp(-(X_test @ w[:, 0] + b[0])))
assert np.allclose(net.forward(X_test)[:, 0], by_hand)
print("forward(X) == sigmoid(X @ w + b): yes")

ref = LogisticRegression(C=1.0 / l2, tol=1e-10, max_iter=5000).fit(X_train, y_train)
acc = np.mean(net.predict(X_test) == y_test)
acc_ref = ref.score(X_test, y_test)
print(f"test accuracy: fastnn one-neuron network {acc:.4f}, "
      f"scikit-learn LogisticRegression {acc_ref:.4f}")
gap = np.max(np.abs(w[:, 0] - ref.coef_[0]))
print(f"largest |w_fastnn - w_sklearn| = {gap:.2e} (same model, same penalty, same optimum)")
assert gap < 1e-3 and abs(acc - acc_ref) < 0.02

# the same model through the scikit-learn-style estimator: no hidden layer
from fastnn.sklearn import MLPClassifier  # noqa: E402

clf = MLPClassifier(hidden_layer_sizes=(), solver="lbfgs", random_state=0).fit(X_train, y_train)
print(f"fastnn.sklearn.MLPClassifier(hidden_layer_sizes=()): test accuracy "
      f"{clf.score(X_test, y_test):.4f}")
