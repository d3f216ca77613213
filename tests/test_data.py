import pytest
import torch

from rnnkit.data import CharVocab, StreamBatches, builtin_corpus, load_text
from rnnkit.errors import DataError


def test_builtin_corpus_is_pythons_docs():
    text = load_text("pydoc")
    assert text == builtin_corpus() == load_text(None)
    assert len(text) > 400_000 and "The Python Language Reference" not in text[:0]
    assert "assert" in text and "lambda" in text


def test_user_file_round_trip(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("héllo wörld\n", encoding="utf-8")
    assert load_text(f) == "héllo wörld\n"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "not found"),
        (b"", "empty"),
        (b"  \n\n", "empty"),
        (b"abc\x00\x01\x02", "binary.*offset 3"),
        (b"caf\xe9 au lait", "not UTF-8: byte 0xe9 at offset 3"),
    ],
)
def test_bad_data_files(tmp_path, content, match):
    f = tmp_path / "data.txt"
    if content is not None:
        f.write_bytes(content)
    with pytest.raises(DataError, match=match) as err:
        load_text(f)
    assert err.value.hint


def test_directory_is_not_a_data_file(tmp_path):
    with pytest.raises(DataError, match="directory"):
        load_text(tmp_path)


def test_vocab_round_trip_and_unknown_characters(tmp_path):
    v = CharVocab.from_text("hello")
    assert v.chars == ["e", "h", "l", "o"]
    assert v.encode("hole").tolist() == [1, 3, 2, 0]
    assert v.decode([1, 0, 2, 2, 3]) == "hello"
    with pytest.raises(DataError, match=r"2 character\(s\).*'x', 'z'"):
        v.encode("hxzx")
    (tmp_path / "v.json").write_text(v.to_json(), encoding="utf-8")
    assert CharVocab.load(tmp_path / "v.json").chars == v.chars


def test_stream_batches_hand_worked():
    # 21 ids, 2 streams of 10 (one extra id for the last target), windows of 3 -> 3 windows
    b = StreamBatches(torch.arange(21), batch_size=2, seq_len=3)
    assert len(b) == 3
    x, y = b[0]
    assert x.tolist() == [[0, 1, 2], [10, 11, 12]]
    assert y.tolist() == [[1, 2, 3], [11, 12, 13]]
    x, y = b[2]
    assert x.tolist() == [[6, 7, 8], [16, 17, 18]]
    # consecutive windows continue each stream exactly
    xs = torch.cat([x for x, _ in b], dim=1)
    assert xs.tolist() == [list(range(0, 9)), list(range(10, 19))]
    with pytest.raises(IndexError):
        b[3]


def test_stream_batches_too_small():
    with pytest.raises(DataError, match="too small: 50 characters.*needs at least 129"):
        StreamBatches(torch.arange(50), batch_size=4, seq_len=32)


def test_pad_hand_worked():
    from rnnkit.data import PAD, pad

    padded, lengths = pad([[5, 6, 7], [8], []], PAD)
    assert padded.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert lengths.tolist() == [3, 1, 0]
    assert pad([[1]], 9, length=3)[0].tolist() == [[1, 9, 9]]


def test_bucket_batches_cover_every_row_once_in_batches_of_similar_length():
    from rnnkit.data import bucket_batches

    lengths = torch.randint(1, 100, (1000,), generator=torch.Generator().manual_seed(0))
    batches = bucket_batches(lengths, 10, torch.Generator().manual_seed(1), bucket=20)
    rows = torch.cat(batches)
    assert sorted(rows.tolist()) == list(range(1000)) and len(batches) == 100
    # padding: a sorted bucket wastes far less than random batches of the same rows
    waste = sum(int(lengths[b].max() * len(b) - lengths[b].sum()) for b in batches)
    shuffled = torch.randperm(1000, generator=torch.Generator().manual_seed(1)).split(10)
    random_waste = sum(int(lengths[b].max() * len(b) - lengths[b].sum()) for b in shuffled)
    assert waste < random_waste / 5
    again = bucket_batches(lengths, 10, torch.Generator().manual_seed(1), bucket=20)
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))


def test_vocabulary_special_ids():
    from rnnkit.data import Vocabulary

    v = Vocabulary(["a", "b", "<unk>"])
    assert (v.pad, v.bos, v.eos, v.unk, v.blank) == (0, 1, 2, 3, None)
    assert v.ids(["a", "z", "b"]) == [4, 3, 5] and v.plain([0, 4, 2, 5]) == ["a", "b"]
    ctc = Vocabulary(["a", "b"], specials=("blank",))
    assert ctc.blank == 0 and ctc.pad is None and ctc.ids(["b"]) == [2]
    with pytest.raises(DataError, match=r"'z'"):
        ctc.ids(["z"])
    with pytest.raises(ValueError, match="unknown special 'mask'"):
        Vocabulary([], specials=("mask",))


def test_char_corpus_streams_equal_the_whole_text_and_is_cached(tmp_path, monkeypatch):
    from rnnkit.data import corpus

    monkeypatch.setattr(corpus, "CHUNK", 7)  # multi-byte characters cut across chunks
    text = "héllo wörld, ça va? 日本語 ok\n" * 50
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    vocab, ids = corpus.char_corpus(tmp_path / "t.txt")
    assert vocab.chars == CharVocab.from_text(text).chars
    assert ids.tolist() == CharVocab.from_text(text).encode(text).tolist()
    from rnnkit.data.text import file_identity

    identity = file_identity(tmp_path / "t.txt")
    cached = corpus.cache_dir() / f"{identity['sha256'][:32]}-{identity['size']}" / "ids.bin"
    stamp = cached.stat().st_mtime_ns
    again_vocab, again = corpus.char_corpus(tmp_path / "t.txt")
    assert cached.stat().st_mtime_ns == stamp and again.tolist() == ids.tolist()
    (tmp_path / "bad.txt").write_bytes(b"abc" * 5 + b"\xff" + b"abc")
    with pytest.raises(DataError, match=r"not UTF-8: byte 0xff at offset 15"):
        corpus.char_corpus(tmp_path / "bad.txt")
    (tmp_path / "blank.txt").write_text(" \n\n ")
    with pytest.raises(DataError, match="empty"):
        corpus.char_corpus(tmp_path / "blank.txt")
    (tmp_path / "nul.txt").write_bytes(b"ab\x00cd")
    with pytest.raises(DataError, match="binary"):
        corpus.char_corpus(tmp_path / "nul.txt")
