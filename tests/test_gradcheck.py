"""Trust, step one: backprop equals two-sided numerical gradients (float64, reference)."""
import numpy as np
import pytest

import fastnn as fn

HIDDEN = ["sigmoid", "tanh", "relu", "leaky_relu", "identity"]
LOSSES = [("bce", "sigmoid"), ("cross_entropy", "softmax"), ("mse", "identity"),
          ("mae", "identity"), ("mse", "tanh"), ("mae", "sigmoid")]


def problem(loss, m=9, n_in=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n_in))
    if loss == "cross_entropy":
        Y = rng.integers(0, k, m)
    elif loss == "bce":
        Y = (rng.random((m, k)) < 0.5).astype(float)
    else:
        Y = rng.standard_normal((m, k))
    return X, Y


def random_net(hidden, loss, out, backend="reference", seed=0):
    """Two hidden layers of odd sizes; biases random too, so no unit sits exactly on a kink."""
    net = fn.Network([fn.Dense(7, hidden), fn.Dense(5, hidden), fn.Dense(3, out)], n_inputs=5,
                     loss=loss, dtype="float64", backend=backend, seed=seed)
    rng = np.random.default_rng(seed + 100)
    net.set_params([(W, 0.5 * rng.standard_normal(b.shape)) for W, b in net.params])
    return net


@pytest.mark.parametrize("l2", [0.0, 1.0])
@pytest.mark.parametrize("loss,out", LOSSES)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_gradcheck_reference(hidden, loss, out, l2):
    X, Y = problem(loss)
    net = random_net(hidden, loss, out)
    assert fn.gradcheck(net, X, Y, l2=l2, eps=1e-4) < 1e-7


def test_gradcheck_detects_a_wrong_gradient(monkeypatch):
    """The check can fail: a backprop that drops the L2 term is caught."""
    X, Y = problem("bce")
    net = random_net("tanh", "bce", "sigmoid")
    good = fn.gradcheck(net, X, Y, l2=1.0)
    B = net._B
    real = B.accumulate_delta
    monkeypatch.setattr(B, "accumulate_delta",
                        lambda A_prev, dZ, W, l2, dW, db: real(A_prev, dZ, W, 0.0, dW, db))
    assert good < 1e-7 < fn.gradcheck(net, X, Y, l2=1.0)


def test_gradcheck_subset_and_restores_params():
    X, Y = problem("cross_entropy")
    net = random_net("relu", "cross_entropy", "softmax")
    theta = net.get_flat_params()
    assert fn.gradcheck(net, X, Y, l2=0.5, max_params=20) < 1e-7
    np.testing.assert_array_equal(net.get_flat_params(), theta)


def test_numerical_gradient_matches_cost_slope():
    X, Y = problem("mse")
    net = random_net("sigmoid", "mse", "identity")
    g = fn.numerical_gradient(net, X, Y, indices=[0, 5])
    theta = net.get_flat_params()
    theta[0] += 1e-6
    net.set_flat_params(theta)
    up = net.cost(X, Y)
    theta[0] -= 2e-6
    net.set_flat_params(theta)
    down = net.cost(X, Y)
    assert abs((up - down) / 2e-6 - g[0]) < 1e-6


def test_numerical_gradient_of_no_entries_is_empty():
    net = fn.Network([fn.Dense(2, "tanh"), fn.Dense(1, "sigmoid")], n_inputs=3, dtype="float64",
                     seed=0)
    X, y = np.ones((4, 3)), np.array([0, 1, 0, 1])
    assert fn.numerical_gradient(net, X, y, indices=[]).shape == (0,)
