"""WordNet supersenses: each synset's gloss labelled with its lexicographer file (a linguist's label).

``wordnet-supersense``: the 82,115 noun synsets of WordNet 3.0, 26 classes (``noun.Tops`` ...
``noun.time``); ``wordnet-supersense-all`` adds the 13,767 verb synsets (15 more classes,
``verb.body`` ... ``verb.weather``; 41 in all). The text of an example is the synset's gloss as
WordNet prints it (definition, then any quoted examples); its label is the synset's lexicographer
file number (the second field of a data line), named as in WordNet's lexnames(5WN) table.

Splits (fixed): the synsets in file order (nouns, then verbs) are permuted with
``numpy.random.default_rng(SPLIT_SEED)`` and cut 80 % ``train``, 10 % ``validation``, 10 %
``test`` (65,692 / 8,212 / 8,211 nouns). The same files always give the same splits.

Searched folders, in order: ``data_dir`` (only it, when given), ``$NN2HW_DATA/wordnet``, then the
Debian location ``/usr/share/wordnet`` (``apt-get install wordnet-base``). There is no download.
Checks: every data line's first field is its byte offset in the file (WordNet's own index), so a
truncated, edited or re-encoded file is found; the synset count of each part of speech must equal
WordNet 3.0's; the text must be ASCII/UTF-8.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nn2hw.data.base import DATASETS, Dataset
from nn2hw.data.text import TextDataset
from nn2hw.errors import DatasetError
from nn2hw.paths import data_root

SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/wordnet"),)  # Debian wordnet-base
SPLIT_SEED = 20240501
SPLIT_FRACTIONS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))
HOW = ("Install WordNet 3.0's database (Debian/Ubuntu: apt-get install wordnet-base, which puts data.noun and "
       "data.verb in /usr/share/wordnet), or copy those files into $NN2HW_DATA/wordnet (or a folder given with "
       "--data-dir).")

LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant",
    "noun.possession", "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition", "verb.communication",
    "verb.competition", "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)
"""WordNet's lexicographer files by number (lexnames(5WN))."""

SYNSETS = {"noun": 82_115, "verb": 13_767}
"""Synsets per part of speech in WordNet 3.0."""
_POS_MARK = {"noun": "n", "verb": "v"}


def search_folders() -> list[Path]:
    """$NN2HW_DATA/wordnet, then the Debian location (documented order)."""
    root = data_root()
    return ([root / "wordnet"] if root else []) + list(SYSTEM_DIRS)


def _locate(parts: tuple[str, ...], folders: list[Path]) -> Path:
    for folder in folders:
        if all((folder / f"data.{pos}").is_file() for pos in parts):
            return folder
    needed = ", ".join(f"data.{pos}" for pos in parts)
    looked = "; ".join(f"{f} ({'absent' if not f.is_dir() else 'lacks some'})" for f in folders)
    raise DatasetError(f"WordNet supersenses need {needed}; searched: {looked}.", HOW)


def parse_data_file(raw: bytes, pos: str, path: Path | str = "<bytes>") -> list[tuple[str, int]]:
    """(gloss, lexicographer file number) of every synset in one ``data.<pos>`` file's bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_number = raw[:exc.start].count(b"\n") + 1
        raise DatasetError(f"{path} is not UTF-8 text: byte {exc.start} (line {line_number}) is "
                           f"{raw[exc.start]:#04x}.",
                           f"The file was altered or re-encoded; reinstall it. {HOW}") from None
    examples, offset = [], 0
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        here, offset = offset, offset + len(line.encode("utf-8"))
        if line.startswith("  "):  # the license header
            continue
        fields = line.split(" ", 3)
        gloss = line.partition(" | ")[2].strip()
        if (len(fields) < 4 or not fields[0].isdigit() or int(fields[0]) != here or not fields[1].isdigit()
                or fields[2] not in (_POS_MARK[pos], "s") or not line.endswith("\n") or not gloss):
            raise DatasetError(f"{path} line {number} is not a WordNet {pos} synset line at byte {here} "
                               f"(starts {line[:40]!r}).", f"The file is truncated or altered; reinstall it. {HOW}")
        lexfile = int(fields[1])
        if lexfile >= len(LEXNAMES) or not LEXNAMES[lexfile].startswith(pos + "."):
            raise DatasetError(f"{path} line {number}: lexicographer file {lexfile} is not a {pos} file.",
                               f"The file is altered; reinstall it. {HOW}")
        examples.append((gloss, lexfile))
    if len(examples) != SYNSETS[pos]:
        raise DatasetError(f"{path} holds {len(examples)} {pos} synsets; WordNet 3.0 has {SYNSETS[pos]}.",
                           f"Use WordNet 3.0's complete data.{pos}. {HOW}")
    return examples


@functools.lru_cache(maxsize=4)
def _read(folder: Path, parts: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray, tuple[str, ...]]:
    """(glosses, labels, class names) of every synset of ``parts``, labels numbered in lexfile order."""
    examples: list[tuple[str, int]] = []
    for pos in parts:
        path = folder / f"data.{pos}"
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DatasetError(f"Cannot read {path}: {exc.strerror}.", "Check the file's permissions.") from None
        examples += parse_data_file(raw, pos, path)
    lexfiles = sorted(i for i, name in enumerate(LEXNAMES) if name.split(".")[0] in parts)
    index = {lexfile: i for i, lexfile in enumerate(lexfiles)}
    labels = np.array([index[lexfile] for _, lexfile in examples], dtype=np.int64)
    labels.flags.writeable = False
    return tuple(g for g, _ in examples), labels, tuple(LEXNAMES[i] for i in lexfiles)


def split_indices(count: int, split: str) -> np.ndarray:
    """The example indices of ``split`` among ``count`` examples (the fixed seeded cut), in the
    seeded shuffled order: WordNet's files group glosses by supersense, so a split kept in file order
    would give its first N examples (``--search-images N``) a handful of classes."""
    order = np.random.default_rng(SPLIT_SEED).permutation(count)
    start = 0
    for name, fraction in SPLIT_FRACTIONS:
        size = round(count * fraction) if name != SPLIT_FRACTIONS[-1][0] else count - start
        if name == split:
            return order[start:start + size]
        start += size
    raise DatasetError(f"Unknown WordNet split {split!r}.", "Use train, validation or test.")


@dataclass(frozen=True)
class WordNetSupersense:
    """A registered WordNet supersense dataset source (nouns, or nouns and verbs)."""

    name: str
    parts: tuple[str, ...]
    splits: tuple[str, ...] = tuple(name for name, _ in SPLIT_FRACTIONS)
    image_shape: tuple[int, ...] = ()
    input_dtype: str = "text"

    def load(self, split: str, data_dir: Path | None, download: bool) -> Dataset:
        if data_dir is not None and not data_dir.is_dir():
            raise DatasetError(f"The WordNet folder {data_dir} does not exist.", f"Check the --data-dir path. {HOW}")
        folder = _locate(self.parts, [data_dir] if data_dir is not None else search_folders())
        glosses, labels, classes = _read(folder, self.parts)
        chosen = split_indices(len(glosses), split)
        if not len(chosen):
            raise DatasetError(f"The {self.name} {split!r} split is empty.", f"Use the complete WordNet files. {HOW}")
        return TextDataset(self.name, split, tuple(glosses[i] for i in chosen), labels[chosen], classes, len(chosen),
                           f"{folder} (seeded order)")


DATASETS.register("wordnet-supersense", WordNetSupersense("wordnet-supersense", ("noun",)))
DATASETS.register("wordnet-supersense-all", WordNetSupersense("wordnet-supersense-all", ("noun", "verb")))
