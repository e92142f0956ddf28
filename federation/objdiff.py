"""Object-level diff of two renders of a chart: what a reviewer needs to know about a change.

Objects are matched by API group, kind, namespace and name; a changed object lists its changed
fields as dotted paths with old and new values. Lists of named items (containers, env, ports,
volumes) are matched by name, so one inserted env var is one change, not a shifted list. The
values of a Secret's ``data``/``stringData`` never leave this module: only which keys changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional


class _Missing:
    """The old value of an added field, or the new value of a removed one."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


@dataclass(frozen=True)
class Hidden:
    """A Secret's data value, never shown: two are equal only where the values were equal."""

    generation: int

    def __str__(self) -> str:
        return "(secret value not shown)"


_SECRET_FIELDS = ("data", "stringData")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True, order=True)
class ObjectKey:
    """Ordered by kind, namespace and name: how a reviewer looks for an object."""

    kind: str
    namespace: str
    name: str
    group: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any  # MISSING when the field was added
    new: Any  # MISSING when the field was removed


@dataclass(frozen=True)
class ObjectChange:
    op: str  # "added", "removed" or "changed"
    key: ObjectKey
    fields: tuple[FieldChange, ...] = ()  # only for "changed"
    hook: Optional[str] = None  # the helm.sh/hook annotation (the newer side's), if any


class DuplicateObject(Exception):
    """A render with two objects of the same kind and name (Helm would refuse to install it)."""


def object_key(obj: dict[str, Any]) -> ObjectKey:
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    metadata = obj.get("metadata") or {}
    return ObjectKey(str(obj.get("kind", "")), str(metadata.get("namespace") or ""),
                     str(metadata.get("name", "")), group)


def index(objects: Iterable[dict[str, Any]]) -> dict[ObjectKey, dict[str, Any]]:
    found: dict[ObjectKey, dict[str, Any]] = {}
    for obj in objects:
        key = object_key(obj)
        if key in found:
            raise DuplicateObject(f"the chart rendered {key} twice")
        found[key] = obj
    return found


def _hook(obj: dict[str, Any]) -> Optional[str]:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook")


def _child(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if isinstance(key, tuple):  # a list item matched by name
        return f"{path}[name={key[1]}]"
    step = key if _PLAIN_KEY.match(str(key)) else f'["{key}"]'
    return f"{path}{step}" if step.startswith("[") or not path else f"{path}.{step}"


def _named(items: list[Any]) -> Optional[dict[tuple[str, str], Any]]:
    """A list whose items all have distinct names, keyed by name; else None."""
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    if not items or any(not isinstance(n, str) for n in names) or len(set(names)) != len(names):
        return None
    return {("name", n): item for n, item in zip(names, items)}


def scalars(items: list[Any]) -> bool:
    """Items that read well one per line (a script in a command list is diffed by its lines)."""
    return all(not isinstance(item, (dict, list)) and not (isinstance(item, str) and "\n" in item)
               for item in items)


def _walk(path: str, old: Any, new: Any, out: list[FieldChange]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        pairs: Optional[tuple[dict[Any, Any], dict[Any, Any]]] = (old, new)
    elif isinstance(old, list) and isinstance(new, list) and scalars(old + new):
        pairs = None  # one change, shown as a diff of the items (an insertion shifts no index)
    elif isinstance(old, list) and isinstance(new, list):
        old_named, new_named = _named(old), _named(new)
        if old_named is not None and new_named is not None:
            pairs = (old_named, new_named)
        else:
            pairs = (dict(enumerate(old)), dict(enumerate(new)))
    else:
        pairs = None
    if pairs is None:
        out.append(FieldChange(path, old, new))
        return
    before, after = pairs
    for key in list(before) + [k for k in after if k not in before]:
        _walk(_child(path, key), before.get(key, MISSING), after.get(key, MISSING), out)


def _hide_secret_values(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both sides of a Secret with every data value replaced by a Hidden that differs exactly
    where the values differ, so the diff says which keys changed and nothing else."""
    old_shown, new_shown = dict(old), dict(new)
    for name in _SECRET_FIELDS:
        before, after = old.get(name, MISSING), new.get(name, MISSING)
        if isinstance(before, dict) and isinstance(after, dict):
            old_shown[name] = {k: Hidden(0) for k in before}
            new_shown[name] = {k: Hidden(0 if before.get(k, MISSING) == v else 1) for k, v in after.items()}
            continue
        if before is not MISSING:
            old_shown[name] = Hidden(0)
        if after is not MISSING:
            new_shown[name] = Hidden(0 if before == after else 1)
    return old_shown, new_shown


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """Changed fields of one object; a Secret's data values are never part of the result."""
    if object_key(new).kind == "Secret" and object_key(new).group == "":
        old, new = _hide_secret_values(old, new)
    changes: list[FieldChange] = []
    _walk("", old, new, changes)
    return changes


def diff(old_objects: Iterable[dict[str, Any]], new_objects: Iterable[dict[str, Any]]) -> list[ObjectChange]:
    """Objects added, removed and changed, ordered by key."""
    before, after = index(old_objects), index(new_objects)
    changes = []
    for key in sorted(set(before) | set(after)):
        if key not in before:
            changes.append(ObjectChange("added", key, hook=_hook(after[key])))
        elif key not in after:
            changes.append(ObjectChange("removed", key, hook=_hook(before[key])))
        else:
            fields = field_changes(before[key], after[key])
            if fields:
                changes.append(ObjectChange("changed", key, tuple(fields), hook=_hook(after[key])))
    return changes
