"""Typed use of the whole public API, checked by `mypy --strict` in
tests/test_typing.py (never run, only type-checked). Every `assert_type`
fails the check if the stubs or annotations drift to another type or to
`Any`; calls with wrong argument types fail it too."""

from __future__ import annotations

import pathlib
import typing as t

from typing_extensions import assert_type

import numpy as np
from PIL import Image

import bulwark
from bulwark.client import (
    AccountStatus,
    ApiError,
    AsyncClient,
    Bank,
    Client,
    Content,
    Hashes,
    ImportJob,
    ImportJobError,
    ImportResult,
    MatchResult,
    Page,
    PdataRelease,
    RejectedLine,
    Report,
    ReportReceipt,
    StampResult,
)


def pdq(data: bytes, img: Image.Image, arr: np.ndarray[t.Any, np.dtype[np.uint8]]) -> None:
    assert_type(bulwark.hash_bytes(data), bulwark.Hashed)
    assert_type(bulwark.hash_bytes(data, "reference-cli", max_pixels=10), bulwark.Hashed)
    assert_type(bulwark.hash_file("a.jpg").hash, str)
    assert_type(bulwark.hash_file("a.jpg").quality, int)
    assert_type(bulwark.hash_file_dihedral("a.jpg").as_dict(), t.Dict[str, str])
    assert_type(bulwark.hash_bytes_dihedral(data), bulwark.Dihedral)
    assert_type(bulwark.hash_image(img), bulwark.Hashed)
    assert_type(bulwark.hash_image_dihedral(img), bulwark.Dihedral)
    assert_type(bulwark.hash_array(arr), bulwark.Hashed)
    assert_type(bulwark.hash_array_dihedral(arr), bulwark.Dihedral)
    assert_type(bulwark.hash_arrays(arr), t.List[bulwark.Hashed])
    assert_type(bulwark.hash_files(["a.jpg"]), t.List[t.Union[bulwark.Hashed, bulwark.ImageError]])
    assert_type(bulwark.hash_bytes_many([data]), t.List[t.Union[bulwark.Hashed, bulwark.ImageError]])
    assert_type(bulwark.distance("00" * 32, b"\0" * 32), int)
    assert_type(bulwark.DIHEDRAL_NAMES, t.List[str])
    assert_type(bulwark.INDEX_KERNEL, str)
    assert_type(bulwark.__version__, str)


def vpdq(text: str) -> None:
    frames = bulwark.hash_video("clip.mp4", every_seconds=1.0, size=128)
    assert_type(frames, t.List[bulwark.FrameHash])
    assert_type(bulwark.read_vpdq(text)[0].timestamp, float)
    assert_type(bulwark.format_vpdq(frames), str)
    m = bulwark.match_videos(frames, bulwark.read_vpdq(text), distance=20)
    assert_type(m, bulwark.VideoMatch)
    assert_type(m.is_match, bool)


def index(codes: np.ndarray[t.Any, np.dtype[np.uint8]]) -> None:
    ix = bulwark.Index.build(codes, ids=np.arange(len(codes), dtype=np.uint64))
    assert_type(ix, bulwark.Index)
    assert_type(ix.search("00" * 32, radius=31), t.List[bulwark.Match])
    assert_type(ix.search_many(codes, 31), t.List[t.List[bulwark.Match]])
    ix.add(1, "00" * 32)
    assert_type(ix.remove(1), bool)
    ix.save("bank.idx")
    assert_type(bulwark.Index.open("bank.idx"), bulwark.Index)
    assert_type(bulwark.Index.from_bytes(ix.to_bytes()), bulwark.Index)
    assert_type(len(ix), int)
    assert_type(bulwark.brute_force(codes, "00" * 32, 31), t.List[bulwark.Match])


def lists(text: str) -> None:
    recs = bulwark.read_list(text, "csv")
    assert_type(recs, t.List[bulwark.ListRecord])
    assert_type(recs[0].quality, t.Optional[int])
    assert_type(bulwark.write_list(recs, "jsonl"), str)


def vouchers(data: bytes, signed: bytes, image: bytes) -> None:
    pdata = bulwark.Pdata.load_signed(data, signed, ["key-a", "key-b"], threshold=3)
    assert_type(pdata.root, str)
    account = bulwark.DeviceAccount.generate()
    assert_type(account.to_bytes(), bytes)
    seen = bulwark.SeenImages()
    assert_type(seen.remembered(), t.Tuple[t.Optional[int], t.List[str]])
    v = bulwark.make_voucher(pdata, account, image, seen=seen)
    assert_type(v, bytes)
    assert_type(bulwark.sign_voucher("alice", "alice-phone", v, b"\0" * 32), bytes)


def franking(key: bytes, stamp: StampResult, image: bytes) -> None:
    sealed = bulwark.seal_attachment(image, "image/jpeg", "blob-1")
    assert_type(sealed.reference, bulwark.AttachmentRef)
    assert_type(sealed.ciphertext, bytes)
    sent = bulwark.frank("alice", "g", "m-1", "hi", attachments=[sealed.reference])
    assert_type(sent, bulwark.Franked)
    got = bulwark.receive(
        sent.plaintext,
        sent.tag,
        stamp.as_dict(),
        key,
        sender="alice",
        conversation="g",
        message_id="m-1",
        epoch=1,
        recipients=["alice", "bob"],
        accepted_at=stamp.accepted_at,
        stamper=stamp.stamper,
    )
    assert_type(got, bulwark.Received)
    assert_type(got.attachments, t.List[bulwark.AttachmentRef])
    assert_type(bulwark.open_attachment(got.attachments[0], sealed.ciphertext), bytes)
    assert_type(bulwark.report([got], reason="spam", reporter=("bob", "bob-phone", key)), bytes)
    body = bulwark.report_with_attachments([(got, [(0, sealed.ciphertext)])], reporter=("bob", "bob-phone", key))
    assert_type(body, bytes)
    assert_type(bulwark.ed25519_public_key(key), bytes)


def errors() -> None:
    for e in (
        bulwark.ImageError,
        bulwark.VideoError,
        bulwark.IndexFileError,
        bulwark.ListFormatError,
        bulwark.VoucherError,
        bulwark.FrankingError,
    ):
        assert issubclass(e, bulwark.BulwarkError)
    try:
        pass
    except ApiError as e:
        assert_type(e.status, int)
        assert_type(e.code, str)
    except ImportJobError as e:
        assert_type(e.job, ImportJob)


def sync_client(url: str, key: str, img: bytes) -> None:
    with Client(url, key) as c:
        assert_type(c.health(), t.Dict[str, t.Any])
        assert_type(c.create_bank("b", provider="a"), Bank)
        assert_type(c.list_banks(), t.List[Bank])
        assert_type(c.add_content("b", img, note="n"), Content)
        assert_type(c.add_signals("b", {"pdq": "00" * 32}, quality=90), Content)
        assert_type(c.list_content("b", limit=1), Page[Content])
        assert_type(c.import_list("b", "pdq " + "00" * 32), ImportResult)
        assert_type(c.export_list("b", format="jsonl"), str)
        with open("list.txt", "rb") as f:
            assert_type(c.start_import("b", f, format="csv", idempotency_key="k"), ImportJob)
        progress: t.Callable[[int, t.Optional[int]], None] = lambda sent, total: None
        job = c.start_import("b", pathlib.Path("list.txt"), source="s", progress=progress)
        assert_type(c.start_import("b", "list.txt"), ImportJob)
        assert_type(c.start_import("b", iter([b"pdq ", b"00" * 32])), ImportJob)
        assert_type(job.reused, bool)
        done = c.wait_import(job, progress=lambda j: print(j.lines, j.fraction), poll=0.1, timeout=60.0)
        assert_type(done, ImportJob)
        assert_type(done.rejected, t.List[RejectedLine])
        assert_type(done.rejected[0].line, int)
        assert_type(done.finished, bool)
        assert_type(c.wait_import(job.id, check=False).error, t.Optional[str])
        assert_type(c.get_import(job), ImportJob)
        assert_type(c.list_imports(bank="b", limit=10), t.List[ImportJob])
        assert_type(c.cancel_import(job.id), ImportJob)
        assert_type(c.export_to("b", pathlib.Path("out.txt"), format="csv"), int)
        assert_type(c.hash(img), Hashes)
        assert_type(c.match(file=img), MatchResult)
        assert_type(c.match(signals={"pdq": ["00" * 32]}, banks=["b"]).matches[0].distance, t.Optional[int])
        stamp = c.stamp(b"\0" * 32, sender="a", conversation="g", message_id="m", epoch=1, recipients=["a"])
        assert_type(stamp, StampResult)
        assert_type(c.franking_key(), str)
        assert_type(c.submit_report(b"{}"), ReportReceipt)
        assert_type(c.get_report(1), Report)
        assert_type(c.list_reports(status="queued"), Page[Report])
        assert_type(c.build_pdata(profile="compact"), t.Dict[str, t.Any])
        assert_type(c.pdata_root(), PdataRelease)
        assert_type(c.pdata(), bytes)
        assert_type(c.pdata_signed_root(), bytes)
        assert_type(c.submit_voucher("a", "d", b"v", b"s"), bool)
        assert_type(c.account_status("a"), AccountStatus)
        assert_type(c.account_status("a").flagged, bool)


async def async_client(url: str, key: str, img: bytes) -> None:
    async with AsyncClient(url, key) as c:
        assert_type(await c.health(), t.Dict[str, t.Any])
        assert_type(await c.create_bank("b"), Bank)
        assert_type(await c.list_banks(), t.List[Bank])
        assert_type(await c.add_content("b", img), Content)
        assert_type(await c.list_content("b"), Page[Content])
        assert_type(await c.import_list("b", "pdq " + "00" * 32, format="lines"), ImportResult)
        assert_type(await c.export_list("b"), str)

        async def chunks() -> t.AsyncIterator[bytes]:
            yield b"pdq " + b"00" * 32

        job = await c.start_import("b", chunks(), idempotency_key="k")
        assert_type(job, ImportJob)
        assert_type(await c.start_import("b", b"pdq " + b"00" * 32), ImportJob)
        assert_type(await c.wait_import(job, progress=lambda j: None), ImportJob)
        assert_type(await c.get_import(job.id), ImportJob)
        assert_type(await c.list_imports(), t.List[ImportJob])
        assert_type(c.cancel_import(job), t.Awaitable[ImportJob])
        with open("out.txt", "wb") as f:
            assert_type(await c.export_to("b", f, include_disabled=True), int)
        assert_type(await c.match(signals={"pdq": "00" * 32}), MatchResult)
        assert_type(await c.get_report(1), Report)
        assert_type(await c.pdata(), bytes)
        assert_type(await c.submit_voucher("a", "d", b"v", b"s"), bool)
        assert_type(await c.account_status("a"), AccountStatus)
        assert_type(c.hash(img), t.Awaitable[Hashes])
