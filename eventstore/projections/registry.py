"""Which projections exist: the built-ins, those registered with @projection, and those other
packages declare in the `eventstore.projections` entry-point group."""

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeVar

from eventstore.errors import ConfigurationError
from eventstore.projections.base import Projection

ENTRY_POINT_GROUP = "eventstore.projections"

P = TypeVar("P", bound=type[Projection])

_registered: dict[str, Callable[[], Projection]] = {}


def projection(cls: P) -> P:
    """Class decorator: register a Projection subclass under its `name`."""
    if not getattr(cls, "name", None):
        raise ConfigurationError(f"projection {cls.__qualname__} has no name")
    _registered[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Forget a decorated projection (tests, plugins being reloaded)."""
    _registered.pop(name, None)


def builtin_projections() -> list[Projection]:
    from eventstore.projections.catalog import ObjectCatalogProjection
    from eventstore.projections.principal_activity import PrincipalActivityProjection
    from eventstore.projections.reactor_outcomes import ReactorOutcomesProjection
    from eventstore.projections.search import SearchIndexProjection

    return [
        ObjectCatalogProjection(),
        PrincipalActivityProjection(),
        ReactorOutcomesProjection(),
        SearchIndexProjection(),
    ]


def _from_entry_points() -> list[Projection]:
    found: list[Projection] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        loaded = point.load()
        if isinstance(loaded, Projection):
            found.append(loaded)
        elif isinstance(loaded, type) and issubclass(loaded, Projection):
            found.append(loaded())
        else:
            raise ConfigurationError(
                f"entry point {point.name} = {point.value} is not a Projection class or instance"
            )
    return found


def load_projections() -> list[Projection]:
    """Every projection known to this process; a name may appear only once."""
    chosen: dict[str, Projection] = {}
    candidates = builtin_projections() + [make() for make in _registered.values()]
    candidates += _from_entry_points()
    for candidate in candidates:
        if candidate.name in chosen:
            if type(chosen[candidate.name]) is type(candidate):
                continue
            raise ConfigurationError(f"two projections are named {candidate.name!r}")
        chosen[candidate.name] = candidate
    return list(chosen.values())
