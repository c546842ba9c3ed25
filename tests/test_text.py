"""lab/text.py: a long text clipped to its head or its tail, saying how much was left out."""
import pytest

from lab.text import clip


def test_a_short_text_is_kept_whole():
    assert clip("abc", 3) == "abc" and clip("", 0) == ""


def test_the_head_or_the_tail_is_kept_with_a_count_of_what_was_left_out():
    assert clip("abcdef", 4) == "abcd\n[... 2 more characters not shown]"
    assert clip("abcdef", 4, left_out="dropped") == "abcd\n[... 2 more characters dropped]"
    assert clip("abcdef", 2, keep="tail") == "[... 4 earlier characters not shown]\nef"


def test_an_unknown_end_is_refused():
    with pytest.raises(ValueError, match="'head' or 'tail'"):
        clip("abcdef", 2, keep="middle")
