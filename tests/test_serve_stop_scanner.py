"""The worker's stop-string scanner (`_StopScanner`) against the loop it was lifted from: for any
text cut into any pieces and any stop strings, the same text goes out and the same stop is found."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dsdeploy.serve.worker import _StopScanner

ALPHABET = "ab\u00e9\n"


def _reference(pieces: list[str], stops: list[str]) -> tuple[str, str | None]:
    """The generation loop's stop handling before the refactor, verbatim."""
    stops = [s for s in stops if s]
    hold = max((len(s) for s in stops), default=1) - 1
    out, pending = "", ""
    for text in pieces:
        if stops:
            pending += text
            hit = -1
            for s in stops:
                i = pending.find(s)
                if i != -1 and (hit == -1 or i < hit):
                    hit = i
            if hit != -1:
                return out, pending[:hit]
            cut = len(pending) - hold
            if cut > 0:
                text, pending = pending[:cut], pending[cut:]
            else:
                text = ""
        out += text
    return out + pending, None


def _scanner(pieces: list[str], stops: list[str]) -> tuple[str, str | None]:
    scanner = _StopScanner(stops)
    out = ""
    for text in pieces:
        if scanner:
            text, before = scanner.feed(text)
            if before is not None:
                return out, before
        out += text
    return out + scanner.pending, None


@given(
    st.lists(st.text(ALPHABET, max_size=4), max_size=12),
    st.lists(st.text(ALPHABET, max_size=3), max_size=3),
)
def test_scanner_matches_the_original_loop(pieces, stops):
    assert _scanner(pieces, stops) == _reference(pieces, stops)


def test_hand_cases():
    def text(pieces, stops):  # what the client gets: the tokens' text, then the end event's
        out, before = _scanner(pieces, stops)
        return out + (before or ""), before is not None

    assert text(["ab", "c", "d"], ["cd"]) == ("ab", True)
    assert text(["hello ", "wor", "ld"], ["wor"]) == ("hello ", True)
    assert text(["xy", "z"], []) == ("xyz", False)
    assert text(["abc"], ["c", "abcd"]) == ("ab", True)
    assert text(["ab"], ["abc"]) == ("ab", False)
