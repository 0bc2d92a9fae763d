"""Which reactors exist: the built-ins, those registered with @reactor, and those other
packages declare in the `eventstore.reactors` entry-point group."""

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeVar

from eventstore.errors import ConfigurationError
from eventstore.reactors.base import Reactor

ENTRY_POINT_GROUP = "eventstore.reactors"

R = TypeVar("R", bound=type[Reactor])

_registered: dict[str, Callable[[], Reactor]] = {}


def reactor(cls: R) -> R:
    """Class decorator: register a Reactor subclass under its `name`."""
    if not getattr(cls, "name", None):
        raise ConfigurationError(f"reactor {cls.__qualname__} has no name")
    _registered[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Forget a decorated reactor (tests, plugins being reloaded)."""
    _registered.pop(name, None)


def builtin_reactors() -> list[Reactor]:
    from eventstore.reactors.builtin import BUILTIN_REACTORS

    return [make() for make in BUILTIN_REACTORS]


def _from_entry_points() -> list[Reactor]:
    found: list[Reactor] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        loaded = point.load()
        if isinstance(loaded, Reactor):
            found.append(loaded)
        elif isinstance(loaded, type) and issubclass(loaded, Reactor):
            found.append(loaded())
        else:
            raise ConfigurationError(
                f"entry point {point.name} = {point.value} is not a Reactor class or instance"
            )
    return found


def load_reactors() -> list[Reactor]:
    """Every reactor known to this process; a name may appear only once."""
    chosen: dict[str, Reactor] = {}
    candidates = builtin_reactors() + [make() for make in _registered.values()]
    candidates += _from_entry_points()
    for candidate in candidates:
        if candidate.name in chosen:
            if type(chosen[candidate.name]) is type(candidate):
                continue
            raise ConfigurationError(f"two reactors are named {candidate.name!r}")
        chosen[candidate.name] = candidate
    return list(chosen.values())


def get_reactor(name: str) -> Reactor:
    """The reactor named `name`; a clear error naming the known ones otherwise."""
    reactors = load_reactors()
    for candidate in reactors:
        if candidate.name == name:
            return candidate
    known = ", ".join(sorted(r.name for r in reactors)) or "none"
    raise ConfigurationError(f"no reactor is named {name!r} (known: {known})")
