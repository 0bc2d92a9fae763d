"""The reconciliation core: two key-ordered streams of live objects merged in one pass."""

import pytest

from eventstore.replay.reconcile import (
    Discrepancy,
    LiveObject,
    ReconcileError,
    Tally,
    differing_fields,
    prefix_at,
    reconcile,
)


def obj(
    key: str, version: str | None = "v1", size: int | None = 10, etag: str | None = "e1"
) -> LiveObject:
    return LiveObject.of(key, version, size, etag)


def test_each_kind_of_difference_is_named_and_counted_per_prefix() -> None:
    # Given S3 and a log that agree on one key, and disagree on three others
    s3 = [obj("a/1"), obj("a/2"), obj("b/x/3", version="v2", size=11, etag="e2")]
    log = [obj("a/1"), obj("b/x/3"), obj("c/4")]
    tally = Tally(depth=1)

    # When they are reconciled
    differences = list(reconcile(s3, log, tally))

    # Then a/2 is missing, b/x/3 differs in all three fields, c/4 is a missed delete
    assert [(d.kind, d.key, d.fields) for d in differences] == [
        (Discrepancy.MISSING, "a/2", ()),
        (Discrepancy.DIFFERS, "b/x/3", ("version_id", "size", "etag")),
        (Discrepancy.MISSED_DELETE, "c/4", ()),
    ]
    # and completeness is the share of S3's objects the log has, overall and per prefix
    total = tally.total
    assert (total.s3_objects, total.complete, tally.log_objects) == (3, 1, 3)
    assert total.completeness == pytest.approx(1 / 3)
    assert {p: (t.s3_objects, t.complete) for p, t in tally.prefixes.items()} == {
        "a/": (2, 1),
        "b/": (1, 0),
        "c/": (0, 0),
    }
    assert tally.prefixes["c/"].completeness == 1.0  # nothing in S3 there to miss
    assert tally.prefixes["c/"].missed_deletes == 1


def test_only_what_both_sides_know_is_compared() -> None:
    # A log built from moto's notifications has no version id; S3's listing quotes ETags
    s3 = LiveObject.of("k", "3HL4kqtJlcpXroDTDmJ", 10, '"ABC"')
    assert differing_fields(s3, LiveObject.of("k", None, 10, "abc")) == ()
    assert differing_fields(s3, LiveObject.of("k", None, None, None)) == ()
    assert differing_fields(s3, LiveObject.of("k", None, 11, "abc")) == ("size",)
    # S3's "null" version is the log's None
    assert LiveObject.of("k", "null", 1, None).version_id is None


def test_a_stream_out_of_key_order_is_refused() -> None:
    with pytest.raises(ReconcileError, match="ascending"):
        list(reconcile([obj("b"), obj("a")], [], Tally(depth=1)))
    with pytest.raises(ReconcileError, match="the log"):
        list(reconcile([], [obj("a"), obj("a")], Tally(depth=1)))


def test_keys_compare_as_s3_orders_them() -> None:
    # S3 lists keys in UTF-8 byte order; Python compares code points: the same order
    keys = ["a b", "a+b", "a/b", "aé", "a\U0001f600", "ab"]
    assert sorted(keys) == sorted(keys, key=lambda k: k.encode())
    tally = Tally(depth=0)
    assert (
        list(reconcile([obj(k) for k in sorted(keys)], [obj(k) for k in sorted(keys)], tally)) == []
    )
    assert tally.total.complete == len(keys)


def test_prefix_at_depth() -> None:
    assert prefix_at("a/b/c.txt", 1) == "a/"
    assert prefix_at("a/b/c.txt", 2) == "a/b/"
    assert prefix_at("a/b/c.txt", 5) == "a/b/"
    assert prefix_at("top.txt", 2) == ""
    assert prefix_at("a/b/c.txt", 0) == ""
