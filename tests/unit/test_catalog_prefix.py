"""The prefix a key's objects and bytes are counted under in `prefix_stats`."""

import pytest

from eventstore.projections.catalog import prefix_of


@pytest.mark.parametrize(
    ("key", "depth", "prefix"),
    [
        ("report.pdf", 2, ""),  # top level
        ("logs/app.log", 2, "logs/"),
        ("logs/2026/11/29/app.log", 2, "logs/2026/"),
        ("logs/2026/11/29/app.log", 1, "logs/"),
        ("logs/2026/11/29/app.log", 9, "logs/2026/11/29/"),  # fewer folders than the depth
        ("logs/2026/", 2, "logs/2026/"),  # a folder marker counts as in its folder
        ("logs//x.log", 2, "logs//"),  # an empty folder name is a folder
        ("/x.log", 2, "/"),
        ("a b/c+d%2F/e.txt", 2, "a b/c+d%2F/"),  # keys are stored decoded: no escaping
    ],
)
def test_a_keys_prefix_is_its_first_folders_with_their_slashes(
    key: str, depth: int, prefix: str
) -> None:
    assert prefix_of(key, depth) == prefix
