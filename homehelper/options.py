"""An app's typed options: the manifest's `options` schema, the user's values, and their files.

A manifest declares what a user may set; HomeHelper keeps the values the user chose
(`<root>/options/<app>.json`) and, for `password` options, the secrets apart
(`<root>/secrets/<app>.json`, mode 0600, never shown back, never in the options file).
Everything here is pure or blocking file I/O: the app actor calls the file helpers on a
worker thread and is their one writer. Every error names the option it is about.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from .errors import ValidationError
from .storage import atomic_write_json, read_json, set_aside

TYPES = ("string", "int", "float", "bool", "enum", "list", "password")
ITEM_TYPES = ("string", "int", "float")
# Names become file names (a credential each) and JSON keys an app reads: kept plain.
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_OPTIONS = 50
MAX_TEXT = 4096  # a string or password value, in characters
MAX_ITEMS = 100  # a list's items
MAX_CHOICES = 50
MAX_DESCRIPTION = 500
MAX_FILE = 256 * 1024  # a values file bigger than this is damaged, not read
_FIELDS = {"type", "default", "min", "max", "description", "choices", "items", "title"}


@attrs.frozen
class Option:
    """One option of a manifest. `min`/`max` bound a number's value, a text's length or a list's length."""

    name: str
    type: str
    default: Any = None
    min: float | None = None
    max: float | None = None
    description: str = ""
    title: str = ""
    choices: tuple[str, ...] = ()  # enum
    items: str = "string"  # list: the type of each item

    @property
    def secret(self) -> bool:
        return self.type == "password"

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["choices"] = list(self.choices)
        if self.secret:
            data["default"] = None  # a password's default is never shown either
        return data


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_value(opt: Option, value: Any) -> tuple[Any, str | None]:
    """(the value as stored, None) or (None, why it is refused), for one option."""
    kind = opt.type
    lo, hi = opt.min, opt.max
    if kind in ("string", "password", "enum"):
        if not isinstance(value, str):  # a password's value is never echoed, even a wrong one
            return None, "must be a string" if kind == "password" else f"must be a string, got {json.dumps(value)[:40]}"
        if "\0" in value:
            return None, "must not hold a NUL character"
        if kind == "enum":
            return (value, None) if value in opt.choices else (None, f"must be one of {', '.join(opt.choices)}")
        if len(value) > MAX_TEXT:
            return None, f"must be at most {MAX_TEXT} characters"
        if (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
            return None, f"must be {_range(lo, hi)} characters long, got {len(value)}"
        return value, None
    if kind == "bool":
        if isinstance(value, bool):
            return value, None
        return None, f"must be true or false, got {json.dumps(value)[:40]}"
    if kind in ("int", "float"):
        if kind == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _num(value) or (kind == "int" and not isinstance(value, int)):
            return None, f"must be {'an integer' if kind == 'int' else 'a number'}, got {json.dumps(value)[:40]}"
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return None, f"must be {_range(lo, hi)}, got {value}"
        return (float(value) if kind == "float" else value), None
    if kind == "list":
        if not isinstance(value, list):
            return None, f"must be a list, got {json.dumps(value)[:40]}"
        if len(value) > MAX_ITEMS or (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
            return None, f"must have {_range(lo, min(hi if hi is not None else MAX_ITEMS, MAX_ITEMS))} items"
        out = []
        for i, item in enumerate(value):
            got, why = check_value(Option(f"{opt.name}[{i}]", opt.items), item)
            if why:
                return None, f"item {i} {why}"
            out.append(got)
        return out, None
    return None, f"has the unknown type {kind!r}"


def _range(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"from {lo:g} to {hi:g}"
    return f"at least {lo:g}" if lo is not None else f"at most {hi:g}"


def parse_schema(raw: Any, err: Callable[[str, str], None]) -> tuple[Option, ...]:
    """The manifest's `options` object (name -> {type, default, ...}), in its order; each problem
    is reported through `err(field, why)` (manifest.py collects them with the rest)."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        err("options", "must be an object: option name -> {\"type\": ..., ...}")
        return ()
    if len(raw) > MAX_OPTIONS:
        err("options", f"has {len(raw)} options; the limit is {MAX_OPTIONS}")
        return ()
    out: list[Option] = []
    for name, spec in raw.items():
        where = f"options.{name}"
        if not NAME_RE.fullmatch(name):
            err(where, "option names are 1-40 lowercase letters, digits or '_', starting with a letter")
            continue
        if not isinstance(spec, dict):
            err(where, "must be an object like {\"type\": \"string\"}")
            continue
        def at(field: str, why: str, where: str = where) -> None:
            err(f"{where}.{field}" if field else where, why)

        opt = _option(name, spec, at)
        if opt is not None:
            out.append(opt)
    return tuple(out)


def _option(name: str, spec: dict[str, Any], err: Callable[[str, str], None]) -> Option | None:
    bad = len(sorted(set(spec) - _FIELDS))
    for key in sorted(set(spec) - _FIELDS):
        err(key, "unknown field")
    kind = spec.get("type")
    if kind not in TYPES:
        err("type", f"must be one of {', '.join(TYPES)}, got {json.dumps(kind)[:40]}")
        return None
    fields: dict[str, Any] = {"name": name, "type": kind}
    for key in ("description", "title"):
        text = spec.get(key, "")
        if not isinstance(text, str) or len(text) > MAX_DESCRIPTION:
            err(key, f"must be a string of at most {MAX_DESCRIPTION} characters")
            bad += 1
        else:
            fields[key] = text
    for key in ("min", "max"):
        if key in spec:
            if not _num(spec[key]) or kind in ("bool", "enum"):
                err(key, "must be a number (and only for int, float, string, password or list options)")
                bad += 1
            else:
                fields[key] = spec[key]
    if fields.get("min") is not None and fields.get("max") is not None and fields["min"] > fields["max"]:
        err("min", "must not be above max")
        bad += 1
    if kind == "enum":
        choices = spec.get("choices")
        if (not isinstance(choices, list) or not 0 < len(choices) <= MAX_CHOICES
                or not all(isinstance(c, str) and 0 < len(c) <= 100 for c in choices)):
            err("choices", f"an enum needs 1-{MAX_CHOICES} choices, each a string of 1-100 characters")
            return None
        fields["choices"] = tuple(dict.fromkeys(choices))
    elif "choices" in spec:
        err("choices", "only an enum option has choices")
        bad += 1
    if kind == "list":
        items = spec.get("items", "string")
        if items not in ITEM_TYPES:
            err("items", f"must be one of {', '.join(ITEM_TYPES)}")
            bad += 1
        else:
            fields["items"] = items
    elif "items" in spec:
        err("items", "only a list option has items")
        bad += 1
    if bad:
        return None
    opt = Option(**fields)
    if "default" in spec:
        if kind == "password":
            err("default", "a password option has no default (it would be in plain sight in the manifest)")
            return None
        value, why = check_value(opt, spec["default"])
        if why:
            err("default", why)
            return None
        opt = attrs.evolve(opt, default=value)
    return opt


def validate(schema: tuple[Option, ...], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The checked `changes` (None = back to the default, or for a password: forget it). Raises
    ValidationError naming every bad option; nothing is applied unless all are good."""
    by_name = {o.name: o for o in schema}
    errors: list[str] = []
    out: dict[str, Any] = {}
    if not isinstance(changes, Mapping):
        raise ValidationError("send an object: option name -> value")
    for name, value in changes.items():
        opt = by_name.get(name)
        if opt is None:
            errors.append(f"{str(name)[:40]}: unknown option; known: {', '.join(by_name) or 'none'}")
            continue
        if value is None:
            out[name] = None
            continue
        got, why = check_value(opt, value)
        if why:
            errors.append(f"{name}: {why}")
        else:
            out[name] = got
    if errors:
        raise ValidationError(f"{len(errors)} option(s) refused: " + "; ".join(errors), errors)
    return out


def parse_cli(schema: tuple[Option, ...], pairs: list[str]) -> dict[str, Any]:
    """`key=value` words from the command line, as JSON values of each option's type (the server
    checks them again); `key=` sets a text option to "" and resets any other to its default."""
    by_name = {o.name: o for o in schema}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise ValidationError(f"{pair[:40]}: write it as key=value")
        opt = by_name.get(name)
        if opt is None:
            raise ValidationError(f"{name[:40]}: unknown option; known: {', '.join(by_name) or 'none'}")
        out[name] = _from_text(opt, text)
    return out


def _from_text(opt: Option, text: str) -> Any:
    if opt.type in ("string", "password", "enum"):
        return text
    if text == "":
        return None
    if opt.type == "bool":
        low = text.lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        raise ValidationError(f"{opt.name}: must be true or false, got {text[:40]!r}")
    if opt.type == "list":
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise ValidationError(f"{opt.name}: not a JSON list: {text[:40]!r}") from None
        return [_from_text(Option(opt.name, opt.items), part.strip()) for part in text.split(",")]
    try:
        return int(text) if opt.type == "int" else float(text)
    except ValueError:
        raise ValidationError(f"{opt.name}: must be {'an integer' if opt.type == 'int' else 'a number'}, "
                              f"got {text[:40]!r}") from None


def effective(schema: tuple[Option, ...], stored: Mapping[str, Any]) -> dict[str, Any]:
    """What the app gets: each non-secret option's stored value when it is still valid under the
    (maybe changed) schema, else its default."""
    out: dict[str, Any] = {}
    for opt in schema:
        if opt.secret:
            continue
        value, why = check_value(opt, stored[opt.name]) if stored.get(opt.name) is not None else (None, "unset")
        out[opt.name] = opt.default if why else value
    return out


# --- files (blocking: call on a worker thread) -----------------------------------------------------
def values_path(root: Path, app_id: str) -> Path:
    return root / "options" / f"{app_id}.json"


def secrets_path(root: Path, app_id: str) -> Path:
    return root / "secrets" / f"{app_id}.json"


def read_values(path: Path, damaged: list[tuple[Path, Path | None]] | None = None) -> dict[str, Any]:
    """A values file as a dict; a damaged one (not JSON, not an object, too big) is set aside and
    reads as empty, so the app runs on its defaults and the user sets the values again. `damaged`
    gets (path, where it was set aside or None), for the caller to say so."""
    try:
        if path.stat().st_size > MAX_FILE:
            raise ValueError("too big")
        data = read_json(path, {})
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return data
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, UnicodeDecodeError):
        try:
            aside: Path | None = set_aside(path)
        except OSError:
            aside = None
        if damaged is not None:
            damaged.append((path, aside))
        return {}


def write_values(path: Path, data: dict[str, Any], secret: bool = False) -> None:
    """Atomically; a secrets file 0600 in a 0700 folder."""
    if secret:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
    atomic_write_json(path, data, mode=0o600 if secret else 0o644)
