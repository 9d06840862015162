"""Bulwark for Python.

Bit-exact PDQ (the same modes as ``bulwark hash``: ``"full"``, what the
reference library, HMA and the ``pdqhash`` wheel compute, and
``"reference-cli"``, the reference command-line tool's 512x512 resize),
dihedral hashes, vPDQ and its match rule, Bulwark's exact Hamming-radius
index, the hash-list formats, the device side of safety vouchers and
franking, and (in :mod:`bulwark.client`) a client for the ``/v1`` API.

Hashing and searching release the GIL; the ``*_many`` / ``hash_files``
functions spread a batch over every core. Errors are :class:`BulwarkError`
subclasses carrying the Rust library's message; bad arguments raise
:class:`ValueError`.
"""

from __future__ import annotations

import json
import os
import typing as t
from dataclasses import dataclass, field

from . import _bulwark as _n
from ._bulwark import (
    DIHEDRAL_NAMES,
    INDEX_KERNEL,
    AttachmentRef,
    BulwarkError,
    DeviceAccount,
    FrankingError,
    ImageError,
    IndexFileError,
    ListFormatError,
    Pdata,
    Received,
    SeenImages,
    VideoError,
    VoucherError,
    __version__,
    ed25519_public_key,
    sign_voucher,
)

if t.TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL.Image import Image as PILImage

__all__ = [
    "DIHEDRAL_NAMES",
    "INDEX_KERNEL",
    "AttachmentRef",
    "BulwarkError",
    "DeviceAccount",
    "Dihedral",
    "FrameHash",
    "Franked",
    "FrankingError",
    "Hashed",
    "ImageError",
    "Index",
    "IndexFileError",
    "ListFormatError",
    "ListRecord",
    "Match",
    "Pdata",
    "Received",
    "SeenImages",
    "VideoError",
    "VideoMatch",
    "VoucherError",
    "brute_force",
    "distance",
    "ed25519_public_key",
    "format_vpdq",
    "frank",
    "hash_array",
    "hash_array_dihedral",
    "hash_arrays",
    "hash_bytes",
    "hash_bytes_dihedral",
    "hash_bytes_many",
    "hash_file",
    "hash_file_dihedral",
    "hash_files",
    "hash_image",
    "hash_image_dihedral",
    "hash_video",
    "make_voucher",
    "match_videos",
    "open_attachment",
    "read_list",
    "read_vpdq",
    "receive",
    "report",
    "report_with_attachments",
    "seal_attachment",
    "Sealed",
    "sign_voucher",
    "write_list",
    "__version__",
]

Mode = t.Literal["full", "reference-cli"]
HashLike = t.Union[str, bytes]
PathLike = t.Union[str, "os.PathLike[str]"]


class Hashed(t.NamedTuple):
    """A PDQ hash (64 lower-case hex digits) and its quality (0-100)."""

    hash: str
    quality: int


class Dihedral(t.NamedTuple):
    """The eight dihedral hashes, in :data:`DIHEDRAL_NAMES` order, and quality."""

    hashes: t.Tuple[str, str, str, str, str, str, str, str]
    quality: int

    def as_dict(self) -> t.Dict[str, str]:
        return dict(zip(DIHEDRAL_NAMES, self.hashes))


class Match(t.NamedTuple):
    """An index hit: the id given with the code and its distance to the query."""

    id: int
    distance: int


class FrameHash(t.NamedTuple):
    """One vPDQ frame: number, quality, PDQ hash, timestamp in seconds."""

    frame: int
    quality: int
    hash: str
    timestamp: float


class VideoMatch(t.NamedTuple):
    """The vPDQ match rule's outcome."""

    query_percent: float
    compared_percent: float
    is_match: bool


# ------------------------------------------------------------------ PDQ


def _bytes(data: t.Union[bytes, bytearray, memoryview]) -> bytes:
    return data if isinstance(data, bytes) else bytes(data)


def hash_bytes(
    data: t.Union[bytes, bytearray, memoryview],
    mode: Mode = "full",
    *,
    max_bytes: t.Optional[int] = None,
    max_pixels: t.Optional[int] = None,
    max_dimension: t.Optional[int] = None,
) -> Hashed:
    """PDQ of encoded image bytes (JPEG, PNG, GIF, WebP, BMP, TIFF), decoded
    within limits (defaults: 64 MiB, 50 Mpixel, the CLI's)."""
    return Hashed(*_n.hash_bytes(_bytes(data), mode, max_bytes, max_pixels, max_dimension))


def hash_file(path: PathLike, mode: Mode = "full") -> Hashed:
    """PDQ of an image file; the same result as ``bulwark hash --mode MODE``."""
    with open(path, "rb") as f:
        return hash_bytes(f.read(), mode)


def hash_bytes_dihedral(data: t.Union[bytes, bytearray, memoryview], mode: Mode = "full") -> Dihedral:
    """The eight dihedral hashes of encoded image bytes."""
    hs, q = _n.hash_bytes_dihedral(_bytes(data), mode)
    return Dihedral(tuple(hs), q)  # type: ignore[arg-type]


def hash_file_dihedral(path: PathLike, mode: Mode = "full") -> Dihedral:
    """The eight dihedral hashes of an image file."""
    with open(path, "rb") as f:
        return hash_bytes_dihedral(f.read(), mode)


def _pixels(arr: t.Any) -> t.Tuple[bytes, int, int, int]:
    import numpy as np

    a = np.asarray(arr)
    if a.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {a.dtype}")
    if a.ndim == 2:
        c = 1
    elif a.ndim == 3 and a.shape[2] in (1, 3, 4):
        if a.shape[2] == 4:  # alpha dropped without compositing, as the reference does
            a = a[:, :, :3]
        c = a.shape[2]
    else:
        raise ValueError(f"expected an HxW or HxWx{{1,3,4}} array, got shape {a.shape}")
    h, w = a.shape[0], a.shape[1]
    return np.ascontiguousarray(a).tobytes(), w, h, c


def hash_array(arr: "np.ndarray", mode: Mode = "full") -> Hashed:
    """PDQ of decoded pixels: a uint8 NumPy array, HxW (grey) or HxWx3 (RGB;
    a fourth, alpha, channel is dropped)."""
    px, w, h, c = _pixels(arr)
    return Hashed(*_n.hash_pixels(px, w, h, c, mode))


def hash_array_dihedral(arr: "np.ndarray", mode: Mode = "full") -> Dihedral:
    """The eight dihedral hashes of decoded pixels."""
    px, w, h, c = _pixels(arr)
    hs, q = _n.hash_pixels_dihedral(px, w, h, c, mode)
    return Dihedral(tuple(hs), q)  # type: ignore[arg-type]


def _pil_pixels(img: "PILImage") -> t.Tuple[bytes, int, int, int]:
    # Grey stays one channel (as the CLI decodes grey files); everything else
    # becomes RGB, alpha dropped without compositing.
    if img.mode in ("L", "LA", "1", "I;16", "I", "F"):
        g = img.convert("L")
        return g.tobytes(), g.width, g.height, 1
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    return rgb.tobytes(), rgb.width, rgb.height, 3


def hash_image(img: "PILImage", mode: Mode = "full") -> Hashed:
    """PDQ of a PIL image (grey modes hashed as grey, others as RGB)."""
    px, w, h, c = _pil_pixels(img)
    return Hashed(*_n.hash_pixels(px, w, h, c, mode))


def hash_image_dihedral(img: "PILImage", mode: Mode = "full") -> Dihedral:
    """The eight dihedral hashes of a PIL image."""
    px, w, h, c = _pil_pixels(img)
    hs, q = _n.hash_pixels_dihedral(px, w, h, c, mode)
    return Dihedral(tuple(hs), q)  # type: ignore[arg-type]


def _batch(items: t.List[t.Any]) -> t.List[t.Union[Hashed, ImageError]]:
    return [x if isinstance(x, ImageError) else Hashed(*x) for x in items]


def hash_files(paths: t.Iterable[PathLike], mode: Mode = "full") -> t.List[t.Union[Hashed, ImageError]]:
    """Hashes files on every core. A file that fails gives an
    :class:`ImageError` in its place (returned, not raised)."""
    return _batch(_n.hash_files([os.fspath(p) for p in paths], mode))


def hash_bytes_many(
    images: t.Iterable[t.Union[bytes, bytearray, memoryview]], mode: Mode = "full"
) -> t.List[t.Union[Hashed, ImageError]]:
    """Hashes encoded images on every core; failures as for :func:`hash_files`."""
    return _batch(_n.hash_bytes_many([_bytes(b) for b in images], mode))


def hash_arrays(stack: "np.ndarray", mode: Mode = "full") -> t.List[Hashed]:
    """Hashes a stack of same-sized frames, NxHxW or NxHxWx3 uint8, on every core."""
    import numpy as np

    a = np.asarray(stack)
    if a.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {a.dtype}")
    if a.ndim == 3:
        c = 1
    elif a.ndim == 4 and a.shape[3] in (1, 3, 4):
        if a.shape[3] == 4:
            a = a[..., :3]
        c = a.shape[3]
    else:
        raise ValueError(f"expected NxHxW or NxHxWx3, got shape {a.shape}")
    n, h, w = a.shape[0], a.shape[1], a.shape[2]
    if n == 0:
        return []
    out = _n.hash_pixels_many(np.ascontiguousarray(a).tobytes(), n, w, h, c, mode)
    return [Hashed(*x) for x in out]


def distance(a: HashLike, b: HashLike) -> int:
    """Hamming distance between two PDQ hashes (hex strings or 32 bytes)."""
    return _n.distance(a, b)


# ------------------------------------------------------------------ vPDQ


def hash_video(
    path: PathLike,
    *,
    every_seconds: t.Optional[float] = None,
    size: t.Optional[int] = None,
    ffmpeg: t.Optional[str] = None,
    ffprobe: t.Optional[str] = None,
    timeout_seconds: t.Optional[float] = None,
) -> t.List[FrameHash]:
    """vPDQ: each frame's PDQ (or one every ``every_seconds``), frames decoded
    by the ``ffmpeg`` command line (``size``: scale to size x size first)."""
    frames = _n.hash_video(os.fspath(path), every_seconds, size, ffmpeg, ffprobe, timeout_seconds)
    return [FrameHash(*f) for f in frames]


def read_vpdq(text: str) -> t.List[FrameHash]:
    """Parses the reference's ``frame,quality,hash,timestamp`` lines."""
    return [FrameHash(*f) for f in _n.parse_vpdq(text)]


def format_vpdq(frames: t.Iterable[FrameHash]) -> str:
    """The reference's file format (timestamps with 3 decimals)."""
    return "".join(f"{f.frame},{f.quality},{f.hash},{f.timestamp:.3f}\n" for f in frames)


def _frame_tuple(f: t.Sequence[t.Any]) -> t.Tuple[int, int, str, float]:
    fr = FrameHash(*f)
    return (fr.frame, fr.quality, fr.hash, fr.timestamp)


def match_videos(
    query: t.Sequence[FrameHash],
    compared: t.Sequence[FrameHash],
    *,
    distance: int = 31,
    quality: int = 50,
    query_percent: float = 80.0,
    compared_percent: float = 0.0,
) -> VideoMatch:
    """The vPDQ match rule (defaults: python-threatexchange's and HMA's)."""
    q = [_frame_tuple(f) for f in query]
    c = [_frame_tuple(f) for f in compared]
    return VideoMatch(*_n.match_videos(q, c, distance, quality, query_percent, compared_percent))


# ------------------------------------------------------------------ index


def _codes(codes: t.Any) -> bytes:
    """(n, 32) uint8 array, bytes of n*32, or a sequence of hex/bytes hashes."""
    if isinstance(codes, (bytes, bytearray, memoryview)):
        return bytes(codes)
    if hasattr(codes, "__array_interface__") or type(codes).__module__ == "numpy":
        import numpy as np

        a = np.asarray(codes)
        if a.dtype != np.uint8 or a.ndim != 2 or a.shape[1] != 32:
            raise ValueError(f"codes must be an (n, 32) uint8 array, got {a.dtype} {a.shape}")
        return np.ascontiguousarray(a).tobytes()
    out = bytearray()
    for c in codes:
        if isinstance(c, str):
            out += bytes.fromhex(_n.parse_hash(c))
        else:
            b = bytes(c)
            if len(b) != 32:
                raise ValueError(f"a hash is 32 bytes, got {len(b)}")
            out += b
    return bytes(out)


def _ids(ids: t.Any, n: int) -> bytes:
    if ids is None:
        return b"".join(i.to_bytes(8, "little") for i in range(n))
    if hasattr(ids, "__array_interface__") or type(ids).__module__ == "numpy":
        import numpy as np

        a = np.asarray(ids)
        if a.ndim != 1 or a.dtype.kind not in "iu":
            raise ValueError(f"ids must be a 1-d integer array, got {a.dtype} {a.shape}")
        if a.size and int(a.min()) < 0:
            raise ValueError("ids must be non-negative")
        return np.ascontiguousarray(a.astype("<u8")).tobytes()
    return b"".join(int(i).to_bytes(8, "little") for i in ids)


class Index:
    """Bulwark's exact Hamming-radius index over 256-bit codes (PDQ hashes).

    Multi-index hashing: :meth:`search` returns *every* code within the
    radius, never an approximation. Changeable in place (:meth:`add`,
    :meth:`remove`); :meth:`save` writes the file format that
    :meth:`open` memory-maps (and ``bulwark index`` reads).
    """

    __slots__ = ("_ix",)

    def __init__(self) -> None:
        self._ix = _n.NativeIndex()

    @classmethod
    def _wrap(cls, native: t.Any) -> "Index":
        ix = cls.__new__(cls)
        ix._ix = native
        return ix

    @classmethod
    def build(cls, codes: t.Any, ids: t.Any = None) -> "Index":
        """Builds from codes ((n, 32) uint8 array, or hex / 32-byte hashes)
        and ids (n non-negative integers; default 0..n-1). Ids need not be
        unique."""
        c = _codes(codes)
        return cls._wrap(_n.NativeIndex.build(_ids(ids, len(c) // 32), c))

    @classmethod
    def open(cls, path: PathLike) -> "Index":
        """Memory-maps and validates an index file (magic, version, sizes, CRC)."""
        return cls._wrap(_n.NativeIndex.open(os.fspath(path)))

    @classmethod
    def from_bytes(cls, data: bytes) -> "Index":
        return cls._wrap(_n.NativeIndex.from_bytes(bytes(data)))

    def to_bytes(self) -> bytes:
        return self._ix.to_bytes()

    def save(self, path: PathLike) -> None:
        """Writes the index file atomically (temporary file, then rename)."""
        self._ix.save(os.fspath(path))

    def add(self, id: int, code: HashLike) -> None:
        """Adds one code; it matches as soon as this returns."""
        self._ix.add(id, code)

    def add_many(self, codes: t.Any, ids: t.Any) -> None:
        c = _codes(codes)
        self._ix.add_many(_ids(ids, len(c) // 32), c)

    def remove(self, id: int) -> bool:
        """Removes every entry with this id; whether there was one."""
        return self._ix.remove(id)

    def search(self, query: HashLike, radius: int = 31) -> t.List[Match]:
        """Every entry within ``radius`` bits, nearest first."""
        return [Match(*m) for m in self._ix.search(query, radius)]

    def search_many(self, queries: t.Any, radius: int = 31) -> t.List[t.List[Match]]:
        """:meth:`search` for many queries, on every core."""
        return [[Match(*m) for m in hits] for hits in self._ix.search_many(_codes(queries), radius)]

    def merge(self) -> None:
        """Folds pending adds and removals into the base now (optional)."""
        self._ix.merge()

    def __len__(self) -> int:
        return len(self._ix)

    def __repr__(self) -> str:
        return f"<bulwark.Index of {len(self)} codes>"


def brute_force(codes: t.Any, query: HashLike, radius: int, ids: t.Any = None) -> t.List[Match]:
    """Compares the query with every code: the reference the index is checked against."""
    c = _codes(codes)
    return [Match(*m) for m in _n.brute_force(_ids(ids, len(c) // 32), c, query, radius)]


# ------------------------------------------------------------------ lists

ListFormat = t.Literal["lines", "csv", "jsonl"]


@dataclass
class ListRecord:
    """One record of a hash list."""

    signal_type: str
    signal: str
    quality: t.Optional[int] = None
    note: t.Optional[str] = None
    metadata: t.Optional[t.Dict[str, t.Any]] = field(default=None)


def read_list(text: str, format: ListFormat = "lines") -> t.List[ListRecord]:
    """Parses a hash list: ``lines`` (python-threatexchange's ``pdq HEX``),
    ``csv`` (``hash,quality,note,...``) or ``jsonl``. A bad line raises
    :class:`ListFormatError` naming it."""
    return [
        ListRecord(ty, v, q, note, json.loads(m) if m is not None else None)
        for ty, v, q, note, m in _n.read_list(text, format)
    ]


def write_list(records: t.Iterable[ListRecord], format: ListFormat = "lines") -> str:
    """Writes records in a list format (CSV holds PDQ only)."""
    rows = [
        (r.signal_type, r.signal, r.quality, r.note, json.dumps(r.metadata) if r.metadata is not None else None)
        for r in records
    ]
    return _n.write_list(rows, format)


# ------------------------------------------------------------------ vouchers


def make_voucher(
    pdata: Pdata,
    account: DeviceAccount,
    image: t.Union[bytes, bytearray, memoryview],
    seen: t.Optional[SeenImages] = None,
) -> bytes:
    """Hashes an image and builds its safety voucher (send it with the image).
    With ``seen``, a copy of an image this device sent earlier in the epoch
    counts once toward the threshold."""
    return _n.make_voucher(pdata, account, _bytes(image), seen)


# ------------------------------------------------------------------ franking


class Franked(t.NamedTuple):
    """Encrypt ``plaintext``; put ``tag`` in the message's authenticated data."""

    plaintext: bytes
    tag: bytes


class Sealed(t.NamedTuple):
    """An encrypted attachment: upload ``ciphertext`` as ``reference.blob_id``;
    pass ``reference`` to :func:`frank`."""

    reference: AttachmentRef
    ciphertext: bytes


def seal_attachment(
    data: t.Union[bytes, bytearray, memoryview], media_type: str, blob_id: str
) -> Sealed:
    """Sender: encrypts an attachment under a fresh random key with a key
    commitment (AES-256-GCM under an HKDF-derived key), so the ciphertext
    opens to this file only."""
    ref, ct = _n.seal_attachment(_bytes(data), media_type, blob_id)
    return Sealed(ref, ct)


def open_attachment(reference: AttachmentRef, ciphertext: t.Union[bytes, bytearray, memoryview]) -> bytes:
    """Receiver: checks the ciphertext's SHA-256 and the key's commitment,
    then decrypts. Raises :class:`FrankingError` if any check fails."""
    return _n.open_attachment(reference, _bytes(ciphertext))


def frank(
    sender: str,
    conversation: str,
    message_id: str,
    body: t.Union[str, bytes],
    attachments: t.Sequence[AttachmentRef] = (),
) -> Franked:
    """Sender: franks a message body and its attachment references (franking
    v2: the tag commits to sender, conversation and message id)."""
    b = body.encode() if isinstance(body, str) else bytes(body)
    return Franked(*_n.frank(sender, conversation, message_id, b, list(attachments)))


def receive(
    plaintext: bytes,
    tag: bytes,
    stamp: t.Mapping[str, t.Any],
    service_key: t.Union[str, bytes],
    *,
    sender: str,
    conversation: str,
    message_id: str,
    epoch: int,
    recipients: t.Sequence[str],
    accepted_at: int,
    stamper: str,
) -> Received:
    """Receiver: checks the tag and the delivery service's signature on its
    stamp (``{"key_id", "mac", "signature"}``, hex, as ``POST
    /v1/franking/stamp`` returns it; ``service_key`` from
    ``GET /v1/franking/keys``). Raises :class:`FrankingError`: drop the message."""

    def raw(v: t.Union[str, bytes]) -> bytes:
        return bytes.fromhex(v) if isinstance(v, str) else bytes(v)

    return _n.receive(
        plaintext,
        tag,
        int(stamp["key_id"]),
        raw(stamp["mac"]),
        raw(stamp["signature"]),
        raw(service_key),
        sender=sender,
        conversation=conversation,
        message_id=message_id,
        epoch=epoch,
        recipients=list(recipients),
        accepted_at=accepted_at,
        stamper=stamper,
    )


def report(
    messages: t.Sequence[Received],
    *,
    reason: t.Optional[str] = None,
    text: t.Optional[str] = None,
    reporter: t.Optional[t.Tuple[str, str, bytes]] = None,
) -> bytes:
    """Receiver: the JSON body of ``POST /v1/reports``; ``reporter=(account,
    device, ed25519_secret_key)`` signs it with the enrolled device's key."""
    return _n.report(list(messages), reason, text, reporter)


def report_with_attachments(
    messages: t.Sequence[t.Tuple[Received, t.Sequence[t.Tuple[int, bytes]]]],
    *,
    reason: t.Optional[str] = None,
    text: t.Optional[str] = None,
    reporter: t.Optional[t.Tuple[str, str, bytes]] = None,
) -> bytes:
    """Receiver: like :func:`report`, with attachment ciphertexts:
    ``[(received, [(index into received.attachments, ciphertext), ...])]``.
    The service opens, hashes and matches each ciphertext it is given."""
    return _n.report_with_attachments(
        [(m, [(int(i), bytes(ct)) for i, ct in cts]) for m, cts in messages], reason, text, reporter
    )
