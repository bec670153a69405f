"""Check a SageMaker API request against botocore's service model before anything is sent.

botocore's own ParamValidator reports missing and unknown fields and wrong types; it does not check
enums, lengths, value ranges or patterns, which the service enforces. This module adds those by
walking the shape metadata (AWS patterns use ``\\p{..}`` classes: the ``regex`` package reads them).
"""

from typing import Any, List

from kx.errors import KxError


class InvalidRequest(KxError):
    """The request would be rejected by SageMaker; the message lists every problem found."""


def _walk(value: Any, shape: Any, path: str, problems: List[str]) -> None:
    import regex

    meta = shape.metadata
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                _walk(value[name], member, f"{path}.{name}" if path else name, problems)
    elif shape.type_name == "list" and isinstance(value, list):
        _check_size(len(value), meta, path, "items", problems)
        for i, item in enumerate(value):
            _walk(item, shape.member, f"{path}[{i}]", problems)
    elif shape.type_name == "map" and isinstance(value, dict):
        _check_size(len(value), meta, path, "entries", problems)
        for key, item in value.items():
            _walk(key, shape.key, f"{path} key {key!r}", problems)
            _walk(item, shape.value, f"{path}[{key!r}]", problems)
    elif shape.type_name == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            shown = ", ".join(shape.enum[:8]) + (
                f", ... ({len(shape.enum)} in all)" if len(shape.enum) > 8 else ""
            )
            problems.append(f"{path}={value!r} is not one of {shown}")
        _check_size(len(value), meta, path, "characters", problems)
        pattern = meta.get("pattern")
        if pattern and not regex.fullmatch(pattern, value):
            problems.append(f"{path}={value!r} does not match the pattern {pattern}")
    elif shape.type_name in ("integer", "long", "double", "float") and isinstance(value, (int, float)):
        if "min" in meta and value < meta["min"]:
            problems.append(f"{path}={value} is below the minimum {meta['min']}")
        if "max" in meta and value > meta["max"]:
            problems.append(f"{path}={value} is above the maximum {meta['max']}")


def _check_size(size: int, meta: dict, path: str, unit: str, problems: List[str]) -> None:
    if "min" in meta and size < meta["min"]:
        problems.append(f"{path} has {size} {unit}, fewer than the minimum {meta['min']}")
    if "max" in meta and size > meta["max"]:
        problems.append(f"{path} has {size} {unit}, more than the maximum {meta['max']}")


def validate(request: dict, operation: str, service: str = "sagemaker") -> None:
    """Raise :class:`InvalidRequest` listing every problem botocore and the shape metadata find."""
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    report = ParamValidator().validate(request, model.input_shape)
    problems = [line.strip() for line in report.generate_report().splitlines()] if report.has_errors() else []
    _walk(request, model.input_shape, "", problems)
    if problems:
        raise InvalidRequest(f"The {operation} request is invalid: " + "; ".join(problems) + ".")
