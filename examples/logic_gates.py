"""The seeds' logic-gate networks, with their hand-set weights (no training).

Ng's notes write one sigmoid unit as h(x) = g(Θ₀ + Θ₁x₁ + Θ₂x₂):
    AND = g(-30 + 20x₁ + 20x₂)     OR  = g(-10 + 20x₁ + 20x₂)
    NOR = g( 10 - 20x₁ - 20x₂)     NOT = g( 10 - 20x₁)
and XNOR as a two-layer network: a₁ = AND(x), a₂ = NOR(x), h = OR(a₁, a₂).

fastnn puts examples in rows, so a layer's W is Θ[:, 1:].T and its b is Θ[:, 0].
"""
import numpy as np

import fastnn as fn

X2 = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
X1 = np.array([[0], [1]], dtype=float)


def from_theta(theta):
    """(W, b) in fastnn's layout from the seeds' Θ (one row per unit, bias first)."""
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    return theta[:, 1:].T, theta[:, 0]


def one_unit(theta, n_inputs):
    net = fn.Network([fn.Dense(1, "sigmoid")], n_inputs=n_inputs, loss="bce", dtype="float64")
    net.set_params([from_theta(theta)])
    return net


def show(name, net, X, expected):
    out = net.forward(X)[:, 0]
    print(f"\n{name}")
    for x, h in zip(X, out):
        print(f"  x = {x.astype(int)}  h(x) = {h:.5f}  -> {int(h > 0.5)}")
    assert np.array_equal(net.predict(X), expected), name
    return out


show("AND = g(-30 + 20 x1 + 20 x2)", one_unit([-30, 20, 20], 2), X2, [0, 0, 0, 1])
show("OR  = g(-10 + 20 x1 + 20 x2)", one_unit([-10, 20, 20], 2), X2, [0, 1, 1, 1])
show("NOR = g(10 - 20 x1 - 20 x2)", one_unit([10, -20, -20], 2), X2, [1, 0, 0, 0])
show("NOT = g(10 - 20 x1)", one_unit([10, -20], 1), X1, [1, 0])

# XNOR: hidden layer = [AND, NOR], output = OR of the two
xnor = fn.Network([fn.Dense(2, "sigmoid"), fn.Dense(1, "sigmoid")], n_inputs=2, loss="bce",
                  dtype="float64")
xnor.set_params([from_theta([[-30, 20, 20], [10, -20, -20]]), from_theta([-10, 20, 20])])
hidden = fn.Network([fn.Dense(2, "sigmoid")], n_inputs=2, dtype="float64", loss="bce")
hidden.set_params([xnor.params[0]])
print("\nXNOR = OR(AND(x1, x2), NOR(x1, x2))")
print("  x1 x2 | a1=AND  a2=NOR | h = XNOR")
for x, (a1, a2), h in zip(X2, hidden.forward(X2), xnor.forward(X2)[:, 0]):
    print(f"   {int(x[0])}  {int(x[1])} |  {a1:.3f}   {a2:.3f} | {h:.5f} -> {int(h > 0.5)}")
assert np.array_equal(xnor.predict(X2), [1, 0, 0, 1])
xnor.summary()
print("\nall gates reproduce their truth tables")
