"""Cat / lion / iguana: independent sigmoid outputs (multi-label) vs one softmax output.

The seeds' lecture: to find which of cat, lion, iguana appear in an image, give the network
three sigmoid outputs trained with the summed binary cross-entropy, one yes/no question
per animal; an image with a cat *and* a lion is labelled (1, 1, 0).  A softmax output
instead gives a probability distribution over the three (its outputs sum to 1): right when
each image holds exactly one animal, unable to say "cat and lion".

Generated data: an "image" is 64 features, the sum of a fixed pattern per animal present
plus noise.
"""
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import fastnn as fn
from fastnn.sklearn import MLPClassifier

ANIMALS = ["cat", "lion", "iguana"]
rng = np.random.default_rng(0)
patterns = rng.normal(0.0, 1.0, (3, 64))


def images(Y):
    return Y @ patterns + 0.5 * rng.standard_normal((len(Y), 64))


# multi-label data: each animal present with probability 0.4, independently
Y_multi = (rng.random((3000, 3)) < 0.4).astype(float)
X_multi = images(Y_multi)
# single-label data: exactly one animal per image
y_single = rng.integers(0, 3, 3000)
X_single = images(np.eye(3)[y_single])

sigmoid_net = fn.Network([fn.Dense(32, "relu"), fn.Dense(3, "sigmoid")], n_inputs=64,
                         loss="bce", seed=0)
sigmoid_net.fit(X_multi[:2500], Y_multi[:2500], optimizer=fn.Adam(3e-3), epochs=15,
                progress=False)
softmax_net = fn.Network([fn.Dense(32, "relu"), fn.Dense(3, "softmax")], n_inputs=64,
                         loss="cross_entropy", seed=0)
softmax_net.fit(X_single[:2500], y_single[:2500], optimizer=fn.Adam(3e-3), epochs=15,
                progress=False)

exact = np.mean(np.all(sigmoid_net.predict(X_multi[2500:]) == Y_multi[2500:], axis=1))
single = np.mean(softmax_net.predict(X_single[2500:]) == y_single[2500:])
print(f"sigmoid outputs on multi-label images: every animal right in {exact:.1%} of images")
print(f"softmax output on one-animal images:   the animal right in {single:.1%} of images")
assert exact > 0.9 and single > 0.95

cases = {"cat alone": [1, 0, 0], "cat + lion": [1, 1, 0], "lion + iguana": [0, 1, 1],
         "all three": [1, 1, 1], "no animal": [0, 0, 0]}
X_cases = images(np.array(list(cases.values()), dtype=float))
P_sig, P_soft = sigmoid_net.forward(X_cases), softmax_net.forward(X_cases)


def fmt(v):
    return "(" + ", ".join(f"{x:.2f}" for x in v) + ")"


print(f"\n{'image':14s} {'sigmoid outputs':18s}    {'says':20s} softmax outputs (sum)")
for name, p, q in zip(cases, P_sig, P_soft):
    present = [a for a, v in zip(ANIMALS, p) if v > 0.5] or ["nothing"]
    print(f"{name:14s} {fmt(p):18s} -> {' + '.join(present):20s} {fmt(q)} ({q.sum():.2f})")
assert np.array_equal(P_sig[1] > 0.5, [True, True, False])
print("\nThe sigmoid network answers three independent questions; the softmax network must "
      "share one unit of probability among the animals, so it cannot say 'cat and lion'.")

# the same choice in the scikit-learn-style estimator: a 0/1 indicator matrix is multi-label
warnings.simplefilter("ignore", ConvergenceWarning)  # 30 epochs are plenty here
multi = MLPClassifier((32,), max_iter=30, random_state=0).fit(X_multi, Y_multi.astype(int))
onehot = MLPClassifier((32,), max_iter=30, random_state=0).fit(X_single, y_single)
print(f"\nMLPClassifier on an indicator matrix: out_activation_ = {multi.out_activation_!r}; "
      f"on class labels: {onehot.out_activation_!r}")
