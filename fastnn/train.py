"""The training loop: shuffling, mini-batches, validation, early stopping, progress.

Batch, mini-batch and stochastic gradient descent are one loop with batch_size = m, k, 1.
Each epoch draws a permutation from a seeded generator and gathers X and Y into two
buffers made once per fit, so every mini-batch is a contiguous slice (no copy per step).
"""
import math
import signal
import threading
import time

import numpy as np

from .losses import CLASSIFICATION
from .network import accuracy
from .optim import LBFGS, get_optimizer
from .validation import check_int, check_real


class TrainingDiverged(FloatingPointError):
    """The cost became NaN or Inf.  ``.history`` holds the epochs completed before it; the
    network keeps the last parameters that gave a finite cost."""

    def __init__(self, message, history=None, epoch=None, batch=None):
        super().__init__(message)
        self.history = history
        self.epoch = epoch
        self.batch = batch


class History:
    """Per-epoch records of a fit: ``history["loss"]``, ``["val_loss"]``, ``["val_accuracy"]``.

    loss is the mean training cost over the epoch's batches (L2 term included), weighted by
    batch size; val_loss is the mean loss on validation_data (no L2 term).
    """

    def __init__(self):
        self.history = {"loss": [], "val_loss": [], "val_accuracy": [], "time": []}
        self.epoch = []
        self.best_epoch = None
        self.stopped_early = False
        self.stop_reason = None

    def _record(self, epoch, logs):
        self.epoch.append(epoch)
        for key in self.history:
            if key in logs:
                self.history[key].append(logs[key])

    def __getitem__(self, key):
        return self.history[key]

    @property
    def loss(self):
        return self.history["loss"]

    @property
    def val_loss(self):
        return self.history["val_loss"]

    @property
    def val_accuracy(self):
        return self.history["val_accuracy"]

    def __len__(self):
        return len(self.epoch)

    def __repr__(self):
        last = f", loss={self.loss[-1]:.4g}" if self.loss else ""
        return f"History(epochs={len(self)}{last})"

    def plot(self, path=None, ax=None):
        """Draw loss (and val_loss, val_accuracy) per epoch; save to `path` if given.

        Needs matplotlib (``pip install 'fastnn[plot]'``).  Returns the matplotlib Figure.
        """
        try:
            import matplotlib
            if path is not None and ax is None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install 'fastnn[plot]'") from None
        if not self.epoch:
            raise ValueError("History is empty: nothing was trained")
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 4))
        else:
            fig = ax.figure
        ax.plot(self.epoch, self.loss, label="loss", color="tab:blue")
        if self.val_loss:
            ax.plot(self.epoch[:len(self.val_loss)], self.val_loss, label="val_loss",
                    color="tab:orange")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        handles, labels = ax.get_legend_handles_labels()
        if self.val_accuracy:
            ax2 = ax.twinx()
            ax2.plot(self.epoch[:len(self.val_accuracy)], self.val_accuracy, label="val_accuracy",
                     color="tab:green", linestyle="--")
            ax2.set_ylabel("validation accuracy")
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.legend(handles, labels, loc="best")
        ax.set_title("fastnn training")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=100)
        return fig


def _validation(net, validation_data):
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError("validation_data must be a pair (X_val, Y_val)")
    Xv, Yv = net._XY(validation_data[0], validation_data[1], "validation_data X",
                     "validation_data Y")
    return net._device(Xv, Yv)


def _evaluate(net, val):
    """val_loss (Inf when it overflows: never an improvement) and val_accuracy."""
    Xv, Yv = val
    J, ws = net._cost(Xv, Yv, 0.0)
    logs = {"val_loss": float(J) if math.isfinite(J) else math.inf}
    if net.loss in CLASSIFICATION:
        A = net._B.to_host(ws.A_out)
        logs["val_accuracy"] = accuracy(A, net._B.to_host(Yv), net.loss)
    return logs


def _call_back(callbacks, epoch, logs):
    """Call every callback (each gets its own copy of logs); True if any asked to stop."""
    stops = [bool(cb(epoch, dict(logs))) for cb in callbacks]
    return any(stops)


def _patience(early_stopping):
    if early_stopping is None:
        return None
    if isinstance(early_stopping, (bool, np.bool_)):   # np.True_ as True
        return 10 if early_stopping else None
    return check_int(early_stopping, "early_stopping (patience)", minimum=1)


class _EarlyStop:
    """The patience rule of fit's epochs and of L-BFGS's iterations: the monitored loss
    (val_loss if there is validation data, else loss) must improve on the best by more
    than min_delta at least once every `patience` rounds; the best round's θ is kept (a
    host copy) when restore_best."""

    def __init__(self, patience, min_delta, restore_best, unit):
        self.patience, self.min_delta, self.restore_best, self.unit = (
            patience, min_delta, restore_best, unit)
        self.best, self.wait, self.theta = math.inf, 0, None

    def stop(self, epoch, logs, history, theta):
        """Record round `epoch` (theta(): its θ); True when the patience has run out."""
        if self.patience is None:
            return False
        monitored = logs.get("val_loss", logs["loss"])
        if monitored < self.best - self.min_delta:
            self.best, self.wait, history.best_epoch = monitored, 0, epoch
            if self.restore_best:
                self.theta = theta()
            return False
        self.wait += 1
        if self.wait < self.patience:
            return False
        history.stopped_early = True
        history.stop_reason = (f"no improvement of more than {self.min_delta} in "
                               f"{'val_loss' if 'val_loss' in logs else 'loss'} "
                               f"for {self.patience} {self.unit}")
        return True

    def best_theta(self, history):
        """The best round's θ when it is not the last one's, else None."""
        if self.theta is not None and history.epoch and history.best_epoch != history.epoch[-1]:
            return self.theta
        return None


class _Progress:
    def __init__(self, enabled, total, desc):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="epoch", leave=True, dynamic_ncols=True)

    def update(self, logs):
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "time"},
                                 refresh=False)
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def fit(net, X, Y, optimizer="adam", epochs=None, batch_size=32, l2=0.0, validation_data=None,
        early_stopping=False, progress=True, seed=None, shuffle=True, min_delta=0.0,
        restore_best=True, callbacks=None):
    """Train `net` on (X, Y); returns a History (also kept as ``net.history``).

    optimizer       fn.SGD(...), fn.Adam(...), fn.LBFGS(...) or "sgd" | "adam" | "lbfgs"
    epochs          passes over the data (default 10); L-BFGS: iterations (default its maxiter)
    batch_size      examples per step: m (None) is batch GD, 1 is stochastic GD
    l2              λ: adds l2/(2m) Σ W² to J and (l2/m) W to dW; biases are spared
    validation_data (X_val, Y_val), evaluated after every epoch
    early_stopping  False, True (patience 10) or a patience in epochs: stop when the
                    monitored loss (val_loss if validation_data, else loss) has not improved
                    by more than min_delta for that many epochs
    restore_best    with early stopping, end with the parameters of the best epoch
    progress        show a tqdm progress bar
    seed            seeds the shuffling (default: the network's seed)
    callbacks       callables f(epoch, logs) -> truthy to stop training
    """
    optimizer = get_optimizer(optimizer)
    if epochs is None:
        epochs = optimizer.maxiter if isinstance(optimizer, LBFGS) else 10
    epochs = check_int(epochs, "epochs")
    l2 = check_real(l2, "l2")
    min_delta = check_real(min_delta, "min_delta")
    patience = _patience(early_stopping)
    if seed is not None:
        seed = check_int(seed, "seed", minimum=0)
    for name, flag in (("progress", progress), ("shuffle", shuffle), ("restore_best", restore_best)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool; got {flag!r}")
    if callbacks is None:
        callbacks = []
    elif callable(callbacks) or isinstance(callbacks, (str, bytes)):
        raise TypeError(f"callbacks must be a list of callables f(epoch, logs); got {callbacks!r} "
                        "(wrap a single callback in a list)")
    else:
        try:
            callbacks = list(callbacks)
        except TypeError:
            raise TypeError("callbacks must be a list of callables f(epoch, logs); got "
                            f"{type(callbacks).__name__}") from None
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables f(epoch, logs); got {cb!r}")
    X, Y = net._XY(X, Y)
    m = X.shape[0]
    batch_size = m if batch_size is None else min(check_int(batch_size, "batch_size"), m)
    val = _validation(net, validation_data)
    if val is not None:   # data too large for the dtype: refused before anything trains
        J = net._cost(*val, 0.0)[0]
        if not math.isfinite(J):
            raise net._overflow(f"the validation loss at the initial parameters ({J})",
                                "validation_data X or Y")
    history = History()
    net.history = history
    if isinstance(optimizer, LBFGS):
        return _fit_lbfgs(net, X, Y, optimizer, epochs, l2, val, history, progress, callbacks,
                          _EarlyStop(patience, min_delta, restore_best, "iterations"))

    if seed is not None:
        rng = np.random.default_rng(seed)
    else:   # the network's own generator: each fit goes on with the next permutations
        if net._shuffle_rng is None:
            net._shuffle_rng = np.random.default_rng(net.seed)
        rng = net._shuffle_rng
    starts = range(0, m, batch_size)
    order = np.arange(m)
    # the compiled loop over steps (net._run_epoch) until it says no, then one call a step
    fused = hasattr(net._B, "train_steps")
    Xu, Yu = net._device(X, Y) if fused else (None, None)
    losses = np.empty((len(starts), 2))
    copies = []  # the buffers of the shuffled (X, Y), made when first needed
    early = _EarlyStop(patience, min_delta, restore_best, "epochs")
    bar = _Progress(progress, epochs, "fit")
    t0 = time.perf_counter()
    # θ and the optimizer state at the start of the epoch (host copies): the replay point
    # if an update overflows θ (see _diverged); checked finite at the end of every epoch
    snapshot = _snapshot(net)
    try:
        with _DeferredInterrupt() as interrupt:
            for epoch in range(epochs):
                perm = rng.permutation(m) if shuffle else order
                shuffled = []  # the epoch's shuffled (Xd, Yd), made when first needed

                def batches(perm=perm, shuffled=shuffled):
                    if not shuffled:
                        Xs, Ys = X, Y
                        if shuffle:
                            if not copies:
                                copies.append((np.empty_like(X), np.empty_like(Y)))
                            Xs, Ys = copies[0]
                            np.take(X, perm, axis=0, out=Xs)
                            np.take(Y, perm, axis=0, out=Ys)
                        shuffled.append(net._device(Xs, Ys))
                    return shuffled[0]

                def replay(steps):
                    """Re-run the epoch's first `steps` steps from its start; stop before
                    the first update that makes θ non-finite and return its index."""
                    Xd, Yd = batches()
                    _restore(net, snapshot)
                    for j, i in enumerate(starts[:steps]):
                        before = _snapshot(net)
                        net._step_device(Xd[i:i + batch_size], Yd[i:i + batch_size],
                                         optimizer, l2)
                        if not np.isfinite(net.get_flat_params()).all():
                            _restore(net, before)
                            return j
                    return None

                total = 0.0
                # Ctrl-C takes effect between the compiled loop's calls (interrupt.check)
                done = (net._run_epoch(Xu, Yu, perm, batch_size, optimizer, l2, losses,
                                       between=interrupt.check) if fused else None)
                if done is not None:
                    for j in range(done):
                        total += losses[j, 0] * min(batch_size, m - starts[j])
                    if done < len(starts):
                        _diverged(net, history, epoch, done, losses[done, 0], replay)
                fused = done is not None
                for k in range(len(starts) if fused else 0, len(starts)):
                    interrupt.check()  # Ctrl-C takes effect here, between whole steps
                    i = starts[k]
                    Xd, Yd = batches()
                    Xb, Yb = Xd[i:i + batch_size], Yd[i:i + batch_size]
                    J = net._step_device(Xb, Yb, optimizer, l2)  # no update if J is not finite
                    if not math.isfinite(J):
                        _diverged(net, history, epoch, k, J, replay)
                    total += J * Xb.shape[0]
                end = _snapshot(net)
                if not np.isfinite(end[0]).all():  # the epoch's last update overflowed θ
                    _diverged(net, history, epoch, len(starts), None, replay)
                logs = {"loss": float(total / m)}
                if val is not None:
                    logs.update(_evaluate(net, val))
                logs["time"] = time.perf_counter() - t0
                history._record(epoch, logs)
                bar.update(logs)
                stop = _call_back(callbacks, epoch, logs)
                stop = early.stop(epoch, logs, history, net.get_flat_params) or stop
                if stop:
                    break
                # the next epoch's replay point: θ and the state as a callback left them
                snapshot = _snapshot(net) if callbacks else end
    finally:
        bar.close()
    best_theta = early.best_theta(history)
    if best_theta is not None:
        net.set_flat_params(best_theta)
    return history


def _snapshot(net):
    """Host copies of θ and of the optimizer's state, to restore with _restore."""
    B, state = net._B, net._opt_state
    if state is not None:
        state = {k: (v if isinstance(v, (int, float)) else B.to_host(v)) for k, v in state.items()}
    return net.get_flat_params(), net._opt, state


def _restore(net, snapshot):
    theta, opt, state = snapshot
    net._write_theta(theta)
    B = net._B
    net._opt = opt
    net._opt_state = None if state is None else {
        k: (v if isinstance(v, (int, float)) else B.to_device(v)) for k, v in state.items()}


def _diverged(net, history, epoch, batch, J, replay):
    """Stop with a clear error, the network holding its last finite parameters.

    J is the non-finite cost at step `batch` of the epoch, computed from the current θ
    (no update was applied): when θ is finite it is kept.  When θ itself is not finite
    (or J is None: the end-of-epoch check found θ non-finite after `batch` steps), one of
    the epoch's updates overflowed it (a saturating activation can keep the cost finite
    for a while).  θ and the optimizer state go back to the epoch's start and its steps
    are replayed (training is deterministic) up to just before the first update that
    overflows: those are the last finite parameters, and that step is the one named.
    """
    if J is not None and np.isfinite(net.get_flat_params()).all():
        reason = f"the cost is {J}"
    else:
        reason = "the parameter update overflowed to Inf/NaN"
        bad = replay(batch)
        if bad is None:  # pragma: no cover - not reproduced: keep the epoch's start
            replay(0)
            bad = max(batch - 1, 0)
        batch = bad
    raise TrainingDiverged(
        f"training diverged at epoch {epoch} (0-based), batch {batch}: {reason}. "
        "Lower the learning rate, scale the inputs, or add l2. The network keeps its last "
        "finite parameters; the error's .history holds the completed epochs.",
        history=history, epoch=epoch, batch=batch)


class _DeferredInterrupt:
    """Inside fit, a Ctrl-C (SIGINT) takes effect between training steps (between calls of
    a backend's compiled loop over steps), so an interrupted fit leaves θ and the optimizer
    state as the last completed step left them.  A second Ctrl-C interrupts at once (once
    the running compiled call returns).  Active only in the main thread, and only when
    SIGINT has Python's default handler (anything else is left alone)."""

    def __enter__(self):
        self.pending = False
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                    self.previous = signal.signal(signal.SIGINT, self._handler)
            except (ValueError, OSError):  # pragma: no cover - embedded interpreters
                self.previous = None
        return self

    def _handler(self, signum, frame):
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True

    def check(self):
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __exit__(self, exc_type, exc, tb):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if exc_type is None:
            self.check()
        return False


def _fit_lbfgs(net, X, Y, optimizer, epochs, l2, val, history, progress, callbacks,
               early=None):
    """L-BFGS-B over the unrolled θ (float64 for scipy), full batch; one History row per
    iteration.  Early stopping counts iterations as fit counts epochs."""
    from scipy.optimize import minimize

    maxiter = epochs
    Xd, Yd = net._device(X, Y)
    B = net._B
    theta0 = net.get_flat_params()
    # last_finite: the last evaluated θ with a finite cost; accepted: the last iterate
    # L-BFGS accepted (θ goes back to it if fit is interrupted mid line search)
    state = {"last_finite": None, "accepted": theta0, "first_cost": None}
    early = early or _EarlyStop(None, 0.0, False, "iterations")
    interrupt = _DeferredInterrupt()

    def fun(theta):
        interrupt.check()
        net._write_theta(theta)
        J = net._cost_and_grad(Xd, Yd, l2)
        if state["first_cost"] is None:
            state["first_cost"] = J
        grad = B.to_host(net._grad).astype(np.float64)
        if not (math.isfinite(J) and np.isfinite(grad).all()):
            return math.inf, np.zeros_like(theta)
        state["last_finite"] = theta.copy()
        return J, grad

    bar = _Progress(progress, maxiter, "fit (L-BFGS)")
    t0 = time.perf_counter()

    def callback(intermediate_result):
        epoch = len(history.epoch)
        net._write_theta(intermediate_result.x)
        state["accepted"] = intermediate_result.x.copy()
        logs = {"loss": float(intermediate_result.fun)}
        if val is not None:
            logs.update(_evaluate(net, val))
        logs["time"] = time.perf_counter() - t0
        history._record(epoch, logs)
        bar.update(logs)
        stop = _call_back(callbacks, epoch, logs)
        stop = early.stop(epoch, logs, history, intermediate_result.x.copy) or stop
        if stop:
            raise StopIteration

    try:
        with interrupt:
            result = minimize(fun, theta0.astype(np.float64), jac=True,
                              method="L-BFGS-B", callback=callback,
                              options={"maxiter": maxiter, "maxfun": optimizer.maxfun,
                                       "gtol": optimizer.tol})
        theta = result.x
        if not history.stopped_early:
            history.stop_reason = str(result.message)
    except BaseException:  # KeyboardInterrupt, a callback's error: θ of the last iterate
        net._write_theta(state["accepted"])
        raise
    finally:
        bar.close()
    if state["last_finite"] is None:  # not one finite cost: θ0 itself overflows
        net._write_theta(theta0)
        raise TrainingDiverged(
            f"training diverged at epoch 0 (0-based), batch 0: the cost is "
            f"{state['first_cost']}. Scale the inputs, or add l2. The network keeps its "
            "parameters.", history=history, epoch=0, batch=0)
    if not (np.all(np.isfinite(theta)) and np.isfinite(theta.astype(net.dtype)).all()):
        theta = state["last_finite"]  # (finite in float64 is not enough for float32)
    best_theta = early.best_theta(history)
    if best_theta is not None:
        theta = best_theta
    net.set_flat_params(theta)
    net._opt, net._opt_state = optimizer, None   # net.optimizer: the last fit's
    return history
