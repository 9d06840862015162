"""A python-threatexchange extension: Bulwark's PDQ and exact index as a plug-in.

    threatexchange config extensions add bulwark.threatexchange

adds the signal type ``bulwark_pdq`` (:class:`BulwarkPdqSignal`): the same
PDQ hashes as the built-in ``pdq`` (bit-exact, full resolution, quality
floor 50), hashed by Bulwark, matched by Bulwark's exact multi-index-hashing
index (:class:`BulwarkPDQIndex`) instead of FAISS. Library users (HMA, your
own pipelines) can also take :class:`BulwarkPDQIndex` directly wherever a
``SignalTypeIndex`` for PDQ strings is expected. Requires ``pip install
threatexchange``.
"""

from __future__ import annotations

import pathlib
import pickle
import typing as t

from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest
from threatexchange.signal_type.index import (
    IndexMatchUntyped,
    SignalSimilarityInfoWithIntDistance,
    SignalTypeIndex,
)
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type import signal_base

import bulwark

T = t.TypeVar("T")

__all__ = ["BulwarkPDQIndex", "BulwarkPdqSignal", "TX_MANIFEST"]


class BulwarkPDQIndex(SignalTypeIndex[T]):
    """Exact PDQ index: every entry within :meth:`get_match_threshold` bits
    (31, python-threatexchange's confident-match threshold) of the query.
    Duplicate hashes keep every entry. Serialises as Bulwark's index file
    format plus the pickled entries."""

    @classmethod
    def get_match_threshold(cls) -> int:
        return 31

    def __init__(self, entries: t.Iterable[t.Tuple[str, T]] = ()) -> None:
        super().__init__()
        self._entries: t.List[t.Tuple[str, T]] = []
        self._index = bulwark.Index()
        self.add_all(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, signal_str: str, entry: T) -> None:
        self.add_all(((signal_str, entry),))

    def add_all(self, entries: t.Iterable[t.Tuple[str, T]]) -> None:
        new = list(entries)
        if not new:
            return
        start = len(self._entries)
        self._index.add_many([h for h, _ in new], range(start, start + len(new)))
        self._entries.extend(new)

    def query(self, hash: str) -> t.Sequence[IndexMatchUntyped[SignalSimilarityInfoWithIntDistance, T]]:
        return [
            IndexMatchUntyped(SignalSimilarityInfoWithIntDistance(m.distance), self._entries[m.id][1])
            for m in self._index.search(hash, self.get_match_threshold())
        ]

    def __getstate__(self) -> t.Dict[str, t.Any]:
        return {"entries": self._entries, "index": self._index.to_bytes()}

    def __setstate__(self, state: t.Dict[str, t.Any]) -> None:
        self._entries = state["entries"]
        self._index = bulwark.Index.from_bytes(state["index"])

    def serialize(self, fout: t.BinaryIO) -> None:
        pickle.dump(self, fout, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def deserialize(cls, fin: t.BinaryIO) -> "BulwarkPDQIndex[T]":
        ix = pickle.load(fin)
        if not isinstance(ix, BulwarkPDQIndex):
            raise ValueError(f"not a pickled BulwarkPDQIndex: {type(ix).__name__}")
        return ix


class BulwarkPdqSignal(PdqSignal):
    """PDQ hashed and matched by Bulwark (named ``bulwark_pdq`` so it can sit
    beside the built-in ``pdq``; the hash values are identical)."""

    @classmethod
    def get_name(cls) -> str:
        return "bulwark_pdq"

    @classmethod
    def get_index_cls(cls) -> t.Type[BulwarkPDQIndex[t.Any]]:  # type: ignore[override]
        return BulwarkPDQIndex

    @classmethod
    def compare_hash(
        cls, hash1: str, hash2: str, pdq_dist_threshold: int = 31
    ) -> signal_base.SignalComparisonResult:
        return signal_base.SignalComparisonResult.from_simple_dist(
            bulwark.distance(hash1, hash2), pdq_dist_threshold
        )

    @classmethod
    def hash_from_bytes(cls, bytes_: bytes) -> str:
        try:
            h = bulwark.hash_bytes(bytes_)
        except bulwark.ImageError:
            return ""
        return h.hash if h.quality >= cls.QUALITY_THRESHOLD else ""

    @classmethod
    def hash_from_file(cls, file: pathlib.Path) -> str:
        return cls.hash_from_bytes(pathlib.Path(file).read_bytes())


TX_MANIFEST = ThreatExchangeExtensionManifest(signal_types=(BulwarkPdqSignal,))
