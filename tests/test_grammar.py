"""The tr grammar: splitting, typed steps, canonical form; property-based robustness."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixelport.errors import InvalidRequest
from pixelport.transform import registry
from pixelport.transform.grammar import Param, split_chain


def test_split_chain_steps_and_params() -> None:
    assert split_chain("w-300,h-200:q-50") == [
        (Param("w", "300"), Param("h", "200")), (Param("q", "50"),)]
    # The key ends at the first '-'; values keep theirs.
    assert split_chain("ar-4-3") == [(Param("ar", "4-3"),)]
    assert split_chain("w-10,,:") == [(Param("w", "10"),)]


def test_typed_steps() -> None:
    steps = registry.parse("w-300,h-0.5,c-at_max,q-60,f-jpeg:orig-true")
    assert steps[0].width == 300 and steps[0].height == 0.5 and steps[0].crop == "at_max"
    assert steps[0].quality == 60 and steps[0].format == "jpg"
    assert steps[1].original is True


def test_last_repeated_key_wins_and_canonical_is_stable() -> None:
    steps = registry.parse("h-20,w-10,w-30")
    assert steps[0].width == 30
    assert registry.canonical(steps) == "h-20,w-30"
    assert registry.canonical(registry.parse("w-30,h-20")) == "h-20,w-30"


@pytest.mark.parametrize("bad", ["w", "-3", "w-", "w-abc", "w-0", "w-1.5", "w-N10", "W-10",
                                 "q-0", "q-101", "q-5.5", "c-nope", "f-bmp", "orig-yes",
                                 "zz-1", "w-70000"])
def test_invalid_parameters(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        registry.parse(bad)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("wqhcfo-_:,.N0123456789abtrxyz@ ")), max_size=60))
def test_any_string_parses_or_is_einvalid(text: str) -> None:
    try:
        steps = registry.parse(text)
    except InvalidRequest as exc:
        assert exc.code == "EINVALID" and exc.status == 400
        return
    assert all(step.params for step in steps)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_unicode_never_crashes(text: str) -> None:
    with contextlib.suppress(InvalidRequest):
        registry.parse(text)
