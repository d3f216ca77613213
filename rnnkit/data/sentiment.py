"""Sentences rated for sentiment by people: the four ground-truth sets of VADER (Hutto and
Gilbert, ICWSM 2014), read from the ``vaderSentiment==3.3.2`` source distribution.

    rated  = load_rated("movies")        [(text, mean rating)], the rating in [-4, 4]: the mean
                                         of 15-29 (movies), 20 (amazon, nyt) or 20-99 (tweets)
                                         raters' whole scores from -4 (extremely negative) to
                                         +4 (extremely positive)
    pairs  = polarity(rated)             [(text, label)], label = 1 if rating > 0, 0 if < 0;
                                         sentences rated exactly 0 are dropped
    split  = sentiment_split("movies")   {"train" | "valid" | "test": (texts, y)}, a fixed
                                         stratified 80/10/10 split (`split_indices`)

==========  =======  =========  ========  =====  ==============================================
domain      lines    positive   negative  zero   source
==========  =======  =========  ========  =====  ==============================================
movies      10,605   5,242      5,326     37     rottentomatoes.com review sentences (below)
tweets       4,200   2,897      1,299      4     4,000 tweet-like texts + 200 contrived ones
amazon       3,708   2,128      1,482     98     Amazon reviews of 5 products (Hu and Liu 2004)
nyt          5,190   2,204      2,742    244     New York Times opinion-editorial sentences
==========  =======  =========  ========  =====  ==============================================

Where the data lies: the sdist (``pip download --no-deps --no-binary :all:
vaderSentiment==3.3.2``; the wheel lacks it) holds ``additional_resources/hutto_ICWSM_2014.tar.gz``,
a nested archive whose ``hutto_ICWSM_2014/<name>_GroundTruth.txt`` files are tab-separated
``id, mean rating, text``. `make` downloads the sdist into ``$RNNKIT_DOWNLOADS`` (default
``~/.cache/rnnkit/downloads``); it is read with tarfile, nothing is unpacked and nothing is
fetched at run time. The archive's SHA-256 is checked.

Encodings found (3.3.2): all four ground-truth files are valid UTF-8, no byte-order mark, CRLF
line ends, the last line unterminated. Amazon and NYT are pure ASCII; tweets hold two non-ASCII
characters (``£``, ``ñ``); movies hold 337 non-ASCII bytes (é 78 times, the en dash ``–`` 33,
``½``, ``’``, ``æ``, ...) and write double quotes as two apostrophes (``''Conan''``). Files the
loader does not read are in Windows-1252 (``_README_.txt``, the lexicon). A file that is not
UTF-8 is decoded as Windows-1252 (undefined bytes replaced), so the loader never fails on bytes.
The movie sentences are those of Pang and Lee's (2005) sentence-polarity data (the "MR"
benchmark, 10,662 sentences; the first here is its first, "The Rock is destined to be the 21st
Century's new ''Conan'' ..."), although the VADER README attributes them to Pang and Lee (2004).
Licence: MIT (the vaderSentiment package); the sentences were released for research.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import tarfile
from pathlib import Path

import numpy as np

from rnnkit.errors import ConfigError, DataError

__all__ = [
    "DOMAINS",
    "COUNTS",
    "SDIST",
    "downloads_dir",
    "archive_path",
    "load_rated",
    "polarity",
    "split_indices",
    "sentiment_split",
]

DOMAINS = ("movies", "tweets", "amazon", "nyt")
COUNTS = {"movies": 10605, "tweets": 4200, "amazon": 3708, "nyt": 5190}  # lines of each file
SPLITS = ("train", "valid", "test")
TARGETS = ("polarity", "rating")

SDIST = "vaderSentiment-3.3.2.tar.gz"
SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
_INNER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
_FILES = {
    "movies": "movieReviewSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
}


def downloads_dir() -> Path:
    """Where set-up puts downloaded archives: ``$RNNKIT_DOWNLOADS`` or ~/.cache/rnnkit/downloads
    (apart from ``$RNNKIT_DATA_CACHE``, which the tests point at a temporary folder)."""
    default = Path.home() / ".cache" / "rnnkit" / "downloads"
    return Path(os.environ.get("RNNKIT_DOWNLOADS") or default).expanduser()


def fetch_command(where: Path | None = None) -> str:
    """The one command that puts the archive where `archive_path` looks."""
    where = downloads_dir() if where is None else where
    return f"python -m pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d {where}"


def archive_path() -> Path:
    """The downloaded sdist, or one DataError naming the command that fetches it."""
    path = downloads_dir() / SDIST
    if not path.is_file():
        raise DataError(
            f"the sentiment data is not downloaded: {path} is missing",
            f"run `{fetch_command()}` (`make` runs it when it builds .venv; "
            "RNNKIT_DOWNLOADS moves the folder)",
        )
    return path


def load_rated(domain: str = "movies") -> list[tuple[str, float]]:
    """Every sentence of ``domain`` with its mean human rating in [-4, 4], in file order."""
    if domain not in DOMAINS:
        raise ConfigError(f"unknown sentiment domain {domain!r}; choose one of {DOMAINS}")
    path = archive_path()
    stat = path.stat()
    return list(_read_all(str(path), stat.st_size, stat.st_mtime_ns)[domain])


def polarity(rated: list[tuple[str, float]]) -> list[tuple[str, int]]:
    """Binary labels: 1 where the mean rating is above 0, 0 where below; zeros dropped."""
    return [(text, int(rating > 0)) for text, rating in rated if rating != 0]


def split_indices(
    labels, seed: int = 0, fractions=(0.8, 0.1, 0.1), groups=None
) -> dict[str, np.ndarray]:
    """A stratified train / valid / test split of ``range(len(labels))``, fixed by ``seed``.

    Each class c (n_c items) is shuffled once by ``np.random.default_rng(seed)`` (classes in
    sorted order) and cut at round(n_c * f_train) and round(n_c * (f_train + f_valid)), so every
    split holds each class in the same proportion up to one item. With ``groups`` (one hashable
    per item, e.g. the normalised text) the groups are split instead, each group labelled by its
    first item, so duplicates never land on both sides. Indices come back sorted, int64.
    """
    labels = np.asarray(labels)
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ConfigError(
            f"fractions must be three non-negative numbers (train, valid, test) summing to 1, "
            f"got {fractions}"
        )
    if labels.ndim != 1:
        raise DataError(f"labels must be 1-D, got shape {labels.shape}")
    if groups is None:
        first, member_of = np.arange(len(labels)), None
    else:
        if len(groups) != len(labels):
            raise DataError(f"groups must match labels: {len(groups)} vs {len(labels)}")
        ids: dict = {}
        member_of = np.array([ids.setdefault(g, len(ids)) for g in groups], dtype=np.int64)
        first = np.unique(member_of, return_index=True)[1]  # (g,) first item of each group
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(fractions)[:2]
    chosen = {name: [] for name in SPLITS}
    glabels = labels[first]
    for c in np.unique(glabels):
        members = rng.permutation(np.flatnonzero(glabels == c))
        a, b = (int(round(len(members) * f)) for f in cuts)
        for name, part in zip(SPLITS, (members[:a], members[a:b], members[b:]), strict=True):
            chosen[name].append(part)
    out = {}
    for name in SPLITS:
        picked = np.concatenate(chosen[name]).astype(np.int64)
        if member_of is not None:
            picked = np.flatnonzero(np.isin(member_of, picked))
        out[name] = np.sort(picked)
    return out


def sentiment_split(
    domain: str = "movies",
    target: str = "polarity",
    seed: int = 0,
    fractions=(0.8, 0.1, 0.1),
    with_ratings: bool = False,
) -> dict[str, tuple]:
    """``{"train" | "valid" | "test": (texts, y)}`` for ``domain``.

    ``target="polarity"``: y int64 in {0, 1} (`polarity`: zero ratings dropped), stratified by
    label. ``target="rating"``: y float32, the mean rating of every sentence, stratified by its
    sign (-1, 0, +1). Sentences whose texts agree after lower-casing and collapsing spaces stay
    in one split (movies has 2 such repeats, amazon 11, nyt 71). ``with_ratings``: each value
    is (texts, y, mean ratings float32), the ratings of the same sentences.
    """
    if target not in TARGETS:
        raise ConfigError(f"unknown sentiment target {target!r}; choose one of {TARGETS}")
    rated = load_rated(domain)
    if target == "polarity":
        items = polarity(rated)
        texts = [t for t, _ in items]
        y = np.array([lab for _, lab in items], dtype=np.int64)
        ratings = np.array([r for _, r in rated if r != 0], dtype=np.float32)
        strata = y
    else:
        texts = [t for t, _ in rated]
        y = ratings = np.array([r for _, r in rated], dtype=np.float32)
        strata = np.sign(y).astype(np.int64)
    groups = [" ".join(t.lower().split()) for t in texts]
    parts = split_indices(strata, seed, fractions, groups)
    if with_ratings:
        return {n: ([texts[i] for i in idx], y[idx], ratings[idx]) for n, idx in parts.items()}
    return {name: ([texts[i] for i in idx], y[idx]) for name, idx in parts.items()}


# ----------------------------------------------------------------------------- reading
@functools.lru_cache(maxsize=2)
def _read_all(path: str, size: int, mtime_ns: int) -> dict[str, tuple[tuple[str, float], ...]]:
    """Every domain of the archive at ``path`` (cached by path, size and time of change)."""
    hint = f"delete {path} and download it again: `{fetch_command(Path(path).parent)}`"
    raw = Path(path).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256:
        raise DataError(f"{path} is not the vaderSentiment 3.3.2 sdist (SHA-256 {digest})", hint)
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as outer:
            inner_raw = outer.extractfile(_INNER).read()
        with tarfile.open(fileobj=io.BytesIO(inner_raw), mode="r:gz") as inner:
            files = {
                d: inner.extractfile(f"hutto_ICWSM_2014/{name}").read()
                for d, name in _FILES.items()
            }
    except (tarfile.TarError, KeyError, AttributeError, OSError, EOFError) as err:
        raise DataError(f"cannot read the sentiment data from {path}: {err}", hint) from None
    return {d: tuple(_parse(_decode(files[d]), d, path)) for d in DOMAINS}


def _decode(raw: bytes) -> str:
    """UTF-8 (a byte-order mark dropped); failing that, Windows-1252."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _parse(text: str, domain: str, path: str):
    """``id <TAB> mean <TAB> text`` lines -> (text, mean); the line count is checked."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != COUNTS[domain]:
        raise DataError(
            f"{domain}: expected {COUNTS[domain]} sentences in {path}, found {len(lines)}"
        )
    for number, line in enumerate(lines, 1):
        fields = line.split("\t", 2)
        try:
            rating = float(fields[1])
            sentence = fields[2].strip()
        except (IndexError, ValueError):
            raise DataError(
                f"{domain}: line {number} is not `id <TAB> rating <TAB> text`: {line[:80]!r}"
            ) from None
        if not -4 <= rating <= 4 or not sentence:
            raise DataError(f"{domain}: line {number} has rating {rating} or no text")
        yield sentence, rating
