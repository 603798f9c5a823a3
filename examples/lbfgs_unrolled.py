"""L-BFGS over the unrolled parameter vector (the seeds' fminunc with thetaVec).

Ng's notes unroll Θ1, Θ2 into one long vector, thetaVec = [Θ1(:); Θ2(:)], hand an
advanced optimizer a function returning the cost and the unrolled gradient, and reshape
the result back.  fastnn keeps its parameters unrolled already: θ = [W1.ravel(), b1,
W2.ravel(), b2] (get_flat_params / set_flat_params), so scipy's L-BFGS can drive it
directly -- which is what ``net.fit(optimizer="lbfgs")`` does for you.
"""
import numpy as np
from scipy.optimize import minimize
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastnn as fn

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.3,
                                                    random_state=0, stratify=y)
Y_train = np.eye(10)[y_train]  # one-vs-all targets for 10 sigmoid outputs, as in the notes
l2 = 1.0


def make_net():
    return fn.Network([fn.Dense(25, "sigmoid"), fn.Dense(10, "sigmoid")], n_inputs=64,
                      loss="bce", dtype="float64", seed=0)


net = make_net()
theta0 = net.get_flat_params()
shapes = [(W.shape, b.shape) for W, b in net.params]
print(f"unrolled θ: {theta0.size} numbers = "
      + " + ".join(f"W{i + 1}{w} + b{i + 1}{b}" for i, (w, b) in enumerate(shapes)))


def unroll(pairs):
    return np.concatenate([np.concatenate([a.ravel(), c.ravel()]) for a, c in pairs])


def cost_function(theta):
    """J(θ) and dJ/dθ, both for the unrolled vector (the seeds' costFunction)."""
    net.set_flat_params(theta)
    return net.cost(X_train, Y_train, l2=l2), unroll(net.gradients(X_train, Y_train, l2=l2))


# unrolling is lossless: reshape θ back into the matrices
W1 = theta0[:64 * 25].reshape(64, 25)
assert np.array_equal(W1, net.params[0][0])

J0 = cost_function(theta0)[0]
result = minimize(cost_function, theta0, jac=True, method="L-BFGS-B",
                  options={"maxiter": 40})
net.set_flat_params(result.x)
acc = np.mean(net.predict_proba(X_test).argmax(axis=1) == y_test)
print(f"scipy L-BFGS-B on cost_function: J {J0:.4f} -> {result.fun:.4f} in {result.nit} "
      f"iterations ({result.nfev} cost evaluations); test accuracy {acc:.4f}")

auto = make_net()
history = auto.fit(X_train, Y_train, optimizer=fn.LBFGS(maxiter=40), l2=l2, progress=False)
acc_auto = np.mean(auto.predict_proba(X_test).argmax(axis=1) == y_test)
print(f"net.fit(optimizer=LBFGS(maxiter=40)): J -> {history.loss[-1]:.4f} in "
      f"{len(history)} iterations; test accuracy {acc_auto:.4f}")
assert abs(history.loss[-1] - result.fun) < 1e-6 * max(1.0, result.fun)
assert acc > 0.9
