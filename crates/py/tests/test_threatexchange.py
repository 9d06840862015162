"""The python-threatexchange plug-in against threatexchange's own PDQ."""

import io

import numpy as np
import pytest

pytest.importorskip("threatexchange")

from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest  # noqa: E402
from threatexchange.interface_validation import SignalTypeMapping  # noqa: E402
from threatexchange.content_type.photo import PhotoContent  # noqa: E402
from threatexchange.signal_type.pdq.signal import PdqSignal  # noqa: E402
from threatexchange.signal_type.pdq.pdq_index import PDQFlatIndex  # noqa: E402

from bulwark.threatexchange import BulwarkPDQIndex, BulwarkPdqSignal  # noqa: E402


def test_manifest_loads_beside_the_builtin_pdq():
    m = ThreatExchangeExtensionManifest.load_from_module_name("bulwark.threatexchange")
    assert m.signal_types == (BulwarkPdqSignal,)
    mapping = SignalTypeMapping([PhotoContent], [PdqSignal, *m.signal_types])
    assert mapping.signal_type_by_name["bulwark_pdq"] is BulwarkPdqSignal
    assert BulwarkPdqSignal.get_index_cls() is BulwarkPDQIndex


def test_hashes_equal_the_reference_and_threatexchange_pdq(conformance):
    """Every full-resolution reference row; threatexchange's own PDQ (the
    `pdqhash` wheel behind a PIL conversion) agrees except on the 1-bit and
    palette PNGs, where its PIL conversion differs from the reference decode."""
    d = conformance / "pdq"
    rows = [r.split(",") for r in (d / "pdq_core_fullres_expected.csv").read_text().split()]
    agree = 0
    for want, q, path in rows:
        ours = BulwarkPdqSignal.hash_from_file(d / "images" / path)
        assert ours == (want if int(q) >= 50 else ""), path
        if path.startswith("misc-images/") and not path.endswith(("/1.png", "/P.png")):
            theirs = PdqSignal.hash_from_file(d / "images" / path)
            assert theirs == ours, path
            agree += 1
    assert agree >= 5


def test_index_matches_threatexchange_flat_index_and_survives_serialisation():
    rng = np.random.default_rng(11)
    base = rng.integers(0, 256, (20, 32), dtype=np.uint8)
    bits = np.unpackbits(base[rng.integers(0, 20, 500)], axis=1)
    for row in bits:
        row[rng.choice(256, rng.integers(0, 45), replace=False)] ^= 1
    hashes = [c.tobytes().hex() for c in np.packbits(bits, axis=1)]
    entries = [(h, {"id": i}) for i, h in enumerate(hashes)]
    ours = BulwarkPDQIndex.build(entries)
    theirs = PDQFlatIndex.build(entries)  # FAISS, radius 52: filter to 31
    for q in hashes[::25] + [c.tobytes().hex() for c in base]:
        got = sorted((m.similarity_info.distance, m.metadata["id"]) for m in ours.query(q))
        want = sorted(
            (m.similarity_info.distance, m.metadata["id"]) for m in theirs.query(q) if m.similarity_info.distance <= 31
        )
        assert got == want
    buf = io.BytesIO()
    ours.serialize(buf)
    buf.seek(0)
    back = BulwarkPDQIndex.deserialize(buf)
    assert len(back) == 500
    assert [m.metadata for m in back.query(hashes[0])] == [m.metadata for m in ours.query(hashes[0])]
    ours.add(hashes[0], {"id": "dup"})
    assert {"id": "dup"} in [m.metadata for m in ours.query(hashes[0])]
