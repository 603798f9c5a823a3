"""Gradient checking (the seeds' debugging step before trusting backpropagation).

For every parameter θᵢ, the two-sided difference quotient
    (J(θ + ε eᵢ) - J(θ - ε eᵢ)) / (2ε),   ε = 1e-4,
should match backpropagation's dJ/dθᵢ; their relative error
||g_num - g_backprop|| / (||g_num|| + ||g_backprop||) is below 1e-7 in float64 when
backprop is right.  Then turn it off: it costs two cost evaluations per parameter.
"""
import numpy as np

import fastnn as fn

rng = np.random.default_rng(0)
X = rng.standard_normal((20, 5))
Y_labels = rng.integers(0, 3, 20)

net = fn.Network([fn.Dense(6, "tanh"), fn.Dense(4, "sigmoid"), fn.Dense(3, "softmax")],
                 n_inputs=5, loss="cross_entropy", dtype="float64", seed=0)
print(f"network 5-6-4-3: {net.count_params()} parameters, float64")

# by hand, for one weight, as in the notes
theta = net.get_flat_params()
eps, i = 1e-4, 7
plus, minus = theta.copy(), theta.copy()
plus[i] += eps
minus[i] -= eps
net.set_flat_params(plus)
J_plus = net.cost(X, Y_labels, l2=0.5)
net.set_flat_params(minus)
J_minus = net.cost(X, Y_labels, l2=0.5)
net.set_flat_params(theta)
numeric = (J_plus - J_minus) / (2 * eps)
backprop = np.concatenate([np.concatenate([dW.ravel(), db])
                           for dW, db in net.gradients(X, Y_labels, l2=0.5)])[i]
print(f"θ[{i}]: numerical {numeric:.10f}   backprop {backprop:.10f}")

# every parameter, with fastnn.gradcheck, for each loss / output pair
for loss, out, Y in [("cross_entropy", "softmax", Y_labels),
                     ("bce", "sigmoid", np.eye(3)[Y_labels]),
                     ("mse", "identity", rng.standard_normal((20, 3)))]:
    net = fn.Network([fn.Dense(6, "tanh"), fn.Dense(4, "relu"), fn.Dense(3, out)],
                     n_inputs=5, loss=loss, dtype="float64", seed=1)
    err = fn.gradcheck(net, X, Y, l2=0.5, eps=1e-4)
    print(f"{loss:13s} ({out} output): relative error {err:.2e}  "
          f"{'OK' if err < 1e-7 else 'MISMATCH'}")
    assert err < 1e-7

# what a bug looks like: a gradient off by a factor in one layer
net = fn.Network([fn.Dense(6, "tanh"), fn.Dense(3, "softmax")], n_inputs=5, dtype="float64",
                 seed=2)
good = np.concatenate([np.concatenate([dW.ravel(), db])
                       for dW, db in net.gradients(X, Y_labels)])
buggy = good.copy()
buggy[:30] *= 2.0  # e.g. a forgotten 1/2 on the first layer's dW
numeric = fn.numerical_gradient(net, X, Y_labels, eps=1e-4)
for name, g in (("correct", good), ("buggy", buggy)):
    err = np.linalg.norm(numeric - g) / (np.linalg.norm(numeric) + np.linalg.norm(g))
    print(f"{name:8s} backprop: relative error {err:.2e}")
