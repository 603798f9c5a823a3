"""Network: a stack of Dense layers and a loss, over one kernels backend.

Forward propagation, for l = 1..L (rows are examples):
    Z[l] = A[l-1] @ W[l] + b[l],   A[l] = g[l](Z[l]),   A[0] = X
Backpropagation (the seeds' δ recurrence, delta accumulation and D = Δ/m + λΘ):
    dZ[L] = (A[L] - Y) / m                       (fused with the loss: ``loss_grad``)
    dW[l] = A[l-1].T @ dZ[l] + (l2/m) W[l],  db[l] = dZ[l].sum(0)
    dZ[l-1] = (dZ[l] @ W[l].T) * g'[l-1](A[l-1])
Cost:
    J = mean loss + l2/(2m) Σ_l Σ W[l]²          (biases are never regularized)

All parameters live in one unrolled vector θ = [W1.ravel(), b1, W2.ravel(), b2, ...]
(the seeds' unrolling, for L-BFGS), and each (W, b) is a view into it; gradients likewise.
Activation and delta buffers form a workspace per batch size, reused across steps, so a
training step allocates nothing once its workspace exists.
"""
import copy
import math
import warnings
from collections import OrderedDict
from threading import get_ident, local

import numpy as np

from . import kernels
from .backend import DEFAULT_BACKEND, available_backends, get_backend
from .layers import Dense
from .losses import CLASSIFICATION, canonical, check_output_activation, prepare_targets
from .optim import get_optimizer
from .validation import as_features, check_dtype, check_int, check_real

#: workspaces kept per network (batch sizes in use: the batch, the last partial batch,
#: the validation set and one for inference)
_MAX_WORKSPACES = 4


class Workspace:
    """The buffers of one batch size m: A[l] (m, n_l) per layer (the output layer's holds
    Z), A_out (m, n_L) for the output activations, dZ[l] (m, n_l) per layer; all views
    of one flat buffer ``work``, in that order (the layout a fused ``train_step`` takes).

    fused: whether the backend's one-call ``train_step`` can run a step of this size;
    skinny: whether that step is the backend's skinny one (``train_step_skinny``);
    skinny_forward: whether inference runs the backend's skinny forward;
    gather(): the (m, n_0) and (m, n_L) buffers its ``train_steps`` copies batches into."""

    def __init__(self, B, m, sizes, dtype, hidden):
        self.m = m
        self._B, self._gather, self._ends = B, None, (sizes[0], sizes[-1], dtype)
        widths = list(sizes[1:]) + [sizes[-1]] + list(sizes[1:])
        self.work = B.empty((m * sum(widths),), dtype)
        views, off = [], 0
        for n in widths:
            views.append(self.work[off:off + m * n].reshape(m, n))
            off += m * n
        L = len(sizes) - 1
        self.A, self.A_out, self.dZ = views[:L], views[L], views[L + 1:]
        fits = getattr(B, "train_step_fits", None)
        self.fused = hidden is not None and fits is not None and m > 0 and fits(m, sizes,
                                                                               hidden[0])
        thin = getattr(B, "train_step_skinny", None)
        self.skinny_forward = (hidden is not None and thin is not None and m > 0
                               and thin(m, sizes, dtype))
        self.skinny = self.fused and self.skinny_forward

    def gather(self):
        if self._gather is None:
            n_0, n_L, dtype = self._ends
            B = self._B
            self._gather = (B.empty((self.m, n_0), dtype), B.empty((self.m, n_L), dtype))
        return self._gather


def _unrolled_views(theta, shapes):
    """[(W, b)] views of a flat vector for layer shapes [(n_in, n_out)]."""
    views, off = [], 0
    for n_in, n_out in shapes:
        W = theta[off:off + n_in * n_out].reshape(n_in, n_out)
        off += n_in * n_out
        b = theta[off:off + n_out]
        off += n_out
        views.append((W, b))
    return views


def _fixed(name, doc, key=None):
    """A read-only Network attribute (stored as ``key``, by default ``_<name>``): the
    kernels' shapes, codes and workspaces derive from it when the network is built, so it
    cannot change in place."""

    key = key or "_" + name

    def get(self):
        return self.__dict__[key]

    def refuse(self, value):
        raise AttributeError(f"Network.{name} is fixed when the network is built ({doc}); "
                             f"build a new Network (net.to(backend) moves one to a backend)")

    return property(get, refuse, doc=doc)


class Network:
    """A fully connected network: ``Network([Dense(25, "sigmoid"), Dense(10, "sigmoid")],
    n_inputs=400, loss="bce")``.

    Parameters
    ----------
    layers : list of Dense
        Hidden layers then the output layer.  Softmax is allowed on the output only.
    n_inputs : int
        Features per example (X has shape (m, n_inputs)).
    loss : str or None
        "bce" (sigmoid outputs: binary / multi-label), "cross_entropy" (softmax outputs),
        "mse" or "mae" (regression).  None picks from the output activation:
        softmax -> cross_entropy, sigmoid -> bce, otherwise mse.
    dtype : "float32" (default) or "float64"
        The dtype of parameters, activations and gradients.  Inputs are converted once.
    backend : "cpu" (default, Numba), "reference" (NumPy) or "cuda" (numba.cuda)
    seed : int or None
        Seeds the random initialization (None: fresh entropy).
    """

    layers = _fixed("layers", "a tuple of the Dense layers")
    n_inputs = _fixed("n_inputs", "features per example")
    loss = _fixed("loss", "the loss name")
    dtype = _fixed("dtype", "a numpy dtype")
    backend = _fixed("backend", "the backend name")
    sizes = _fixed("sizes", "the layer widths (n_inputs, units, ...)", key="_sizes_t")

    def __init__(self, layers, n_inputs, loss=None, dtype="float32", backend=DEFAULT_BACKEND,
                 seed=None):
        if isinstance(layers, Dense) or not isinstance(layers, (list, tuple)):
            raise TypeError("layers must be a list of fastnn.Dense; got "
                            f"{type(layers).__name__}")
        if len(layers) == 0:
            raise ValueError("layers must hold at least one Dense layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Dense):
                raise TypeError(f"layers[{i}] must be a fastnn.Dense; got {type(layer).__name__}")
            if i < len(layers) - 1 and layer.activation == "softmax":
                raise ValueError(f"layers[{i}]: softmax is allowed on the output layer only")
        n_inputs = check_int(n_inputs, "n_inputs")
        if loss is None:
            loss = {"softmax": "cross_entropy", "sigmoid": "bce"}.get(layers[-1].activation, "mse")
        loss = canonical(loss)
        check_output_activation(loss, layers[-1].activation)
        self._layers = tuple(layers)
        self._n_inputs = n_inputs
        self._loss = loss
        self._dtype = check_dtype(dtype)
        self.seed = seed   # (checked; also sets _shuffle_rng, fit's generator, to None)
        self._bind(backend)
        rng = np.random.default_rng(seed)
        host = np.zeros(self._n_params, dtype=self.dtype)
        for (W, b), layer, (n_in, _) in zip(_unrolled_views(host, self._shapes), self.layers,
                                            self._shapes):
            W[...] = layer.initial_W(n_in, rng, self.dtype)
        self._set_theta(host)

    @property
    def seed(self):
        """The seed of the initial weights and of fit's shuffling: an int >= 0, or None."""
        return self._seed

    @seed.setter
    def seed(self, value):
        self._seed = check_int(value, "seed", minimum=0, allow_none=True)
        self._shuffle_rng = None   # fit's generator of permutations, made from the seed at
        #                            the next fit

    # ------------------------------------------------------------------ construction
    def _bind(self, backend):
        """Attach a backend: derived sizes and per-layer kernel arguments."""
        self._B = get_backend(backend)
        self._backend = backend
        self._sizes_t = (self.n_inputs, *(layer.units for layer in self.layers))
        self._shapes = list(zip(self.sizes[:-1], self.sizes[1:]))
        self._n_params = sum(n_in * n_out + n_out for n_in, n_out in self._shapes)
        self._loss_code = kernels.LOSSES[self.loss]
        out = self.layers[-1]
        self._out_act, self._out_alpha = out.act, out.alpha
        self._sizes = np.asarray(self.sizes, dtype=np.int64)
        hidden = {(layer.act, layer.alpha) for layer in self.layers[:-1]}
        # the hidden layers' one (act, alpha), for a fused train_step; None if they differ
        self._hidden = (hidden.pop() if len(hidden) == 1 else None) if hidden else (
            kernels.IDENTITY, 0.0)
        self._workspaces = OrderedDict()
        self._ws_last = None    # the workspace used last (the end of _workspaces)
        self._owner = get_ident()   # the thread whose workspaces those are
        self._local = local()       # every other thread's own workspaces (_thread_workspace)
        self._step_fns = {}     # (optimizer code, skinny) -> the backend's one-call step
        self._skinny_fwd = None  # the backend's skinny inference, once used
        self._opt = None
        self._opt_state = None

    def _set_theta(self, host_theta):
        B = self._B
        self._theta = B.to_device(np.ascontiguousarray(host_theta, dtype=self.dtype))
        self._grad = B.zeros((self._n_params,), self.dtype)
        self._Wb = _unrolled_views(self._theta, self._shapes)
        self._dWb = _unrolled_views(self._grad, self._shapes)
        acts = [(layer.act, layer.alpha) for layer in self.layers]
        # per layer: (W, b, dW, db, act used in the training forward, act, alpha)
        self._plan = [
            (W, b, dW, db, kernels.IDENTITY if i == len(acts) - 1 else act, act, alpha)
            for i, ((W, b), (dW, db), (act, alpha)) in enumerate(zip(self._Wb, self._dWb, acts))
        ]
        self._opt_state = None  # optimizer moments belong to the old θ

    def _workspace(self, m):
        if get_ident() != self._owner:
            return self._thread_workspace(m)
        ws = self._workspaces.get(m)
        if ws is self._ws_last and ws is not None:   # already the most recent: a step's path
            return ws
        if ws is None:
            ws = Workspace(self._B, m, self.sizes, self.dtype, self._hidden)
            self._workspaces[m] = ws
            while len(self._workspaces) > _MAX_WORKSPACES:
                self._workspaces.popitem(last=False)
        else:
            self._workspaces.move_to_end(m)
        self._ws_last = ws
        return ws

    @property
    def optimizer(self):
        """The optimizer of the last step or fit (None before the first), whose state
        (momentum velocity, Adam moments and t) carries on when it is passed again."""
        return self._opt

    def _thread_workspace(self, m):
        """The workspace for m rows of a thread other than the owner: each thread keeps
        its own (in a threading.local, freed with the thread), so that threads predicting
        or evaluating with one network at once never write into each other's buffers."""
        cache = getattr(self._local, "workspaces", None)
        if cache is None:
            cache = self._local.workspaces = OrderedDict()
        ws = cache.get(m)
        if ws is None:
            ws = cache[m] = Workspace(self._B, m, self.sizes, self.dtype, self._hidden)
            while len(cache) > _MAX_WORKSPACES:
                cache.popitem(last=False)
        else:
            cache.move_to_end(m)
        return ws

    # ------------------------------------------------------------------ parameters
    @property
    def n_outputs(self):
        return self.sizes[-1]

    @property
    def params(self):
        """[(W, b)] per layer: host copies, W (n_in, n_out), b (n_out,)."""
        theta = self.get_flat_params()
        return [(W.copy(), b.copy()) for W, b in _unrolled_views(theta, self._shapes)]

    def set_params(self, params):
        """Replace every (W, b); shapes must match the architecture, values must be finite.

        Float arrays of either precision are accepted and cast to the network's dtype.
        """
        if not isinstance(params, (list, tuple)) or len(params) != len(self._shapes):
            raise ValueError(f"params must be a list of {len(self._shapes)} (W, b) pairs")
        host = np.empty(self._n_params, dtype=self.dtype)
        for i, (pair, (W_dst, b_dst), (n_in, n_out)) in enumerate(
                zip(params, _unrolled_views(host, self._shapes), self._shapes)):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError(f"params[{i}] must be a (W, b) pair")
            for name, value, dst, shape in (("W", pair[0], W_dst, (n_in, n_out)),
                                            ("b", pair[1], b_dst, (n_out,))):
                try:
                    value = np.asarray(value)
                except (ValueError, TypeError) as exc:  # ragged nested lists
                    raise ValueError(f"params[{i}] {name} must be a float array ({exc})") from None
                if value.dtype.kind != "f":
                    raise TypeError(f"params[{i}] {name} must be a float array; got dtype {value.dtype}")
                if value.shape != shape:
                    raise ValueError(f"params[{i}] {name} must have shape {shape}; got {value.shape}")
                if not np.isfinite(value).all():
                    raise ValueError(f"params[{i}] {name} contains NaN or Inf")
                dst[...] = value
                if not np.isfinite(dst).all():  # finite float64 may overflow float32
                    raise ValueError(f"params[{i}] {name} has values too large for "
                                     f"{self.dtype.name} (overflow to Inf)")
        self._write_theta(host)   # in place: the optimizer's state carries on

    def get_flat_params(self):
        """θ: every W (row-major) then its b, layer by layer, as a new 1-D host array."""
        return self._B.to_host(self._theta)

    def set_flat_params(self, theta):
        """Set θ from a 1-D array of count_params() finite values."""
        try:
            theta = np.asarray(theta)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise ValueError(f"theta must be a 1-D float array ({exc})") from None
        if theta.dtype.kind != "f":   # as set_params: a float dtype
            raise TypeError(f"theta must be a float array; got dtype {theta.dtype}")
        if theta.ndim != 1 or theta.shape[0] != self._n_params:
            raise ValueError(f"theta must have shape ({self._n_params},); got {theta.shape}")
        if not np.isfinite(theta).all():
            raise ValueError("theta contains NaN or Inf")
        cast = np.array(theta, dtype=self.dtype, order="C")  # finite float64 may overflow float32
        if not np.isfinite(cast).all():
            raise ValueError(f"theta has values too large for {self.dtype.name} (overflow to Inf)")
        self._write_theta(cast)   # in place: the optimizer's state carries on

    def _write_theta(self, theta):
        """Overwrite θ in place (the views W, b stay valid) from a host vector."""
        theta = np.ascontiguousarray(theta, dtype=self.dtype)
        if self.backend == "cuda":
            self._theta.copy_to_device(theta)
        else:
            self._theta[...] = theta

    def count_params(self):
        return self._n_params

    # ------------------------------------------------------------------ inputs
    def _X(self, X, name="X"):
        return as_features(X, self.n_inputs, self.dtype, name)

    def _XY(self, X, Y, xname="X", yname="Y"):
        X = self._X(X, xname)
        return X, prepare_targets(Y, self.loss, self.n_outputs, X.shape[0], self.dtype, yname,
                                  xname)

    # ------------------------------------------------------------------ compute (backend arrays)
    def _forward(self, X, ws, training):
        """A[l] for every layer into the workspace; the output layer keeps Z when training
        (the fused loss applies its activation), its activation otherwise."""
        B = self._B
        A_prev = X
        for (W, b, _, _, fwd_act, act, alpha), A in zip(self._plan, ws.A):
            B.linear_forward(A_prev, W, b, fwd_act if training else act, alpha, A)
            A_prev = A
        return A_prev

    def _forward_output(self, X):
        """Inference: the output activations of backend array X, in the workspace."""
        ws = self._workspace(X.shape[0])
        if ws.skinny_forward:
            if self._skinny_fwd is None:
                self._skinny_fwd = self._B.skinny_forward_function(self._hidden[0],
                                                                   self._out_act, self.dtype)
            return self._skinny_fwd(X, self._theta, ws.work, self._sizes, self._hidden[1],
                                    self._out_alpha)
        return self._forward(X, ws, training=False)

    def _cost(self, X, Y, l2):
        """J for backend arrays X (m, n_0), Y (m, n_L): the training forward (output layer
        kept as Z), then the fused loss, which also leaves A_out and dZ[L] in the workspace."""
        ws = self._workspace(X.shape[0])
        Z = self._forward(X, ws, training=True)
        J = self._B.loss_grad(Z, Y, self._out_act, self._out_alpha, self._loss_code, ws.A_out,
                              ws.dZ[-1])
        if l2:
            J += self._penalty(l2, X.shape[0])
        return J, ws

    def _cost_only(self, X, Y, l2):
        return self._cost(X, Y, l2)[0]

    def _cost_and_grad(self, X, Y, l2):
        """J and, in self._grad, dJ/dθ for backend arrays X (m, n_0), Y (m, n_L)."""
        B = self._B
        plan = self._plan
        J, ws = self._cost(X, Y, l2)
        for i in range(len(plan) - 1, -1, -1):
            W, _, dW, db, _, _, _ = plan[i]
            A_prev = ws.A[i - 1] if i else X
            B.accumulate_delta(A_prev, ws.dZ[i], W, l2, dW, db)
            if i:
                _, _, _, _, _, act, alpha = plan[i - 1]
                B.activation_backward(ws.dZ[i], W, A_prev, act, alpha, ws.dZ[i - 1])
        return J

    def _penalty(self, l2, m):
        return l2 / (2.0 * m) * sum(self._B.sum_squares(W) for W, _ in self._Wb)

    def _update(self, optimizer):
        if self._opt is not optimizer or self._opt_state is None:
            self._opt = optimizer
            self._opt_state = optimizer.init_state(self._B, self._n_params, self.dtype)
        optimizer.update(self._B, self._theta, self._grad, self._opt_state)

    def _step_device(self, X, Y, optimizer, l2):
        """One training step on backend arrays: J (before the update), θ updated.  When J
        is not finite nothing is updated.  One compiled call (the backend's one-call step,
        ``_step_function``) where the backend has one and this network and batch fit it,
        else one call per kernel (``_cost_and_grad`` then ``_update``); both compute the
        same bits."""
        if self._opt is not optimizer or self._opt_state is None:
            self._opt = optimizer
            self._opt_state = optimizer.init_state(self._B, self._n_params, self.dtype)
        ws = self._ws_last
        if ws is None or ws.m != X.shape[0] or get_ident() != self._owner:
            ws = self._workspace(X.shape[0])
        args = optimizer.fused_args(self._opt_state) if ws.fused else None
        if args is None:
            J = self._cost_and_grad(X, Y, l2)
            if math.isfinite(J):
                self._update(optimizer)
            return J
        code, lr, h1, h2, eps, s1, s2, t = args    # floats and an int (Optimizer.fused_args)
        step = self._step_fns.get((code, ws.skinny))
        if step is None:
            step = self._step_function(code, ws.skinny)
        J = step(X, Y, self._theta, self._grad, ws.work, self._sizes, self._hidden[1],
                 self._out_alpha, float(l2), lr, h1, h2, eps, s1, s2, t)[0]
        if math.isfinite(J):
            optimizer.fused_done(self._opt_state, t)
        return J

    def _step_function(self, code, skinny):
        """The backend's compiled one-call step for optimizer code `code` (its
        ``train_step_function``; the skinny one when `skinny`), kept per (code, skinny):
        a tiny network's step takes a few microseconds, and looking it up and converting
        its arguments on every step (what ``train_step`` does) costs about one more."""
        step = self._B.train_step_function(self._hidden[0], self._out_act, self._loss_code, code,
                                           self.dtype if skinny else None)
        self._step_fns[code, skinny] = step
        return step

    def _run_epoch(self, X, Y, idx, batch_size, optimizer, l2, losses, between=None):
        """All the steps of an epoch over the rows idx of X, Y (one row of `losses` per
        batch gets (J, its L2 term)) through ``_run_steps``, in calls of about 4e7
        multiply-adds each (at most 256 steps), so that ``between()`` (fit's Ctrl-C check),
        called before each call, runs within a fraction of a second.  Returns the steps
        done: len(losses), or fewer when a J was not finite (losses[done] holds it); None
        when the compiled loop is not available (nothing was run)."""
        n_steps = losses.shape[0]
        per_call = int(max(1, min(256, 4e7 // (batch_size * self._n_params))))
        k = 0
        while k < n_steps:
            if between is not None:
                between()
            count = min(per_call, n_steps - k)
            done = self._run_steps(X, Y, idx, batch_size, k, count, optimizer, l2, losses[k:])
            if done is None:  # decided by the network, batch size and optimizer: at k == 0
                return None
            if done < count:
                return k + done
            k += count
        return k

    def _run_steps(self, X, Y, idx, batch_size, first, count, optimizer, l2, out):
        """Training steps first .. first+count-1 of an epoch over the rows idx of X, Y
        (backend arrays of the network's dtype) in batches of batch_size, in one compiled
        call (the backend's train_steps): the same bits as ``_step_device`` on each batch.
        out (float64, (>= count, 2)) gets (J, its L2 term) per step.  Returns the number of
        steps that updated θ (< count when a J was not finite: out[done] holds it), or
        None when this backend, network, batch size or optimizer has no such call (the
        caller then runs ``_step_device`` per batch)."""
        run = getattr(self._B, "train_steps", None)
        if run is None:
            return None
        ws = self._workspace(batch_size)
        if not ws.fused:
            return None
        if self._opt is not optimizer or self._opt_state is None:
            self._opt = optimizer
            self._opt_state = optimizer.init_state(self._B, self._n_params, self.dtype)
        args = optimizer.fused_args(self._opt_state)
        if args is None:
            return None
        code, lr, h1, h2, eps, s1, s2, t = args
        hidden_act, hidden_alpha = self._hidden
        Xb, Yb = ws.gather()
        done = run(X, Y, idx, first, batch_size, count, Xb, Yb, self._theta, self._grad,
                   ws.work, self._sizes, hidden_act, hidden_alpha, self._out_act,
                   self._out_alpha, self._loss_code, l2, code, lr, h1, h2, eps, s1, s2, t, out)
        if done:
            optimizer.fused_done(self._opt_state, t + done - 1)
        return done

    # ------------------------------------------------------------------ public compute
    def _overflow(self, what, names):
        """The error for a result that is not finite although θ and the inputs are: the
        inputs' magnitudes overflow this network's dtype."""
        return ValueError(f"{what} is not finite (Inf or NaN): the values of {names} are too "
                          f"large for this network in {self.dtype.name}; scale the inputs"
                          + (" (or lower l2)" if "l2" in names else ""))

    def forward(self, X):
        """The output activations A[L] = g(... g(X @ W1 + b1) ...), shape (m, n_outputs).

        Raises ValueError when X's values are so large that the output overflows to Inf/NaN.
        """
        (X,) = self._device(self._X(X))
        A = self._B.to_host(self._forward_output(X))
        if not np.isfinite(A).all():
            raise self._overflow("the output", "X")
        return A

    def cost(self, X, Y, l2=0.0):
        """J = mean loss over the m examples + l2/(2m) Σ W² (see fastnn.losses)."""
        l2 = check_real(l2, "l2")
        X, Y = self._device(*self._XY(X, Y))
        J = float(self._cost_only(X, Y, l2))
        if not np.isfinite(J):
            raise self._overflow(f"the cost ({J})", "X, Y or l2")
        return J

    def gradients(self, X, Y, l2=0.0):
        """[(dW, db)] = [(dJ/dW, dJ/db)] per layer for the cost J(X, Y, l2): host arrays."""
        l2 = check_real(l2, "l2")
        X, Y = self._device(*self._XY(X, Y))
        J = self._cost_and_grad(X, Y, l2)
        grad = self._B.to_host(self._grad)
        if not (np.isfinite(J) and np.isfinite(grad).all()):
            raise self._overflow("the cost or its gradient", "X, Y or l2")
        return [(dW.copy(), db.copy()) for dW, db in _unrolled_views(grad, self._shapes)]

    def step(self, X, Y, optimizer, l2=0.0):
        """One forward + backward + update on this batch; returns the cost before the update.

        A cost that is not finite, or an update that overflows θ, raises
        fastnn.TrainingDiverged (a FloatingPointError); a step that raises (that, or an
        optimizer that cannot step, such as LBFGS) leaves θ and the optimizer's state
        (momentum velocity, Adam moments and t) as they were.
        """
        from .train import TrainingDiverged, _restore, _snapshot

        optimizer = get_optimizer(optimizer)
        l2 = check_real(l2, "l2")
        X, Y = self._device(*self._XY(X, Y))
        before = _snapshot(self)
        try:
            J = float(self._step_device(X, Y, optimizer, l2))
        except BaseException:
            _restore(self, before)
            raise
        if not np.isfinite(J):
            _restore(self, before)
            raise TrainingDiverged(f"step: the cost is {J}; no update was applied. Lower the "
                                   "learning rate, scale the inputs, or add l2.")
        if not np.isfinite(self.get_flat_params()).all():
            _restore(self, before)
            raise TrainingDiverged("step: the update overflowed the parameters to Inf/NaN; "
                                   "they and the optimizer's state were restored. Lower the "
                                   "learning rate.")
        return J

    def _device(self, *arrays):
        """Host arrays (already validated) -> backend arrays (no copy on CPU backends)."""
        if self.backend == "cuda":
            return tuple(self._B.to_device(a) for a in arrays)
        return arrays

    def predict_proba(self, X):
        """Class probabilities: softmax rows (cross_entropy) or sigmoid outputs (bce)."""
        if self.loss not in CLASSIFICATION:
            raise ValueError(f"predict_proba needs a classification loss (bce, cross_entropy); "
                             f"this network's loss is {self.loss!r}")
        return self.forward(X)

    def predict(self, X):
        """Class labels (m,) for cross_entropy and single-output bce; 0/1 indicators (m, k)
        for multi-output bce; the output values (m, n_outputs) for regression."""
        A = self.forward(X)
        if self.loss == "cross_entropy":
            return A.argmax(axis=1)
        if self.loss == "bce":
            labels = (A > 0.5).astype(np.int64)
            return labels[:, 0] if self.n_outputs == 1 else labels
        return A

    def evaluate(self, X, Y, l2=0.0):
        """{"loss": J} plus {"accuracy": ...} for classification (exact match per example)."""
        l2 = check_real(l2, "l2")
        Xc, Yc = self._XY(X, Y)
        J, ws = self._cost(*self._device(Xc, Yc), l2)
        result = {"loss": float(J)}
        if not np.isfinite(result["loss"]):
            raise self._overflow(f"the cost ({result['loss']})", "X, Y or l2")
        if self.loss in CLASSIFICATION:
            result["accuracy"] = accuracy(self._B.to_host(ws.A_out), Yc, self.loss)
        return result

    def fit(self, X, Y, optimizer="adam", epochs=None, batch_size=32, l2=0.0,
            validation_data=None, early_stopping=False, progress=True, seed=None, shuffle=True,
            min_delta=0.0, restore_best=True, callbacks=None):
        """Train; returns a History.  See fastnn.train.fit for every argument."""
        from .train import fit

        return fit(self, X, Y, optimizer=optimizer, epochs=epochs, batch_size=batch_size, l2=l2,
                   validation_data=validation_data, early_stopping=early_stopping,
                   progress=progress, seed=seed, shuffle=shuffle, min_delta=min_delta,
                   restore_best=restore_best, callbacks=callbacks)

    # ------------------------------------------------------------------ backends, io
    def to(self, backend):
        """Move the network to another backend (parameters copied; optimizer state reset)."""
        theta = self.get_flat_params()
        self._bind(backend)
        self._set_theta(theta)
        return self

    def get_config(self):
        return {"layers": [layer.get_config() for layer in self.layers], "n_inputs": self.n_inputs,
                "loss": self.loss, "dtype": self.dtype.name, "seed": self.seed}

    def save(self, path):
        """Save architecture and parameters to one file at `path` (see fastnn.io)."""
        from .io import save

        save(self, path)

    def copy(self, backend=None):
        """An independent network with the same architecture and parameters."""
        cfg = self.get_config()
        net = Network([Dense(**c) for c in cfg["layers"]], cfg["n_inputs"], loss=cfg["loss"],
                      dtype=cfg["dtype"], backend=backend or self.backend, seed=0)
        net.seed = self.seed
        net.set_flat_params(self.get_flat_params())
        return net

    def __getstate__(self):
        """Architecture, θ and the optimizer with its state (host copies), so that a
        pickled or deep-copied network goes on training exactly where it was."""
        from .train import _snapshot

        theta, opt, opt_state = _snapshot(self)
        return {"config": self.get_config(), "backend": self.backend, "theta": theta,
                "opt": opt, "opt_state": opt_state,
                "shuffle_rng": copy.deepcopy(self._shuffle_rng)}   # copy.copy shares nothing

    def __setstate__(self, state):
        from .train import _restore

        cfg = state["config"]
        backend = state["backend"]
        if backend not in ("cpu", "reference") and backend not in available_backends():
            # as fastnn.load: e.g. pickled on a GPU
            warnings.warn(f"this network was pickled on backend {backend!r}, which is not "
                          "available here; it is unpickled on 'cpu'", stacklevel=2)
            backend = "cpu"
        self.__init__([Dense(**c) for c in cfg["layers"]], cfg["n_inputs"], loss=cfg["loss"],
                      dtype=cfg["dtype"], backend=backend, seed=0)
        self.seed = cfg["seed"]
        self.set_flat_params(state["theta"])
        if state.get("opt") is not None:   # (pickles from before the optimizer was kept)
            _restore(self, (state["theta"], state["opt"], state["opt_state"]))
        self._shuffle_rng = state.get("shuffle_rng")

    def summary(self, print_fn=print):
        """Print (and return) a table of layers, output shapes and parameter counts."""
        rows = [("Layer", "Activation", "W shape", "b shape", "Output", "Params")]
        for i, (layer, (n_in, n_out)) in enumerate(zip(self.layers, self._shapes)):
            rows.append((f"dense_{i}", layer.activation, f"({n_in}, {n_out})", f"({n_out},)",
                         f"(m, {n_out})", f"{n_in * n_out + n_out:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        line = "  ".join("-" * w for w in widths)
        fmt = [r[0].ljust(widths[0]) + "  " + "  ".join(
            c.rjust(w) if j == 4 else c.ljust(w) for j, (c, w) in enumerate(zip(r[1:], widths[1:]), 1))
            for r in rows]
        text = "\n".join([f"Network: {self.n_inputs} inputs, loss={self.loss!r}, "
                          f"dtype={self.dtype.name}, backend={self.backend!r}", fmt[0], line,
                          *fmt[1:], line, f"Total params: {self._n_params:,}"])
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self):
        return (f"Network({self.layers!r}, n_inputs={self.n_inputs}, loss={self.loss!r}, "
                f"dtype={self.dtype.name!r}, backend={self.backend!r})")


def accuracy(A, Y, loss):
    """Fraction of examples whose predicted label(s) all equal the target(s)."""
    if loss == "cross_entropy":
        return float(np.mean(A.argmax(axis=1) == Y.argmax(axis=1)))
    return float(np.mean(np.all((A > 0.5) == (Y > 0.5), axis=1)))
