"""How infra/template.yaml deploys reactors, and whether it still matches them (drift).

A reactor function is an AWS::Lambda::Function whose environment names a reactor
(EVENTSTORE_REACTOR). `reactor_drift` follows each one to its event source mapping, the queue
that mapping reads and that queue's subscriptions to the topic, and compares each
subscription's filter policy with what the reactor declares (`wants.filter_policy()`, scope
MessageBody). Reads the template only: no AWS.
"""

import contextlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from eventstore.local.template import load_template
from eventstore.reactors.base import Reactor
from eventstore.reactors.registry import load_reactors

# The variable consumers.reactor.handler reads to know which reactor it is (the library may not
# import consumers; tests/e2e/test_reactor_drift.py checks the two names agree).
REACTOR_VARIABLE = "EVENTSTORE_REACTOR"
REACTOR_HANDLER = "consumers.reactor.handler"
FILTER_POLICY_SCOPE = "MessageBody"


def reactor_name(function: Mapping[str, Any]) -> str | None:
    """The reactor a template function runs (its EVENTSTORE_REACTOR), or None."""
    variables = ((function.get("Properties") or {}).get("Environment") or {}).get("Variables")
    value = (variables or {}).get(REACTOR_VARIABLE)
    return None if value is None else value if isinstance(value, str) else json.dumps(value)


def reactor_drift(
    template_path: Path | str | None = None, *, reactors: Iterable[Reactor] | None = None
) -> list[str]:
    """Every difference between the template's reactor functions and the reactors (all those
    registered in this process, or `reactors`), one sentence each; empty when they agree.

    Reported: a function naming a reactor that does not exist, or running another handler;
    a reactor function without an event source mapping, or reading something other than a
    queue of the template; a queue without a dead-letter queue or without a subscription; a
    subscription whose filter policy or scope differs from the reactor's; a reactor run by
    two functions, or by none."""
    template = load_template(template_path)
    resources: Mapping[str, Any] = template["Resources"]
    known = {r.name: r for r in (load_reactors() if reactors is None else reactors)}
    problems: list[str] = []
    deployed: dict[str, list[str]] = {}

    for function, spec in _of_type(resources, "AWS::Lambda::Function"):
        name = reactor_name(spec)
        if name is None:
            continue
        deployed.setdefault(name, []).append(function)
        reactor = known.get(name)
        if reactor is None:
            listed = ", ".join(sorted(known)) or "none"
            problems.append(
                f"function {function} runs reactor {name!r}, which is not registered "
                f"(known: {listed})"
            )
            continue
        handler = (spec.get("Properties") or {}).get("Handler")
        if handler != REACTOR_HANDLER:
            problems.append(
                f"function {function} runs reactor {name!r} with handler {handler!r}, "
                f"not {REACTOR_HANDLER}"
            )
        problems += _queue_drift(resources, function, reactor)

    for name, functions in deployed.items():
        if len(functions) > 1:
            problems.append(
                f"reactor {name!r} is run by {len(functions)} functions "
                f"({', '.join(functions)}): each event would be handled twice"
            )
    for name in sorted(set(known) - set(deployed)):
        problems.append(f"reactor {name!r} has no function in the template")
    return problems


def _queue_drift(resources: Mapping[str, Any], function: str, reactor: Reactor) -> list[str]:
    name = reactor.name
    mappings = [
        mapping
        for mapping, spec in _of_type(resources, "AWS::Lambda::EventSourceMapping")
        if _referenced(_properties(spec).get("FunctionName")) == function
    ]
    if not mappings:
        return [f"function {function} (reactor {name!r}) has no event source mapping"]
    problems: list[str] = []
    expected = reactor.wants.filter_policy()
    for mapping in mappings:
        queue = _referenced(_properties(resources[mapping]).get("EventSourceArn"))
        if queue is None or resources.get(queue, {}).get("Type") != "AWS::SQS::Queue":
            problems.append(
                f"event source mapping {mapping} of reactor {name!r} reads no queue of the template"
            )
            continue
        if "RedrivePolicy" not in _properties(resources[queue]):
            problems.append(f"queue {queue} of reactor {name!r} has no dead-letter queue")
        subscriptions = [
            subscription
            for subscription, spec in _of_type(resources, "AWS::SNS::Subscription")
            if _referenced(_properties(spec).get("Endpoint")) == queue
        ]
        if not subscriptions:
            problems.append(f"queue {queue} of reactor {name!r} has no subscription to the topic")
        for subscription in subscriptions:
            problems += _policy_drift(resources[subscription], subscription, name, expected)
    return problems


def _policy_drift(
    spec: Mapping[str, Any], subscription: str, name: str, expected: dict[str, Any]
) -> list[str]:
    props = _properties(spec)
    problems: list[str] = []
    # SNS's default scope is MessageAttributes, which S3 notifications do not carry.
    scope = props.get("FilterPolicyScope", "MessageAttributes")
    if scope != FILTER_POLICY_SCOPE:
        problems.append(
            f"subscription {subscription} of reactor {name!r} filters on {scope}, "
            f"not {FILTER_POLICY_SCOPE}"
        )
    policy = props.get("FilterPolicy")
    if isinstance(policy, str):
        with contextlib.suppress(json.JSONDecodeError):  # compared as text below: it differs
            policy = json.loads(policy)
    if policy is None:
        problems.append(
            f"subscription {subscription} of reactor {name!r} has no filter policy; the reactor "
            f"wants {_text(expected)}"
        )
    elif _canonical(policy) != _canonical(expected):
        problems.append(
            f"subscription {subscription} of reactor {name!r} has filter policy {_text(policy)}; "
            f"the reactor wants {_text(expected)}"
        )
    return problems


def _of_type(resources: Mapping[str, Any], kind: str) -> list[tuple[str, Mapping[str, Any]]]:
    return [(name, spec) for name, spec in resources.items() if spec.get("Type") == kind]


def _properties(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    return spec.get("Properties") or {}


def _referenced(node: Any) -> str | None:
    """The logical id a `!Ref X` or `!GetAtt X.Attr` names; None for anything else."""
    if not isinstance(node, dict) or len(node) != 1:
        return None
    ((function, argument),) = node.items()
    if function == "Ref" and isinstance(argument, str):
        return argument
    if function == "Fn::GetAtt":
        if isinstance(argument, list) and argument:
            return str(argument[0])
        if isinstance(argument, str):
            return argument.partition(".")[0]
    return None


def _canonical(value: Any) -> Any:
    """A filter policy with its lists in a fixed order: SNS treats their items as
    alternatives, so order carries no meaning."""
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted((_canonical(item) for item in value), key=_text)
    return value


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
