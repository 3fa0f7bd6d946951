"""Parameter files of the explicit models (SPEC §2.1–2.3): a versioned JSON format a user
can write, edit and hand to any ``check`` (``--model-file``; ours, issue 17)::

    {"format": "pgm-ladder explicit model", "version": 1,
     "kind": "static_gaussian_hierarchy" | "temporal_gaussian_hierarchy" | "tagger_mixture",
     "description": "...",                                   (optional)
     "parameters": {the constructor's keyword arguments: numbers, strings, nested lists}}

``parameters`` are what the model's ``parameters()`` returns, so that
``load_model_file(save_model_file(m))`` rebuilds ``m`` exactly (float64 values are written
in Python's shortest round-trip form). Every problem — a missing or unreadable file, bad
JSON, another format, version or kind, unknown or missing parameters, a NaN or infinite
value, a value the constructor refuses — raises :class:`ModelFileError` naming the file
and the field.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Optional

import torch

from .static_hierarchy import StaticGaussianHierarchy
from .tagger_mixture import TaggerMixture
from .temporal_hierarchy import TemporalGaussianHierarchy

FORMAT = "pgm-ladder explicit model"
VERSION = 1
#: kind -> model class (its constructor takes the file's ``parameters``)
KINDS = {"static_gaussian_hierarchy": StaticGaussianHierarchy,
         "temporal_gaussian_hierarchy": TemporalGaussianHierarchy,
         "tagger_mixture": TaggerMixture}
_FIELDS = ("format", "version", "kind", "description", "parameters")


class ModelFileError(ValueError):
    """A parameter file that cannot be used; the message names the file and the field."""


def kind_of(model) -> str:
    """The file kind of ``model`` (a :class:`TypeError` for a class without one)."""
    for kind, cls in KINDS.items():
        if type(model) is cls:
            return kind
    raise TypeError(f"no parameter-file kind for a {type(model).__name__} (known: {sorted(KINDS)})")


def constructor_fields(kind: str) -> tuple[list[str], list[str]]:
    """``(every parameter name, the required ones)`` of ``kind``'s constructor (``dtype``
    and ``device`` are not file fields)."""
    params = [p for p in inspect.signature(KINDS[kind].__init__).parameters.values()
              if p.name not in ("self", "dtype", "device")]
    return [p.name for p in params], [p.name for p in params if p.default is inspect.Parameter.empty]


def _plain(value):
    """Tensors (and lists of them) as nested lists of floats, for JSON."""
    if torch.is_tensor(value):
        return value.detach().to("cpu", torch.float64).tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def model_file_text(model, description: str = "") -> str:
    """The parameter file of ``model`` as text: one line per parameter."""
    head = {"format": FORMAT, "version": VERSION, "kind": kind_of(model)}
    if description:
        head["description"] = description
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in head.items()]
    params = [f"    {json.dumps(k)}: {json.dumps(_plain(v), allow_nan=False)}"
              for k, v in model.parameters().items()]
    return "{\n" + ",\n".join(lines + ['  "parameters": {\n' + ",\n".join(params) + "\n  }"]) + "\n}\n"


def save_model_file(model, path, description: str = "") -> Path:
    """Write ``model``'s parameter file to ``path`` atomically (a temporary file beside it,
    then ``os.replace``: a reader sees the old file or the new one). Returns the path."""
    path = Path(path)
    text = model_file_text(model, description)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_bytes(path) -> bytes:
    """The bytes of the file at ``path``, or a :class:`ModelFileError` saying where it was
    expected and why it cannot be read."""
    where = Path(path).absolute()
    try:
        return where.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{where}: no model file there (expected a parameter file at this path)") from None
    except IsADirectoryError:
        raise ModelFileError(f"{where}: is a directory, not a model file") from None
    except OSError as err:
        raise ModelFileError(f"{where}: cannot be read ({err.strerror or err})") from None


def sha256_of(path) -> str:
    """The sha256 (hex) of the file at ``path``."""
    return hashlib.sha256(read_bytes(path)).hexdigest()


def load_model_file(path, kind: Optional[str] = None, sha256: Optional[str] = None):
    """The model in the parameter file at ``path`` (float64). ``kind``: the kind required
    (another is refused); ``sha256``: the hex digest the file must have (a changed file is
    refused, naming both digests)."""
    data = read_bytes(path)
    where = Path(path).absolute()
    if sha256:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256.lower():
            raise ModelFileError(f"{where}: the file changed: its sha256 is now {digest}, the run was "
                                 f"configured with sha256 {sha256} (a run trained on other parameters is "
                                 "never reused: restore the file, or use a fresh output folder)")
    return parse_model_file(data, where, kind)


def parse_model_file(data: bytes, where, kind: Optional[str] = None):
    """The model of a parameter file's bytes ``data`` (``where`` names it in errors)."""
    def fail(message: str):
        raise ModelFileError(f"{where}: {message}")
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        fail("not UTF-8 text (a parameter file is JSON)")
    except json.JSONDecodeError as err:
        fail(f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})")
    if not isinstance(doc, dict):
        fail(f"expected a JSON object with fields {list(_FIELDS)}, got a {type(doc).__name__}")
    if unknown := sorted(set(doc) - set(_FIELDS)):
        fail(f"unknown field(s) {unknown} (a parameter file has {list(_FIELDS)})")
    if doc.get("format") != FORMAT:
        fail(f"format: expected {FORMAT!r}, got {doc.get('format')!r}")
    if doc.get("version") != VERSION or isinstance(doc.get("version"), bool):
        fail(f"version: this pgm-ladder reads version {VERSION}, got {doc.get('version')!r}")
    found = doc.get("kind")
    if found not in KINDS:
        fail(f"kind: expected one of {sorted(KINDS)}, got {found!r}")
    if kind is not None and found != kind:
        fail(f"kind: the file holds a {found}, this needs a {kind}")
    if not isinstance(doc.get("description", ""), str):
        fail("description: expected a string")
    params = doc.get("parameters")
    if not isinstance(params, dict):
        fail(f"parameters: expected a JSON object of constructor arguments, got {type(params).__name__}")
    names, required = constructor_fields(found)
    if unknown := sorted(set(params) - set(names)):
        fail(f"parameters: unknown field(s) {unknown} (a {found} takes {names})")
    if missing := [n for n in required if n not in params]:
        fail(f"parameters: missing required field(s) {missing}")
    for name, value in params.items():
        if (bad := non_finite(value, f"parameters.{name}")) is not None:
            fail(f"{bad} is {value_at(value, bad)}: every value must be a finite number")
    try:
        return KINDS[found](**params)
    except (ValueError, TypeError) as err:
        fail(f"parameters: {err}")


def non_finite(value, field: str) -> Optional[str]:
    """The field path (``parameters.stds[1][0]``) of the first NaN or infinite number in
    the nested lists ``value``, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return field
    if isinstance(value, list):
        for i, v in enumerate(value):
            if (bad := non_finite(v, f"{field}[{i}]")) is not None:
                return bad
    return None


def value_at(value, field: str):
    """The value at ``field``'s indices (``...[1][0]``) inside ``value``."""
    for index in field.split("[")[1:]:
        value = value[int(index.rstrip("]"))]
    return value
