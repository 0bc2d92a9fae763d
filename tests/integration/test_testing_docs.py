"""docs/testing.md cannot rot: each of its python blocks is a user's test module, run here
with the plugin as a user's pytest runs it, and each stays under 30 lines."""

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOC = Path(__file__).parents[2] / "docs" / "testing.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


def test_the_examples_are_short() -> None:
    blocks = python_blocks()
    assert len(blocks) == 2  # a projection and a reactor, each with its tests
    assert [len(block.splitlines()) < 30 for block in blocks] == [True, True]


def test_every_example_in_the_guide_passes(pytester: pytest.Pytester) -> None:
    blocks = python_blocks()
    pytester.makepyfile(**{f"test_guide_{n}": block for n, block in enumerate(blocks)})
    tests = sum(len(re.findall(r"^def test_", block, re.MULTILINE)) for block in blocks)

    result = pytester.runpytest()

    result.assert_outcomes(passed=tests)
    assert tests == 3
