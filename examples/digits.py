"""Handwritten digits (scikit-learn's 8x8 digits): a softmax classifier, two ways.

The seeds' digit recognizer has one output unit per class; fastnn uses a softmax output
with the cross-entropy loss.  First with the Network API (mini-batch Adam, a validation
set, a progress-free History), then as a drop-in scikit-learn estimator.
"""
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split

import fastnn as fn
from fastnn.sklearn import MLPClassifier

X, y = load_digits(return_X_y=True)
X = X / 16.0  # pixel intensities 0..16 -> 0..1
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                    stratify=y)

net = fn.Network([fn.Dense(64, "relu"), fn.Dense(10, "softmax")], n_inputs=64,
                 loss="cross_entropy", seed=0)
t0 = time.perf_counter()
history = net.fit(X_train, y_train, optimizer=fn.Adam(lr=3e-3), epochs=30, batch_size=32,
                  validation_data=(X_test, y_test), progress=False)
seconds = time.perf_counter() - t0
acc = np.mean(net.predict(X_test) == y_test)
print(f"Network 64-64-10: {len(history)} epochs in {seconds:.2f} s, "
      f"val_accuracy {history.val_accuracy[-1]:.4f}, test accuracy {acc:.4f}")
print("confusion matrix (rows: true digit, columns: predicted):")
print(confusion_matrix(y_test, net.predict(X_test)))
assert acc > 0.95

warnings.simplefilter("ignore", ConvergenceWarning)  # 40 epochs suffice here
t0 = time.perf_counter()
clf = MLPClassifier(hidden_layer_sizes=(64,), learning_rate_init=0.005, max_iter=40,
                    random_state=0)
clf.fit(X_train, y_train)
print(f"\nfastnn.sklearn.MLPClassifier: {clf.n_iter_} epochs in {time.perf_counter() - t0:.2f} s,"
      f" test accuracy {clf.score(X_test, y_test):.4f}")
proba = clf.predict_proba(X_test[:3])
for digit, p in zip(y_test[:3], proba):
    print(f"  a {digit}: P(digit) = {np.round(p, 2)}")
assert clf.score(X_test, y_test) > 0.95
