"""fastnn: fast fully connected neural networks (MLPs) with fused Numba kernels.

    import fastnn as fn
    net = fn.Network([fn.Dense(32, "relu"), fn.Dense(10, "softmax")], n_inputs=64)
    history = net.fit(X, y, optimizer=fn.Adam(1e-3), epochs=20, batch_size=64)
"""
__version__ = "0.1.0"

from .backend import available_backends, get_backend
from .gradcheck import gradcheck, numerical_gradient
from .io import ModelFileError, load
from .layers import Dense
from .network import Network
from .optim import LBFGS, SGD, Adam
from .threads import get_num_threads, set_num_threads
from .train import History, TrainingDiverged

__all__ = [
    "Network", "Dense", "SGD", "Adam", "LBFGS", "History", "TrainingDiverged", "gradcheck",
    "numerical_gradient", "load", "ModelFileError", "set_num_threads", "get_num_threads",
    "available_backends", "get_backend", "__version__",
]
