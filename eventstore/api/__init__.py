"""The read-only audit surface: the HTTP API and web page (`build_app`), served locally by
eventstore.api.server (`eventstore serve`) and on Lambda by consumers/api.py."""

from eventstore.api.app import BadParameterError, NotFoundError, build_app

__all__ = ["BadParameterError", "NotFoundError", "build_app"]
