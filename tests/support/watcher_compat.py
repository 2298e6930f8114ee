"""Judge notification envelopes with python-watcher's own versioned-object classes.

Why: watcher-es builds Watcher's versioned notification payloads by hand. Hand-written
schemas can agree with our own emitter and still be wrong, so the judge here is OpenStack's
code: every payload (and every nested object) is hydrated the way oslo.versionedobjects'
``obj_from_primitive`` does it, with the field objects that python-watcher itself declares,
and each value must be a fixed point of that field (what watcher itself would put on the
wire). python-watcher only ships the newest version of each class, so the one hand-kept part
is ``FIELDS_BY_VERSION`` / ``_RETYPED``, taken from the classes' version comments; it is
compared with the installed classes on first use, so a different watcher release fails
loudly instead of silently judging against a stale table.

python-watcher is optional and imported lazily: test modules guard on ``WATCHER_AVAILABLE``
(or ``pytest.importorskip("watcher.notifications")``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import warnings
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Final

__all__ = [
    "FIELDS_BY_VERSION",
    "NEVER_EMITTED",
    "WATCHER_AVAILABLE",
    "WATCHER_REQUIREMENT",
    "WATCHER_VERSION",
    "check_envelope",
    "check_payload",
    "fields_for",
    "load_watcher",
]

WATCHER_REQUIREMENT: Final = "python-watcher==17.0.0"


def _installed_watcher_version() -> str | None:
    try:
        return importlib.metadata.version("python-watcher")
    except importlib.metadata.PackageNotFoundError:
        return None


WATCHER_VERSION: Final[str | None] = _installed_watcher_version()
"""Installed python-watcher release, or None (found without importing it)."""

WATCHER_AVAILABLE: Final[bool] = (
    WATCHER_VERSION is not None and importlib.util.find_spec("watcher") is not None
)

# ---------------------------------------------------------------------------------------------
# Per-version field sets, from the "# Version x.y: ..." comments of python-watcher 17.0.0.
# ---------------------------------------------------------------------------------------------

_TERSE_ACTION_PLAN_1_0: Final = frozenset(
    {
        "uuid",
        "state",
        "global_efficacy",
        "audit_uuid",
        "strategy_uuid",
        "created_at",
        "updated_at",
        "deleted_at",
    }
)
_TERSE_AUDIT_1_0: Final = frozenset(
    {
        "uuid",
        "audit_type",
        "state",
        "parameters",
        "interval",
        "scope",
        "goal_uuid",
        "strategy_uuid",
        "created_at",
        "updated_at",
        "deleted_at",
    }
)
_ACTION_1_0: Final = frozenset(
    {
        "uuid",
        "action_type",
        "input_parameters",
        "state",
        "parents",
        "action_plan_uuid",
        "action_plan",
        "created_at",
        "updated_at",
        "deleted_at",
    }
)
_PLAN_EXTRA: Final = frozenset({"audit", "strategy", "fault"})

FIELDS_BY_VERSION: Final[Mapping[str, Mapping[str, frozenset[str]]]] = {
    # 1.1 changed global_efficacy from a dict to a list of dicts; 1.2 added status_message.
    "TerseActionPlanPayload": {
        "1.0": _TERSE_ACTION_PLAN_1_0,
        "1.1": _TERSE_ACTION_PLAN_1_0,
        "1.2": _TERSE_ACTION_PLAN_1_0 | {"status_message"},
    },
    # ActionPlanPayload (audit, strategy) + fault; versions follow TerseActionPlanPayload's.
    "ActionPlanCancelPayload": {
        "1.0": _TERSE_ACTION_PLAN_1_0 | _PLAN_EXTRA,
        "1.1": _TERSE_ACTION_PLAN_1_0 | _PLAN_EXTRA,
        "1.2": _TERSE_ACTION_PLAN_1_0 | _PLAN_EXTRA | {"status_message"},
    },
    # 1.1 added auto_trigger and next_run_time and made interval a string; 1.2 name;
    # 1.3 status_message.
    "TerseAuditPayload": {
        "1.0": _TERSE_AUDIT_1_0,
        "1.1": _TERSE_AUDIT_1_0 | {"auto_trigger", "next_run_time"},
        "1.2": _TERSE_AUDIT_1_0 | {"auto_trigger", "next_run_time", "name"},
        "1.3": _TERSE_AUDIT_1_0 | {"auto_trigger", "next_run_time", "name", "status_message"},
    },
    # ActionPayload + fault; 1.1 added status_message.
    "ActionCancelPayload": {
        "1.0": _ACTION_1_0 | {"fault"},
        "1.1": _ACTION_1_0 | {"fault", "status_message"},
    },
    "StrategyPayload": {
        "1.0": frozenset(
            {
                "uuid",
                "name",
                "display_name",
                "parameters_spec",
                "created_at",
                "updated_at",
                "deleted_at",
            }
        ),
    },
    "ExceptionPayload": {
        "1.0": frozenset({"module_name", "function_name", "exception", "exception_message"}),
    },
}

# (class, field) -> (first version with today's type, module, field class of the older type).
# Both older types were nullable: TerseActionPlanPayload 1.0 declared
# `global_efficacy = FlexibleDictField(nullable=True)`, TerseAuditPayload 1.0
# `interval = IntegerField(nullable=True)` ("'interval' type has been changed from Integer to
# String" in 1.1).
_RETYPED: Final[Mapping[tuple[str, str], tuple[str, str, str]]] = {
    ("TerseActionPlanPayload", "global_efficacy"): (
        "1.1",
        "watcher.objects.fields",
        "FlexibleDictField",
    ),
    ("ActionPlanCancelPayload", "global_efficacy"): (
        "1.1",
        "watcher.objects.fields",
        "FlexibleDictField",
    ),
    ("TerseAuditPayload", "interval"): ("1.1", "oslo_versionedobjects.fields", "IntegerField"),
}

NEVER_EMITTED: Final[Mapping[str, frozenset[str]]] = {
    # Declared by ActionPayload but neither in its SCHEMA nor passed by any send_* function,
    # so watcher's own action notifications never carry it (the upstream samples lack it).
    "ActionCancelPayload": frozenset({"action_plan_uuid"}),
}

# event_type -> payload class, for the notifications watcher-es emits.
_EVENT_PAYLOADS: Final[Mapping[str, str]] = {
    f"{obj}.cancel.{phase}": payload
    for obj, payload in (
        ("action_plan", "ActionPlanCancelPayload"),
        ("action", "ActionCancelPayload"),
    )
    for phase in ("start", "end", "error")
}
_ENVELOPE_KEYS: Final = frozenset(
    {"event_type", "publisher_id", "priority", "message_id", "payload", "timestamp"}
)
_PRIMITIVE_PARTS: Final = ("name", "namespace", "version", "data")


def fields_for(name: str, version: str, *, wire_exact: bool = True) -> frozenset[str]:
    """Fields a `name` payload carries at `version` (without never-emitted ones if wire_exact)."""
    declared = FIELDS_BY_VERSION[name][version]
    return declared - NEVER_EMITTED.get(name, frozenset()) if wire_exact else declared


# ---------------------------------------------------------------------------------------------
# Lazy loading of python-watcher.
# ---------------------------------------------------------------------------------------------

_loaded: dict[str, ModuleType] = {}


def load_watcher() -> None:
    """Import watcher's notification classes, register them, and check the version table.

    Raises ImportError when python-watcher is missing and RuntimeError when the installed
    classes disagree with FIELDS_BY_VERSION (another watcher release).
    """
    if _loaded:
        return
    with warnings.catch_warnings():
        # oslo.service warns that eventlet is deprecated on import; nothing is monkey-patched.
        warnings.simplefilter("ignore")
        mods = {
            name: importlib.import_module(path)
            for name, path in (
                ("objects_base", "watcher.objects.base"),
                ("wfields", "watcher.objects.fields"),
                ("ovo_fields", "oslo_versionedobjects.fields"),
                ("notifications", "watcher.notifications"),
            )
        }
    registry: Any = mods["objects_base"].WatcherObjectRegistry
    # Payload classes are only marked by @register_notification; watcher's own tests and doc
    # build register them like this before (de)serialising.
    registry.register_notification_objects()
    drift: list[str] = []
    for name, versions in FIELDS_BY_VERSION.items():
        cls = _latest_class(mods["objects_base"], name)
        latest = max(versions, key=_version_tuple)
        if cls.VERSION != latest or set(cls.fields) != versions[latest]:
            drift.append(f"{name} {cls.VERSION} {sorted(cls.fields)}")
    if drift:
        raise RuntimeError(
            f"python-watcher {WATCHER_VERSION} differs from the table in {__name__} "
            f"(written for {WATCHER_REQUIREMENT}): {'; '.join(drift)}"
        )
    _loaded.update(mods)


def _latest_class(objects_base: ModuleType, name: str) -> Any:
    return objects_base.WatcherObject.obj_class_from_name(name, "1.0")


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


# ---------------------------------------------------------------------------------------------
# Checking.
# ---------------------------------------------------------------------------------------------


def _kind(value: object) -> str:
    if value is None:
        return "null"
    for typ, label in ((bool, "bool"), (int, "int"), (float, "float"), (str, "string")):
        if isinstance(value, typ):
            return label
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def _blank(cls: Any) -> Any:
    """An empty instance, as ovo's ``_obj_from_primitive`` makes with ``cls()``.

    Watcher's payload ``__init__`` methods demand the source DB objects (action_plan, audit,
    ...) and call ``populate_schema``, so ``obj_from_primitive`` cannot build them; this skips
    only that constructor and runs the versioned-object one.
    """
    obj = cls.__new__(cls)
    _loaded["notifications"].base.NotificationObject.__init__(obj)
    return obj


def _check_scalar(
    obj: Any, name: str, field: Any, value: object, legacy: bool, where: str
) -> list[str]:
    problems: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hydrated = field.from_primitive(obj, name, value)
            if legacy:
                coerced = field.coerce(obj, name, hydrated)
            else:
                setattr(obj, name, hydrated)  # the field's coerce, exactly as ovo does it
                coerced = getattr(obj, name)
            back = field.to_primitive(obj, name, coerced) if coerced is not None else None
        except Exception as exc:  # ovo raises ValueError, TypeError, KeyError, ...
            return [f"{where}: {value!r} rejected by {type(field).__name__}: {exc}"]
    problems.extend(f"{where}: {w.category.__name__}: {w.message}" for w in caught)
    if _kind(back) != _kind(value) or back != value:
        problems.append(
            f"{where}: {_kind(value)} {value!r} is not what {type(field).__name__} emits "
            f"(it gives {_kind(back)} {back!r})"
        )
    return problems


def check_payload(
    primitive: object,
    expected_name: str | None = None,
    *,
    wire_exact: bool = True,
    where: str = "payload",
) -> list[str]:
    """Problems with one versioned-object primitive and its nested objects; [] means valid.

    ``wire_exact`` also rejects fields the class declares but watcher never sets
    (NEVER_EMITTED); without it they are optional.
    """
    load_watcher()
    problems: list[str] = []
    _check_object(primitive, expected_name, where, wire_exact, problems)
    return problems


def _check_object(
    primitive: object,
    expected_name: str | None,
    where: str,
    wire_exact: bool,
    problems: list[str],
) -> Any:
    """Hydrate like ovo's obj_from_primitive; append problems; return the object or None."""
    start = len(problems)
    objects_base = _loaded["objects_base"]
    base_cls: Any = objects_base.WatcherObject
    if not isinstance(primitive, Mapping):
        problems.append(f"{where}: expected a versioned object, got {_kind(primitive)}")
        return None
    key = {part: base_cls._obj_primitive_key(part) for part in _PRIMITIVE_PARTS}
    missing_parts = [k for k in key.values() if k not in primitive]
    if missing_parts:
        problems.append(f"{where}: missing {', '.join(missing_parts)}")
        return None
    extra = set(primitive) - set(key.values()) - {base_cls._obj_primitive_key("changes")}
    if extra:
        problems.append(f"{where}: unknown keys {sorted(extra)}")
    name, namespace, version, data = (primitive[key[p]] for p in _PRIMITIVE_PARTS)
    where = f"{where}<{name}@{version}>"
    if namespace != base_cls.OBJ_PROJECT_NAMESPACE:
        problems.append(f"{where}: namespace {namespace!r}, expected 'watcher'")
    if expected_name is not None and name != expected_name:
        problems.append(f"{where}: object is {name!r}, the field wants {expected_name!r}")
    if name not in FIELDS_BY_VERSION:
        problems.append(f"{where}: {name!r} is not a payload this checker has a history for")
        return None
    try:
        cls = base_cls.obj_class_from_name(name, version)  # ovo's own version compatibility
    except Exception as exc:
        problems.append(f"{where}: {type(exc).__name__}: {exc}")
        return None
    if version not in FIELDS_BY_VERSION[name]:
        known = ", ".join(FIELDS_BY_VERSION[name])
        problems.append(f"{where}: {name} never had version {version!r} (known: {known})")
        return None
    if not isinstance(data, Mapping):
        problems.append(f"{where}: data is {_kind(data)}, expected an object")
        return None

    declared = FIELDS_BY_VERSION[name][version]
    wanted = fields_for(name, version, wire_exact=wire_exact)
    present = set(data)
    if missing := sorted(wanted - present):
        problems.append(f"{where}: missing fields {missing}")
    if unknown := sorted(present - declared):
        problems.append(f"{where}: fields unknown at {name} {version}: {unknown}")
    if wire_exact and (unset := sorted(present & declared - wanted)):
        problems.append(f"{where}: watcher never emits {unset} (declared, never set)")

    obj = _blank(cls)
    obj.VERSION = version
    object_field_cls = _loaded["ovo_fields"].ObjectField
    for field_name in sorted(present & declared):
        value = data[field_name]
        at = f"{where}.{field_name}"
        field = cls.fields[field_name]
        retyped = _RETYPED.get((name, field_name))
        legacy = retyped is not None and _version_tuple(version) < _version_tuple(retyped[0])
        if retyped is not None and legacy:
            module = importlib.import_module(retyped[1])
            field = getattr(module, retyped[2])(nullable=True)
        if isinstance(field, object_field_cls) and value is not None:
            child = _check_object(value, field._type._obj_name, at, wire_exact, problems)
            if child is not None:
                try:
                    setattr(obj, field_name, child)  # ObjectField.coerce checks the type
                except Exception as exc:
                    problems.append(f"{at}: {type(exc).__name__}: {exc}")
        else:
            problems.extend(_check_scalar(obj, field_name, field, value, legacy, at))
    return obj if len(problems) == start else None


def check_envelope(envelope: Mapping[str, Any], *, wire_exact: bool = True) -> list[str]:
    """Problems with one oslo.messaging notification envelope; [] means valid.

    Checks the envelope keys, the payload class for the event type, priority and fault
    against the phase (watcher sends ``*.error`` at ERROR with an ExceptionPayload, the
    other phases at INFO with ``fault: null``), then the payload with check_payload.
    """
    load_watcher()
    problems: list[str] = []
    if not isinstance(envelope, Mapping):
        return [f"envelope: expected an object, got {_kind(envelope)}"]
    if missing := sorted(_ENVELOPE_KEYS - set(envelope)):
        problems.append(f"envelope: missing {missing}")
    event_type = envelope.get("event_type")
    expected = _EVENT_PAYLOADS.get(event_type) if isinstance(event_type, str) else None
    payload = envelope.get("payload")
    if expected is not None and isinstance(event_type, str):
        is_error = event_type.endswith(".error")
        want_priority = "ERROR" if is_error else "INFO"
        if envelope.get("priority") != want_priority:
            problems.append(
                f"envelope: priority {envelope.get('priority')!r} for {event_type}, "
                f"watcher sends {want_priority!r}"
            )
        data = payload.get("watcher_object.data") if isinstance(payload, Mapping) else None
        if isinstance(data, Mapping) and "fault" in data:
            if is_error and data["fault"] is None:
                problems.append(f"payload.fault: null on {event_type}")
            if not is_error and data["fault"] is not None:
                problems.append(f"payload.fault: set on {event_type}, watcher sends null")
    elif "event_type" in envelope:
        problems.append(f"envelope: unexpected event_type {event_type!r}")
    if "payload" in envelope:
        problems.extend(check_payload(payload, expected, wire_exact=wire_exact))
    return problems
