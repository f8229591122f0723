"""CloudFormation's intrinsic functions, evaluated over what the local cloud created.

The local cloud computes each function's environment and the stack's outputs from `template.yaml` itself
(never from a hand-kept copy), so that local and AWS cannot drift apart: a new variable or output in the
template appears locally, and one that references something the local cloud does not emulate fails
loudly instead of getting a made-up value.

Supported: `Ref` (parameters, pseudo parameters, resources), `Fn::GetAtt`, `Fn::Sub` (both forms),
`Fn::Join`, `Fn::If`, `Fn::FindInMap`, `Fn::Select`, `Fn::Split`, `Fn::Base64`, and in `Conditions`
`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or` and `Condition`. `AWS::NoValue` removes the key or item.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pushdeploy.domain.changes import partition_of_region
from pushdeploy.errors import PushdeployError


class ResolveError(PushdeployError):
    """A template value the local cloud cannot evaluate (an unknown name, an unemulated resource)."""


@dataclass(frozen=True)
class Physical:
    """What a resource resolves to: `Ref`'s value and the attributes `Fn::GetAtt` can read."""

    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StackIdentity:
    """The pseudo parameters' values."""

    stack_name: str
    region: str
    account: str

    @property
    def partition(self) -> str:
        return partition_of_region(self.region)

    @property
    def url_suffix(self) -> str:
        return "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"

    @property
    def stack_id(self) -> str:
        stack = f"stack/{self.stack_name}/00000000-0000-0000-0000-000000000000"
        return f"arn:{self.partition}:cloudformation:{self.region}:{self.account}:{stack}"


class _NoValue:
    """`AWS::NoValue`: removed from the dict or list that holds it."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def template_parameters(template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    """Every parameter's value as CloudFormation passes it: a string (numbers too), or a list of strings
    for a `CommaDelimitedList`. Overrides win over defaults; a parameter with neither is an error."""
    declared: Mapping[str, Any] = template.get("Parameters", {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ResolveError(f"unknown template parameter: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        raw = overrides.get(name, spec.get("Default"))
        if raw is None:
            raise ResolveError(f"template parameter {name} has no default: give it a value")
        text = str(raw)
        values[name] = text.split(",") if spec.get("Type") == "CommaDelimitedList" else text
    return values


class Resolver:
    """Evaluates template values against a stack identity, parameter values and created resources."""

    def __init__(
        self,
        template: Mapping[str, Any],
        identity: StackIdentity,
        resources: Mapping[str, Physical],
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.identity = identity
        self.resources = resources
        self.parameters = template_parameters(template, parameters or {})
        self._conditions: dict[str, bool] = {}
        self._functions: dict[str, Callable[[Any], Any]] = {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::If": self._if,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::Base64": lambda value: base64.b64encode(self._text(value).encode()).decode(),
        }

    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic function evaluated (recursively)."""
        if isinstance(value, dict):
            if len(value) == 1:
                ((name, argument),) = value.items()
                function = self._functions.get(name)
                if function is not None:
                    return function(argument)
            resolved = {key: self.resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not NO_VALUE}
        if isinstance(value, list):
            return [item for item in (self.resolve(item) for item in value) if item is not NO_VALUE]
        return value

    def condition(self, name: str) -> bool:
        """The value of a named condition of the template's `Conditions`."""
        if name not in self._conditions:
            conditions: Mapping[str, Any] = self.template.get("Conditions", {})
            if name not in conditions:
                raise ResolveError(f"unknown condition {name}")
            self._conditions[name] = self._truth(conditions[name])
        return self._conditions[name]

    # ----- conditions -----

    def _truth(self, value: Any) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            ((name, argument),) = value.items()
            if name == "Condition":
                return self.condition(str(argument))
            if name == "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return bool(_comparable(left) == _comparable(right))
            if name == "Fn::Not":
                return not self._truth(argument[0])
            if name == "Fn::And":
                return all(self._truth(item) for item in argument)
            if name == "Fn::Or":
                return any(self._truth(item) for item in argument)
        raise ResolveError(f"not a condition: {value!r}")

    # ----- intrinsic functions -----

    def _ref(self, name: Any) -> Any:
        name = str(name)
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        pseudo = self._pseudo(name)
        if pseudo is not None:
            return pseudo
        return self._physical(name).ref

    def _pseudo(self, name: str) -> str | None:
        identity = self.identity
        return {
            "AWS::StackName": identity.stack_name,
            "AWS::Region": identity.region,
            "AWS::AccountId": identity.account,
            "AWS::Partition": identity.partition,
            "AWS::URLSuffix": identity.url_suffix,
            "AWS::StackId": identity.stack_id,
        }.get(name)

    def _physical(self, logical_id: str) -> Physical:
        physical = self.resources.get(logical_id)
        if physical is not None:
            return physical
        declared = self.template.get("Resources", {}).get(logical_id)
        if declared is None:
            raise ResolveError(f"unknown name {logical_id}: not a parameter, pseudo parameter or resource")
        raise ResolveError(f"the local cloud does not emulate {declared.get('Type')} {logical_id}")

    def _get_att(self, argument: Any) -> str:
        logical_id, attribute = (str(part) for part in self.resolve(argument))
        physical = self._physical(logical_id)
        if attribute not in physical.attributes:
            raise ResolveError(f"the local cloud has no attribute {attribute} of {logical_id}")
        return physical.attributes[attribute]

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {key: self.resolve(item) for key, item in argument[1].items()}
        else:
            text, variables = argument, {}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # `${!Literal}` stands for the text `${Literal}`
                return "${" + name[1:] + "}"
            if name in variables:
                return self._text(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return self._get_att(name.split(".", 1))
            return self._text(self._ref(name))

        return _SUB_VARIABLE.sub(substitute, str(text))

    def _join(self, argument: Any) -> str:
        delimiter, items = argument
        values = self.resolve(items)
        if not isinstance(values, list):
            raise ResolveError(f"Fn::Join needs a list, got {values!r}")
        return str(delimiter).join(self._text(value) for value in values)

    def _if(self, argument: Any) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(str(name)) else when_false)

    def _find_in_map(self, argument: Any) -> Any:
        name, first, second = (self._text(self.resolve(part)) for part in argument)
        try:
            return self.resolve(self.template["Mappings"][name][first][second])
        except KeyError:
            raise ResolveError(f"Fn::FindInMap: no {name}.{first}.{second} in Mappings") from None

    def _select(self, argument: Any) -> Any:
        index, items = argument
        values = self.resolve(items)
        position = int(self._text(self.resolve(index)))
        if not isinstance(values, list) or not 0 <= position < len(values):
            raise ResolveError(f"Fn::Select: no item {position} in {values!r}")
        return values[position]

    def _split(self, argument: Any) -> list[str]:
        delimiter, text = argument
        return self._text(self.resolve(text)).split(str(delimiter))

    def _text(self, value: Any) -> str:
        """A resolved scalar as CloudFormation renders it in a string."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        raise ResolveError(f"expected a string, got {value!r}")


def _comparable(value: Any) -> Any:
    # CloudFormation compares strings: a Number parameter "1" equals the literal 1 in Fn::Equals.
    return value if isinstance(value, list) else str(value)
