"""fastnn's benchmarks: the asv suite (``bench/benchmarks.py``, run by ``asv``) and the
side-by-side comparison against the peers (``python bench/compare.py``).

Shared pieces: ``bench/workloads.py`` (the workloads, their data, initial parameters and
GEMM flop counts), ``bench/gemm.py`` (the GEMM ceiling of NumPy's BLAS), ``bench/peers.py``
(one implementation of a training step per peer, and the worker process that runs it).

Nothing here is imported by ``fastnn`` itself, and no module here imports ``fastnn`` at
import time (asv imports every module of this package to discover benchmarks).
"""
