"""Lambda handlers: parse, call eventstore, report partial batch failures. Nothing more."""
