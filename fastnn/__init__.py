"""fastnn: fast fully connected neural networks."""
from .backend import available_backends, get_backend

__version__ = "0.1.0"
