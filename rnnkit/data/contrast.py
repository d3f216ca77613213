"""Contrast pairs: two sentences with the same words and opposite sentiment.

    negative: "the film was not good , it was bad"      bag(neg) == bag(pos)
    positive: "the film was not bad , it was good"      label(neg) = 0, label(pos) = 1

The bag of a sentence is the multiset of its words after lower-casing and splitting exactly as
`rnnkit.data.words.WordVocab.split` does (``\\w+`` runs and punctuation runs are both words), so
every model that sees only which words occur, and how often, gives both sentences of a pair the
same features and hence the same answer: one of the two is wrong, and such a model scores
exactly 50% here by construction. A model that reads the order can do better. Bigram features
see some order ("not good" vs "not bad"), so a TF-IDF model on unigrams and bigrams is not
blind to these pairs; on unigrams alone it is.

The pairs were written for rnnkit (public domain, like the rest of the code) in the plain
vocabulary of film reviews, so that a model trained on the movie sentences of
`rnnkit.data.sentiment` knows the words. Kinds: negation ("not good , it was bad"), contrast
("starts slow but ends strong"), comparison ("more fun than tedious"), expectation ("i expected
it to be bad but it was great") and the quantifier swap of the course's example ("this phone is
no good" / "no phone is this good").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from rnnkit.errors import DataError

__all__ = ["CONTRAST_PAIRS", "bag", "check_pairs", "contrast_set"]

# (negative, positive): the same words, the opposite verdict
CONTRAST_PAIRS: list[tuple[str, str]] = [
    # the quantifier swap
    ("this phone is no good", "no phone is this good"),
    ("this film is no good", "no film is this good"),
    ("this movie is no fun", "no movie is this fun"),
    # negation
    ("the film was not good , it was bad", "the film was not bad , it was good"),
    ("it is bad , not good", "it is good , not bad"),
    ("i do not love it , i hate it", "i do not hate it , i love it"),
    ("the actors do not shine , they disappoint", "the actors do not disappoint , they shine"),
    (
        "the ending is not a triumph , it is a letdown",
        "the ending is not a letdown , it is a triumph",
    ),
    ("it is not great at all , in fact it is bad", "it is not bad at all , in fact it is great"),
    (
        "this is not the best film of the year , it is the worst",
        "this is not the worst film of the year , it is the best",
    ),
    (
        "nothing about it is good , everything is bad",
        "nothing about it is bad , everything is good",
    ),
    (
        "not a single scene is perfect , every one is wasted",
        "not a single scene is wasted , every one is perfect",
    ),
    ("you will yawn , you will not laugh", "you will laugh , you will not yawn"),
    ("skip it , do not see it", "see it , do not skip it"),
    # replacement: X , not Y
    ("a mess , not a masterpiece", "a masterpiece , not a mess"),
    ("the film is a failure , not a success", "the film is a success , not a failure"),
    ("the story is stale , not fresh", "the story is fresh , not stale"),
    ("the story is boring , not interesting", "the story is interesting , not boring"),
    ("it is a chore to watch , not a pleasure", "it is a pleasure to watch , not a chore"),
    ("a dull film , not a moving one", "a moving film , not a dull one"),
    ("i left disappointed , not happy", "i left happy , not disappointed"),
    ("it makes you sleep , not think", "it makes you think , not sleep"),
    ("a waste of money , not worth the time", "worth the money , not a waste of time"),
    ("expect to be bored , not entertained", "expect to be entertained , not bored"),
    (
        "a film you will hate , not one you will love",
        "a film you will love , not one you will hate",
    ),
    ("this is his worst film , not his best", "this is his best film , not his worst"),
    # never / always, hardly / often
    ("a film that is never smart and always dull", "a film that is never dull and always smart"),
    ("it never surprises and always bores", "it never bores and always surprises"),
    (
        "the characters are annoying and never interesting",
        "the characters are interesting and never annoying",
    ),
    ("hardly hilarious , often boring", "hardly boring , often hilarious"),
    ("stupid and never smart", "smart and never stupid"),
    ("the story drags and the jokes never land", "the jokes land and the story never drags"),
    ("a dull script with no clever moments", "a clever script with no dull moments"),
    ("the movie is too long and not funny enough", "the movie is funny enough and not too long"),
    # contrast: X but Y, the verdict follows the second half
    ("the film starts strong but ends slow", "the film starts slow but ends strong"),
    ("a brilliant start , but a dull ending", "a dull start , but a brilliant ending"),
    (
        "the first hour is wonderful but the rest is dull",
        "the first hour is dull but the rest is wonderful",
    ),
    ("good actors , but a bad film", "bad actors , but a good film"),
    ("it should have been good , but it is bad", "it should have been bad , but it is good"),
    (
        "the film could have been a gem but it is a mess",
        "the film could have been a mess but it is a gem",
    ),
    (
        "what could have been a delight is a disaster",
        "what could have been a disaster is a delight",
    ),
    ("instead of being brilliant , it is bad", "instead of being bad , it is brilliant"),
    # expectation
    ("i expected it to be great but it was bad", "i expected it to be bad but it was great"),
    (
        "i was ready to love this film , but i hate it",
        "i was ready to hate this film , but i love it",
    ),
    # comparison and quantity
    ("more tedious than fun", "more fun than tedious"),
    ("more groans than laughs", "more laughs than groans"),
    ("i was bored rather than moved", "i was moved rather than bored"),
    ("boring rather than funny", "funny rather than boring"),
    ("the laughs are few and the flaws are many", "the laughs are many and the flaws are few"),
    ("too boring to be smart", "too smart to be boring"),
    ("it is a miss , not a hit", "it is a hit , not a miss"),
]


def bag(text: str, split: Callable[[str], list[str]] | None = None) -> Counter:
    """The multiset of words of ``text``: ``split(text)`` if given (e.g. a lower-casing
    `WordVocab`'s ``split``), else WordVocab's splitting with lower-casing."""
    if split is not None:
        return Counter(split(text))
    from rnnkit.data.words import WordVocab

    return WordVocab.count([text], lower=True)


def check_pairs(pairs, split: Callable[[str], list[str]] | None = None) -> None:
    """Raise a DataError naming every pair whose two sentences have different bags of words."""
    bad = []
    for i, (neg, pos) in enumerate(pairs):
        a, b = bag(neg, split), bag(pos, split)
        if a != b:
            only = sorted((a - b).elements()), sorted((b - a).elements())
            bad.append(
                f"pair {i}: {neg!r} / {pos!r}: only in the first {only[0]}, second {only[1]}"
            )
    if bad:
        raise DataError(
            f"{len(bad)} contrast pair(s) differ in their words:\n" + "\n".join(bad),
            "the two sentences of a pair must hold the same words, each as often",
        )


def contrast_set(pairs=None) -> tuple[list[str], list[int]]:
    """The pairs checked and flattened: texts [neg0, pos0, neg1, pos1, ...], labels [0, 1, ...]
    (0 negative, 1 positive, as `rnnkit.data.sentiment.polarity`)."""
    pairs = CONTRAST_PAIRS if pairs is None else pairs
    check_pairs(pairs)
    texts = [text for pair in pairs for text in pair]
    return texts, [0, 1] * len(pairs)
