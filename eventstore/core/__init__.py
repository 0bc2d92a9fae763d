"""The event model and its rules (parsing, identity, order, hashing, object state); no I/O."""
