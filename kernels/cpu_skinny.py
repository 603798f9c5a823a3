"""The training step and inference of skinny networks (cpu backend): no BLAS, one pass
over X.

A step of m examples is *skinny* (``skinny(m, sizes, dtype)``) when every layer has at
most MAX_WIDTH units, the first layer's weights are large enough for the tiles to win
yet small enough for their partial sums to stay in L2, and the batch is large enough
for threads to pay: the course exercise's 400-25-10 on its 5000 examples, not the tiny
2-16-16-1, nor the 12288-20-7-5-1 of 64x64 images, nor small mini-batches.  The step
computes what ``cpu_step``'s step computes, in another order:

    the m rows of X in blocks of about _BLOCK_BYTES of X each, the blocks in GROUPS
    consecutive groups (fewer for small m); per block, in its group's order:
        forward    A[l] = g(A[l-1] @ W[l] + b[l]) for the block's rows (Z for the last)
        loss       the block's rows of A_out and dZ[L], its share of J
        backward   pw[g][W[l]] += A[l-1].T @ dZ[l],  pb[g][b[l]] += dZ[l].sum(0)
                   dZ[l-1] = (dZ[l] @ W[l].T) * g'(A[l-1])
    then    J = the blocks' shares in order / m (+ the L2 term); unless J is not finite,
            dW[l] = (l2/m) W[l] + the groups' pw in order, db likewise (in float64),
            and the update (the cpu kernels' sgd / adam).

Every product is a register-tiled one of ``cpu_tiles``: each block's rows of X are read
from memory once and are still in L2 for the weight gradient.  No BLAS call at all:
OpenBLAS's worker threads spin after each call and halve the speed of the threads that
follow.  The groups run on the calling thread and a pool of Python threads (the
compiled groups release the GIL), as many as fastnn's thread count, once the first layer
has PAR_WORK multiply-adds.  Blocks and groups are set by the shape alone and partial
sums are added in group order, so the bits do not depend on the thread count; the step
is a Python function around two compiled calls (a few tens of microseconds of Python in
a step of milliseconds), and ``cpu_step.train_steps`` runs it per batch, with the bits
of single steps.  They are not the bits of the per-kernel step (BLAS products, other
summation orders): the two agree within the tolerance table (tests/test_skinny.py).

Inference (``forward_function``) runs the same blocks and groups, forward only, with the
output activation on the last layer.
"""
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from numba import get_num_threads, njit

from . import BCE, CROSS_ENTROPY, IDENTITY, OPT_SGD, SIGMOID, SOFTMAX

#: the widest layer of a skinny network (the tiles' columns)
MAX_WIDTH = 32
#: first-layer weights: at least this many entries (below, BLAS's small-product paths
#: and the serial kernels win) ...
MIN_W1 = 4096
#: ... and at most this many bytes (each group's partial weight gradient stays in L2)
MAX_W1_BYTES = 256 * 1024
#: ... and a step of at least this many first-layer multiply-adds (m n_0 n_1): below it
#: the serial kernels' step, one compiled call, costs less than a parallel region
MIN_WORK = 1 << 22
#: groups of row blocks: the partial sums, and the parallel tasks
GROUPS = 4
#: first-layer multiply-adds from which the groups run on several threads
PAR_WORK = 1 << 21
#: bytes of X per row block (read once from memory, then from L2)
_BLOCK_BYTES = 128 * 1024


def skinny(m, sizes, dtype):
    """Whether a step of m examples of a network of layer widths `sizes` (n_0 .. n_L) and
    float dtype `dtype` runs the skinny step."""
    if len(sizes) < 2:
        return False
    w1 = int(sizes[0]) * int(sizes[1])
    # the cheap tests first: a fit of a small network asks once an epoch
    return (w1 >= MIN_W1 and m * w1 >= MIN_WORK and w1 * np.dtype(dtype).itemsize <= MAX_W1_BYTES
            and max(int(n) for n in sizes[1:]) <= MAX_WIDTH)


_pool = None
_pool_lock = threading.Lock()


def _forget_pool():
    global _pool
    _pool = None                       # a forked child has none of the parent's threads


os.register_at_fork(after_in_child=_forget_pool)


def _run_shares(fn, args, G, threads):
    """fn(*args, g0, g1) for the groups 0 .. G-1 split into `threads` shares of
    consecutive groups: the first on this thread, the others on a pool of Python threads
    (fn releases the GIL).  Returns when every share is done, even when interrupted:
    the shares write buffers that the next call reuses."""
    global _pool
    T = max(1, min(threads, G))
    if T == 1:
        fn(*args, 0, G)
        return
    with _pool_lock:
        if _pool is None or _pool._max_workers < T - 1:
            _pool = ThreadPoolExecutor(max_workers=T - 1, thread_name_prefix="fastnn")
        pool = _pool
    futures = []
    rest = G                           # groups rest .. G-1: shares no thread could take
    for k in range(1, T):
        try:
            futures.append(pool.submit(fn, *args, k * G // T, (k + 1) * G // T))
        except RuntimeError:           # no new threads: the interpreter is shutting down
            rest = k * G // T
            break
    try:
        fn(*args, 0, G // T)
        if rest < G:
            fn(*args, rest, G)
    finally:
        interrupted = None
        while True:
            try:
                wait(futures)
                break
            except KeyboardInterrupt as exc:
                interrupted = exc
        for f in futures:
            f.result()                 # a share's error
        if interrupted is not None:
            raise interrupted


def _blocks(m, n_0, itemsize):
    """(blocks, groups) for m rows of n_0 entries: a function of the shape only."""
    rows = max(16, min(1024, _BLOCK_BYTES // max(1, n_0 * itemsize)))
    nblk = max(1, -(-m // rows))
    return nblk, min(GROUPS, nblk)


def _make_forward_rows(hidden, last):
    """forward_rows(X, theta, work, sizes, alpha_h, alpha_o, r0, r1) -> the offset of A[L]
    in work: rows r0:r1 of every layer's A (of the last layer, g(Z) for the activation
    code `last`: IDENTITY when training keeps Z), inlined into each caller."""
    from .cpu import _LOOP, _fwd_rows_of, _zero_rows
    from .cpu_tiles import _mm

    hidden_rows, last_rows = _fwd_rows_of(hidden), _fwd_rows_of(last)

    @njit(**_LOOP)
    def forward_rows(X, theta, work, sizes, alpha_h, alpha_o, r0, r1):
        L = sizes.shape[0] - 1
        m = X.shape[0]
        rb = r1 - r0
        prev, pbase = X.reshape(X.size), 0
        off = 0
        woff = 0
        for l in range(L):
            n_in, n_out = sizes[l], sizes[l + 1]
            A = work[woff:woff + m * n_out].reshape((m, n_out))
            b = theta[off + n_in * n_out:off + n_in * n_out + n_out]
            _zero_rows(A, r0, r1)
            _mm(prev, pbase + r0 * n_in, n_in, 1, rb, n_in, theta, off, n_out, work,
                woff + r0 * n_out)
            if l < L - 1:
                hidden_rows(A, b, alpha_h, r0, r1)
            else:
                last_rows(A, b, alpha_o, r0, r1)
            prev, pbase = work, woff
            off += n_in * n_out + n_out
            woff += m * n_out
        return pbase

    return forward_rows


def _make_skinny_step(key):
    from .cpu import (_LOSS_BLOCK, _SER, _adam_ser, _bwd_rows_of, _loss_generic_rows,
                      _loss_sigmoid_bce_rows, _loss_softmax_ce_rows, _plus_penalty, _sgd_ser,
                      _ss_ser, _zero_rows)
    from .cpu_step import _compiled
    from .cpu_tiles import _mm, install

    hidden, out_act, loss, opt, itemsize = key
    install(np.float32 if itemsize == 4 else np.float64)
    fused = 1 if (out_act == SIGMOID and loss == BCE) else (
        2 if (out_act == SOFTMAX and loss == CROSS_ENTROPY) else 0)
    forward_rows = _make_forward_rows(hidden, IDENTITY)
    bwd_rows = _bwd_rows_of(hidden)

    @njit(**dict(_SER, cache=False))
    def block(X, Y, theta, work, sizes, alpha_h, alpha_o, WT, pw, pb, r0, r1, buf):
        """Rows r0:r1: forward, loss, backward; adds their weight and bias gradients into
        pw (laid out as θ) and pb (the biases, float64); returns their loss sum."""
        L = sizes.shape[0] - 1
        m = X.shape[0]
        rb = r1 - r0
        Xf = X.reshape(X.size)
        pbase = forward_rows(X, theta, work, sizes, alpha_h, alpha_o, r0, r1)
        n_L = sizes[L]
        woff = pbase + m * n_L
        Z = work[pbase:woff].reshape((m, n_L))
        A_out = work[woff:woff + m * n_L].reshape((m, n_L))
        dz_end = work.shape[0]
        dZ = work[dz_end - m * n_L:dz_end].reshape((m, n_L))
        if fused == 1:
            J = _loss_sigmoid_bce_rows(Z, Y, A_out, dZ, r0, r1, buf)
        elif fused == 2:
            J = _loss_softmax_ce_rows(Z, Y, A_out, dZ, r0, r1, buf)
        else:
            J = _loss_generic_rows(Z, Y, out_act, alpha_o, loss, A_out, dZ, r0, r1, buf)
        # backward, last layer first; off / a_end / dz_end / boff walk back from the ends
        off = theta.shape[0]
        a_end = woff
        boff = pb.shape[0]
        for l in range(L - 1, -1, -1):
            n_in, n_out = sizes[l], sizes[l + 1]
            off -= n_in * n_out + n_out
            boff -= n_out
            a_end -= m * n_out
            if l > 0:
                prev, pbase = work, a_end - m * n_in
            else:
                prev, pbase = Xf, 0
            dzo = dz_end - m * n_out
            _mm(prev, pbase + r0 * n_in, 1, n_in, n_in, rb, work, dzo + r0 * n_out, n_out,
                pw, off)
            for i in range(r0, r1):
                for j in range(n_out):
                    pb[boff + j] += dZ[i, j]
            if l > 0:
                dz_end = dzo
                dZ_prev = work[dz_end - m * n_in:dz_end].reshape((m, n_in))
                _zero_rows(dZ_prev, r0, r1)
                _mm(work, dzo + r0 * n_out, n_out, 1, rb, n_out, WT, off, n_in, work,
                    dz_end - m * n_in + r0 * n_in)
                bwd_rows(work[pbase:pbase + m * n_in].reshape((m, n_in)), alpha_h, dZ_prev,
                         r0, r1)
                dZ = dZ_prev
        return J

    def groups(X, Y, theta, work, sizes, alpha_h, alpha_o, WT, pw, pb, Jb, bufs, g0, g1):
        """Groups g0 .. g1-1, each group's blocks in order, into its partial sums."""
        m = X.shape[0]
        nblk = Jb.shape[0]
        G = pw.shape[0]
        for g in range(g0, g1):
            for c in range(g * nblk // G, (g + 1) * nblk // G):
                Jb[c] = block(X, Y, theta, work, sizes, alpha_h, alpha_o, WT, pw[g], pb[g],
                              c * m // nblk, (c + 1) * m // nblk, bufs[g])

    groups = _compiled(groups, key + ("groups",))

    def step(X, Y, theta, grad, work, sizes, alpha_h, alpha_o, l2, lr, h1, h2, eps, s1, s2, t):
        m = X.shape[0]
        L = sizes.shape[0] - 1
        shapes = [(int(sizes[l]), int(sizes[l + 1])) for l in range(L)]
        nblk, G = _blocks(m, shapes[0][0], X.itemsize)
        WT = np.empty_like(theta)    # W[l].T for l >= 1 at W[l]'s offset: the backward's B
        off = shapes[0][0] * shapes[0][1] + shapes[0][1]
        for n_in, n_out in shapes[1:]:
            WT[off:off + n_in * n_out].reshape(n_out, n_in)[...] = \
                theta[off:off + n_in * n_out].reshape(n_in, n_out).T
            off += n_in * n_out + n_out
        pw = np.zeros((G, theta.shape[0]), theta.dtype)
        pb = np.zeros((G, int(sizes[1:].sum())), np.float64)
        Jb = np.empty(nblk, np.float64)
        _run_shares(groups, (X, Y, theta, work, sizes, alpha_h, alpha_o, WT, pw, pb, Jb,
                             np.empty((G, _LOSS_BLOCK), np.float64)),
                    G, 1 if m * shapes[0][0] * shapes[0][1] < PAR_WORK else get_num_threads())
        # J: the blocks' shares in order, then / m, plus the L2 term as the other step
        # adds it; nothing is updated when J is not finite
        J = float(np.cumsum(Jb)[-1]) / m
        pen = 0.0
        if l2 != 0.0:
            ss, off = 0.0, 0
            for n_in, n_out in shapes:
                ss += _ss_ser(theta[off:off + n_in * n_out].reshape(n_in, n_out))
                off += n_in * n_out + n_out
            J, pen = _plus_penalty(J, l2, m, ss)
        if not math.isfinite(J):
            return J, pen
        # dW = (l2/m) W + the groups' partial sums in group order, db likewise
        off, nb = 0, 0
        for n_in, n_out in shapes:
            nw = n_in * n_out
            dW, W = grad[off:off + nw], theta[off:off + nw]
            if l2 != 0.0:
                np.multiply(W, theta.dtype.type(l2 / m), out=dW)
            else:
                dW[...] = 0.0
            for g in range(G):
                dW += pw[g, off:off + nw]
            db = pb[0, nb:nb + n_out].copy()
            for g in range(1, G):
                db += pb[g, nb:nb + n_out]
            grad[off + nw:off + nw + n_out] = db
            off += nw + n_out
            nb += n_out
        if opt == OPT_SGD:
            _sgd_ser(theta, grad, s1, lr, h1, h2 != 0.0)
        else:
            _adam_ser(theta, grad, s1, s2, lr, h1, h2, eps, t)
        return J, pen

    return step


def _make_skinny_forward(key):
    """The inference of a skinny network for key (hidden act, output act, itemsize):
    ``forward(X, theta, work, sizes, alpha_h, alpha_o) -> A[L]`` (a view of work, the
    step's layout), the row blocks and their groups as in the step."""
    from .cpu_step import _compiled
    from .cpu_tiles import install

    hidden, out_act, itemsize = key
    install(np.float32 if itemsize == 4 else np.float64)
    forward_rows = _make_forward_rows(hidden, out_act)

    def groups(X, theta, work, sizes, alpha_h, alpha_o, nblk, G, g0, g1):
        """The row blocks of groups g0 .. g1-1."""
        m = X.shape[0]
        for g in range(g0, g1):
            for c in range(g * nblk // G, (g + 1) * nblk // G):
                forward_rows(X, theta, work, sizes, alpha_h, alpha_o, c * m // nblk,
                             (c + 1) * m // nblk)

    groups = _compiled(groups, ("forward",) + key)

    def forward(X, theta, work, sizes, alpha_h, alpha_o):
        m = X.shape[0]
        n_0, n_1 = int(sizes[0]), int(sizes[1])
        nblk, G = _blocks(m, n_0, X.itemsize)
        _run_shares(groups, (X, theta, work, sizes, alpha_h, alpha_o, nblk, G), G,
                    1 if m * n_0 * n_1 < PAR_WORK else get_num_threads())
        end = m * int(sizes[1:].sum())
        return work[end - m * int(sizes[-1]):end].reshape(m, int(sizes[-1]))

    return forward


_FORWARD = None  # cpu._Table: (hidden act, output act, itemsize) -> skinny inference


def forward_function(hidden_act, out_act, dtype):
    """The skinny inference of a network with these activation codes and float dtype:
    ``forward(X, theta, work, sizes, hidden_alpha, out_alpha) -> A[L]`` (the output
    activations, a view of work), for inputs X of m rows for which ``skinny(m, sizes,
    dtype)`` holds; work as a step's (``cpu_step.work_size``)."""
    global _FORWARD
    if _FORWARD is None:
        from .cpu import _Table

        _FORWARD = _Table(_make_skinny_forward)
    return _FORWARD[int(hidden_act), int(out_act), np.dtype(dtype).itemsize]
