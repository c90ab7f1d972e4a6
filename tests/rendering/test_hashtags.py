from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.rendering import hashtag_line, hashtags, normalise_hashtag


@pytest.mark.parametrize(
    ("raw", "tag"),
    [
        ("login", "#login"),
        ("#login", "#login"),
        ("##login", "#login"),
        ("  #login  ", "#login"),
        ("Login", "#Login"),
        ("snake_case", "#snake_case"),
        ("v2", "#v2"),
        ("2fa", "#2fa"),
        # other characters are stripped, not the whole tag
        ("CI/CD", "#CICD"),
        ("two words", "#twowords"),
        ("e-mail", "#email"),
        ("release-1.2.3", "#release123"),
        ("#tag#inner", "#taginner"),
        ("🔐secure", "#secure"),
        # Unicode letters (and the marks some scripts write vowels with) are letters
        ("безопасность", "#безопасность"),
        ("日本語", "#日本語"),
        ("हिन्दी", "#हिन्दी"),
        ("Straße", "#Straße"),
        ("cafe\u0301", "#café"),  # NFC: e + combining accent becomes one letter
        ("٣abc", "#٣abc"),  # non-ASCII decimal digits are digits
        # nothing usable left: dropped
        ("", None),
        ("#", None),
        ("   ", None),
        ("123", None),
        ("#2024", None),
        ("1_000", None),
        ("___", None),
        ("!!!", None),
        ("🔐🔐", None),
        ("12-34", None),
        # truncated to 64 characters after the '#'
        ("a" * 70, "#" + "a" * 64),
        ("#" + "b" * 64, "#" + "b" * 64),
        ("1" * 64 + "a", None),  # the letter falls beyond the cut: all digits remain
    ],
)
def test_normalise_hashtag(raw: str, tag: str | None) -> None:
    assert normalise_hashtag(raw) == tag


@pytest.mark.parametrize(
    ("category", "requested", "line"),
    [
        ("auth", [], "#auth #security"),
        ("plugin", [], "#plugin"),
        ("payment", [], "#payment #transaction"),
        ("communication", [], "#communication"),
        ("system", [], "#system"),
        ("general", [], "#general"),
        ("auth", ["login"], "#auth #security #login"),
        ("auth", ["#login", "2fa"], "#auth #security #login #2fa"),
        # category tags come first and win over a request's spelling
        ("auth", ["#Security", "login"], "#auth #security #login"),
        # duplicates dropped case-insensitively, the first spelling kept
        ("system", ["Deploy", "deploy", "DEPLOY"], "#system #Deploy"),
        ("system", ["CI/CD", "cicd"], "#system #CICD"),
        ("system", ["Straße", "STRASSE"], "#system #Straße"),
        # invalid ones are dropped, the rest kept in order
        ("general", ["123", "ok", "", "!!", "b"], "#general #ok #b"),
        ("payment", ["#Transaction", "invoice_42"], "#payment #transaction #invoice_42"),
    ],
)
def test_hashtag_line(category: str, requested: list[str], line: str) -> None:
    assert hashtag_line(category, requested) == line


def test_unknown_category_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown category"):
        hashtag_line("marketing", [])


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet="aZz09_#-. é\u0301", max_size=70)
    | st.text(max_size=8)
    # Near the shortcut's edges: long runs of tag characters, digits only, a leading '#'.
    | st.builds(
        lambda hash_, body: hash_ + body,
        st.sampled_from(["", "#", "##"]),
        st.text(alphabet="a09_", max_size=8)
        | st.integers(60, 70).flatmap(lambda n: st.text(alphabet="a09_", min_size=n, max_size=n)),
    )
)
def test_the_plain_ascii_shortcut_gives_what_the_general_rules_give(raw: str) -> None:
    general = hashtags._is_plain_tag
    try:
        hashtags._is_plain_tag = lambda body: False  # type: ignore[assignment]
        expected = normalise_hashtag(raw)
    finally:
        hashtags._is_plain_tag = general  # type: ignore[assignment]
    assert normalise_hashtag(raw) == expected
