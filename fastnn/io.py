"""Save / load a Network: architecture as JSON + parameters, in one .npz-format file.

The file is a NumPy .npz (zip) archive holding:
  format    b"fastnn-model"                    (what the file is)
  version   [FORMAT_VERSION]                   (files from a newer fastnn are refused)
  config    UTF-8 JSON: layers, n_inputs, loss, dtype, seed, backend, fastnn version
  theta     the unrolled parameters, in the network's dtype
  checksum  SHA-256 of config + theta's bytes  (corruption is detected on load)

``save`` writes a temporary file beside `path` (``.NAME.<random>.tmp``, created with the
umask's permissions, or the permissions of the file it replaces; a symbolic link is
written through to its target), fsyncs it, then renames it over `path` (atomic on POSIX), so a crash
mid-save leaves either the old file or the new one at `path`, never a partial file (a
process killed mid-save may leave its temporary file behind; it is never read).

``load`` never unpickles: it reads the zip members itself with NumPy's header parser
(a literal, not code), refuses object and structured dtypes, checks every declared size
against the file's real size before allocating, verifies the format tag, the version
and the checksum, and only then builds the network.  Anything else raises
``ModelFileError`` (a ValueError) naming the path and what is wrong.
"""
import hashlib
import json
import math
import os
import secrets
import stat
import struct
import warnings
import zipfile
import zlib

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
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        raise ValueError(f"path {path!r} is a directory")
    # a symbolic link is written through (as open() would), not replaced by a file
    path = os.path.realpath(path) if os.path.islink(path) else path
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"path: the directory {directory!r} does not exist")
    config = dict(net.get_config(), backend=net.backend, fastnn_version=__version__)
    config_bytes = json.dumps(config, sort_keys=True).encode()
    theta = net.get_flat_params()
    fd, tmp = _create_temporary(directory, os.path.basename(path))
    try:
        try:   # overwriting: keep the old file's permissions (a 0600 model stays private)
            os.chmod(fd, os.stat(path).st_mode & 0o7777)
        except (FileNotFoundError, NotImplementedError):
            pass
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


def _create_temporary(directory, basename):
    """A new file beside the target, opened for writing; mode 0o666 less the umask (what
    an ordinary open() gives: tempfile.mkstemp's 0o600 would survive the rename)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    # the name adds 18 characters: a basename near the 255-byte limit is shortened
    stem = basename.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore")
    for _ in range(100):
        tmp = os.path.join(directory, f".{stem}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue
    raise FileExistsError(f"could not create a temporary file in {directory!r}")  # pragma: no cover


#: the largest config member read (the JSON of even a 1000-layer network is far smaller)
_MAX_CONFIG_BYTES = 16 << 20
#: stored members hold their bytes in the file; deflate cannot expand data more than ~1032x
_MAX_DEFLATE_RATIO = 1100


def load(path, backend=None):
    """Read a Network saved by ``save``; verifies the format, version and checksum.

    backend: None loads onto the saved backend when it is available here, otherwise onto
    "cpu" (with a warning); or name one explicitly.

    Raises FileNotFoundError when nothing is at `path`, ModelFileError (a ValueError) for
    a file that is not a complete, intact fastnn model file of a version this fastnn reads.
    """
    from .backend import available_backends, get_backend

    path = _as_path(path)
    if backend is not None:
        get_backend(backend)  # a bad backend argument is the caller's error, not the file's
    if not os.path.exists(path):
        raise FileNotFoundError(f"path: no model file at {path!r}")
    if os.path.isdir(path):
        raise ModelFileError(f"{path!r} is a directory, not a fastnn model file")
    # (before open: opening a FIFO would wait for a writer)
    if not stat.S_ISREG(os.stat(path).st_mode):   # no size to check the members against
        raise ModelFileError(f"{path!r} is not a regular file (a pipe or a device?); "
                             "fastnn model files are read from regular files")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise ModelFileError(f"{path!r} is empty (0 bytes): not a fastnn model file "
                                 "(truncated or corrupted)")
        if f.read(4) != b"PK\x03\x04":
            raise ModelFileError(f"{path!r} is not a fastnn model file (not a zip archive)")
        f.seek(0)
        try:
            config_bytes, theta = _read_model(f, size, path)
        except ModelFileError as exc:
            if repr(path) in str(exc):
                raise
            raise ModelFileError(f"{path!r}: {exc}") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, ValueError,
                OSError, EOFError, KeyError, IndexError, NotImplementedError, RuntimeError,
                OverflowError, MemoryError, UnicodeError, SyntaxError) as exc:
            raise ModelFileError(f"{path!r} is not a readable fastnn model file "
                                 f"(truncated or corrupted: {type(exc).__name__}: {exc})") from None
    config, layers = _parse_config(config_bytes, path)
    n_params = sum(n_in * layer.units + layer.units for n_in, layer in
                   zip([config["n_inputs"]] + [layer.units for layer in layers[:-1]], layers))
    if theta.shape != (n_params,) or theta.dtype != np.dtype(config["dtype"]):
        raise ModelFileError(f"{path!r}: parameters {theta.shape} {theta.dtype} do not fit the "
                             f"architecture ({n_params},) {config['dtype']}")
    saved_backend = config.get("backend", "cpu")
    if backend is None:
        backend = saved_backend
        if not isinstance(backend, str) or backend not in available_backends():
            warnings.warn(f"model was saved from backend {saved_backend!r}, which is not "
                          "available here; loading it on 'cpu'", stacklevel=2)
            backend = "cpu"
    from .network import Network

    try:
        net = Network(layers, config["n_inputs"], loss=config["loss"], dtype=config["dtype"],
                      backend=backend, seed=0)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path!r} has an invalid architecture ({exc})") from None
    net.seed = config.get("seed")
    try:
        net.set_flat_params(theta)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path!r} has invalid parameters ({exc})") from None
    return net


def _read_model(f, size, path):
    """(config bytes, theta) from an open model file, every check but the architecture's."""
    with zipfile.ZipFile(f) as z:
        infos = {info.filename: info for info in z.infolist()}
        if "format.npy" not in infos:
            raise ModelFileError(f"{path!r} is not a fastnn model file")
        fmt = _read_npy(z, infos["format.npy"], size, 4096)
        if fmt.dtype != np.uint8 or fmt.ndim != 1 or fmt.tobytes() != FORMAT:
            raise ModelFileError(f"{path!r} is not a fastnn model file")
        missing = sorted(k for k in _KEYS if k + ".npy" not in infos)
        if missing:
            raise ModelFileError(f"{path!r} lacks {missing} (truncated or corrupted)")
        version = _read_npy(z, infos["version.npy"], size, 4096)
        if version.dtype.kind not in "iu" or version.shape != (1,):
            raise ModelFileError(f"{path!r} has an unreadable format version "
                                 f"({version.dtype} {version.shape})")
        version = int(version[0])
        if version > FORMAT_VERSION:
            raise ModelFileError(f"{path!r} has format version {version}, newer than this "
                                 f"fastnn reads ({FORMAT_VERSION}); upgrade fastnn")
        if version < 1:
            raise ModelFileError(f"{path!r} has an invalid format version {version}")
        config = _read_npy(z, infos["config.npy"], size, _MAX_CONFIG_BYTES)
        checksum = _read_npy(z, infos["checksum.npy"], size, 4096)
        theta = _read_npy(z, infos["theta.npy"], size, None)
    if config.dtype != np.uint8 or config.ndim != 1 or checksum.dtype != np.uint8:
        raise ModelFileError(f"{path!r} is corrupted: config or checksum has the wrong type")
    if theta.ndim != 1 or theta.dtype.kind != "f":
        raise ModelFileError(f"{path!r} is corrupted: the parameters are {theta.dtype} "
                             f"{theta.shape}, not a 1-D float array")
    config_bytes = config.tobytes()
    if _checksum(config_bytes, theta) != checksum.tobytes():
        raise ModelFileError(f"{path!r} is corrupted: the parameters' checksum does not match")
    return config_bytes, theta


def _read_npy(z, info, file_size, max_bytes):
    """One .npy member as a read-only array, without pickle and without trusting any size:
    the member must fit in the file, and its header's shape must fit in the member."""
    limit = file_size if info.compress_type == zipfile.ZIP_STORED else \
        file_size * _MAX_DEFLATE_RATIO
    if info.file_size > limit or (max_bytes is not None and info.file_size > max_bytes):
        raise ModelFileError(f"member {info.filename!r} declares {info.file_size} bytes, more "
                             "than the file can hold (truncated or corrupted)")
    with z.open(info) as fp:
        major, minor = np.lib.format.read_magic(fp)
        if (major, minor) == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif (major, minor) == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"member {info.filename!r}: unsupported .npy version {major}.{minor}")
        if dtype.hasobject:
            raise ModelFileError(f"member {info.filename!r} has dtype {dtype}: not a fastnn "
                                 "model file (object arrays are never loaded)")
        if dtype.kind not in "biuf":
            raise ModelFileError(f"member {info.filename!r} has dtype {dtype}: not a fastnn "
                                 "model file (its members are integer or float arrays)")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > info.file_size:
            raise ValueError(f"member {info.filename!r} declares shape {shape}, more than its "
                             f"{info.file_size} bytes")
        data = fp.read(nbytes)
        if len(data) != nbytes or fp.read(1):  # reading to the end checks the zip CRC
            raise ValueError(f"member {info.filename!r} has {len(data)} data bytes, expected "
                             f"{nbytes}")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _parse_config(config_bytes, path):
    """The config dict and its Dense layers, every field checked (ModelFileError)."""
    from .layers import Dense
    from .validation import check_dtype, check_int

    try:
        config = json.loads(config_bytes.decode("utf-8"))
        if not isinstance(config, dict):
            raise TypeError("the config is not a JSON object")
        specs = config["layers"]
        if not isinstance(specs, list) or not specs:
            raise TypeError("layers is not a non-empty list")
        if not all(isinstance(c, dict) for c in specs):
            raise TypeError("a layer is not a JSON object")
        layers = [Dense(**c) for c in specs]
        config["n_inputs"] = check_int(config["n_inputs"], "n_inputs")
        config["dtype"] = check_dtype(config["dtype"]).name
        if not isinstance(config["loss"], str):
            raise TypeError("loss is not a string")
        seed = config.get("seed")
        if seed is not None:
            check_int(seed, "seed", minimum=0)
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path!r} has an invalid architecture "
                             f"({type(exc).__name__}: {exc})") from None
    return config, layers
