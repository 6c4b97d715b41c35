"""Declarative configuration: each config is declared once, as a class, and that one declaration drives
parsing from YAML mappings, unknown-key rejection, type and bound checks, defaults, cross-field checks
and a generated description (what ``vertebra config check`` prints).

Declaring a config (this module is an extension point: a new driver, controller or robot part declares
its settings this way)::

    class Hoist(Section):
        \"\"\"The rope that holds the simulated robot above the ground.\"\"\"      # the section's doc

        clearance_m = field(float, lo=0.02, hi=1.0, doc="feet this far above the ground while hanging")
        stiffness_n_m = field(float, default=4000.0, lo=100, hi=1e5, doc="rope stiffness")

    class Sim(Section):
        sim_rate_hz = field(float, default=2000.0, lo=100, hi=10_000, doc="physics rate")
        hoist = field(Hoist, doc="the hoist")                          # a nested section: required
        noise = field(Noise, default={}, doc="sensor noise")           # parsed from {} when absent
        wbc = field(Wbc, default=None, doc="whole-body controller")    # optional: None when absent
        cameras = field(list, item=Camera, default=[], doc="cameras")  # a list of sections
        pos_m = field(list, item=float, size=3, doc="position")        # bounds/choices apply to each item
        contact = field(str, choices={"flat": "6-D sole contacts", "point": "3-D foot contacts"})
        driver = field(Variant(driver_types, key="type", what="driver"))   # class chosen by `type`

        def check(self, context):              # cross-field checks: after the whole file parsed
            if self.sim_rate_hz % context.control_rate_hz:               # context: what from_dict was given
                raise self.error("sim_rate_hz", self.sim_rate_hz, "a multiple of the control rate")

    sim = Sim.from_dict(yaml.safe_load(text), "g1.yaml", path="sim")   # or Sim(sim_rate_hz=1000, hoist={...})

Rules the parser applies, for every config alike:

* A field without ``default`` is required. A YAML ``null`` counts as absent (the default applies).
* Keys a section does not declare are refused; the error lists the section's fields.
* ``float`` fields take finite numbers (ints too, and ``1e-6``, which YAML 1.1 reads as a string) and
  store floats; ``int`` fields take integers (and integral floats); ``bool`` only true/false; ``str`` a
  non-empty string (``""`` too when the default is ``""``), optionally matching ``pattern`` (full
  match) or one of ``choices`` (a sequence, or a mapping value -> doc). ``lo``/``hi`` bound numbers
  (``lo_open``/``hi_open`` make a bound strict).
* ``list`` fields take a list of ``item`` (a kind as above, a Section subclass, or None for anything),
  ``size`` (exact) or ``min_size`` long; ``dict`` fields a mapping of string keys (restricted to ``keys``
  when given; ``key_doc`` names them in errors) to ``item`` values.
* A section with an ``enabled`` field (``field(bool, default=True)``) and thresholds or switches is a
  monitor group. Its fields declared with ``off=<value>`` are its thresholds: required while the
  section is enabled (there is no silent default), and set to ``off`` (what the consumer reads as
  "off") when the file says ``enabled: false``. A ``bool`` field declared with ``switch=True`` turns
  one monitor of an enabled section on or off. :meth:`Section.monitors` and :meth:`Section.disabled`
  report them.
* Missing required fields are collected over the whole file and refused together, one
  :class:`MissingFieldsError` listing each dotted path; any other bad value is refused at once, one field
  per :class:`ConfigError` (``<file>: field '<path>': found <repr>; valid: <text>``).
* After the whole file parsed and nothing is missing, every section's :meth:`Section.check` runs,
  children before their parents, with the ``context`` the caller passed to ``from_dict``. A check may
  also normalise or derive attributes (plain attributes, not fields). Checks of a monitor group should
  skip its thresholds when ``enabled`` is false.
* A parsed section is a plain object: fields are attributes (``cfg.sim.hoist.clearance_m``), and also
  readable by name (``cfg["bind"]``, ``cfg.get("curve")``). ``to_dict()`` gives the mapping back.

Descriptions: :meth:`Section.describe` gives one :class:`FieldDoc` row per field (nested sections
flattened to dotted paths), :meth:`Section.format_description` the same as text, and
:meth:`Section.monitor_list` the monitor groups and switches a config declares.
"""

from __future__ import annotations

import copy
import math
import numbers
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, TypeVar

import yaml

from vertebra.runtime.errors import ConfigError, MissingFieldsError

__all__ = ["REQUIRED", "ConfigError", "Field", "FieldDoc", "MissingFieldsError", "Monitor", "Section", "Variant",
           "field", "read_yaml"]

S = TypeVar("S", bound="Section")


class _Sentinel:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


REQUIRED: Any = _Sentinel("REQUIRED")  # the default of a field that must be given
_NO_OFF: Any = _Sentinel("NO_OFF")     # a field that is not a monitor threshold
_ABSENT: Any = _Sentinel("<absent>")   # placeholder of a missing value (never survives a successful parse)
_RESERVED = {"declared_fields", "file", "config_path", "check", "error", "field_path", "from_dict", "to_dict",
             "describe", "format_description", "monitor_list", "monitors", "disabled", "get"}
MISSING_HINT = "a monitor is turned off only by 'enabled: false' in its section"


class Variant:
    """A field kind whose class is chosen by one key of the mapping (``driver: {type: mujoco, ...}``).

    ``registry()`` returns the registered classes by name (called at parse time, so classes registered
    after the declaration count). ``what`` names the alternatives in errors ("a registered driver: ...").
    The chosen name is readable from the parsed section as ``section[key]`` and is written back by
    ``to_dict()``.
    """

    def __init__(self, registry: Callable[[], Mapping[str, type[Section]]], key: str = "type", what: str = "type"):
        self.registry = registry
        self.key = key
        self.what = what

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self.registry())

    def valid_text(self) -> str:
        return f"a registered {self.what}: {_choices_text({n: '' for n in self.names()})}"


@dataclass(eq=False)
class Field:
    """One declared field (see :func:`field` for the meaning of each attribute)."""

    kind: Any
    default: Any = REQUIRED
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: Mapping[Any, str] | None = None
    pattern: str | None = None
    item: Any = None
    size: int | None = None
    min_size: int = 0
    keys: Sequence[str] | None = None
    key_doc: str = "a known key"
    off: Any = _NO_OFF
    switch: bool = False
    doc: str = ""
    name: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def gated(self) -> bool:
        """A monitor threshold: required while its section is enabled, ``off`` when it is not."""
        return self.off is not _NO_OFF

    def valid_text(self) -> str:
        """What this field accepts, as the ``valid`` part of an error."""
        k = self.kind
        if k is list or k is dict:
            item = _kind_text(self.item, self, plural=True)
            if k is dict:
                keys = f"{self.key_doc} ({', '.join(self.keys)})" if self.keys is not None else "a name"
                return f"a mapping of {keys} to {item}"
            if self.size is not None:
                return f"a list of {self.size} {item}"
            return f"a {'non-empty ' if self.min_size == 1 else ''}list of {item}" + (
                f" (at least {self.min_size})" if self.min_size > 1 else "")
        return _kind_text(k, self, plural=False)

    def type_text(self) -> str:
        """A short type name for descriptions: float, int, list[float], Hoist, driver (mock|mujoco)..."""
        k = self.kind
        if k is list or k is dict:
            inner = _short(self.item)
            return f"list[{inner}]" if k is list else f"dict[str, {inner}]"
        return _short(k)


def field(kind: Any, *, default: Any = REQUIRED, lo: float | None = None, hi: float | None = None,
          lo_open: bool = False, hi_open: bool = False, choices: Sequence[Any] | Mapping[Any, str] | None = None,
          pattern: str | None = None, item: Any = None, size: int | None = None, min_size: int = 0,
          keys: Sequence[str] | None = None, key_doc: str = "a known key", off: Any = _NO_OFF, switch: bool = False,
          doc: str = "") -> Any:
    """Declare a field of a :class:`Section` (assign it to a class attribute named after the YAML key).

    kind: ``bool``, ``int``, ``float``, ``str``, ``list``, ``dict``, a :class:`Section` subclass (a nested
        section) or a :class:`Variant` (a section whose class a key names).
    default: the value when the key is absent or null; without one the field is required. A section
        field's default is a mapping parsed like YAML (``default={}``) or None (optional section).
    lo, hi, lo_open, hi_open: bounds of numbers (of each item, for lists and dicts of numbers).
    choices: the allowed values (a sequence, or a mapping value -> doc shown in errors).
    pattern: a regular expression a string must match entirely.
    item: the kind of each list item / dict value (None: anything, unchecked).
    size, min_size: exact / minimum length of a list.
    keys, key_doc: the allowed keys of a dict field and how errors call them ("a fault name").
    off: marks a monitor threshold (the section must declare ``enabled``): required while enabled,
        this value when ``enabled: false``.
    switch: a ``bool`` that turns one monitor of the section on or off (listed by ``Section.disabled``).
    doc: one line on what the field means (units are in the name: ``timeout_ms``).

    Returns a :class:`Field`; typed ``Any`` so that attribute access on parsed sections type-checks.
    """
    if off is not _NO_OFF and default is not REQUIRED:
        raise TypeError("a monitor threshold (off=...) has no default: it is required while its section is enabled")
    if switch and kind is not bool:
        raise TypeError("switch=True needs a bool field")
    norm: Mapping[Any, str] | None = None
    if choices is not None:
        norm = dict(choices) if isinstance(choices, Mapping) else {c: "" for c in choices}
    return Field(kind, default, lo, hi, lo_open, hi_open, norm, pattern, item, size, min_size,
                 list(keys) if keys is not None else None, key_doc, off, switch, doc)


class FieldDoc(NamedTuple):
    """One row of a generated description."""

    path: str      # dotted path (lists of sections: ``joints[]``, variants: ``driver<mujoco>``)
    type: str      # float, int, bool, str, list[float], a section's class name, ...
    default: str   # "required", "required while enabled", or "default <value>"
    valid: str     # what is accepted (bounds, choices, sizes)
    doc: str


class Monitor(NamedTuple):
    """A monitor group (a section with ``enabled``) or a monitor switch, and whether it is on."""

    path: str
    doc: str
    enabled: bool


class _Parse:
    """The state of one parse: the file's name, the missing required fields, the parsed sections."""

    def __init__(self, file: str):
        self.file = file
        self.missing: list[tuple[str, str]] = []
        self.missing_gated = False
        self.sections: list[Section] = []  # post-order: children before parents

    def finish(self, context: Any) -> None:
        if self.missing:
            raise MissingFieldsError(self.file, self.missing, MISSING_HINT if self.missing_gated else "")
        for s in self.sections:
            s.check(context)


class Section:
    """Base class of declared configs. Subclasses declare fields with :func:`field`; the class docstring
    is the section's description. See the module docstring for the parsing rules."""

    declared_fields: ClassVar[dict[str, Field]] = {}  # name -> Field, in declaration order (bases first)
    _file: str = "<unset>"
    _path: str = ""
    _variant: tuple[str, str] | None = None  # (key, name) of a section chosen by a Variant

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: dict[str, Field] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Field):
                    if name in _RESERVED:
                        raise TypeError(f"{cls.__name__}: '{name}' is reserved by Section; name the field otherwise")
                    value.name = name
                    fields[name] = value
        if any(f.gated or f.switch for f in fields.values()) and "enabled" not in fields:
            raise TypeError(f"{cls.__name__}: monitor thresholds (off=...) and switches need an 'enabled' field")
        cls.declared_fields = fields

    def __init__(self, **values: Any):
        """Keyword construction, validated exactly as a YAML mapping would be (errors name the class)."""
        st = _Parse(f"<{type(self).__name__}>")
        _parse_section(type(self), values, st, "", into=self)
        st.finish(None)

    # -- parsing ---------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls: type[S], data: Any, file: str | os.PathLike[str] = "<dict>", *, path: str = "",
                  context: Any = None) -> S:
        """Parse and validate `data` (a YAML mapping). `file` and `path` (the section's dotted path in that
        file) appear in errors; `context` is passed to every section's :meth:`check`."""
        st = _Parse(str(file))
        obj = _parse_section(cls, data, st, path)
        st.finish(context)
        return obj

    def check(self, context: Any) -> None:
        """Cross-field checks (override). Raise ``self.error(field, found, valid)``; may derive attributes."""

    # -- errors ----------------------------------------------------------------------------------
    @property
    def file(self) -> str:
        """The file this section was parsed from (``<ClassName>`` for keyword construction)."""
        return self._file

    @property
    def config_path(self) -> str:
        """This section's dotted path in its file ("" for the root)."""
        return self._path

    def field_path(self, name: str | int) -> str:
        return _join(self._path, name)

    def error(self, name: str | int, found: Any, valid: str) -> ConfigError:
        """A ConfigError for field `name` of this section (a key, or a list index)."""
        return ConfigError(self._file, self.field_path(name), found, valid)

    def check_regex(self, name: str) -> None:
        """For check(): field `name` holds a valid regular expression (else its ConfigError)."""
        try:
            re.compile(getattr(self, name))
        except re.error as e:
            raise self.error(name, getattr(self, name), f"a valid regular expression ({e})") from None

    # -- reading ---------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        if name in self.declared_fields:
            return getattr(self, name)
        if self._variant is not None and name == self._variant[0]:
            return self._variant[1]
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            value = self[name]
        except KeyError:
            return default
        return default if value is None else value

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values (sections as dicts), in declaration order."""
        out: dict[str, Any] = {}
        if self._variant is not None:
            out[self._variant[0]] = self._variant[1]
        for name in self.declared_fields:
            out[name] = _plain(getattr(self, name))
        return out

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_dict() == other.to_dict()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # sections are mutable (a check may derive attributes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n, _ABSENT)!r}' for n in self.declared_fields)})"

    # -- monitors --------------------------------------------------------------------------------
    def monitors(self) -> list[Monitor]:
        """Every monitor group and switch in this section and below, with whether it is on."""
        out: list[Monitor] = []
        enabled = bool(getattr(self, "enabled", True))
        if _is_monitor_group(type(self)):
            doc = _first_line(type(self).__doc__) or self.declared_fields["enabled"].doc
            out.append(Monitor(self._path or "<root>", doc, enabled))
        for name, f in self.declared_fields.items():
            value = getattr(self, name, None)
            if f.switch:
                out.append(Monitor(self.field_path(name), f.doc, enabled and bool(value)))
            for child in _children(value):
                out.extend(child.monitors())
        return out

    def disabled(self) -> list[str]:
        """Dotted paths of the monitor groups and switches that are off (a switch inside a disabled group
        is not listed again)."""
        off = [m.path for m in self.monitors() if not m.enabled]
        return [p for p in off if not any(p.startswith(q + ".") for q in off if q != p)]

    # -- descriptions ----------------------------------------------------------------------------
    @classmethod
    def describe(cls, prefix: str = "") -> list[FieldDoc]:
        """One row per field, nested sections flattened (the generated reference of this config)."""
        rows: list[FieldDoc] = []
        for name, f in cls.declared_fields.items():
            path = _join(prefix, name)
            if f.required:
                default = "required while enabled" if f.gated else "required"
            else:
                default = "default " + _yaml_text(_plain(f.default))
            rows.append(FieldDoc(path, f.type_text(), default, f.valid_text(), f.doc))
            rows.extend(_describe_kind(f.kind, path))
            if f.kind in (list, dict):
                rows.extend(_describe_kind(f.item, path + ("[]" if f.kind is list else ".<name>")))
        return rows

    @classmethod
    def format_description(cls, prefix: str = "") -> str:
        """:meth:`describe` as aligned text lines: path, type, default, doc [what is valid]."""
        rows = cls.describe(prefix)
        if not rows:
            return ""
        w = max(len(r.path) for r in rows)
        t = max(len(r.type) for r in rows)
        d = max(len(r.default) for r in rows)
        lines = [f"{r.path:<{w}}  {r.type:<{t}}  {r.default:<{d}}  {r.doc}" + (f" [{r.valid}]" if r.valid else "")
                 for r in rows]
        return "\n".join(lines)

    @classmethod
    def monitor_list(cls, prefix: str = "") -> list[tuple[str, str]]:
        """(path, doc) of every monitor group (section with ``enabled``) and switch this config declares."""
        out: list[tuple[str, str]] = []
        if _is_monitor_group(cls):
            out.append((prefix or "<root>", _first_line(cls.__doc__) or cls.declared_fields["enabled"].doc))
        for name, f in cls.declared_fields.items():
            path = _join(prefix, name)
            if f.switch:
                out.append((path, f.doc))
            if isinstance(f.kind, type) and issubclass(f.kind, Section):
                out.extend(f.kind.monitor_list(path))
        return out


def config_file(name_or_path: str | os.PathLike[str], folder: Path) -> Path:
    """A config by name (``<folder>/<name>.yaml``) or a path to a YAML file. A ConfigError lists the
    names `folder` has when the name is not one of them, or names the path that does not exist."""
    path = Path(name_or_path)
    if not path.suffix:
        path = folder / f"{name_or_path}.yaml"
        if not path.is_file():
            have = sorted(p.stem for p in folder.glob("*.yaml"))
            raise ConfigError(path, "<file>", str(name_or_path), "one of: " + ", ".join(have))
    if not path.is_file():
        raise ConfigError(path, "<file>", str(path), "an existing YAML file")
    return path


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """The parsed YAML of a file; a ConfigError (field ``<file>``) when it cannot be read or parsed."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(p, "<file>", str(p), f"a readable YAML file ({e.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(p, "<file>", "invalid YAML", str(e).replace("\n", " ")) from None


# -- parsing internals -----------------------------------------------------------------------------
def _join(prefix: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{prefix}[{name}]"
    return f"{prefix}.{name}" if prefix else name


def _parse_section(cls: type[S], data: Any, st: _Parse, path: str, into: S | None = None) -> S:
    known = cls.declared_fields
    if not isinstance(data, Mapping):
        raise ConfigError(st.file, path or "<root>", data, "a mapping of fields: " + ", ".join(known))
    for k in data:
        if k not in known:
            raise ConfigError(st.file, _join(path, str(k)), data[k], "a known field: " + ", ".join(sorted(known)))
    obj = into if into is not None else cls.__new__(cls)
    obj._file, obj._path = st.file, path
    enabled = True
    order = list(known)
    if "enabled" in known:  # a monitor group: whether it is on decides what is required
        order.remove("enabled")
        order.insert(0, "enabled")
    for name in order:
        f = known[name]
        p = _join(path, name)
        raw = data.get(name)
        if raw is None:
            if f.gated and not enabled:
                value = copy.deepcopy(f.off)
            elif f.required:
                st.missing.append((p, "required: " + f.valid_text() + (f" ({f.doc})" if f.doc else "")))
                st.missing_gated |= f.gated
                value = _ABSENT
            elif f.default is None:
                value = None
            else:
                value = _convert(f, copy.deepcopy(f.default), st, p)
        else:
            value = _convert(f, raw, st, p)
            if f.gated and not enabled:
                value = copy.deepcopy(f.off)
        setattr(obj, name, value)
        if name == "enabled":
            enabled = bool(value)
    st.sections.append(obj)
    return obj


_YAML11_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and type(v).__name__ != "bool_"


def _convert(f: Field, v: Any, st: _Parse, path: str) -> Any:
    k = f.kind

    def bad() -> ConfigError:
        return ConfigError(st.file, path, v, f.valid_text())

    if isinstance(k, type) and issubclass(k, Section):
        return _parse_section(k, v, st, path)
    if isinstance(k, Variant):
        return _convert_variant(f, k, v, st, path)
    if k is list:
        if not isinstance(v, (list, tuple)) or (f.size is not None and len(v) != f.size) or len(v) < f.min_size:
            raise bad()
        item = _item_field(f)
        if _is_section_kind(f.item):
            return [_convert(item, x, st, _join(path, i)) for i, x in enumerate(v)]
        out = []
        for x in v:  # a list of scalars is reported whole, at the list's path
            try:
                out.append(_convert(item, x, st, path))
            except ConfigError:
                raise bad() from None
        return out
    if k is dict:
        if not isinstance(v, Mapping):
            raise bad()
        item = _item_field(f)
        result: dict[str, Any] = {}
        for key, x in v.items():
            if not isinstance(key, str) or (f.keys is not None and key not in f.keys):
                valid = f"{f.key_doc}: {', '.join(f.keys)}" if f.keys is not None else "a string key"
                raise ConfigError(st.file, _join(path, str(key)), key, valid)
            result[key] = _convert(item, x, st, _join(path, key))
        return result
    if k is None or k is object:
        return v
    if k is bool:
        if not isinstance(v, bool):
            raise bad()
        return v
    if k is int:
        if not _is_number(v) or not math.isfinite(v) or int(v) != v:
            raise bad()
        v = int(v)
    elif k is float:
        if isinstance(v, str) and _YAML11_EXPONENT.fullmatch(v):
            v = float(v)  # YAML 1.1 (PyYAML) reads 1e-6 (no dot) as a string
        if not _is_number(v) or not math.isfinite(v):
            raise bad()
        v = float(v)
    elif k is str:
        if isinstance(v, os.PathLike):
            v = os.fspath(v)
        if not isinstance(v, str) or (not v and f.default != "") or (
                f.pattern is not None and v and not re.fullmatch(f.pattern, v)):
            raise bad()
    else:
        raise TypeError(f"field '{path}': unsupported kind {k!r}")
    if f.choices is not None and v not in f.choices:
        raise bad()
    if k in (int, float) and not _in_bounds(f, v):
        raise bad()
    return v


def _convert_variant(f: Field, variant: Variant, v: Any, st: _Parse, path: str) -> Any:
    classes = variant.registry()
    if not isinstance(v, Mapping):
        raise ConfigError(st.file, path, v, f.valid_text())
    name = v.get(variant.key)
    key_path = _join(path, variant.key)
    if name is None:
        st.missing.append((key_path, "required: " + variant.valid_text()))
        return _ABSENT
    if not isinstance(name, str) or name not in classes:
        raise ConfigError(st.file, key_path, name, variant.valid_text())
    obj = _parse_section(classes[name], {k: x for k, x in v.items() if k != variant.key}, st, path)
    obj._variant = (variant.key, name)
    return obj


def _item_field(f: Field) -> Field:
    return Field(f.item, REQUIRED, f.lo, f.hi, f.lo_open, f.hi_open, f.choices, f.pattern, doc=f.doc, name=f.name)


def _is_section_kind(k: Any) -> bool:
    return isinstance(k, Variant) or (isinstance(k, type) and issubclass(k, Section))


def _in_bounds(f: Field, v: float) -> bool:
    if f.lo is not None and not (v > f.lo if f.lo_open else v >= f.lo):
        return False
    return not (f.hi is not None and not (v < f.hi if f.hi_open else v <= f.hi))


def _bounds_text(f: Field) -> str:
    parts = []
    if f.lo is not None:
        parts.append(f"{'>' if f.lo_open else '>='} {f.lo}")
    if f.hi is not None:
        parts.append(f"{'<' if f.hi_open else '<='} {f.hi}")
    return " and ".join(parts)


def _choices_text(choices: Mapping[Any, str]) -> str:
    items = [f"{c} ({d})" if d else str(c) for c, d in choices.items()]
    if not items:
        return "none (nothing is registered)"
    if len(items) == 2:
        return f"{items[0]} or {items[1]}"
    return items[0] if len(items) == 1 else "one of " + ", ".join(items)


def _kind_text(k: Any, f: Field, plural: bool) -> str:
    bounds = _bounds_text(f)
    tail = f" {bounds}" if bounds else ""
    if f.choices is not None:
        return ("values: " if plural else "") + _choices_text(f.choices)
    if k is bool:
        return "true/false values" if plural else "true or false"
    if k is int:
        return ("integers" if plural else "an integer") + tail
    if k is float:
        return ("finite numbers" if plural else "a finite number") + tail
    if k is str:
        base = "non-empty strings" if plural else "a non-empty string"
        return base + (f" matching {f.pattern}" if f.pattern else "")
    if isinstance(k, Variant):
        return (f"mappings with '{k.key}'" if plural else f"a mapping with '{k.key}'") + \
            f" naming a registered {k.what} ({', '.join(k.names())}) and that {k.what}'s fields"
    if isinstance(k, type) and issubclass(k, Section):
        return ("mappings" if plural else "a mapping") + f" of fields: {', '.join(k.declared_fields)}"
    return "values" if plural else "any value"


def _short(k: Any) -> str:
    if k is None or k is object:
        return "any"
    if isinstance(k, Variant):
        return f"{k.what} ({'|'.join(k.names())})"
    return k.__name__ if isinstance(k, type) else str(k)


def _describe_kind(k: Any, path: str) -> list[FieldDoc]:
    if isinstance(k, type) and issubclass(k, Section):
        return k.describe(path)
    if isinstance(k, Variant):
        rows: list[FieldDoc] = []
        for name, cls in sorted(k.registry().items()):
            rows.extend(cls.describe(f"{path}<{name}>"))
        return rows
    return []


def _is_monitor_group(cls: type[Section]) -> bool:
    """A section with an ``enabled`` field and monitor thresholds or switches (a plain on/off setting
    such as a transport's encryption is not a monitor)."""
    return "enabled" in cls.declared_fields and any(f.gated or f.switch for f in cls.declared_fields.values())


def _children(value: Any) -> list[Section]:
    if isinstance(value, Section):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Section)]
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, Section)]
    return []


def _plain(value: Any) -> Any:
    if isinstance(value, Section):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _yaml_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n")[0].strip()
