"""Word analogies for the Bible corpus: "a is to b as c is to d", answered by vector arithmetic.

    b - a + c ~ d       king:queen :: man:woman    ->  queen - king + man ~ woman
                        the word nearest (cosine) to b - a + c, a, b and c excluded, must be d
                        (gensim's ``most_similar(positive=[b, c], negative=[a], topn=1)``: the
                        3CosAdd of Mikolov et al. 2013)

Each relation is a list of pairs (a, b); its questions are every ordered couple of two pairs
that share no word (king:queen :: man:woman and man:woman :: king:queen, but not his:her ::
him:her, whose answer would be one of the excluded words). As in Mikolov's Google analogy set,
but built for the World English Bible: every word below occurs at least 50 times in its
training split (`rnnkit.data.bible.SPLIT`, lower-cased; the two comparatives excepted, 85 and
114 times: "greater", "better"), and verbs whose past form is also a common other word are left
out ("leave: left", "lie: lay"). 2,168 questions:

    relation      pairs   questions
    gender          12      130     king:queen, father:mother, he:she, his:her, husband:wife...
    plural          35     1190     son:sons, city:cities, child:children, wife:wives...
    past tense      28      756     go:went, say:said, give:gave, bring:brought, love:loved...
    third person    10       90     say:says, come:comes, go:goes...
    comparative      2        2     good:better, great:greater

A question with a word outside a model's vocabulary is skipped and counted, not scored wrong.
"""

from __future__ import annotations

__all__ = ["RELATIONS", "questions", "score_analogies"]

RELATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "gender": (
        ("king", "queen"),
        ("man", "woman"),
        ("father", "mother"),
        ("son", "daughter"),
        ("brother", "sister"),
        ("he", "she"),
        ("him", "her"),
        ("his", "her"),
        ("husband", "wife"),
        ("men", "women"),
        ("sons", "daughters"),
        ("male", "female"),
    ),
    "plural": (
        ("son", "sons"),
        ("day", "days"),
        ("king", "kings"),
        ("man", "men"),
        ("woman", "women"),
        ("city", "cities"),
        ("hand", "hands"),
        ("eye", "eyes"),
        ("year", "years"),
        ("house", "houses"),
        ("brother", "brothers"),
        ("father", "fathers"),
        ("daughter", "daughters"),
        ("god", "gods"),
        ("servant", "servants"),
        ("wife", "wives"),
        ("word", "words"),
        ("thing", "things"),
        ("nation", "nations"),
        ("priest", "priests"),
        ("child", "children"),
        ("prophet", "prophets"),
        ("tree", "trees"),
        ("stone", "stones"),
        ("horse", "horses"),
        ("gate", "gates"),
        ("enemy", "enemies"),
        ("tribe", "tribes"),
        ("mountain", "mountains"),
        ("altar", "altars"),
        ("land", "lands"),
        ("heart", "hearts"),
        ("lamb", "lambs"),
        ("field", "fields"),
        ("kingdom", "kingdoms"),
    ),
    "past tense": (
        ("go", "went"),
        ("come", "came"),
        ("say", "said"),
        ("see", "saw"),
        ("give", "gave"),
        ("take", "took"),
        ("eat", "ate"),
        ("know", "knew"),
        ("speak", "spoke"),
        ("bring", "brought"),
        ("hear", "heard"),
        ("make", "made"),
        ("tell", "told"),
        ("find", "found"),
        ("stand", "stood"),
        ("sit", "sat"),
        ("fall", "fell"),
        ("rise", "rose"),
        ("write", "wrote"),
        ("love", "loved"),
        ("die", "died"),
        ("live", "lived"),
        ("kill", "killed"),
        ("build", "built"),
        ("send", "sent"),
        ("keep", "kept"),
        ("weep", "wept"),
        ("bless", "blessed"),
    ),
    "third person": (
        ("say", "says"),
        ("come", "comes"),
        ("give", "gives"),
        ("make", "makes"),
        ("know", "knows"),
        ("speak", "speaks"),
        ("take", "takes"),
        ("go", "goes"),
        ("hear", "hears"),
        ("see", "sees"),
    ),
    "comparative": (
        ("good", "better"),
        ("great", "greater"),
    ),
}


def questions(relations=None) -> list[tuple[str, str, str, str, str]]:
    """Every question (relation, a, b, c, d): a:b :: c:d, from two pairs of one relation that
    share no word, in a fixed order."""
    out = []
    for name, pairs in (RELATIONS if relations is None else relations).items():
        for a, b in pairs:
            for c, d in pairs:
                if not {a, b} & {c, d}:
                    out.append((name, a, b, c, d))
    return out


def score_analogies(kv, items=None, keep: int = 0) -> dict:
    """Top-1 accuracy of gensim KeyedVectors ``kv`` on ``items`` (default: `questions()`):

    {"accuracy", "correct", "asked", "skipped",
     "relations": {name: {"accuracy", "correct", "asked", "skipped", "examples"}}}

    ``examples``: the first ``keep`` questions asked of each relation, (a, b, c, d, answer).
    ``accuracy`` is over the questions asked (all four words in the vocabulary); 0.0 when none
    could be asked."""
    items = questions() if items is None else items
    kv.fill_norms(force=True)  # vectors trained further since the last call get new norms
    relations: dict[str, dict] = {}
    for name, a, b, c, d in items:
        r = relations.setdefault(name, {"correct": 0, "asked": 0, "skipped": 0, "examples": []})
        if not all(w in kv.key_to_index for w in (a, b, c, d)):
            r["skipped"] += 1
            continue
        answer = kv.most_similar(positive=[b, c], negative=[a], topn=1)[0][0]
        r["asked"] += 1
        r["correct"] += answer == d
        if len(r["examples"]) < keep:
            r["examples"].append((a, b, c, d, answer))
    for r in relations.values():
        r["accuracy"] = r["correct"] / r["asked"] if r["asked"] else 0.0
    correct = sum(r["correct"] for r in relations.values())
    asked = sum(r["asked"] for r in relations.values())
    return {
        "accuracy": correct / asked if asked else 0.0,
        "correct": correct,
        "asked": asked,
        "skipped": sum(r["skipped"] for r in relations.values()),
        "relations": relations,
    }
