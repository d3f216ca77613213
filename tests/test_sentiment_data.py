"""The sentiment data (rnnkit.data.sentiment), the contrast pairs (rnnkit.data.contrast) and the
scores and baselines (rnnkit.tasks.sentiment_eval). Tests that read the VADER archive skip, with
the command that fetches it, when it has not been downloaded."""

import numpy as np
import pytest

from rnnkit.data import sentiment as S
from rnnkit.data.contrast import CONTRAST_PAIRS, bag, check_pairs, contrast_set
from rnnkit.data.words import WordVocab
from rnnkit.errors import ConfigError, DataError
from rnnkit.tasks import sentiment_eval as E


@pytest.fixture(scope="module")
def archive():
    try:
        return S.archive_path()
    except DataError as err:
        pytest.skip(f"the VADER data is not downloaded; run: {S.fetch_command()} ({err.message})")


# ----------------------------------------------------------------------------- the data
@pytest.mark.parametrize(
    "domain, n, pos, neg",
    [("movies", 10605, 5242, 5326), ("tweets", 4200, 2897, 1299), ("amazon", 3708, 2128, 1482),
     ("nyt", 5190, 2204, 2742)],
)  # fmt: skip
def test_counts_of_each_domain(archive, domain, n, pos, neg):
    rated = S.load_rated(domain)
    assert len(rated) == n == S.COUNTS[domain]
    assert all(isinstance(t, str) and t.strip() == t and t for t, _ in rated)
    assert all(-4 <= r <= 4 for _, r in rated)
    labels = [lab for _, lab in S.polarity(rated)]
    assert (labels.count(1), labels.count(0)) == (pos, neg)


def test_rows_decoded_and_labelled_as_read_by_hand(archive):
    rated = S.load_rated("movies")
    text, rating = rated[0]  # id 1
    assert text.startswith("The Rock is destined to be the 21st Century's new ''Conan''")
    assert rating == pytest.approx(2.26666666667)
    assert rated[2] == ("Effective but too tepid biopic", -0.6)  # id 3
    assert rated[76][1] == 0.0 and rated[76][0].startswith("Absorbing and disturbing")
    assert rated[-1][1] == -1.8125 and rated[-1][0].endswith("In this case zero.")
    # UTF-8 as found: accents and the en dash survive, no mojibake
    joined = "\n".join(t for t, _ in rated)
    assert "The Château" in joined and "naïve" in joined and " – " in joined
    assert "Ã" not in joined and "\ufffd" not in joined
    assert "£1000" in "\n".join(t for t, _ in S.load_rated("tweets"))
    # the sign of the rating, zeros dropped, order kept: ids 1-4 rated 2.27, 3.53, -0.6, 1.47
    assert [round(r, 2) for _, r in rated[:4]] == [2.27, 3.53, -0.6, 1.47]
    labelled = S.polarity(rated[:4] + [rated[76]])
    assert [lab for _, lab in labelled] == [1, 1, 0, 1]
    assert rated[76][0] not in [t for t, _ in labelled]
    assert S.polarity([("a", 0.2), ("b", -0.01), ("c", 0.0)]) == [("a", 1), ("b", 0)]


def test_unknown_domain_lists_the_choices():
    with pytest.raises(ConfigError, match="movies"):
        S.load_rated("imdb")


def test_missing_archive_is_one_data_error_naming_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_DOWNLOADS", str(tmp_path))
    with pytest.raises(DataError) as err:
        S.load_rated("movies")
    assert str(tmp_path / S.SDIST) in err.value.message
    command = f"pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d {tmp_path}"
    assert command in err.value.hint and "make" in err.value.hint
    with pytest.raises(DataError):
        S.sentiment_split("movies")


def test_a_damaged_archive_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_DOWNLOADS", str(tmp_path))
    (tmp_path / S.SDIST).write_bytes(b"not a tar file")
    with pytest.raises(DataError, match="not the vaderSentiment 3.3.2 sdist"):
        S.load_rated("movies")


# ----------------------------------------------------------------------------- the split
def test_split_is_stratified_disjoint_complete_and_fixed():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    parts = S.split_indices(labels, seed=3)
    assert [len(parts[k]) for k in S.SPLITS] == [80, 10, 10]
    joined = np.concatenate([parts[k] for k in S.SPLITS])
    assert sorted(joined.tolist()) == list(range(100))  # disjoint and covering
    for k, f in zip(S.SPLITS, (0.8, 0.1, 0.1), strict=True):
        counts = np.bincount(labels[parts[k]], minlength=3)
        assert np.all(np.abs(counts - f * np.array([50, 30, 20])) <= 1)
    again = S.split_indices(labels, seed=3)
    assert all(np.array_equal(parts[k], again[k]) for k in S.SPLITS)
    other = S.split_indices(labels, seed=4)
    assert not np.array_equal(parts["test"], other["test"])


def test_split_keeps_groups_together_and_checks_fractions():
    labels = np.array([0, 0, 1, 1, 0, 1, 0, 1] * 5)
    groups = [i // 2 for i in range(40)]  # pairs of items share a group
    parts = S.split_indices(labels, seed=0, groups=groups)
    where = {i: k for k in S.SPLITS for i in parts[k]}
    assert len(where) == 40
    assert all(where[i] == where[i + 1] for i in range(0, 40, 2))
    with pytest.raises(ConfigError, match="summing to 1"):
        S.split_indices(labels, fractions=(0.8, 0.1))


@pytest.mark.parametrize("target", ["polarity", "rating"])
def test_sentiment_split_of_the_movies(archive, target):
    parts = S.sentiment_split("movies", target, seed=0)
    texts = {k: parts[k][0] for k in S.SPLITS}
    n = sum(len(t) for t in texts.values())
    assert n == (10605 - 37 if target == "polarity" else 10605)
    assert len(texts["train"]) == pytest.approx(0.8 * n, abs=3)
    seen = [" ".join(t.lower().split()) for t in texts["train"]]
    assert not set(seen) & {" ".join(t.lower().split()) for t in texts["test"]}
    y = parts["test"][1]
    if target == "polarity":
        assert y.dtype == np.int64 and set(y.tolist()) == {0, 1}
        assert abs(y.mean() - parts["train"][1].mean()) < 0.01  # stratified
    else:
        assert y.dtype == np.float32 and (y == 0).any() and y.min() >= -4 and y.max() <= 4
    again = S.sentiment_split("movies", target, seed=0)
    assert again["valid"][0] == parts["valid"][0]


# ----------------------------------------------------------------------------- contrast pairs
def test_contrast_pairs_have_identical_bags_under_the_word_vocabulary():
    assert 40 <= len(CONTRAST_PAIRS) <= 60
    vocab = WordVocab.train([t for pair in CONTRAST_PAIRS for t in pair], lower=True)
    check_pairs(CONTRAST_PAIRS, vocab.split)
    check_pairs(CONTRAST_PAIRS)
    assert bag("No, the phone is good.") == bag("no , the phone is good .")
    texts, labels = contrast_set()
    assert len(texts) == 2 * len(CONTRAST_PAIRS) == len(set(texts)) and labels[:4] == [0, 1, 0, 1]
    assert len({bag(neg) == bag(pos) for neg, pos in CONTRAST_PAIRS}) == 1


def test_check_pairs_names_the_differing_words():
    with pytest.raises(DataError, match=r"pair 1: .*\['bad'\].*\['good'\]"):
        check_pairs([("it is good", "good it is"), ("not bad", "not good")])


def test_unigram_tfidf_gives_each_pair_one_feature_vector():
    vocab = WordVocab.train([t for pair in CONTRAST_PAIRS for t in pair], lower=True)
    texts, labels = contrast_set()
    unigrams = E.tfidf_vectorizer(vocab.split, ngram_range=(1, 1)).fit(texts)
    assert E.bag_features_identical(unigrams, CONTRAST_PAIRS).all()
    # bigrams see word order ("not good" vs "not bad"): not blind to the pairs
    bigrams = E.tfidf_vectorizer(vocab.split).fit(texts)
    assert not E.bag_features_identical(bigrams, CONTRAST_PAIRS).all()
    # a unigram model therefore answers both sentences of a pair alike: exactly chance
    pred = E.tfidf_logreg(texts, labels, {"c": texts}, vocab.split, ngram_range=(1, 1))["c"]
    assert np.array_equal(pred[0::2], pred[1::2])
    assert E.classification_metrics(labels, pred)["accuracy"] == 0.5


def test_mean_of_word_vectors_is_blind_to_the_pairs():
    vocab = WordVocab.train([t for pair in CONTRAST_PAIRS for t in pair], lower=True)
    table = np.random.default_rng(0).normal(size=(len(vocab), 8))
    same = E.bag_features_identical(
        lambda texts: E.mean_embeddings(texts, table, vocab.encode), CONTRAST_PAIRS
    )
    assert same.all()
    texts, labels = contrast_set()
    pred = E.bag_of_embeddings(texts, labels, {"c": texts}, table, vocab.encode)["c"]
    assert E.classification_metrics(labels, pred)["accuracy"] == 0.5


# ----------------------------------------------------------------------------- metrics
def test_classification_metrics_by_hand():
    y_true, y_pred = [0, 0, 0, 1, 1], [0, 0, 1, 1, 0]
    m = E.classification_metrics(y_true, y_pred)
    # class 0: P = 2/3, R = 2/3, F1 = 2/3; class 1: P = 1/2, R = 1/2, F1 = 1/2
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["confusion"] == [[2, 1], [1, 1]]
    three = E.classification_metrics([0, 1], [0, 1], n_classes=3)  # class 2 never seen: F1 0
    assert three["confusion"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert three["macro_f1"] == pytest.approx(2 / 3)


def test_regression_metrics_by_hand():
    m = E.regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 5.0])
    assert m["mae"] == pytest.approx((1 + 0 + 2) / 3)
    # deviations (-1, 0, 1) and (-1, -1, 2): r = 3 / sqrt(2 * 6)
    assert m["pearson_r"] == pytest.approx(3 / np.sqrt(12))
    assert np.isnan(E.regression_metrics([1.0, 2.0], [3.0, 3.0])["pearson_r"])


def test_baselines_learn_a_toy_task_with_the_given_tokenizer():
    pos = ["a good film", "great acting , good story", "good fun", "a great film"]
    neg = ["a bad film", "awful acting , bad story", "bad fun", "an awful film"]
    texts, y = pos + neg, [1] * 4 + [0] * 4
    vocab = WordVocab.train(texts, lower=True)
    pred = E.tfidf_logreg(texts, y, {"t": ["GOOD!", "bad ."]}, vocab.split, valid=(texts, y))
    assert pred["t"].tolist() == [1, 0]
    pipe = E.fit_tfidf(texts, y, "logreg", vocab.split)
    assert "," in pipe[0].vocabulary_ and "great acting" in pipe[0].vocabulary_
    ratings = [2.0] * 4 + [-2.0] * 4
    rating = E.tfidf_ridge(texts, ratings, {"t": ["good", "bad"]})["t"]
    assert rating[0] > 0 > rating[1]
    same = E.tfidf_logreg(texts, ratings, {"t": ["good", "bad"]}, regression=True)["t"]
    assert np.allclose(same, rating)
    # the bag of embeddings takes texts and a tokenizer, or id sequences
    table = np.eye(len(vocab))  # one-hot "embeddings": the mean is a bag of words
    by_text = E.bag_of_embeddings(texts, y, {"t": ["good film", "bad film"]}, table, vocab.encode)
    ids = vocab.encode_batch(texts)
    by_ids = E.bag_of_embeddings(
        ids, y, {"t": vocab.encode_batch(["good film", "bad film"])}, table
    )
    assert by_text["t"].tolist() == by_ids["t"].tolist() == [1, 0]
    r = E.bag_of_embeddings(ids, ratings, {"t": ids}, table, regression=True)["t"]
    assert np.all((r > 0) == (np.array(ratings) > 0))
