"""A training curve drawn by History.plot(): loss, validation loss and validation accuracy
per epoch (this makes docs/training_curve.png, the picture in the README).

    python examples/plot_training_curve.py [OUTPUT.png]

Needs matplotlib (pip install 'fastnn[plot]').
"""
import os
import sys

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastnn as fn

here = os.path.dirname(os.path.abspath(__file__))
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "docs",
                                                          "training_curve.png")
X, y = load_digits(return_X_y=True)
X_train, X_val, y_train, y_val = train_test_split(X / 16.0, y, test_size=0.3, random_state=0,
                                                  stratify=y)
net = fn.Network([fn.Dense(32, "relu"), fn.Dense(10, "softmax")], n_inputs=64, seed=0)
history = net.fit(X_train, y_train, optimizer=fn.Adam(lr=1e-3), epochs=40, batch_size=32,
                  validation_data=(X_val, y_val), progress=False)
fig = history.plot(path)
ax, ax_accuracy = fig.axes
ax.set_title("fastnn: digits, 64-32-10 ReLU/softmax, Adam")
lines = ax.get_lines() + ax_accuracy.get_lines()
ax.legend(lines, [line.get_label() for line in lines], loc="center right")  # off the curves
fig.savefig(path, dpi=100)
print(f"{len(history)} epochs: loss {history.loss[0]:.3f} -> {history.loss[-1]:.3f}, "
      f"val_accuracy {history.val_accuracy[0]:.3f} -> {history.val_accuracy[-1]:.3f}")
print(f"saved the training curve to {os.path.normpath(path)}")
