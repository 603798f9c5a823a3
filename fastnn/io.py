"""Save / load a Network: architecture as JSON + parameters, in one .npz-format file.

The file is a NumPy .npz (zip) archive holding:
  format    b"fastnn-model"                    (what the file is)
  version   [FORMAT_VERSION]                   (files from a newer fastnn are refused)
  config    UTF-8 JSON: layers, n_inputs, loss, dtype, seed, backend, fastnn version
  theta     the unrolled parameters, in the network's dtype
  checksum  SHA-256 of config + theta's bytes  (corruption is detected on load)

``save`` writes a temporary file beside `path`, fsyncs it, then renames it over `path`
(atomic on POSIX), so a crash mid-save leaves either the old file or the new one.
``load`` never unpickles (allow_pickle=False): a model file cannot run code.
"""
import hashlib
import json
import os
import tempfile
import warnings
import zipfile

import numpy as np

FORMAT = b"fastnn-model"
FORMAT_VERSION = 1
_KEYS = {"format", "version", "config", "theta", "checksum"}


class ModelFileError(ValueError):
    """The file at a path is not a loadable fastnn model (corrupt, truncated, foreign, newer)."""


def _checksum(config_bytes, theta):
    h = hashlib.sha256()
    h.update(config_bytes)
    h.update(np.ascontiguousarray(theta).tobytes())
    return h.hexdigest().encode()


def _as_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}")
    path = os.fspath(path)
    if path == "":
        raise ValueError("path is empty")
    return path


def save(net, path):
    """Write `net` to `path` atomically (the exact path: no suffix is added)."""
    from . import __version__

    path = _as_path(path)
    if os.path.isdir(path):
        raise ValueError(f"path {path!r} is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"path: the directory {directory!r} does not exist")
    config = dict(net.get_config(), backend=net.backend, fastnn_version=__version__)
    config_bytes = json.dumps(config, sort_keys=True).encode()
    theta = net.get_flat_params()
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, format=np.frombuffer(FORMAT, np.uint8),
                     version=np.array([FORMAT_VERSION], np.int64),
                     config=np.frombuffer(config_bytes, np.uint8), theta=theta,
                     checksum=np.frombuffer(_checksum(config_bytes, theta), np.uint8))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - platforms without directory fsync
        pass


def load(path, backend=None):
    """Read a Network saved by ``save``; verifies the format, version and checksum.

    backend: None loads onto the saved backend when it is available here, otherwise onto
    "cpu" (with a warning); or name one explicitly.
    """
    from .backend import available_backends
    from .layers import Dense
    from .network import Network

    path = _as_path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"path: no model file at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            if "format" not in keys or data["format"].tobytes() != FORMAT:
                raise ModelFileError(f"{path!r} is not a fastnn model file")
            if not _KEYS <= keys:
                raise ModelFileError(f"{path!r} lacks {sorted(_KEYS - keys)}")
            version = int(data["version"][0])
            if version > FORMAT_VERSION:
                raise ModelFileError(f"{path!r} has format version {version}, newer than this "
                                     f"fastnn reads ({FORMAT_VERSION}); upgrade fastnn")
            config_bytes = data["config"].tobytes()
            theta = data["theta"]
            checksum = data["checksum"].tobytes()
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, IndexError) as exc:
        raise ModelFileError(f"{path!r} is not a readable fastnn model file "
                             f"(truncated or corrupted: {exc})") from None
    if _checksum(config_bytes, theta) != checksum:
        raise ModelFileError(f"{path!r} is corrupted: the parameters' checksum does not match")
    try:
        config = json.loads(config_bytes)
        layers = [Dense(**c) for c in config["layers"]]
        saved_backend = config.get("backend", "cpu")
        if backend is None:
            backend = saved_backend
            if backend not in available_backends():
                warnings.warn(f"model was saved from backend {saved_backend!r}, which is not "
                              "available here; loading it on 'cpu'", stacklevel=2)
                backend = "cpu"
        net = Network(layers, config["n_inputs"], loss=config["loss"], dtype=config["dtype"],
                      backend=backend, seed=0)
        net.seed = config.get("seed")
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path!r} has an invalid architecture ({exc})") from None
    if theta.dtype != net.dtype or theta.shape != (net.count_params(),):
        raise ModelFileError(f"{path!r}: parameters {theta.shape} {theta.dtype} do not fit the "
                             f"architecture ({net.count_params()},) {net.dtype}")
    net.set_flat_params(theta)
    return net
