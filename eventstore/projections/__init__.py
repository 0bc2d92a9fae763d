"""Projections: named, versioned folds of the log into their own tables."""

from eventstore.projections.base import Projection, ProjectionContext
from eventstore.projections.catalog import ObjectCatalogProjection
from eventstore.projections.registry import load_projections, projection

__all__ = [
    "ObjectCatalogProjection",
    "Projection",
    "ProjectionContext",
    "load_projections",
    "projection",
]
