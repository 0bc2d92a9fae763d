"""Projections: named, versioned folds of the log into their own tables."""

from eventstore.projections.base import Projection
from eventstore.projections.catalog import ObjectCatalogProjection

__all__ = ["ObjectCatalogProjection", "Projection"]
