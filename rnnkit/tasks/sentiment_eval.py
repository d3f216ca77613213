"""Scores and baselines of the sentiment task (`rnnkit.tasks.sentiment`), from scikit-learn.

Metrics::

    accuracy  = mean(y_pred == y_true)
    macro_f1  = mean over classes c of F1_c,  F1_c = 2 P_c R_c / (P_c + R_c)
    confusion = C[i][j]: how many of class i were predicted j (rows true, columns predicted)
    mae       = mean |y_pred - y_true|
    pearson_r = cov(y_true, y_pred) / (std(y_true) std(y_pred))   (nan if either is constant)

Baselines, each fitted on the train split, with its one regularisation constant chosen on the
valid split when one is given (else the middle of the grid), and deterministic:

    tfidf_logreg     TF-IDF of unigrams and bigrams (sublinear tf: 1 + log tf, l2-normalised
                     rows) + logistic regression; Wang and Manning's NB-SVM, the classic
                     bag-of-n-grams result, reaches 79.4% on the movie sentences (MR)
    tfidf_ridge      the same features + ridge regression, for the ratings (also
                     ``tfidf_logreg(..., regression=True)``)
    bag_of_embeddings  the mean of a sentence's word vectors + logistic regression (ridge with
                     ``regression=True``); texts with a tokenizer, or id sequences

Given ``tokenizer`` (e.g. ``WordVocab.split``), TF-IDF uses those words and no other
preprocessing, so it sees exactly the words the recurrent model sees; without it, scikit-learn's
default (lower-case, words of two or more word characters, punctuation dropped).

On `rnnkit.data.contrast` a model of unigram counts, or of the mean of word vectors, gives both
sentences of a pair the same features (`bag_features_identical`), so it is at exactly 50% there;
bigrams see some word order and can do better.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "classification_metrics",
    "regression_metrics",
    "tfidf_vectorizer",
    "fit_tfidf",
    "tfidf_logreg",
    "tfidf_ridge",
    "mean_embeddings",
    "bag_of_embeddings",
    "bag_features_identical",
]

C_GRID = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # logistic regression: inverse penalty
ALPHA_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # ridge: penalty
SEED = 0


# ----------------------------------------------------------------------------- metrics
def classification_metrics(y_true, y_pred, n_classes: int = 2) -> dict:
    """``{"accuracy", "macro_f1", "confusion"}``; every class 0..n_classes-1 counts in the
    macro average and has a row and a column of the confusion matrix, seen or not."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(range(n_classes))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def regression_metrics(y_true, y_pred) -> dict:
    """``{"mae", "pearson_r"}``; pearson_r is nan when either side is constant."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    mae = float(np.mean(np.abs(y_pred - y_true)))
    dt, dp = y_true - y_true.mean(), y_pred - y_pred.mean()
    denom = np.sqrt((dt * dt).sum() * (dp * dp).sum())
    r = float((dt * dp).sum() / denom) if denom > 0 else float("nan")
    return {"mae": mae, "pearson_r": r}


# ----------------------------------------------------------------------------- TF-IDF
def tfidf_vectorizer(tokenizer: Callable[[str], list[str]] | None = None, ngram_range=(1, 2)):
    """An unfitted TfidfVectorizer: sublinear tf; ``tokenizer``'s words as they come if given."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if tokenizer is None:
        return TfidfVectorizer(ngram_range=ngram_range, sublinear_tf=True)
    return TfidfVectorizer(
        ngram_range=ngram_range,
        sublinear_tf=True,
        tokenizer=tokenizer,
        token_pattern=None,  # the tokenizer decides what a word is
        lowercase=False,  # and whether case counts (WordVocab lower-cases itself)
    )


def fit_tfidf(
    train_texts,
    train_y,
    kind: str = "logreg",
    tokenizer: Callable[[str], list[str]] | None = None,
    valid: tuple | None = None,
    ngram_range=(1, 2),
):
    """A fitted Pipeline(tfidf, LogisticRegression | Ridge). With ``valid = (texts, y)`` the
    constant (C, or alpha for ridge) is the grid's best there (accuracy; MAE for ridge)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline

    if kind not in ("logreg", "ridge"):
        raise ValueError(f"kind must be 'logreg' or 'ridge', got {kind!r}")
    grid = C_GRID if kind == "logreg" else ALPHA_GRID
    features = tfidf_vectorizer(tokenizer, ngram_range).fit(list(train_texts))
    x = features.transform(list(train_texts))
    xv = features.transform(list(valid[0])) if valid is not None else None

    def model(k):
        if kind == "logreg":
            return LogisticRegression(C=k, max_iter=2000, random_state=SEED)
        return Ridge(alpha=k, random_state=SEED)

    best = _choose(grid, model, x, train_y, xv, None if valid is None else valid[1], kind)
    return Pipeline([("tfidf", features), (kind, model(best).fit(x, np.asarray(train_y)))])


def tfidf_logreg(
    train_texts,
    train_y,
    eval_texts_by_name: dict,
    tokenizer=None,
    valid=None,
    ngram_range=(1, 2),
    regression: bool = False,
) -> dict[str, np.ndarray]:
    """Labels predicted for each named list of texts by TF-IDF + logistic regression (ratings
    by TF-IDF + ridge with ``regression=True``, as `tfidf_ridge`)."""
    kind = "ridge" if regression else "logreg"
    pipe = fit_tfidf(train_texts, train_y, kind, tokenizer, valid, ngram_range)
    return {name: pipe.predict(list(texts)) for name, texts in eval_texts_by_name.items()}


def tfidf_ridge(
    train_texts, train_y, eval_texts_by_name: dict, tokenizer=None, valid=None, ngram_range=(1, 2)
) -> dict[str, np.ndarray]:
    """Ratings predicted for each named list of texts by TF-IDF + ridge regression."""
    pipe = fit_tfidf(train_texts, train_y, "ridge", tokenizer, valid, ngram_range)
    return {name: pipe.predict(list(texts)) for name, texts in eval_texts_by_name.items()}


# ----------------------------------------------------------------------------- embeddings
def mean_embeddings(
    texts, embeddings, tokenizer: Callable[[str], list[int]] | None = None
) -> np.ndarray:
    """(n, d): row i the mean of ``embeddings[id]`` over the ids ``tokenizer(texts[i])``, or
    over ``texts[i]`` itself when it already is a sequence of ids (``tokenizer=None``); zeros
    for a text with no ids. ``embeddings``: (V, d) array or tensor."""
    table = _as_array(embeddings)
    out = np.zeros((len(texts), table.shape[1]), dtype=np.float64)
    for i, text in enumerate(texts):
        ids = np.asarray(text if tokenizer is None else tokenizer(text), dtype=np.int64)
        if ids.size:
            out[i] = table[ids].mean(axis=0)
    return out


def bag_of_embeddings(
    train_texts,
    train_y,
    eval_texts_by_name: dict,
    embeddings,
    tokenizer=None,
    valid=None,
    regression: bool = False,
) -> dict[str, np.ndarray]:
    """Labels predicted by logistic regression on standardised `mean_embeddings` (ratings by
    ridge with ``regression=True``). Texts, or id sequences when ``tokenizer`` is None."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def features(texts):
        return mean_embeddings(list(texts), embeddings, tokenizer)

    x = features(train_texts)
    xv = features(valid[0]) if valid is not None else None

    def model(k):
        if regression:
            return make_pipeline(StandardScaler(), Ridge(alpha=k))
        return make_pipeline(
            StandardScaler(), LogisticRegression(C=k, max_iter=2000, random_state=SEED)
        )

    grid, kind = (ALPHA_GRID, "ridge") if regression else (C_GRID, "logreg")
    best = _choose(grid, model, x, train_y, xv, None if valid is None else valid[1], kind)
    fitted = model(best).fit(x, np.asarray(train_y))
    return {name: fitted.predict(features(texts)) for name, texts in eval_texts_by_name.items()}


# ----------------------------------------------------------------------------- contrast
def bag_features_identical(vectorizer, pairs) -> np.ndarray:
    """(n_pairs,) bool: whether ``vectorizer`` (a fitted object with ``transform``, or a
    function of a list of texts) gives both sentences of each pair the same feature vector."""
    transform = vectorizer.transform if hasattr(vectorizer, "transform") else vectorizer
    a = transform([neg for neg, _ in pairs])
    b = transform([pos for _, pos in pairs])
    a = a.toarray() if hasattr(a, "toarray") else np.asarray(a)
    b = b.toarray() if hasattr(b, "toarray") else np.asarray(b)
    return np.all(np.isclose(a, b, rtol=1e-12, atol=1e-12), axis=1)


# ----------------------------------------------------------------------------- helpers
def _choose(grid, model, x, y, xv, yv, kind):
    """The grid value whose model, fitted on (x, y), scores best on (xv, yv); ties go to the
    earlier (stronger penalty). Without a valid split: the middle of the grid."""
    if xv is None:
        return grid[len(grid) // 2]
    y, yv = np.asarray(y), np.asarray(yv)
    scores = []
    for k in grid:
        pred = model(k).fit(x, y).predict(xv)
        scores.append(np.mean(pred == yv) if kind == "logreg" else -np.mean(np.abs(pred - yv)))
    return grid[int(np.argmax(scores))]


def _as_array(embeddings) -> np.ndarray:
    if hasattr(embeddings, "detach"):  # a torch tensor or parameter
        embeddings = embeddings.detach().cpu().numpy()
    table = np.asarray(embeddings, dtype=np.float64)
    if table.ndim != 2:
        raise ValueError(f"embeddings must be (V, d), got shape {table.shape}")
    return table
