"""Declarative base for Graph JSON objects: tolerant parsing, documented serialization.

A model class lists its members once (``member(codec, json="name")``); parsing and
serialization are derived from that list, so they cannot drift apart.

Tolerance rules (the documented bodies mix casings, tests/fixtures/graph/README.md lists the
quirks; Graph's generic change notifications spell types ``#Microsoft.Graph.…``):

* ``@odata.type`` is compared case-insensitively, with or without the leading ``#`` and
  with or without the ``microsoft.graph.`` namespace.
* enum strings are compared case-insensitively; unknown values are kept as given.
* unknown members are kept, in order, and serialized back unchanged.
* members that were present as ``null`` are serialized back as ``null``; members that
  were never present and are unset are left out (request bodies carry no nulls).
* wrong JSON types never raise: the raw value is kept. ``shape_errors()`` reports them, for
  callers that must refuse a body of the wrong shape (the webhook answers it 400).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

ODATA_TYPE = "@odata.type"
NAMESPACE = "microsoft.graph."

_registry: dict[str, type[GraphObject]] = {}


def type_key(odata_type: str) -> str:
    """Normalise an ``@odata.type`` value for comparison: ``#Microsoft.Graph.Call`` -> ``call``."""
    key = odata_type.strip().lstrip("#").lower()
    if key.startswith(NAMESPACE):
        key = key[len(NAMESPACE) :]
    return key


def lookup_type(odata_type: Any) -> type[GraphObject] | None:
    if not isinstance(odata_type, str):
        return None
    return _registry.get(type_key(odata_type))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# ---- codecs ----------------------------------------------------------------------------


class Codec:
    #: what a member of this codec holds after parsing, for shape_errors() messages
    expects = "any JSON value"

    def load(self, value: Any) -> Any:
        return value

    def dump(self, value: Any) -> Any:
        return value

    def fits(self, value: Any) -> bool:
        """Whether a parsed (loaded) value has this codec's shape; None always fits."""
        return True


class Raw(Codec):
    """Any JSON value, kept as given (models placed here by hooks serialize as JSON)."""

    def dump(self, value: Any) -> Any:
        if isinstance(value, GraphObject):
            return value.to_dict()
        if isinstance(value, list):
            return [self.dump(v) for v in value]
        return value


class Str(Codec):
    expects = "a string"

    def fits(self, value: Any) -> bool:
        return value is None or isinstance(value, str)


class Int(Codec):
    """Int32/Int64. Numeric strings are accepted (``"code": "0"`` in the examples)."""

    expects = "an integer"

    def fits(self, value: Any) -> bool:
        return value is None or (isinstance(value, int) and not isinstance(value, bool))

    def load(self, value: Any) -> Any:
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value)
        return value


class Bool(Codec):
    expects = "a boolean"

    def fits(self, value: Any) -> bool:
        return value is None or isinstance(value, bool)

    def load(self, value: Any) -> Any:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return value


class Enum(Codec):
    """A Graph enum: values are canonicalised case-insensitively; unknown values are kept."""

    expects = "a string (enum)"

    def __init__(self, *values: str) -> None:
        self.values = values
        self._by_lower = {v.lower(): v for v in values}

    def fits(self, value: Any) -> bool:
        return value is None or isinstance(value, str)

    def load(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._by_lower.get(value.lower(), value)
        return value

    def canonical(self, value: str) -> str:
        return self._by_lower.get(value.lower(), value)


class List(Codec):
    expects = "an array"

    def __init__(self, item: Codec) -> None:
        self.item = item

    def fits(self, value: Any) -> bool:
        return value is None or isinstance(value, list)

    def load(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.item.load(v) for v in value]
        return value

    def dump(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [self.item.dump(v) for v in value]
        return value


class Model(Codec):
    """A nested object of class ``cls``; a registered ``@odata.type`` in the payload wins."""

    expects = "an object"

    def __init__(self, cls: type[GraphObject] | str) -> None:
        self._cls = cls

    def fits(self, value: Any) -> bool:
        return value is None or isinstance(value, GraphObject)

    @property
    def cls(self) -> type[GraphObject]:
        if isinstance(self._cls, str):
            self._cls = _registry[type_key(self._cls)]
        return self._cls

    def load(self, value: Any) -> Any:
        if isinstance(value, dict):
            return self.cls.parse(value)
        return value

    def dump(self, value: Any) -> Any:
        if isinstance(value, GraphObject):
            return value.to_dict()
        return value


class OneOrMany(Codec):
    """``resourceData``: a single entity or a collection; the shape is kept."""

    expects = "an object or an array"

    def __init__(self, item: Codec) -> None:
        self.item = item

    def fits(self, value: Any) -> bool:
        return value is None or isinstance(value, list) or self.item.fits(value)

    def load(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.item.load(v) for v in value]
        return self.item.load(value)

    def dump(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [self.item.dump(v) for v in value]
        return self.item.dump(value)


STR = Str()
INT = Int()
BOOL = Bool()
RAW = Raw()


def member(
    codec: Codec = STR, *, json: str | None = None, aliases: tuple[str, ...] = (), default: Any = None
) -> Any:
    """Declare a model member. ``json`` defaults to the camelCase of the attribute name."""
    meta = {"codec": codec, "json": json, "aliases": aliases}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


_G = TypeVar("_G", bound="GraphObject")


@dataclasses.dataclass(kw_only=True, eq=False)
class GraphObject:
    """Base of every Graph object. Subclasses are dataclasses with ``member()`` fields."""

    odata_type: ClassVar[str | None] = None
    #: unknown members of the parsed payload, in order (also settable by callers)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    # bookkeeping set by parse(); not constructor arguments
    _present: tuple[str, ...] | None = dataclasses.field(default=None, init=False, repr=False)
    _raw_type: str | None = dataclasses.field(default=None, init=False, repr=False)

    _members: ClassVar[dict[str, tuple[str, Codec]]]  # json name -> (attribute, codec)
    _aliases: ClassVar[dict[str, str]]  # alias -> canonical json name

    if TYPE_CHECKING:  # every model is a keyword-only dataclass of member() fields (models.model)

        def __init__(self, **members: Any) -> None: ...

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.odata_type:
            _registry[type_key(cls.odata_type)] = cls

    @classmethod
    def _schema(cls) -> tuple[dict[str, tuple[str, Codec]], dict[str, str]]:
        if "_members" not in cls.__dict__:
            members: dict[str, tuple[str, Codec]] = {}
            aliases: dict[str, str] = {}
            for f in dataclasses.fields(cls):
                if "codec" not in f.metadata:
                    continue
                name = f.metadata["json"] or _camel(f.name)
                members[name] = (f.name, f.metadata["codec"])
                for alias in f.metadata["aliases"]:
                    aliases[alias] = name
            cls._members = members
            cls._aliases = aliases
        return cls._members, cls._aliases

    # ---- parsing ----------------------------------------------------------------------

    @classmethod
    def parse(cls: type[_G], data: dict[str, Any]) -> _G:
        """Parse a JSON object. A registered ``@odata.type`` selects the class
        (typed as ``cls``: the documented payloads of an endpoint carry its
        type or a subtype of it)."""
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__}.parse expects a JSON object, got {type(data).__name__}")
        target = lookup_type(data.get(ODATA_TYPE)) or cls
        return target._parse_as(data)  # type: ignore[return-value]

    @classmethod
    def _parse_as(cls, data: dict[str, Any]) -> GraphObject:
        members, aliases = cls._schema()
        obj = cls()
        extra: dict[str, Any] = {}
        present: list[str] = []
        for key, value in data.items():
            if key == ODATA_TYPE:
                obj._raw_type = value if isinstance(value, str) else None
                present.append(key)
                if not isinstance(value, str):
                    extra[key] = value
                continue
            name = key if key in members else aliases.get(key)
            if name is None:
                extra[key] = value
                present.append(key)
                continue
            attr, codec = members[name]
            setattr(obj, attr, codec.load(value))
            if name not in present:
                present.append(name)
        obj.extra = extra
        obj._present = tuple(present)
        obj._after_parse()
        return obj

    def _after_parse(self) -> None:
        """Hook for subclasses (e.g. inferring untyped resourceData)."""

    # ---- shape check ----------------------------------------------------------------------

    def shape_errors(self, path: str = "$", *, limit: int = 1) -> list[str]:
        """Members whose JSON type is not the documented one (a ``state`` that is a list, a
        ``resourceUrl`` that is a number, ...), as ``"path: expected ..., got ..."``; at most
        ``limit`` of them. Parsing keeps such values raw; a receiver decides whether to refuse."""
        out: list[str] = []
        stack: list[tuple[str, GraphObject]] = [(path, self)]
        while stack and len(out) < limit:
            where, obj = stack.pop()
            if ODATA_TYPE in obj.extra:
                out.append(f"{where}.@odata.type: expected a string, got {_json_type(obj.extra[ODATA_TYPE])}")
                continue
            members, _ = obj._schema()
            for name, (attr, codec) in members.items():
                value = getattr(obj, attr)
                if value is None:
                    continue
                if not codec.fits(value):
                    out.append(f"{where}.{name}: expected {codec.expects}, got {_json_type(value)}")
                    break
                items = value if isinstance(value, list) else [value]
                inner = codec.item if isinstance(codec, (List, OneOrMany)) else codec
                for i, item in enumerate(items):
                    at = f"{where}.{name}[{i}]" if isinstance(value, list) else f"{where}.{name}"
                    if isinstance(item, GraphObject):
                        stack.append((at, item))
                    elif isinstance(value, list) and item is not None and not inner.fits(item):
                        out.append(f"{at}: expected {inner.expects}, got {_json_type(item)}")
                        break
        return out[:limit]

    # ---- serialization ------------------------------------------------------------------

    def _type_out(self) -> str | None:
        if self._raw_type is not None and lookup_type(self._raw_type) is None:
            return self._raw_type  # a type we do not know: keep it verbatim
        return self.odata_type or self._raw_type

    def to_dict(self) -> dict[str, Any]:
        """Serialize to the documented JSON shape (canonical names, types and enum casing)."""
        members, _ = self._schema()
        out: dict[str, Any] = {}
        if self._present is None:
            order: Iterable[str] = [ODATA_TYPE, *members, *self.extra]
        else:
            order = [*self._present, *members, *self.extra]
        for key in order:
            if key in out:
                continue
            if key == ODATA_TYPE:
                t = self._type_out()
                if t is not None:
                    out[key] = t
                continue
            if key in members:
                attr, codec = members[key]
                value = getattr(self, attr)
                if value is None and (self._present is None or key not in self._present):
                    continue
                out[key] = codec.dump(value)
            elif key in self.extra:
                out[key] = self.extra[key]
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GraphObject):
            return NotImplemented
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def _json_type(value: Any) -> str:
    if isinstance(value, GraphObject):
        return "object"
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of a decoded JSON value, counted without recursion and up to ``limit + 1``
    (deeper bodies are refused before anything recursive walks them)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse(data: Any) -> Any:
    """Parse any Graph JSON value by its ``@odata.type``; untyped objects stay dicts."""
    if isinstance(data, list):
        return [parse(v) for v in data]
    if isinstance(data, dict):
        cls = lookup_type(data.get(ODATA_TYPE))
        if cls is not None:
            return cls._parse_as(data)
    return data


def registered_types() -> dict[str, type[GraphObject]]:
    return dict(_registry)
