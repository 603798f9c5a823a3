"""The command line: ``python -m fastnn <command>`` (also the ``fastnn`` script).

  fastnn demo                          train a digits classifier, print its test accuracy
  fastnn train DATA [options]          train on a CSV / .npy / .npz file, save the model
  fastnn predict --model M --input D   write predictions (or probabilities) as CSV
  fastnn bench [args]                  the quick comparison of bench/compare.py

Bad input (a missing or unreadable file, non-numeric or ragged CSV, a missing label column,
a corrupt model file) ends with one line ``fastnn: error: ...`` on stderr and exit code 2,
never a traceback.  A model saved by ``train`` is an ordinary fastnn model file
(``fastnn.load`` reads it); the CLI also keeps its class labels, the label column and the
feature names in the file's config under the key ``"cli"`` (covered by the checksum).
"""
import argparse
import csv
import json
import math
import os
import sys
import time
import warnings
import zipfile
import zlib

EXIT_BAD_INPUT = 2

# Loaded lazily (argparse --help must be instant): numpy, fastnn.

_EPILOG_MAIN = """\
examples:
  fastnn demo                                   # a 30-second tour
  fastnn train iris.csv --label species --layers 16 --epochs 100 --output iris.fnn
  fastnn predict --model iris.fnn --input new.csv --output predictions.csv
  fastnn predict --model iris.fnn --input new.csv --proba      # probabilities to stdout
  fastnn train data.npz --layers 64,32 --loss mse --plot curve.png
  fastnn <command> --help                       # every option of a command

Exit codes: 0 success, 2 bad input or usage (one line 'fastnn: error: ...' on stderr),
1 training failed (e.g. it diverged).
"""

_TRAIN_DESCRIPTION = """\
Train a fully connected network on a data file and save it.

DATA is one of
  .csv   one example per row, comma-separated, with or without a header row (detected:
         a first row with no numeric field is a header; force it with --header or
         --no-header).  The label column is --label (a header name or a 0-based index;
         default: the last column); every other column is a numeric feature.  Labels may
         be numbers or text (class names).
  .npz   arrays X (m, n features) and y (m,) (names: --x-key / --y-key).
  .npy   a 2-D numeric array whose last column is the label.

The network is   inputs -> --layers (hidden, --activation) -> output   where the output
and loss follow --loss:
  cross_entropy  softmax over the classes (multi-class)          [classification]
  bce            one sigmoid output (two classes)                 [classification]
  mse / mae      one identity output (mean squared / absolute error)  [regression]
  auto (default) cross_entropy when the labels are text or whole numbers with at most
                 50 distinct values, otherwise mse.

Inputs are standardized (zero mean, unit variance per feature; regression targets too)
and the scaling is folded into the saved weights, so the model file takes raw features
(--no-standardize to train on the raw values).  A progress bar shows the loss and the
validation accuracy on a held-out --validation-split of the rows.
"""

_PREDICT_DESCRIPTION = """\
Load a model saved by 'fastnn train' (or fastnn's Network.save) and write one prediction
per input row as CSV: a header row, then the predicted label (class name for classifiers
trained by 'fastnn train') or value; with --proba, one probability column per class.

--input takes the same formats as 'train' (.csv, .npz with array X, .npy).  The input may
keep the label column of the training file: it is recognized (by its header name, or by
having one column more than the model's features) and ignored.
"""

_BENCH_DESCRIPTION = """\
Run the quick side-by-side comparison of the benchmark suite (bench/compare.py in a source
checkout of fastnn: fastnn against NumPy, PyTorch, JAX and scikit-learn where installed).
It runs with --quick (few, short repetitions) unless --full is given; every other
argument after 'bench' is passed on to it ('fastnn bench --help' lists them below).
"""


class InputError(Exception):
    """Bad input from the user: reported as one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (and a pointer to --help), exit code 2."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {' '.join(message.split())} "
                                  f"(see '{self.prog} --help')\n")


# ---------------------------------------------------------------------------- demo
def _demo(args):
    import numpy as np

    import fastnn as fn
    from fastnn.datasets import digits

    X_train, X_test, y_train, y_test, name = digits(seed=args.seed)
    print(f"fastnn {fn.__version__} demo: {name}")
    print(f"train {X_train.shape[0]} / test {X_test.shape[0]} examples; backend={args.backend!r}")
    net = fn.Network([fn.Dense(64, "relu"), fn.Dense(10, "softmax")], n_inputs=X_train.shape[1],
                     loss="cross_entropy", backend=args.backend, seed=args.seed)
    net.summary()
    t0 = time.perf_counter()
    history = net.fit(X_train, y_train, optimizer=fn.Adam(lr=3e-3), epochs=args.epochs,
                      batch_size=32, validation_data=(X_test, y_test), progress=not args.quiet,
                      seed=args.seed)
    seconds = time.perf_counter() - t0
    accuracy = float(np.mean(net.predict(X_test) == y_test))
    print(f"test accuracy: {accuracy:.4f}  ({len(history.loss)} epochs, final loss "
          f"{history.loss[-1]:.4f})")
    print(f"time: {seconds:.2f} s (including the first call's JIT compile or cache load)")
    return 0


# ---------------------------------------------------------------------------- reading data
def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _header_detected(rows, names_known=None):
    """Whether the first row is a header: it has no numeric field; or it is pandas' header
    of unnamed columns, each number its own column position (0,1,...,63; two at least) and
    the other fields names (e.g. ``target``; not empty, not a number, not a missing-value
    mark, and not found again in their column, as a data row's class label would be); or it
    lists `names_known` (the model's feature names) in order, with other fields between them
    at most, when those names are distinct and cannot pass for a row of data (eight or
    more, or one that is not a number)."""
    first = [field.strip() for field in rows[0]]
    if not any(_is_number(field) for field in first):
        return True
    if names_known and len(set(names_known)) == len(names_known) and (
            len(names_known) >= 8 or not all(map(_is_number, names_known))):
        wanted = set(names_known)
        if [field for field in first if field in wanted] == list(names_known):
            return True
    named = [(j, field) for j, field in enumerate(first) if field != str(j)]
    if not named or len(first) - len(named) < 2 or any(
            _is_number(field) or field == "" or field.lower() in _MISSING for _, field in named):
        return False
    # a column's name is not one of its values (a class label of a data row recurs below)
    return not any(row[j].strip() == field for j, field in named for row in rows[1:])


def _read_csv(path, header, names_known=None):
    """(rows as a 2-D array of str, column names or None) from a CSV file; header None
    detects it (_header_detected)."""
    import numpy as np

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows, lines = [], []
            for row in reader:  # (blank lines are skipped)
                if row and any(field.strip() for field in row):
                    rows.append(row)
                    lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text CSV file (it is not UTF-8)") from None
    except csv.Error as exc:
        raise InputError(f"{path}: not a valid CSV file ({exc})") from None
    if not rows:
        raise InputError(f"{path}: the file is empty")
    widths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    ragged = np.flatnonzero(widths != widths[0])
    if ragged.size:
        i = int(ragged[0])
        raise InputError(f"{path}: ragged rows: line {lines[i]} has {widths[i]} fields but "
                         f"line {lines[0]} has {widths[0]}")
    if header is None:
        header = _header_detected(rows, names_known)
    names = None
    if header:
        names = [name.strip() for name in rows[0]]
        rows, lines = rows[1:], lines[1:]
        if not rows:
            raise InputError(f"{path}: the file has a header row but no data rows")
    table = np.array(rows, dtype=str)
    return np.char.strip(table), names, lines


def _to_float(table, columns, names, path, lines):
    """The given columns of a str table as a float64 matrix; InputError naming the cell."""
    import numpy as np

    out = np.empty((table.shape[0], len(columns)), dtype=np.float64)
    for j, col in enumerate(columns):
        try:
            out[:, j] = table[:, col].astype(np.float64)
        except ValueError:
            for i, text in enumerate(table[:, col]):
                if not _is_number(text):
                    where = f"column {names[col]!r}" if names else f"column {col}"
                    raise InputError(f"{path}: line {lines[i]}, {where}: {str(text)!r} is not "
                                     "a number (features must be numeric)") from None
            raise  # pragma: no cover - astype and float() disagree
    bad = ~np.isfinite(out)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        col = columns[j]
        where = f"column {names[col]!r}" if names else f"column {col}"
        raise InputError(f"{path}: line {lines[i]}, {where}: {str(table[i, col])!r} is not a "
                         "finite number")
    return out


def _label_index(label, names, n_columns, path):
    if label is None:
        return n_columns - 1
    if names is not None and label in names:
        return names.index(label)
    try:
        index = int(label)
    except ValueError:
        where = f"the header has {', '.join(map(repr, names))}" if names else \
            "the file has no header row, so --label must be a column index"
        raise InputError(f"{path}: no label column {label!r} ({where})") from None
    if not -n_columns <= index < n_columns:
        raise InputError(f"{path}: no label column {label!r}: the file has {n_columns} columns "
                         f"(indices 0..{n_columns - 1})")
    return index % n_columns


def _check_path(path):
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a data file")


#: what reading a damaged .npy / .npz raises
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def _load_array_file(path, what):
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise InputError(f"{path}: not a readable {what} file ({exc})".replace("\n", " ")) from None


def _npz_member(data, key, path):
    """Array `key` of an open .npz (its data is read here: a damaged member fails here)."""
    try:
        return data[key]
    except _READ_ERRORS as exc:
        raise InputError(f"{path}: array {key!r} is not readable ({type(exc).__name__}: "
                         f"{exc})".replace("\n", " ")) from None


def _numeric_matrix(X, path, name):
    import numpy as np

    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise InputError(f"{path}: {name} must be numeric; it has dtype {X.dtype}")
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise InputError(f"{path}: {name} must be a non-empty 2-D array; it has shape {X.shape}")
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise InputError(f"{path}: {name} contains NaN or Inf")
    return X


#: label texts that mean "missing" (compared in lower case), as pandas' read_csv reads them
_MISSING = ["na", "n/a", "nan", "-nan", "null", "none", "#n/a", "<na>"]


def read_training_data(path, label=None, header=None, x_key="X", y_key="y"):
    """(X float64 (m, n), labels (m,) numbers or str, feature names or None, label name,
    label column index or None)."""
    import numpy as np

    _check_path(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        data = _load_array_file(path, ".npz")
        with data:
            missing = [k for k in (x_key, y_key) if k not in data.files]
            if missing:
                raise InputError(f"{path}: the .npz has arrays {data.files}; it needs "
                                 f"{x_key!r} (features) and {y_key!r} (labels)")
            X, y = _npz_member(data, x_key, path), _npz_member(data, y_key, path)
        X = _numeric_matrix(X, path, x_key)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise InputError(f"{path}: {y_key} must have shape ({X.shape[0]},) to match "
                             f"{x_key}; it has {y.shape}")
        if y.dtype.kind not in "biufUS":
            raise InputError(f"{path}: {y_key} must hold numbers or strings; dtype {y.dtype}")
        return X, y, None, y_key, None
    if ext == ".npy":
        data = _numeric_matrix(_load_array_file(path, ".npy"), path, "the array")
        if data.shape[1] < 2:
            raise InputError(f"{path}: a .npy needs at least 2 columns (features, then the "
                             "label in the last column)")
        return data[:, :-1], data[:, -1], None, "label", data.shape[1] - 1
    table, names, lines = _read_csv(path, header)
    n_columns = table.shape[1]
    if n_columns < 2:
        raise InputError(f"{path}: needs at least 2 columns (features and a label); it has "
                         f"{n_columns}")
    li = _label_index(label, names, n_columns, path)
    features = [j for j in range(n_columns) if j != li]
    X = _to_float(table, features, names, path, lines)
    labels = table[:, li]
    if np.any(labels == ""):
        i = int(np.flatnonzero(labels == "")[0])
        raise InputError(f"{path}: line {lines[i]}: the label is empty")
    missing = np.isin(np.char.lower(labels), _MISSING)
    if missing.any() and all(map(_is_number, labels[~missing])):
        # among numbers, "NA" is a missing value, not a class of its own (among class
        # names such as none / mild / severe it is a class)
        i = int(np.flatnonzero(missing)[0])
        raise InputError(f"{path}: line {lines[i]}: the label {str(labels[i])!r} is a "
                         "missing value")
    return (X, labels, [names[j] for j in features] if names else None,
            names[li] if names else None, li)


def read_features(path, n_inputs, meta, header=None):
    """The feature matrix of a prediction input (dropping a training label column)."""
    _check_path(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        data = _load_array_file(path, ".npz")
        with data:
            key = meta.get("x_key", "X")
            if key not in data.files:
                raise InputError(f"{path}: the .npz has arrays {data.files}; it needs {key!r}")
            X = _numeric_matrix(_npz_member(data, key, path), path, key)
    elif ext == ".npy":
        X = _numeric_matrix(_load_array_file(path, ".npy"), path, "the array")
        if X.shape[1] == n_inputs + 1:
            X = X[:, :-1]
    else:
        features = meta.get("features")
        known = features if isinstance(features, list) and all(
            isinstance(f, str) for f in features) else None
        table, names, lines = _read_csv(path, header, known)
        columns = list(range(table.shape[1]))
        label = meta.get("label")
        known = ([f for f in features if f in names]
                 if names is not None and isinstance(features, list)
                 and len(set(features)) == len(features) else [])
        if any(names.count(f) > 1 for f in known):  # a repeated name: by position
            known = []
        if known and len(known) < len(features):
            missing = [f for f in features if f not in names]
            raise InputError(f"{path}: the header names some of the model's feature columns "
                             f"but not {missing}")
        if known:  # the header names every feature: take them by name, in the model's order
            X = _to_float(table, [names.index(f) for f in features], names, path, lines)
        elif table.shape[1] == n_inputs + 1:
            if names is not None and label in names:
                drop = names.index(label)
            else:
                drop = meta.get("label_index")
                drop = table.shape[1] - 1 if drop is None else drop
            columns.remove(drop % table.shape[1])
        elif names is not None and label in names and table.shape[1] != n_inputs:
            columns.remove(names.index(label))
        if not known:
            X = _to_float(table, columns, names, path, lines)
    if X.shape[1] != n_inputs:
        raise InputError(f"{path}: has {X.shape[1]} feature columns but the model expects "
                         f"{n_inputs}")
    return X


# ---------------------------------------------------------------------------- train
def _layers_arg(text):
    text = text.strip()
    if text.lower() in ("", "none", "0"):
        return []
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of layer sizes, e.g. 64,32") from None
    if any(size <= 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive; got {text!r}")
    return sizes


def _number(kind, ok, rule):
    """An argparse type: text -> kind, which must satisfy ok (stated as "must be <rule>")."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            what = "an int" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number; got {text}")
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}; got {text}")
        return value
    return parse


def _positive(kind):
    return _number(kind, lambda v: v > 0, "> 0")


_fraction_arg = _number(float, lambda v: 0.0 <= v < 1.0, "in [0, 1)")
_nonnegative_float = _number(float, lambda v: v >= 0, ">= 0")


def _json_label(value):
    """A label as a JSON value: whole numbers as int, other numbers as float, else str."""
    if isinstance(value, (str, bytes)):
        return value.decode() if isinstance(value, bytes) else value
    value = float(value)
    return int(value) if value.is_integer() else value


def _labels_and_task(labels, loss, path):
    """(loss, classes or None, targets): classes as JSON values, targets as class indices
    (classification) or float64 values (regression)."""
    import numpy as np

    labels = np.asarray(labels)
    numeric = labels.dtype.kind in "biuf"
    if not numeric:
        try:
            values = labels.astype(np.float64)
        except ValueError:
            values = None
        else:   # every label reads as a number: "nan" or "inf" is a bad label, not a class
            numeric = True
            if not np.isfinite(values).all():
                bad = labels[~np.isfinite(values)][0]
                raise InputError(f"{path}: label {str(bad)!r} is not a finite number")
    else:
        values = labels.astype(np.float64)
        if not np.isfinite(values).all():
            raise InputError(f"{path}: the labels contain NaN or Inf")
    if loss == "auto":
        whole = numeric and bool(np.all(values == np.round(values)))
        if not numeric or (whole and np.unique(values).size <= 50):
            loss = "cross_entropy"
        else:
            loss = "mse"
    if loss in ("mse", "mae"):
        if not numeric:
            bad = next(str(v) for v in labels if not _is_number(v))
            raise InputError(f"{path}: regression (--loss {loss}) needs numeric labels; got "
                             f"{bad!r}")
        return loss, None, values
    if numeric:  # classes in numeric order, printed as the numbers they are
        uniq, targets = np.unique(values, return_inverse=True)
        classes = [_json_label(v) for v in uniq]
    else:
        uniq, targets = np.unique(labels.astype(str), return_inverse=True)
        classes = [str(v) for v in uniq]
    if len(classes) < 2:
        raise InputError(f"{path}: classification needs at least 2 classes; every label is "
                         f"{classes[0]!r}")
    if loss == "bce" and len(classes) != 2:
        raise InputError(f"{path}: --loss bce is for two classes; the labels have "
                         f"{len(classes)} (use --loss cross_entropy)")
    return loss, classes, targets.astype(np.int64)


class _SavedModel:
    """What io.save reads from a network (get_config, backend, get_flat_params), with the
    CLI's metadata added to the config under "cli"."""

    def __init__(self, net, meta):
        self._net, self._meta = net, meta
        self.backend = net.backend

    def get_config(self):
        return dict(self._net.get_config(), cli=self._meta)

    def get_flat_params(self):
        return self._net.get_flat_params()


def _fold_standardization(net, mean, scale, y_mean=None, y_scale=None):
    """Fold x -> (x - mean) / scale into the first layer (and y = ŷ * y_scale + y_mean into
    an identity output layer), so the network takes raw features."""
    params = net.params
    W, b = params[0]
    W64 = W.astype("float64") / scale[:, None]
    params[0] = (W64, b.astype("float64") - mean @ W64)
    if y_mean is not None:
        W, b = params[-1]
        params[-1] = (W.astype("float64") * y_scale, b.astype("float64") * y_scale + y_mean)
    net.set_params(params)


#: the most a folded model's outputs may move from the trained network's (probabilities,
#: or regression targets in units of their standard deviation)
_FOLD_TOL = 1e-3


def _folded(net, mean, scale, y_mean, y_scale, X_raw):
    """The trained `net` (on standardized inputs) with the standardization folded in.

    Folding shifts the first layer's bias by mean @ W / scale; where the features' means
    are large against their spread, that cancellation loses float32's precision (e.g. Unix
    timestamps).  Then the folded float32 outputs would differ from the trained network's,
    so the float64 fold is returned instead, with a note on stderr."""
    import numpy as np

    import fastnn as fn

    ref = net.forward((X_raw - mean) / scale).astype(np.float64)
    params = [(W.copy(), b.copy()) for W, b in net.params]
    unit = 1.0 if y_mean is None else y_scale
    if y_mean is not None:
        ref = ref * y_scale + y_mean

    def moved(candidate):
        with np.errstate(all="ignore"):
            try:
                out = candidate.forward(X_raw).astype(np.float64)
            except ValueError:  # the folded outputs overflow
                return np.inf
            return float(np.max(np.abs(out - ref))) / unit if out.size else 0.0

    _fold_standardization(net, mean, scale, y_mean, y_scale)
    error = moved(net)
    if error <= _FOLD_TOL or net.dtype == np.float64:
        return net
    cfg = net.get_config()
    wide = fn.Network([fn.Dense(**c) for c in cfg["layers"]], cfg["n_inputs"], loss=cfg["loss"],
                      dtype="float64", backend=net.backend, seed=0)
    wide.seed = net.seed
    wide.set_params(params)
    _fold_standardization(wide, mean, scale, y_mean, y_scale)
    print(f"fastnn train: the model is saved in float64: folding the standardization into "
          f"float32 weights would move its outputs by {error:.3g} (the features' means are "
          "large against their spread)", file=sys.stderr)
    return wide


def _check_writable(path, what, not_=None):
    """InputError unless a file can be created at path (not_: an input it must not be)."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        raise InputError(f"{what} {path}: is a directory")
    if not_ is not None and os.path.exists(path) and os.path.exists(not_) and \
            os.path.samefile(path, not_):
        raise InputError(f"{what} {path}: is the input file {not_}; it would be overwritten")
    if not os.path.isdir(directory):
        raise InputError(f"{what} {path}: the directory {directory} does not exist")


def _train(args):
    import numpy as np

    import fastnn as fn
    from fastnn.io import save

    plot_path = None
    if args.plot:
        _check_writable(args.plot, "--plot", args.data)
        try:
            import matplotlib.pyplot  # noqa: F401 - what History.plot uses
            from matplotlib.figure import Figure
        except ImportError:
            raise InputError("--plot needs matplotlib: pip install 'fastnn[plot]'") from None
        ext = os.path.splitext(args.plot)[1].lower().lstrip(".")
        formats = Figure().canvas.get_supported_filetypes()
        if ext and ext not in formats:
            raise InputError(f"--plot {args.plot}: matplotlib cannot write {ext!r} files; use "
                             f"one of {', '.join('.' + f for f in sorted(formats))}")
        plot_path = args.plot if ext else args.plot + ".png"  # (what matplotlib writes)
    _check_writable(args.output, "--output", args.data)
    X, labels, feature_names, label_name, label_index = read_training_data(
        args.data, args.label, args.header, args.x_key, args.y_key)
    loss, classes, targets = _labels_and_task(labels, args.loss, args.data)
    m, n = X.shape
    rng = np.random.default_rng(args.seed)
    n_val = int(round(args.validation_split * m))
    if args.validation_split > 0 and m - n_val < 1:
        raise InputError(f"{args.data}: {m} rows leave nothing to train on after "
                         f"--validation-split {args.validation_split}")
    order = rng.permutation(m) if n_val else np.arange(m)
    val, train = order[:n_val], order[n_val:]
    X_train, y_train = X[train], targets[train]
    mean = scale = y_mean = y_scale = None
    if args.standardize:
        with np.errstate(all="ignore"):
            mean = X_train.mean(axis=0)
            scale = X_train.std(axis=0)
        if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
            raise InputError(f"{args.data}: feature values too large to standardize (their "
                             "mean or standard deviation overflows float64); scale them, or "
                             "use --no-standardize")
        scale[scale == 0] = 1.0
        if classes is None:
            y_mean, y_scale = float(y_train.mean()), float(y_train.std()) or 1.0

    def prepare(idx):
        Xp, yp = X[idx], targets[idx]
        if mean is not None:
            Xp = (Xp - mean) / scale
            if y_mean is not None:
                yp = (yp - y_mean) / y_scale
        return Xp, yp

    X_fit, y_fit = prepare(train)
    validation = prepare(val) if n_val else None
    if classes is None:
        out = fn.Dense(1, "identity")
    elif loss == "bce":
        out = fn.Dense(1, "sigmoid")
    else:
        out = fn.Dense(len(classes), "softmax")
    activation = "sigmoid" if args.activation == "logistic" else args.activation
    net = fn.Network([fn.Dense(units, activation) for units in args.layers] + [out],
                     n_inputs=n, loss=loss, dtype=args.dtype, backend=args.backend,
                     seed=args.seed)
    optimizer = {"adam": lambda: fn.Adam(lr=args.lr),
                 "sgd": lambda: fn.SGD(lr=args.lr, momentum=args.momentum,
                                       nesterov=args.momentum > 0),
                 "lbfgs": lambda: fn.LBFGS(maxiter=args.epochs)}[args.optimizer]()
    task = (f"classification, {len(classes)} classes" if classes is not None else "regression")
    label_text = repr(label_name) if label_name is not None else f"column {label_index}"
    print(f"fastnn train: {args.data}: {m} rows x {n} features, label {label_text} ({task}, "
          f"loss {loss}); {len(train)} train / {n_val} validation", file=sys.stderr)
    if not args.quiet:
        net.summary(print_fn=lambda text: print(text, file=sys.stderr))
    t0 = time.perf_counter()
    history = net.fit(X_fit, y_fit, optimizer=optimizer, epochs=args.epochs,
                      batch_size=args.batch_size, l2=args.l2, validation_data=validation,
                      early_stopping=args.early_stopping or False, progress=not args.quiet,
                      seed=args.seed)
    seconds = time.perf_counter() - t0
    if mean is not None:
        net = _folded(net, mean, scale, y_mean, y_scale, X[train[:2048]])
    meta = {"label": label_name, "label_index": label_index, "features": feature_names,
            "classes": classes, "task": "classification" if classes is not None else
            "regression", "x_key": args.x_key, "trained_on": os.path.basename(args.data)}
    save(_SavedModel(net, meta), args.output)
    line = f"trained {len(history)} epochs in {seconds:.2f} s; final loss {history.loss[-1]:.4g}"
    if history.val_loss:
        line += f", val_loss {history.val_loss[-1]:.4g}"
    if history.val_accuracy:
        line += f", val_accuracy {history.val_accuracy[-1]:.4f}"
    print(line)
    if args.plot:
        import matplotlib.pyplot as plt

        fig = history.plot(plot_path)
        plt.close(fig)
        print(f"saved the training curve to {plot_path}")
    print(f"saved the model to {args.output}")
    return 0


# ---------------------------------------------------------------------------- predict
def _model_meta(path):
    """The CLI metadata stored in a model file's config (empty for other models)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            config = json.loads(data["config"].tobytes().decode("utf-8"))
    except Exception:  # fastnn.load has already validated the file
        return {}
    meta = config.get("cli") if isinstance(config, dict) else None
    return meta if isinstance(meta, dict) else {}


def _format(values):
    import numpy as np

    values = np.asarray(values)
    if values.dtype.kind == "f":   # NumPy's shortest text that reads back as the same value
        return [str(v) for v in values]
    return [str(v) for v in values.tolist()]


def _predict(args):
    import numpy as np

    import fastnn as fn

    _check_path(args.model)
    if args.output:
        _check_writable(args.output, "--output", args.input)
        _check_writable(args.output, "--output", args.model)
    try:
        net = fn.load(args.model, backend=args.backend)
    except fn.ModelFileError as exc:
        raise InputError(str(exc)) from None
    meta = _model_meta(args.model)
    X = read_features(args.input, net.n_inputs, meta, args.header)
    classes = meta.get("classes")
    label = meta.get("label") or "prediction"
    classification = net.loss in ("cross_entropy", "bce")
    if args.proba:
        if not classification:
            raise InputError(f"--proba needs a classifier; {args.model} is a regression model "
                             f"(loss {net.loss})")
        P = net.predict_proba(X)
        if net.loss == "bce" and P.shape[1] == 1:
            P = np.hstack([1.0 - P, P])
        names = classes if classes is not None and len(classes) == P.shape[1] else \
            list(range(P.shape[1]))
        header = [f"proba_{c}" for c in names]
        columns = [_format(P[:, j]) for j in range(P.shape[1])]
    else:
        pred = net.predict(X)
        if classification and pred.ndim == 1:
            if classes is not None and len(classes) >= int(pred.max()) + 1:
                pred = np.asarray([classes[i] for i in pred.tolist()], dtype=object)
            header, columns = [label], [_format(pred)]
        else:
            pred = pred.reshape(pred.shape[0], -1)
            header = [label] if pred.shape[1] == 1 else [f"{label}_{j}" for j in
                                                         range(pred.shape[1])]
            columns = [_format(pred[:, j]) for j in range(pred.shape[1])]
    rows = zip(*columns)
    if args.output:
        with open(args.output, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        print(f"wrote {X.shape[0]} predictions to {args.output}", file=sys.stderr)
    else:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return 0


# ---------------------------------------------------------------------------- bench
def _compare_path():
    """bench/compare.py of the source checkout this fastnn was imported from, or None."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(os.path.dirname(here), "bench", "compare.py")
    return path if os.path.isfile(path) else None


def _bench(argv):
    import importlib.util

    path = _compare_path()
    if path is None:
        print("fastnn: error: 'fastnn bench' runs bench/compare.py from a source checkout of "
              "fastnn, and none is beside this installation (installed from a wheel?). Clone "
              "the repository and run 'python -m fastnn bench' there, or "
              "'python bench/compare.py'.", file=sys.stderr)
        return 1
    root = os.path.dirname(os.path.dirname(path))
    if root not in sys.path:
        sys.path.insert(0, root)  # compare.py imports its siblings as `bench.*`
    spec = importlib.util.spec_from_file_location("fastnn_bench_compare", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "main"):
        print(f"fastnn: error: {path} has no main(argv) function", file=sys.stderr)
        return 1
    argv = list(argv)
    if "--full" in argv:
        argv.remove("--full")
    elif not {"--quick", "-h", "--help"} & set(argv):
        argv.insert(0, "--quick")
    if {"-h", "--help"} & set(argv):
        print(_BENCH_DESCRIPTION)
    try:
        code = module.main(argv)
    except SystemExit as exc:  # its argparse: --help, or a usage error
        code = exc.code
    except ValueError as exc:  # e.g. an unknown workload key
        return _error(exc)
    if code is None:
        return 0
    return code if isinstance(code, int) else _error(code)


# ---------------------------------------------------------------------------- parser
def build_parser():
    parser = _Parser(
        prog="fastnn",
        description="fastnn: train and run fully connected neural networks (MLPs) fast, on "
                    "CPU cores (Numba) or an NVIDIA GPU.",
        epilog=_EPILOG_MAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    from fastnn import __version__
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    formatter = argparse.RawDescriptionHelpFormatter

    demo = sub.add_parser("demo", help="train a digits classifier and print its test accuracy",
                          description="Train a 64-64-10 ReLU/softmax network on scikit-learn's "
                                      "digits (70/30 split), with a progress bar; print the test "
                                      "accuracy and the time taken.")
    demo.add_argument("--epochs", type=_positive(int), default=30,
                      help="epochs to train (default 30)")
    demo.add_argument("--backend", default="cpu", choices=["cpu", "reference", "cuda"],
                      help="kernels backend (default cpu)")
    demo.add_argument("--seed", type=_number(int, lambda v: v >= 0, ">= 0"), default=0,
                      help="random seed (default 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)

    train = sub.add_parser(
        "train", help="train a network on a CSV / .npy / .npz file and save it",
        description=_TRAIN_DESCRIPTION, formatter_class=formatter,
        epilog="example:\n  fastnn train iris.csv --label species --layers 16 --epochs 100 "
               "--output iris.fnn --plot curve.png")
    train.add_argument("data", metavar="DATA", help="training data: .csv, .npz or .npy")
    data = train.add_argument_group("data")
    data.add_argument("--label", metavar="COLUMN",
                      help="the label column of a CSV: its header name or 0-based index "
                           "(negative counts from the end; default: the last column)")
    group = data.add_mutually_exclusive_group()
    group.add_argument("--header", dest="header", action="store_const", const=True,
                       default=None, help="the CSV's first row is a header (default: detected)")
    group.add_argument("--no-header", dest="header", action="store_const", const=False,
                       help="the CSV has no header row")
    data.add_argument("--x-key", default="X", help="features array name in a .npz (default X)")
    data.add_argument("--y-key", default="y", help="labels array name in a .npz (default y)")
    data.add_argument("--validation-split", type=_fraction_arg, default=0.1, metavar="FRACTION",
                      help="fraction of rows held out to report validation loss/accuracy "
                           "(default 0.1; 0 for none)")
    data.add_argument("--no-standardize", dest="standardize", action="store_false",
                      help="train on raw feature values (default: standardize, folded into "
                           "the saved weights)")
    model = train.add_argument_group("network")
    model.add_argument("--layers", type=_layers_arg, default=[64], metavar="N1,N2,...",
                       help="hidden layer sizes, e.g. 64,32 (default 64; 'none' for no hidden "
                            "layer: logistic / linear regression)")
    model.add_argument("--activation", default="relu",
                       choices=["relu", "tanh", "sigmoid", "logistic", "leaky_relu", "identity"],
                       help="hidden-layer activation (default relu)")
    model.add_argument("--loss", default="auto",
                       choices=["auto", "cross_entropy", "bce", "mse", "mae"],
                       help="loss, which also picks the output layer (default auto: see above)")
    model.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                       help="compute dtype (default float32)")
    model.add_argument("--backend", default="cpu", choices=["cpu", "reference", "cuda"],
                       help="kernels backend (default cpu)")
    opt = train.add_argument_group("training")
    opt.add_argument("--epochs", type=_positive(int), default=30,
                     help="passes over the data (L-BFGS: iterations) (default 30)")
    opt.add_argument("--batch-size", type=_positive(int), default=32,
                     help="examples per gradient step (default 32)")
    opt.add_argument("--optimizer", default="adam", choices=["adam", "sgd", "lbfgs"],
                     help="optimizer (default adam; lbfgs is full-batch)")
    opt.add_argument("--lr", type=_positive(float), default=3e-3,
                     help="learning rate for adam / sgd (default 0.003)")
    opt.add_argument("--momentum", type=_fraction_arg, default=0.9,
                     help="sgd momentum, Nesterov (default 0.9)")
    opt.add_argument("--l2", type=_nonnegative_float, default=0.0,
                     help="L2 weight decay λ: adds λ/(2m)·ΣW² to the cost (default 0)")
    opt.add_argument("--early-stopping", type=_positive(int), default=None, metavar="PATIENCE",
                     help="stop when the validation loss has not improved for PATIENCE epochs "
                          "and keep the best epoch's weights")
    opt.add_argument("--seed", type=_number(int, lambda v: v >= 0, ">= 0"), default=0,
                      help="random seed (default 0)")
    out = train.add_argument_group("output")
    out.add_argument("--output", "-o", default="model.fnn", metavar="PATH",
                     help="where to save the model (default model.fnn)")
    out.add_argument("--plot", metavar="PNG",
                     help="also save the training curve (History.plot; needs matplotlib)")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    train.set_defaults(func=_train)

    predict = sub.add_parser("predict", help="predict with a saved model, write CSV",
                             description=_PREDICT_DESCRIPTION, formatter_class=formatter,
                             epilog="example:\n  fastnn predict --model iris.fnn --input "
                                    "new.csv --output predictions.csv")
    predict.add_argument("--model", "-m", required=True, metavar="PATH",
                         help="a model file saved by 'fastnn train'")
    predict.add_argument("--input", "-i", required=True, metavar="DATA",
                         help="the examples: .csv, .npz (array X) or .npy")
    predict.add_argument("--output", "-o", metavar="PATH",
                         help="CSV file to write (default: standard output)")
    predict.add_argument("--proba", action="store_true",
                         help="write class probabilities, one column per class")
    group = predict.add_mutually_exclusive_group()
    group.add_argument("--header", dest="header", action="store_const", const=True,
                       default=None, help="the CSV's first row is a header (default: detected)")
    group.add_argument("--no-header", dest="header", action="store_const", const=False,
                       help="the CSV has no header row")
    predict.add_argument("--backend", default=None, choices=["cpu", "reference", "cuda"],
                         help="kernels backend (default: the saved one if available, else cpu)")
    predict.set_defaults(func=_predict)

    bench = sub.add_parser("bench", help="compare fastnn with its peers (bench/compare.py)",
                           description=_BENCH_DESCRIPTION, formatter_class=formatter,
                           add_help=False)
    bench.add_argument("args", nargs=argparse.REMAINDER, help="arguments for bench/compare.py")
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings (e.g. a model saved on a backend not available here) as one line."""
    print(f"fastnn: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _error(message, code=EXIT_BAD_INPUT):
    print(f"fastnn: error: {' '.join(str(message).split())}", file=sys.stderr)
    return code


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        return _bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse's message, exit code 2
    if args.command is None:   # a usage error: the help goes to stderr
        parser.print_help(file=sys.stderr)
        return EXIT_BAD_INPUT
    with warnings.catch_warnings():   # (restores the process's warning display after)
        warnings.showwarning = _show_warning
        return _run(args)


def _run(args):
    """Run the parsed command: its exit code; errors as one line (_error)."""
    from fastnn import get_backend
    from fastnn.train import TrainingDiverged

    if getattr(args, "backend", None) is not None:
        try:
            get_backend(args.backend)
        except RuntimeError as exc:  # e.g. cuda without a usable GPU
            return _error(exc)
    try:
        return args.func(args)
    except InputError as exc:
        return _error(exc)
    except BrokenPipeError:  # e.g. `fastnn predict ... | head`: the reader has gone
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 0
    except TrainingDiverged as exc:   # (its message starts "training diverged")
        return _error(exc, 1)
    except (ValueError, TypeError, OSError) as exc:
        return _error(exc)
    except KeyboardInterrupt:
        return _error("interrupted", 130)
