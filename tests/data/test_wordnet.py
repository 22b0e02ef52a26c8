"""WordNet supersenses: the real files (skipped with the reason when absent), the fixed splits,
tokenized batches for MiniLM, and bad files refused with the cause."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nn2hw.data import load_dataset
from nn2hw.data import wordnet as wn
from nn2hw.errors import DatasetError

HEADER = "  1 This software and database is being provided to you, the LICENSEE, by  \n"


def _real_folder() -> Path:
    for folder in wn.search_folders():
        if (folder / "data.noun").is_file() and (folder / "data.verb").is_file():
            return folder
    pytest.skip("WordNet 3.0 is not installed here: apt-get install wordnet-base (or put data.noun and data.verb in "
                "$NN2HW_DATA/wordnet)")


def _data_file(lines: list[tuple[int, str]], pos: str = "n") -> bytes:
    """A data.<pos> file in WordNet's format whose first fields are the real byte offsets."""
    out = HEADER
    for lexfile, gloss in lines:
        out += f"{len(out.encode()):08d} {lexfile:02d} {pos} 01 word 0 000 | {gloss}  \n"
    return out.encode()


def test_nouns_give_26_supersenses_in_fixed_disjoint_splits():
    folder = _real_folder()
    splits = {s: load_dataset("wordnet-supersense", s, folder) for s in ("train", "validation", "test")}
    sizes = {s: len(d) for s, d in splits.items()}
    assert sizes == {"train": 65_692, "validation": 8_212, "test": 8_211} and sum(sizes.values()) == wn.SYNSETS["noun"]
    test = splits["test"]
    assert len(test.classes) == 26 and test.classes[0] == "noun.Tops" and test.classes[-1] == "noun.time"
    assert set(np.unique(test.labels)) == set(range(26)) and test.labels.dtype == np.int64
    assert all(d.texts and all(isinstance(x, str) and x for x in d.texts) for d in splits.values())
    parts = [wn.split_indices(wn.SYNSETS["noun"], s) for s in splits]
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(wn.SYNSETS["noun"]))  # disjoint, complete
    first = wn.parse_data_file((folder / "data.noun").read_bytes(), "noun")[0]
    assert first == ("that which is perceived or known or inferred to have its own distinct existence (living or "
                     "nonliving)", 3)  # entity: noun.Tops
    again = load_dataset("wordnet-supersense", "test", folder)
    assert again.texts == test.texts and np.array_equal(again.labels, test.labels)
    first_500 = splits["validation"].labels[:500]  # the seeded order, not the files' (grouped by supersense)
    assert len(np.unique(first_500)) >= 20


def test_verbs_add_15_classes():
    folder = _real_folder()
    data = load_dataset("wordnet-supersense-all", "validation", folder)
    assert len(data.classes) == 41 and data.classes[26] == "verb.body" and data.classes[-1] == "verb.weather"
    assert data.full_size == round((wn.SYNSETS["noun"] + wn.SYNSETS["verb"]) * 0.1)


def test_minilm_tokenizes_the_glosses():
    pytest.importorskip("tokenizers", reason='needs tokenizers: pip install "nn2hw[text]"')
    from nn2hw import zoo
    from nn2hw.errors import CheckpointError

    data = load_dataset("wordnet-supersense", "test", _real_folder())
    with pytest.raises(DatasetError, match="no tokenizer is attached") as err:
        data.batch(np.arange(2))
    assert "zoo.prepare" in err.value.fix
    try:
        prepared = zoo.prepare(data, "minilm_l6", seq_len=32)
    except CheckpointError as exc:
        pytest.skip(f"the MiniLM tokenizer is not installed here ({exc.cause})")
    ids, labels = prepared.batch(np.arange(4))
    assert ids.dtype.is_floating_point is False and tuple(ids.shape) == (4, 32) and prepared.image_shape == (32,)
    assert (ids[:, 0] == 101).all() and labels.tolist() == data.labels[:4].tolist()


def test_a_missing_folder_names_where_it_looked(tmp_path):
    with pytest.raises(DatasetError, match="data.noun") as err:
        load_dataset("wordnet-supersense", "test", tmp_path)
    assert "apt-get install wordnet-base" in err.value.fix
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("wordnet-supersense", "test", tmp_path / "absent")


def test_non_utf8_text_is_refused_with_its_position():
    raw = _data_file([(5, "a dog")]).replace(b"a dog", b"a d\xffg")
    with pytest.raises(DatasetError, match=r"not UTF-8 text: byte \d+ \(line 2\) is 0xff") as err:
        wn.parse_data_file(raw, "noun", "data.noun")
    assert "reinstall" in err.value.fix


def test_a_truncated_or_shifted_file_is_refused():
    raw = _data_file([(5, "a dog"), (13, "bread")])
    with pytest.raises(DatasetError, match="line 3 is not a WordNet noun synset line"):
        wn.parse_data_file(raw[:-5], "noun", "data.noun")  # the last line lost its end
    with pytest.raises(DatasetError, match="line 2 is not a WordNet noun synset line at byte"):
        wn.parse_data_file(raw.replace(HEADER.encode(), HEADER.encode() + b"x"), "noun")  # offsets no longer match
    with pytest.raises(DatasetError, match="lexicographer file 30 is not a noun file"):
        wn.parse_data_file(_data_file([(30, "to run")]), "noun")


def test_an_incomplete_file_and_an_empty_split_are_refused(tmp_path, monkeypatch):
    (tmp_path / "data.noun").write_bytes(_data_file([(5, "a dog"), (13, "bread"), (6, "a cup")]))
    with pytest.raises(DatasetError, match="holds 3 noun synsets; WordNet 3.0 has 82115"):
        load_dataset("wordnet-supersense", "test", tmp_path)
    monkeypatch.setitem(wn.SYNSETS, "noun", 3)
    wn._read.cache_clear()
    assert len(load_dataset("wordnet-supersense", "train", tmp_path)) == 2
    with pytest.raises(DatasetError, match="'validation' split is empty"):
        load_dataset("wordnet-supersense", "validation", tmp_path)
    wn._read.cache_clear()
