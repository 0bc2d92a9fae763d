"""Reading infra/template.yaml: CloudFormation YAML (short-form tags included) and the
intrinsic functions it uses, resolved against parameters and already-created resources. No I/O
beyond reading the file, no boto3."""

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eventstore.errors import ConfigurationError

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"


class TemplateError(ConfigurationError):
    """The template cannot be read, or uses something this reader does not resolve."""


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref x` into {"Ref": "x"}, `!GetAtt a.b` into
    {"Fn::GetAtt": ["a", "b"]} and every other `!Name v` into {"Fn::Name": v}."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise TemplateError(f"cannot read tag !{suffix}")
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    if suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path | str | None = None) -> dict[str, Any]:
    """The template as plain data, intrinsic functions in their long form."""
    source = Path(path) if path is not None else DEFAULT_TEMPLATE
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise TemplateError(f"cannot read the template {source}: {error}") from None
    document = yaml.load(text, Loader=_CfnLoader)  # a SafeLoader subclass
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{source} is not a CloudFormation template (no Resources)")
    return document


NO_VALUE = object()  # AWS::NoValue: the property is left out
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


@dataclass
class Resolver:
    """Resolves intrinsic functions of one template.

    `physical` maps a logical id to what `Ref` returns once the resource exists; `attributes`
    maps it to its `Fn::GetAtt` attributes. Both grow as the fan-out is created."""

    template: Mapping[str, Any]
    parameters: dict[str, str | list[str]]
    pseudo: dict[str, str]
    physical: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def for_template(
        cls,
        template: Mapping[str, Any],
        overrides: Mapping[str, str],
        *,
        stack_name: str,
        region: str,
        account_id: str,
    ) -> "Resolver":
        declared: Mapping[str, Any] = template.get("Parameters") or {}
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise TemplateError(f"the template has no parameter(s) {', '.join(unknown)}")
        values: dict[str, str | list[str]] = {}
        for name, spec in declared.items():
            if name in overrides:
                raw: Any = overrides[name]
            elif "Default" in spec:
                raw = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no default: give a value")
            text = str(raw)
            allowed = spec.get("AllowedValues")
            if allowed is not None and text not in [str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={text!r} is not one of {allowed}")
            if str(spec.get("Type", "")).startswith("CommaDelimitedList") or str(
                spec.get("Type", "")
            ).startswith("List<"):
                values[name] = [part.strip() for part in text.split(",")] if text else [""]
            else:
                values[name] = text
        pseudo = {
            "AWS::StackName": stack_name,
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local"
            ),
        }
        return cls(template=template, parameters=values, pseudo=pseudo)

    # --- conditions ------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        conditions: Mapping[str, Any] = self.template.get("Conditions") or {}
        if name not in conditions:
            raise TemplateError(f"unknown condition {name}")
        return self._truth(conditions[name])

    def _truth(self, node: Any) -> bool:
        if isinstance(node, dict) and len(node) == 1:
            ((function, argument),) = node.items()
            if function == "Condition":
                return self.condition(argument)
            if function == "Fn::Equals":
                left, right = (self.resolve(part) for part in argument)
                return bool(_plain(left) == _plain(right))
            if function == "Fn::Not":
                return not self._truth(argument[0])
            if function == "Fn::And":
                return all(self._truth(part) for part in argument)
            if function == "Fn::Or":
                return any(self._truth(part) for part in argument)
        raise TemplateError(f"cannot evaluate condition {node!r}")

    def included(self, resource: Mapping[str, Any]) -> bool:
        """Whether a resource (or output) with an optional `Condition` exists."""
        name = resource.get("Condition")
        return name is None or self.condition(str(name))

    # --- values ----------------------------------------------------------------------------
    def resolve(self, node: Any) -> Any:
        """`node` with every intrinsic function replaced by its value; NO_VALUE drops a key."""
        if isinstance(node, list):
            return [
                value for value in (self.resolve(item) for item in node) if value is not NO_VALUE
            ]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            function = _FUNCTIONS.get(key)
            if function is not None:
                return function(self, argument)
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical:
            return self.physical[name]
        if name in (self.template.get("Resources") or {}):
            raise TemplateError(f"Ref {name}: the resource is not created yet")
        raise TemplateError(f"Ref {name}: no such parameter or resource")

    def get_att(self, resource: str, attribute: str) -> str:
        try:
            return self.attributes[resource][attribute]
        except KeyError:
            raise TemplateError(f"GetAtt {resource}.{attribute}: not known (yet)") from None

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self.resolve(v) for k, v in argument[1].items()}
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                resource, _, attribute = name.partition(".")
                return self.get_att(resource, attribute)
            value = self.ref(name)
            return ",".join(value) if isinstance(value, list) else str(value)

        return _SUB_VARIABLE.sub(replace, str(text))

    def _if(self, argument: list[Any]) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(name) else when_false)

    def _find_in_map(self, argument: list[Any]) -> Any:
        name, top, second = (str(_plain(self.resolve(part))) for part in argument)
        try:
            return self.template["Mappings"][name][top][second]
        except KeyError:
            raise TemplateError(f"FindInMap {name}/{top}/{second}: no such entry") from None

    def _join(self, argument: list[Any]) -> str:
        separator, values = argument
        resolved = self.resolve(values)
        return str(separator).join(str(v) for v in resolved)

    def _select(self, argument: list[Any]) -> Any:
        index, values = argument
        return self.resolve(values)[int(self.resolve(index))]

    def _split(self, argument: list[Any]) -> list[str]:
        separator, text = argument
        return str(self.resolve(text)).split(str(separator))


def _plain(value: Any) -> Any:
    return ",".join(value) if isinstance(value, list) else value


def _unsupported(name: str) -> Callable[[Resolver, Any], Any]:
    def fail(_resolver: Resolver, _argument: Any) -> Any:
        raise TemplateError(f"{name} is not supported by the local fan-out")

    return fail


def _get_att(resolver: Resolver, argument: Any) -> str:
    resource, attribute = argument if isinstance(argument, list) else str(argument).split(".", 1)
    return resolver.get_att(str(resource), str(attribute))


_FUNCTIONS: dict[str, Callable[[Resolver, Any], Any]] = {
    "Ref": lambda r, a: r.ref(str(a)),
    "Fn::GetAtt": _get_att,
    "Fn::Sub": Resolver._sub,
    "Fn::If": Resolver._if,
    "Fn::FindInMap": Resolver._find_in_map,
    "Fn::Join": Resolver._join,
    "Fn::Select": Resolver._select,
    "Fn::Split": Resolver._split,
    "Fn::ImportValue": _unsupported("Fn::ImportValue"),
    "Fn::GetAZs": _unsupported("Fn::GetAZs"),
}


def as_json_text(value: Any) -> str:
    """A policy or filter given as a YAML mapping, as the JSON text the APIs take."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
