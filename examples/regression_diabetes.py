"""Regression with a ReLU output and the mean squared error (scikit-learn's diabetes set).

The seeds: for a quantity that cannot be negative (a price, an age), end the network with
a ReLU unit, max(0, z), and train on the squared error J = 1/(2m) Σ (ŷ - y)².  The diabetes
target (disease progression after a year, 25..346) is positive, so the output layer is
Dense(1, "relu"); the target is divided by its training mean so the output starts near
its scale.
"""
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastnn as fn

X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
unit = y_train.mean()  # train on y / mean(y): positive targets of order 1

net = fn.Network([fn.Dense(16, "relu"), fn.Dense(1, "relu")], n_inputs=X.shape[1],
                 loss="mse", seed=0)
net.summary()
history = net.fit(X_train, y_train / unit, optimizer=fn.Adam(lr=3e-3), epochs=150,
                  batch_size=32, l2=1.0, validation_data=(X_test, y_test / unit),
                  progress=False)
pred = net.predict(X_test)[:, 0] * unit
assert (pred >= 0).all()  # a ReLU output is never negative


def r2(y_true, y_pred):
    return 1 - np.sum((y_true - y_pred) ** 2) / np.sum((y_true - y_true.mean()) ** 2)


ridge = Ridge(alpha=1.0).fit(X_train, y_train)
print(f"\ntrained {len(history)} epochs: train J {history.loss[0]:.3f} -> {history.loss[-1]:.3f}")
print(f"test RMSE {np.sqrt(np.mean((pred - y_test) ** 2)):.1f} (target range "
      f"{y.min():.0f}..{y.max():.0f})")
print(f"test R²: fastnn ReLU-output network {r2(y_test, pred):.3f}, "
      f"linear ridge regression {r2(y_test, ridge.predict(X_test)):.3f}")
for yt, yp in list(zip(y_test, pred))[:5]:
    print(f"  true {yt:6.1f}   predicted {yp:6.1f}")
assert r2(y_test, pred) > 0.3
