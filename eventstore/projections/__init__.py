"""Projections: named, versioned folds of the log into their own tables."""

from eventstore.projections.base import Companion, Fold, Projection, ProjectionContext
from eventstore.projections.catalog import ObjectCatalogProjection
from eventstore.projections.registry import load_projections, projection

__all__ = [
    "Companion",
    "Fold",
    "ObjectCatalogProjection",
    "Projection",
    "ProjectionContext",
    "load_projections",
    "projection",
]
