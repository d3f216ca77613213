"""The Bible reader: OSIS cleaning, the split by book, verse alignment, the one install error,
and (when Debian's sword-text-web / sword-text-sparv are installed) the real text and cache."""

import json
import sys
import time

import pytest

from rnnkit.data import bible
from rnnkit.errors import DataError

WEB_MISSING = "not installed: sudo apt-get install sword-text-web"
SPARV_MISSING = "not installed: sudo apt-get install sword-text-sparv"


def _installed(module: str) -> bool:
    try:
        bible._open(module)
    except DataError:
        return False
    return True


needs_web = pytest.mark.skipif(not _installed("WEB"), reason="World English Bible " + WEB_MISSING)
needs_both = pytest.mark.skipif(
    not (_installed("WEB") and _installed("SpaRV")),
    reason=f"World English Bible / Reina-Valera 1909 {WEB_MISSING} sword-text-sparv",
)

# ----------------------------------------------------------------------------- cleaning

VERSE = (
    '<div type="x-milestone" subType="x-preverse" sID="pv1"/><title type="main">Creation'
    '</title><w lemma="strong:H0430">In</w> <w lemma="strong:H0853">the</w> beginning, '
    '<w lemma="strong:H0430">God</w><note placement="foot"><reference type="annotateRef">1:1 '
    "</reference>The Hebrew word rendered “God” is “Elohim”.</note><w>created</w> the "
    'heavens<note type="crossReference"><reference>Psalm 33:6</reference></note> &amp; '
    '<q marker="" who="Jesus">earth</q> <note placement="foot">a note</note> ?<lb type="x-br"/>'
    '<l level="1" sID="x1"/>Amen.<l eID="x1"/>'
)


def test_notes_go_before_the_tags_and_leave_no_glued_words():
    assert bible.clean_osis(VERSE) == "In the beginning, God created the heavens & earth? Amen."


def test_cleaning_keeps_psalm_titles_and_cuts_the_glossary():
    psalm = (
        '<title canonical="true" type="psalm">A Psalm by David.<note>n</note></title> <lg/>'
        '<l level="1" sID="b"/>Yahweh, how my adversaries have increased!<l eID="b"/>'
    )
    assert bible.clean_osis(psalm) == "A Psalm by David. Yahweh, how my adversaries have increased!"
    last = (
        "with all the saints. Amen. <chapter eID='Rev.22'/> "
        '<div canonical="true" eID="gen1" osisID="Rev" type="book"/> <div type="glossary"/>'
        "<title>Glossary</title> Abaddon is Hebrew for destruction."
    )
    assert bible.clean_osis(last) == "with all the saints. Amen."
    assert bible.clean_osis('<note placement="foot">only a note</note>') == ""
    assert bible.clean_osis("<w>gone</w><note>n</note>, said") == "gone, said"


# ----------------------------------------------------------------------------- the split


def test_the_split_covers_every_book_once_from_both_testaments():
    from pysword.canons import canons

    def names(versification, testament):
        return [book[0] for book in canons[versification][testament]]

    # every held-out book is in both modules' versifications (so it has verse pairs too)
    held_out = bible.SPLIT["valid"] + bible.SPLIT["test"]
    assert len(held_out) == len(set(held_out)), "a book in two splits"
    for versification in ("nrsva", "kjv"):
        assert set(held_out) <= set(names(versification, "ot") + names(versification, "nt"))
    for part in ("valid", "test"):
        books = bible.SPLIT[part]
        assert set(books) & set(names("kjv", "ot")) and set(books) & set(names("kjv", "nt"))
    every = names("nrsva", "ot") + names("nrsva", "nt")
    parts = {book: bible.split_of(book) for book in every}
    assert sorted(b for b, p in parts.items() if p != "train") == sorted(held_out)


# ----------------------------------------------------------------------------- alignment


def test_alignment_skips_missing_empty_shifted_and_mismatched_verses():
    en = {
        "John 3:16": "For God so loved the world",
        "John 3:17": "For God didn't send his Son",
        "John 4:1": "Therefore when the Lord knew",
        "Job 38:39": "Can you hunt the prey for the lioness",  # not in Spanish: chapter uneven
        "Job 38:1": "Then Yahweh answered Job",
        "Job 39:1": "Do you know the time",  # the next chapter is shifted
        "Job 40:1": "Moreover Yahweh answered Job",
        "Ruth 1:1": "In the days when the judges judged",
        "Ruth 1:3": "Elimelech",  # far longer on the other side: not a translation
        "Acts 8:37": " ",
        "Acts 8:36": "As they went on the way",
    }
    es = {
        "John 3:17": "Porque no envió Dios á su Hijo",
        "John 3:16": "Porque de tal manera amó Dios al mundo",
        "John 4:1": "DE manera que como Jesús entendió",
        "Job 38:1": "Y RESPONDIÓ Jehová á Job",
        "Job 39:1": "¿CAZARÁS tú la presa para el león?",
        "Job 40:1": "A más de eso respondió Jehová á Job",
        "Ruth 1:1": "Y ACONTECIÓ en los días que gobernaban los jueces",
        "Ruth 1:3": "Y murió Elimelech, marido de Noemi, y quedó ella con sus dos hijos",
        "Acts 8:37": "Y Felipe dijo",  # empty in English: Acts 8 is uneven
    }
    got = bible.align_verses(en, es)
    assert [ref for ref, _, _ in got] == [
        "John 3:16",
        "John 3:17",
        "John 4:1",
        "Job 40:1",
        "Ruth 1:1",
    ]
    assert got[0] == ("John 3:16", en["John 3:16"], es["John 3:16"])
    assert "Ruth 1:3" in [ref for ref, _, _ in bible.align_verses(en, es, max_ratio=0)]


# ----------------------------------------------------------------------------- installing


def test_a_missing_module_or_pysword_is_one_error_naming_the_install(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_SWORD_PATH", str(tmp_path))
    monkeypatch.setenv("RNNKIT_DATA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="Debian sword-text-web") as err:
        bible.bible_books()
    assert "sudo apt-get install sword-text-web" in str(err.value)
    with pytest.raises(DataError, match="the WEB and SpaRV Bible") as err:
        bible.verse_pairs()
    assert "install sword-text-web` and `sudo apt-get install sword-text-sparv`" in str(err.value)
    monkeypatch.setitem(sys.modules, "pysword.modules", None)  # import fails
    with pytest.raises(DataError, match="pysword is not installed") as err:
        bible.bible_split("SpaRV")
    assert "sudo apt-get install sword-text-sparv` and `make`" in str(err.value)
    with pytest.raises(DataError, match="(?s)unknown Bible module .KJV.*WEB"):
        bible.bible_books("KJV")


# ----------------------------------------------------------------------------- the real text


@needs_web
def test_one_real_book_read_straight_from_the_module():
    john = {(c, v): text for c, v, text in bible.bible_book("John")}
    assert len(john) > 870 and all("<" not in t and "&" not in t for t in john.values())
    assert john[3, 16].startswith("For God so loved the world, that he gave his only born Son,")
    genesis = bible.bible_book("Gen")
    assert genesis[0] == (1, 1, "In the beginning, God created the heavens and the earth.")
    with pytest.raises(DataError, match="no book 'Hezekiah'"):
        bible.bible_book("Hezekiah")


@pytest.fixture(scope="module")
def whole():
    """The whole WEB read once (a few seconds; pysword alone would take over a minute)."""
    return bible.bible_split("WEB")


@needs_web
def test_the_whole_bible_split_and_its_cache(whole):
    words = {part: sum(len(line.split()) for line in lines) for part, lines in whole.items()}
    total = sum(words.values())
    assert 880_000 < total < 930_000, words
    for part in ("valid", "test"):
        assert 0.05 <= words[part] / total <= 0.08, words
    assert all(line.strip() and "\n" not in line for lines in whole.values() for line in lines)
    folder = bible.cache_dir() / "bible" / "WEB"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["module"] == "engWEB2015eb" and len(manifest["books"]) == 80
    assert not list(folder.glob(".*tmp"))  # no temporary file left behind
    bible._memory.cache_clear()
    start = time.perf_counter()
    assert bible.bible_split("WEB") == whole
    assert time.perf_counter() - start < 2  # from the cache, not pysword


@needs_both
def test_real_verse_pairs(whole):
    pairs = bible.verse_pairs()
    assert 29_000 < len(pairs) < 32_000
    found = {ref: (en, es) for ref, en, es in pairs}
    en, es = found["John 3:16"]
    assert en.startswith("For God so loved") and es.startswith("Porque de tal manera amó Dios")
    assert "Job 39:1" not in found  # the versifications divide Job 38-39 differently
    assert bible.verse_pairs() == pairs  # the cached copy
