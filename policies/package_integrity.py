"""Policy package integrity: reading ``policy.yaml`` safely and verifying every file the model loads.

The manifest
------------
A package's hashes cover every file that ``vertebra serve`` reads for the model: the model file and
each ONNX external-data file the model references (large weights are often saved beside the graph,
``onnx.save_model(..., save_as_external_data=True)``). In ``policy.yaml``::

    model:
      file: model.onnx                # relative to the package folder
      sha256: 9f86d08...              # of model.onnx
      files:                          # every external-data file model.onnx references, by its path
        weights.bin: 60303ae2...      # relative to the package folder; its sha256

``model.files`` may be left out when the model has no external data (the shipped packages), so the
manifest is then the model file alone. A model that references a file ``model.files`` does not list
is refused, and so is an entry the model does not reference: the manifest is exactly what is loaded.
An external-data location is resolved as onnxruntime does, against the model file's folder.

What is refused (fail closed; every message names the file, the field and the value)
-------------------------------------------------------------------------------------
  - a path (``model.file``, a ``model.files`` key, an external-data ``location``) that is absolute or
    contains ``..``, or that resolves (symlinks followed) outside the package folder;
  - a file that is not a regular file (a directory, a FIFO, a device) or is empty, a model that is
    not an ONNX protobuf (truncated, or some other file), an external-data range past its file's end;
  - onnxruntime's in-memory external-data tag (a location that names a memory address, not a file);
  - a ``policy.yaml`` over :data:`MAX_POLICY_YAML_BYTES`, with a duplicate key, with a recursive
    alias, or whose aliases expand the document by more than :data:`MAX_ALIAS_NODES` nodes (a
    "billion laughs" file). Aliases stay allowed within that bound: ``yaml.safe_dump`` writes them
    for a repeated list such as the joint names of the ``q`` and ``dq`` state fields.

Files are opened without following a final symlink and checked with ``fstat`` on the open descriptor,
so a file swapped for a FIFO or a link between the check and the read is refused, not read.
"""

from __future__ import annotations

import hashlib
import os
import re
import reprlib
import stat
from pathlib import Path, PurePosixPath
from typing import IO, Any

import yaml

MAX_POLICY_YAML_BYTES = 1 << 20
MAX_ALIAS_NODES = 10_000
ORT_MEMORY_ADDRESS_TAG = "*/_ORT_MEM_ADDR_/*"  # onnxruntime reads such "external data" from memory

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60


class PackageError(ValueError):
    """A policy package is unreadable or inconsistent; the message names the file and field."""


def show(value: Any) -> str:
    """A short repr for messages (a huge or deeply nested value stays one short line)."""
    return _repr.repr(value)


def _hash_stream(f: IO[bytes]) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as f:
        return _hash_stream(f)


def sha256_field(d: dict[str, Any], key: str, where: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not _SHA256.fullmatch(v):
        raise PackageError(f"{where}: field '{key}' must be a sha256 (64 hex digits), found {show(v)}")
    return v.lower()


# ---------------------------------------------------------------------------------------------- files

def package_path(root: Path, rel: Any, field: str) -> tuple[str, Path]:
    """``rel`` (a path relative to the package folder ``root``, already resolved) checked and
    resolved: (its normal form, the file it resolves to inside ``root``)."""
    if not isinstance(rel, str) or not rel or "\0" in rel:
        raise PackageError(f"{field}: a non-empty path relative to the package folder is required, found {show(rel)}")
    p = PurePosixPath(rel)
    if p.is_absolute():
        raise PackageError(f"{field}: '{rel}' is an absolute path; it must be relative to the package folder {root}")
    if ".." in p.parts:
        raise PackageError(f"{field}: '{rel}' contains '..'; it must stay inside the package folder {root}")
    try:
        real = (root / p).resolve(strict=True)
    except FileNotFoundError:
        raise PackageError(f"{field}: '{rel}' is missing from the package folder {root}") from None
    except (OSError, RuntimeError) as e:  # a symlink loop (RuntimeError before Python 3.13)
        raise PackageError(f"{field}: '{rel}' cannot be resolved ({e})") from None
    if not real.is_relative_to(root):
        raise PackageError(f"{field}: '{rel}' resolves to {real}, outside the package folder {root}")
    return p.as_posix(), real


def open_regular(real: Path, field: str, rel: str) -> IO[bytes]:
    """Open a resolved package file for reading: a regular, non-empty file, no final symlink."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except OSError as e:
        raise PackageError(f"{field}: '{rel}' ({real}) cannot be opened: {e.strerror}") from None
    st = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = f"is a {_file_kind(st.st_mode)}, not a regular file"
    elif st.st_size == 0:
        problem = "is empty (0 bytes)"
    if problem:
        os.close(fd)
        raise PackageError(f"{field}: '{rel}' ({real}) {problem}")
    return os.fdopen(fd, "rb")


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


# ---------------------------------------------------------------------------------------------- YAML

class _PolicyYamlLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and recursive aliases, and bounds what aliases add."""

    where = "policy.yaml"

    def construct_document(self, node: yaml.Node) -> Any:
        sizes: dict[int, int] = {}
        added = _expanded_size(node, sizes, set(), self.where) - len(sizes)
        if added > MAX_ALIAS_NODES:
            raise PackageError(f"{self.where}: YAML aliases expand the document by {added} nodes; at most "
                               f"{MAX_ALIAS_NODES} are allowed (aliases are for short repeated lists, e.g. joints)")
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)
                if key in seen:
                    raise PackageError(f"{self.where}: key {show(key)} appears twice in one mapping "
                                       f"(line {key_node.start_mark.line + 1}); each key may appear once")
                seen.add(key)
        return super().construct_mapping(node, deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], active: set[int], where: str) -> int:
    """Nodes in ``node`` with every alias expanded (``sizes``: per distinct node, memoised)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:
        raise PackageError(f"{where}: a recursive YAML alias (a node that contains itself); aliases may not recurse")
    active.add(key)
    if isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    size = 1 + sum(_expanded_size(c, sizes, active, where) for c in children)
    active.discard(key)
    sizes[key] = size
    return size


def read_policy_yaml(root: Path, where: str) -> Any:
    """The parsed ``policy.yaml`` of the package folder ``root`` (see the module docstring)."""
    _, real = package_path(root, "policy.yaml", where)
    with open_regular(real, where, "policy.yaml") as f:
        data = f.read(MAX_POLICY_YAML_BYTES + 1)
    if len(data) > MAX_POLICY_YAML_BYTES:
        raise PackageError(f"{where}: {os.path.getsize(real)} bytes; a policy.yaml may be at most "
                           f"{MAX_POLICY_YAML_BYTES} bytes")
    loader = _PolicyYamlLoader(data)
    loader.where = where
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        raise PackageError(f"{where}: not valid YAML: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise PackageError(f"{where}: YAML nested too deeply") from None
    finally:
        loader.dispose()


# ---------------------------------------------------------------------------------------------- ONNX

def _graph_tensors(graph: Any) -> Any:
    yield from graph.initializer
    for sp in graph.sparse_initializer:
        yield from (sp.values, sp.indices)
    for node in graph.node:
        yield from _attribute_tensors(node.attribute)


def _attribute_tensors(attributes: Any) -> Any:
    for a in attributes:
        if a.HasField("t"):
            yield a.t
        yield from a.tensors
        sparse = list(a.sparse_tensors) + ([a.sparse_tensor] if a.HasField("sparse_tensor") else [])
        for sp in sparse:
            yield from (sp.values, sp.indices)
        for g in list(a.graphs) + ([a.g] if a.HasField("g") else []):
            yield from _graph_tensors(g)


def _model_tensors(model: Any) -> Any:
    yield from _graph_tensors(model.graph)
    for fn in model.functions:
        for node in fn.node:
            yield from _attribute_tensors(node.attribute)
    for ti in model.training_info:
        yield from _graph_tensors(ti.initialization)
        yield from _graph_tensors(ti.algorithm)


def _external_data(model_bytes: bytes, field: str, rel: str) -> list[tuple[str, str, int, int | None]]:
    """(tensor name, location, offset, length) of every tensor of the model stored outside it."""
    try:
        import onnx
    except ImportError:
        raise PackageError(f"{field}: cannot verify '{rel}': the 'onnx' package is not installed "
                           "(pip install 'vertebra[serve]')") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(model_bytes)
    except Exception as e:  # google.protobuf.message.DecodeError and the C++ parser's errors
        raise PackageError(f"{field}: '{rel}' is not an ONNX model (truncated or another file: {e})") from None
    if not model.HasField("graph") or not model.graph.output:
        raise PackageError(f"{field}: '{rel}' is not an ONNX model (it has no graph with outputs)")
    refs = []
    for t in _model_tensors(model):
        entries = {e.key: e.value for e in t.external_data}
        if t.data_location != onnx.TensorProto.EXTERNAL and not entries:
            continue
        try:
            offset = int(entries.get("offset", "0"))
            length = int(entries["length"]) if "length" in entries else None
        except ValueError:
            offset = length = -1
        if offset < 0 or length is not None and length < 0:
            raise PackageError(f"{field}: '{rel}' tensor '{t.name}' has an invalid external-data offset/length "
                               f"({show(entries.get('offset'))}, {show(entries.get('length'))})")
        refs.append((t.name, entries.get("location", ""), offset, length))
    return refs


def _listed_files(root: Path, model: dict[str, Any], mfile: str, where: str) -> dict[str, str]:
    """``model.files`` with each key in normal form (checked like ``model.file``)."""
    listed = model.get("files", {})
    if not isinstance(listed, dict):
        raise PackageError(f"{where}: model.files must be a mapping of file: sha256, found {show(listed)}")
    manifest: dict[str, str] = {}
    for key in listed:
        norm, _ = package_path(root, key, f"{where}: model.files")
        if norm == mfile:
            raise PackageError(f"{where}: model.files: '{key}' is model.file, which model.sha256 covers")
        if norm in manifest:
            raise PackageError(f"{where}: model.files: '{key}' is the file '{norm}' listed twice")
        manifest[norm] = sha256_field(listed, key, f"{where}: model.files")
    return manifest


def verify_model(root: Path, model: dict[str, Any], where: str, verify_hash: bool) -> tuple[str, str, dict[str, str]]:
    """Check ``policy.yaml``'s ``model`` section against the files (see the module docstring):
    (model.file in normal form, its sha256, {external-data file: sha256}). With ``verify_hash``
    false every check but the hash comparisons still runs."""
    field = f"{where}: model.file"
    mfile, mreal = package_path(root, model.get("file"), field)
    sha = sha256_field(model, "sha256", where + ": model")
    manifest = _listed_files(root, model, mfile, where)
    with open_regular(mreal, field, mfile) as f:
        data = f.read()
    found = hashlib.sha256(data).hexdigest()
    if verify_hash and found != sha:
        raise PackageError(f"{mreal}: sha256 {found} does not match policy.yaml's {sha} (corrupted or replaced)")
    ranges: dict[str, list[tuple[str, int, int | None]]] = {}
    reals = {mfile: mreal}
    folder = PurePosixPath(mfile).parent
    for tensor, location, offset, length in _external_data(data, field, mfile):
        what = f"{field}: '{mfile}' tensor '{tensor}' external data"
        if not location or ORT_MEMORY_ADDRESS_TAG in location:
            raise PackageError(f"{what}: location {show(location)} does not name a file (onnxruntime reads "
                               f"'{ORT_MEMORY_ADDRESS_TAG}' from memory)")
        rel, real = package_path(root, (folder / location).as_posix(), what)  # as onnxruntime resolves it
        reals[rel] = real
        ranges.setdefault(rel, []).append((tensor, offset, length))
    sizes = {mfile: len(data)}
    for rel in sorted(ranges):
        if rel != mfile and rel not in manifest:
            raise PackageError(f"{where}: model.files: '{mfile}' loads external data from '{rel}', which model.files "
                               f"does not cover; list it with its sha256 (covered: {', '.join(manifest) or 'none'})")
    for rel, want in manifest.items():
        if rel not in ranges:
            raise PackageError(f"{where}: model.files: '{rel}' is not external data of '{mfile}'; "
                               f"it references {', '.join(sorted(ranges)) or 'none'}")
        with open_regular(reals[rel], f"{where}: model.files", rel) as f:
            sizes[rel] = os.fstat(f.fileno()).st_size
            got = _hash_stream(f) if verify_hash else want
        if got != want:
            raise PackageError(f"{reals[rel]}: sha256 {got} does not match policy.yaml's model.files['{rel}'] {want} "
                               "(corrupted or replaced)")
    for rel, uses in ranges.items():
        for tensor, offset, length in uses:
            end = offset + (length or 0)
            if end > sizes[rel]:
                raise PackageError(f"{field}: '{mfile}' tensor '{tensor}' needs bytes up to {end} of '{rel}', which "
                                   f"has {sizes[rel]} (truncated)")
    return mfile, sha, manifest
