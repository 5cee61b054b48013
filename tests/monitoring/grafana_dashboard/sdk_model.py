"""validate, from the Grafana Foundation SDK's Grafana 11.6 model: decode, types, unknown, schema
(and the SDK itself, which panel-type and query use)."""
import enum
import json
import sys
import types
import typing

from .files import VENV_HINT


def load_sdk():
    try:
        from grafana_foundation_sdk.cog import encoder, plugins, runtime
        from grafana_foundation_sdk.models import dashboard as model
        from grafana_foundation_sdk.models import prometheus
    except ImportError as exc:
        sys.exit(f"dashboard.py: {exc}: {VENV_HINT}")
    # Without this the decoder knows no panel or query type and keeps their JSON as untyped dicts.
    plugins.register_default_plugins()
    return types.SimpleNamespace(encoder=encoder, runtime=runtime.Runtime(), model=model, prometheus=prometheus)


def is_sdk_class(cls):
    return isinstance(cls, type) and cls.__module__.startswith("grafana_foundation_sdk.")


def describe(value):
    return f"{type(value).__name__} {json.dumps(value, default=str)[:60]}"


def check_value(value, hint, path, errors):
    """Appends to errors where value is not what the type annotation hint allows."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any or hint is object:
        if is_sdk_class(type(value)):
            check_object(value, path, errors)
        return
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        # A decoded model object belongs to one alternative: only its own errors say anything.
        owner = [a for a in args if isinstance(a, type) and is_sdk_class(a) and isinstance(value, a)]
        if owner:
            check_value(value, owner[0], path, errors)
            return
        tried = []
        for alternative in args:
            if alternative is type(None):
                continue
            alternative_errors = []
            check_value(value, alternative, path, alternative_errors)
            if not alternative_errors:
                return
            tried.append(alternative_errors)
        # One alternative only (an Optional): its own message says more than "matches none".
        if len(tried) == 1:
            errors.extend(tried[0])
        else:
            errors.append(f"{path}: {describe(value)} is none of {hint}")
        return
    if origin is typing.Literal:
        if value not in args:
            errors.append(f"{path}: {describe(value)} is not one of {list(args)}")
        return
    if origin is list:
        if not isinstance(value, list):
            errors.append(f"{path}: {describe(value)} is not a list")
            return
        for i, item in enumerate(value):
            check_value(item, args[0], f"{path}[{i}]", errors)
        return
    if origin is dict:
        if not isinstance(value, dict):
            errors.append(f"{path}: {describe(value)} is not an object")
            return
        for key, item in value.items():
            check_value(key, args[0], f"{path} key {key!r}", errors)
            check_value(item, args[1], f"{path}[{key!r}]", errors)
        return
    if not isinstance(hint, type):
        errors.append(f"{path}: cannot check against {hint!r}")
        return
    if issubclass(hint, enum.Enum):
        # The decoder keeps enum fields as the raw JSON value: it must be one of the enum's.
        if isinstance(value, hint):
            return
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value not in {m.value for m in hint}:
            errors.append(f"{path}: {describe(value)} is not one of {[m.value for m in hint]}")
        return
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is str:
        ok = isinstance(value, str)
    elif is_sdk_class(hint):
        if isinstance(value, hint):
            check_object(value, path, errors)
            return
        # A few fields (Panel.links, Panel.transformations) are left as raw JSON by the decoder.
        if isinstance(value, dict) and hasattr(hint, "from_json"):
            try:
                decoded = hint.from_json(value)
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                errors.append(f"{path}: not a {hint.__name__}: {type(exc).__name__} {exc}")
                return
            check_object(decoded, path, errors)
            return
        ok = False
    else:
        ok = isinstance(value, hint)
    if not ok:
        errors.append(f"{path}: {describe(value)} is not {hint.__name__}")


def check_object(obj, path, errors):
    try:
        hints = typing.get_type_hints(type(obj))
    except Exception as exc:  # an unresolvable annotation is the SDK's bug: say so instead of crashing
        errors.append(f"{path}: cannot read the SDK's annotations of {type(obj).__name__}: {exc}")
        return
    for name, hint in hints.items():
        check_value(getattr(obj, name, None), hint, f"{path}.{json_name(name)}", errors)


def json_name(attribute):
    """The JSON key of a model attribute, for messages: the SDK appends _val to names that are
    Python keywords or builtins and snake-cases the rest."""
    head, *rest = attribute.removesuffix("_val").split("_")
    return head + "".join(word.title() for word in rest)


def lost_keys(src, out, path):
    """Keys and values of the file that the SDK's decode-then-encode did not keep."""
    if isinstance(src, dict):
        if not isinstance(out, dict):
            yield f"{path}: decoded as {describe(out)}"
            return
        for key, value in src.items():
            if key not in out:
                yield f"{path}.{key}: a field the Grafana 11.6 model does not have"
            else:
                yield from lost_keys(value, out[key], f"{path}.{key}")
    elif isinstance(src, list):
        if not isinstance(out, list) or len(out) != len(src):
            yield f"{path}: decoded as {describe(out)}"
            return
        for i, (a, b) in enumerate(zip(src, out)):
            yield from lost_keys(a, b, f"{path}[{i}]")
    elif src != out or type(src) is bool and type(out) is not bool:
        yield f"{path}: {describe(src)} came back as {describe(out)}"


def sdk_checks(sdk, raw, errors):
    """Decodes raw with the SDK; returns the model, or None when it cannot be decoded."""
    try:
        dash = sdk.model.Dashboard.from_json(raw)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        errors.append(f"decode: the SDK's Dashboard.from_json fails: {type(exc).__name__} {exc}")
        return None
    type_errors = []
    check_object(dash, "$", type_errors)
    errors.extend(f"types: {e}" for e in type_errors)
    encoded = json.loads(json.dumps(dash, cls=sdk.encoder.JSONEncoder))
    errors.extend(f"unknown: {e}" for e in lost_keys(raw, encoded, "$"))
    model_schema = sdk.model.Dashboard().schema_version
    if raw.get("schemaVersion") != model_schema:
        errors.append(f"schema: schemaVersion is {raw.get('schemaVersion')!r}, the SDK's Grafana 11.6 model "
                      f"is for {model_schema}")
    return dash
