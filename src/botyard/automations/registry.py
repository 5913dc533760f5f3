"""``@automation``: named callables whose payload is validated from their type hints."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from botyard.concurrency import render_key, template_fields
from botyard.errors import AutomationError, PayloadInvalid, UnknownAutomation

F = TypeVar("F", bound=Callable[..., Any])

_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*(\.[a-z0-9][a-z0-9_\-]*)+$")


@dataclass(frozen=True)
class Automation:
    """A registered automation: a function, or a standalone script run as a subprocess."""

    name: str
    func: Callable[..., Any] | None = None
    script: Path | None = None
    idempotent: bool = False
    timeout: float = 3600.0
    max_attempts: int = 3
    queue: str = "default"
    concurrency_key: str | None = None  # a template over the payload: "mfn:{account}"
    concurrency_limit: int = 1  # running jobs per key, unless BOTYARD_CONCURRENCY_LIMITS says
    browser: str | None = None
    payload_model: type[BaseModel] | None = field(default=None, compare=False)

    @property
    def provider(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def action(self) -> str:
        return self.name.split(".", 1)[1]

    def validate(self, payload: Any) -> dict[str, Any]:
        """Check ``payload`` against the parameters; returns it normalised to plain JSON."""
        return self.parse(payload).model_dump(mode="json", exclude_unset=False)

    def concurrency_key_for(self, payload: dict[str, Any]) -> str | None:
        """The concurrency key of a job with this validated payload; ``PayloadInvalid`` when the
        template names a key the payload lacks."""
        if self.concurrency_key is None:
            return None
        return render_key(self.concurrency_key, payload)

    def parse(self, payload: Any) -> BaseModel:
        if not isinstance(payload, dict):
            raise PayloadInvalid(
                [{"loc": [], "msg": "the payload must be a JSON object", "type": "dict_type"}]
            )
        model = self.payload_model or _AnyPayload
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise PayloadInvalid(
                [
                    {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors(include_url=False, include_context=False)
                ]
            ) from None

    def kwargs(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments to call the function with: the payload, typed."""
        model = self.parse(payload)
        values = {name: getattr(model, name) for name in type(model).model_fields}
        values.update(model.model_extra or {})
        return values


class _AnyPayload(BaseModel):
    model_config = ConfigDict(extra="allow")


def _payload_model(name: str, func: Callable[..., Any]) -> type[BaseModel]:
    hints = typing.get_type_hints(func)
    fields: dict[str, Any] = {}
    extra: Literal["allow", "forbid"] = "forbid"
    params = list(inspect.signature(func).parameters.values())
    from botyard.automations.context import JobContext

    for index, param in enumerate(params):
        hint = hints.get(param.name, Any)
        if index == 0 and (hint is JobContext or param.name in ("ctx", "context")):
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra = "allow"
            continue
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            raise AutomationError(
                f"automation {name!r}: parameter {param.name!r} cannot take a payload key"
            )
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (hint, default)
    model_name = "".join(part.title() for part in re.split(r"[._\-]", name)) + "Payload"
    model: type[BaseModel] = create_model(model_name, __config__=ConfigDict(extra=extra), **fields)
    return model


def _check_template(name: str, template: str, model: type[BaseModel]) -> None:
    """A key template may only name parameters (any key when the function takes ``**kwargs``)."""
    try:
        names = template_fields(template)
    except ValueError as exc:
        raise AutomationError(f"automation {name!r}: {exc}") from None
    if model.model_config.get("extra") == "allow":
        return
    unknown = [n for n in names if n not in model.model_fields]
    if unknown:
        raise AutomationError(
            f"automation {name!r}: concurrency key {template!r} names {', '.join(unknown)},"
            " which the function does not take"
        )


class Registry:
    """Automations by name."""

    def __init__(self) -> None:
        self._automations: dict[str, Automation] = {}

    def add(self, item: Automation) -> Automation:
        if not _NAME.match(item.name):
            raise AutomationError(
                f"automation name {item.name!r} must look like 'provider.action' (lower case)"
            )
        existing = self._automations.get(item.name)
        if existing is not None and existing.func is not item.func and existing != item:
            raise AutomationError(f"automation {item.name!r} is registered twice")
        self._automations[item.name] = item
        return item

    def get(self, name: str) -> Automation:
        try:
            return self._automations[name]
        except KeyError:
            raise UnknownAutomation(f"unknown automation {name!r}", name=name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._automations

    def __iter__(self) -> typing.Iterator[Automation]:
        return iter(sorted(self._automations.values(), key=lambda a: a.name))

    def names(self) -> list[str]:
        return sorted(self._automations)

    def update(self, other: Registry) -> None:
        for item in other:
            self.add(item)


default_registry = Registry()


def automation(
    name: str,
    *,
    idempotent: bool = False,
    timeout: float = 3600.0,
    max_attempts: int = 3,
    queue: str = "default",
    concurrency_key: str | None = None,
    concurrency_limit: int = 1,
    browser: str | None = None,
    registry: Registry | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as the automation ``name`` ("provider.action").

    ``concurrency_key`` ("mfn:{account}") names what jobs share, from their payload; at most
    ``concurrency_limit`` jobs with the same key run at once, across every worker.
    """
    if timeout <= 0 or max_attempts < 1:
        raise AutomationError(f"automation {name!r}: timeout > 0 and max_attempts >= 1 please")
    if browser not in (None, "playwright", "selenium"):
        raise AutomationError(
            f"automation {name!r}: browser must be 'playwright' or 'selenium', not {browser!r}"
        )
    if concurrency_limit < 1:
        raise AutomationError(f"automation {name!r}: concurrency_limit must be 1 or more")

    def decorate(func: F) -> F:
        model = _payload_model(name, func)
        if concurrency_key is not None:
            _check_template(name, concurrency_key, model)
        (registry or default_registry).add(
            Automation(
                name=name,
                func=func,
                idempotent=idempotent,
                timeout=timeout,
                max_attempts=max_attempts,
                queue=queue,
                concurrency_key=concurrency_key,
                concurrency_limit=concurrency_limit,
                browser=browser,
                payload_model=model,
            )
        )
        return func

    return decorate


def script_automation(
    name: str,
    path: str | Path,
    *,
    idempotent: bool = False,
    timeout: float = 3600.0,
    max_attempts: int = 3,
    queue: str = "default",
    registry: Registry | None = None,
) -> Automation:
    """Register a standalone Python script as ``name``; its payload is any JSON object."""
    script = Path(path).resolve()
    if not script.is_file():
        raise AutomationError(f"automation {name!r}: no script at {path}")
    return (registry or default_registry).add(
        Automation(
            name=name,
            script=script,
            idempotent=idempotent,
            timeout=timeout,
            max_attempts=max_attempts,
            queue=queue,
        )
    )


def load_automations(modules: Iterable[str], scripts: Iterable[str] = ()) -> Registry:
    """Import automation modules (dotted names or ``.py`` paths) and register ``NAME=PATH`` scripts.

    Returns the default registry, which the imported modules filled.
    """
    for module in modules:
        _import(module)
    for spec in scripts:
        name, sep, path = spec.partition("=")
        if not sep:
            raise AutomationError(f"--script wants NAME=PATH, not {spec!r}")
        if name not in default_registry:
            script_automation(name.strip(), path.strip())
    return default_registry


def _import(module: str) -> None:
    if module.endswith(".py") or "/" in module:
        path = Path(module).resolve()
        if not path.is_file():
            raise AutomationError(f"no automation module at {module}")
        mod_name = f"botyard_automations_{path.stem}"
        if mod_name in sys.modules:
            return
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise AutomationError(f"cannot import {module}")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = loaded
        spec.loader.exec_module(loaded)
        return
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise AutomationError(f"cannot import automation module {module!r}: {exc}") from exc
