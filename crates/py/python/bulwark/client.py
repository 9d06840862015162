"""A small client for Bulwark's ``/v1`` API: :class:`Client` (synchronous)
and :class:`AsyncClient` (asyncio), both on ``httpx`` (``pip install
httpx``). They have the same methods; :class:`AsyncClient`'s return
awaitables. Responses are dataclasses; unknown fields a newer server adds
are kept in ``.raw``. A non-2xx answer raises :class:`ApiError` with the
server's error code and message.

    from bulwark.client import Client
    with Client("http://127.0.0.1:8080", api_key) as c:
        c.create_bank("org_a")
        c.add_content("org_a", open("photo.jpg", "rb").read())
        r = c.match(file=open("query.jpg", "rb").read())
        for m in r.matches:
            print(m.bank, m.content_id, m.distance)

Large lists go in as import jobs, streamed from disk (never read into
memory), then followed to the end:

        job = c.start_import("org_a", "ncmec.txt", source="ncmec-2026-11",
                             idempotency_key="ncmec-2026-11")
        job = c.wait_import(job, progress=lambda j: print(j.lines, j.status))
        print(job.added, job.duplicates, job.rejected_count, job.rejected[:3])
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import inspect
import asyncio
import collections.abc
import json
import os
import stat
import time
import typing as t
import urllib.parse
from dataclasses import dataclass, field

import httpx

__all__ = [
    "AccountStatus",
    "ApiError",
    "AsyncClient",
    "Bank",
    "Client",
    "Content",
    "ExportDest",
    "Hashes",
    "ImportJob",
    "ImportJobError",
    "ImportResult",
    "ImportSource",
    "Match",
    "MatchResult",
    "Page",
    "PdataRelease",
    "RejectedLine",
    "Report",
    "ReportReceipt",
    "Signal",
    "StampResult",
]

T = t.TypeVar("T")


class ApiError(Exception):
    """A non-2xx answer: HTTP status, the server's stable ``code`` and message."""

    def __init__(self, status: int, code: str, message: str, body: t.Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


def _from(cls: t.Type[T], d: t.Mapping[str, t.Any]) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kw = {k: v for k, v in d.items() if k in names and k != "raw"}
    obj = cls(**kw)
    object.__setattr__(obj, "raw", dict(d))
    return obj


@dataclass
class Bank:
    name: str
    threshold: int = 31
    enabled: bool = True
    description: str = ""
    provider: t.Optional[str] = None
    created_at: str = ""
    updated_at: str = ""
    content_count: int = 0
    disabled_count: int = 0
    raw: t.Dict[str, t.Any] = field(default_factory=dict, repr=False)


@dataclass
class Signal:
    signal_type: str
    signal: str
    quality: t.Optional[int] = None
    raw: t.Dict[str, t.Any] = field(default_factory=dict, repr=False)


@dataclass
class Content:
    id: int
    bank: str
    kind: str
    signals: t.List[Signal]
    enabled: bool = True
    note: t.Optional[str] = None
    metadata: t.Optional[t.Dict[str, t.Any]] = None
    disabled_until: t.Optional[str] = None
    added_by: str = ""
    source: t.Optional[str] = None
    created_at: str = ""
    updated_at: str = ""
    frames: int = 0
    duplicate: bool = False
    raw: t.Dict[str, t.Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: t.Mapping[str, t.Any]) -> "Content":
        c = _from(cls, d)
        c.signals = [_from(Signal, s) for s in d.get("signals", [])]
        return c

    def signal(self, signal_type: str) -> t.Optional[str]:
        """The value of this content's signal of a type (e.g. ``"pdq"``)."""
        for s in self.signals:
            if s.signal_type == signal_type:
                return s.signal
        return None


@dataclass
class Page(t.Generic[T]):
    """One page of a list; pass ``next_after`` as ``after`` for the next."""

    items: t.List[T]
    next_after: t.Optional[int] = None


@dataclass
class ImportResult:
    bank: str = ""
    format: str = ""
    source: t.Optional[str] = None
    lines: int = 0
    added: int = 0
    duplicates: int = 0
    rejected_count: int = 0
    rejected: t.List[t.Any] = field(default_factory=list)
    raw: t.Dict[str, t.Any] = field(default_factory=dict, repr=False)


@dataclass
class RejectedLine:
    """A list line the service refused: its 1-based number and why."""

    line: int
    error: str
    raw: t.Dict[str, t.Any] = field(default_factory=dict, repr=False)


@dataclass
class ImportJob:
    """An import job (``POST /v1/banks/{bank}/imports``) and its progress.

    ``lines`` counts every line read so far (blank and comment lines too);
    each one is added, a duplicate, rejected, or skipped as blank/comment.
    ``rejected`` holds the first 1,000 rejected lines; the service sends
    them only for one job (:meth:`Client.get_import`,
    :meth:`Client.wait_import`, :meth:`Client.cancel_import`), not in
    :meth:`Client.list_imports`. ``reused`` is true when
    :meth:`Client.start_import` got back the job an earlier request with the
    same ``idempotency_key`` created (the body was not read again)."""

    id: str
    bank: str
    status: str
    format: str = "lines"
    source: t.Optional[str] = None
    bytes_total: int = 0
    bytes_done: int = 0
    lines: int = 0
    added: int = 0
    duplicates: int = 0
    rejected_count: int = 0
    rejected: t.List[RejectedLine] = field(default_factory=list)
    error: t.Optional[str] = None
    created_at: str = ""
    updated_at: str = ""
    finished_at: t.Optional[str] = None
    seconds: float = 0.0
    reused: bool = False
    raw: t.Dict[str, t.Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: t.Mapping[str, t.Any], *, reused: bool = False) -> "ImportJob":
        j = _from(cls, d)
        j.rejected = [_from(RejectedLine, r) for r in d.get("rejected") or []]
        j.reused = reused
        return j

    @property
    def finished(self) -> bool:
        """Done, failed or cancelled: the job will not change any more."""
        return self.status in ("done", "failed", "cancelled")

    @property
    def fraction(self) -> float:
        """Bytes of the list imported so far, from 0.0 to 1.0."""
        if self.bytes_total <= 0:
            return 1.0 if self.finished else 0.0
        return min(1.0, self.bytes_done / self.bytes_total)


class ImportJobError(Exception):
    """:meth:`Client.wait_import` found the job ``failed`` or ``cancelled``;
    ``job`` is its final state (what was committed before stays in the bank)."""

    def __init__(self, job: ImportJob) -> None:
        why = f": {job.error}" if job.error else ""
        super().__init__(
            f"import job {job.id} into {job.bank} {job.status} after {job.lines} lines "
            f"({job.added} added, {job.duplicates} duplicates, {job.rejected_count} rejected){why}"
        )
        self.job = job


#: What :meth:`Client.start_import` uploads: a path (``str`` or
#: ``os.PathLike``; the file is streamed), a binary file object (streamed
#: from its position), the list itself as ``bytes``, or an iterable of
#: ``bytes`` chunks (:class:`AsyncClient` also takes an async iterable).
ImportSource = t.Union[
    str, os.PathLike[str], bytes, bytearray, memoryview, t.BinaryIO, t.Iterable[bytes]
]

#: Called as the upload goes: bytes sent so far and the total (``None``
#: when unknown, e.g. for an iterable).
UploadProgress = t.Callable[[int, t.Optional[int]], None]

_CHUNK = 1 << 20


class _Upload:
    """A list to stream: its length when known, read in 1 MiB chunks."""

    def __init__(self, data: t.Any, progress: t.Optional[UploadProgress]) -> None:
        self.progress = progress
        self.sent = 0
        self.length: t.Optional[int] = None
        self.file: t.Optional[t.BinaryIO] = None
        self.owned = False
        self.buffer: t.Optional[memoryview] = None
        self.chunks: t.Any = None
        if isinstance(data, (str, os.PathLike)):
            self.file = open(data, "rb")
            self.owned = True
            self.length = os.fstat(self.file.fileno()).st_size
        elif isinstance(data, (bytes, bytearray, memoryview)):
            self.buffer = memoryview(data).cast("B")
            self.length = len(self.buffer)
        elif hasattr(data, "read"):
            self.file = data
            try:
                st = os.fstat(data.fileno())
                if stat.S_ISREG(st.st_mode):
                    self.length = st.st_size - data.tell()
            except (AttributeError, OSError, ValueError):
                pass
        elif isinstance(data, (collections.abc.Iterable, collections.abc.AsyncIterable)):
            self.chunks = data
        else:
            raise TypeError(
                f"an import needs a path, a binary file, bytes or an iterable of bytes, not {type(data).__name__}"
            )

    def headers(self) -> t.Dict[str, str]:
        h = {"Content-Type": "text/plain; charset=utf-8"}
        if self.length is not None:
            h["Content-Length"] = str(self.length)
        return h

    def _count(self, chunk: t.Any) -> bytes:
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"an import's chunks must be bytes, not {type(chunk).__name__}")
        b = bytes(chunk)
        self.sent += len(b)
        if self.progress is not None:
            self.progress(self.sent, self.length)
        return b

    def _buffer_chunks(self) -> t.Iterator[bytes]:
        assert self.buffer is not None
        for i in range(0, len(self.buffer), _CHUNK):
            yield self.buffer[i : i + _CHUNK].tobytes()

    def __iter__(self) -> t.Iterator[bytes]:
        if self.file is not None:
            while chunk := self.file.read(_CHUNK):
                yield self._count(chunk)
        elif self.buffer is not None:
            for chunk in self._buffer_chunks():
                yield self._count(chunk)
        elif isinstance(self.chunks, collections.abc.Iterable):
            for chunk in self.chunks:
                yield self._count(chunk)
        else:
            raise TypeError("an async iterable needs the AsyncClient")

    async def __aiter__(self) -> t.AsyncIterator[bytes]:
        if self.file is not None:
            loop = asyncio.get_running_loop()
            f = self.file
            while chunk := await loop.run_in_executor(None, f.read, _CHUNK):
                yield self._count(chunk)
        elif self.buffer is not None:
            for chunk in self._buffer_chunks():
                yield self._count(chunk)
        elif isinstance(self.chunks, collections.abc.AsyncIterable):
            async for chunk in self.chunks:
                yield self._count(chunk)
        else:
            for chunk in self.chunks:
                yield self._count(chunk)

    def close(self) -> None:
        if self.owned and self.file is not None:
            self.file.close()


def _import_request(
    bank: str, format: str, source: t.Optional[str], idempotency_key: t.Optional[str], up: _Upload
) -> t.Tuple[str, t.Dict[str, t.Any], t.Dict[str, str]]:
    headers = up.headers()
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return f"/v1/banks/{_seg(bank)}/imports", _q(format=format, source=source), headers


def _upload_timeout(base: httpx.Timeout) -> httpx.Timeout:
    # The answer comes once the service has synced the whole list to disk,
    # which for a list of gigabytes takes longer than a usual read timeout.
    read = None if base.read is None else max(base.read, 600.0)
    return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)


#: Where :meth:`Client.export_to` writes: a path or a binary file object.
ExportDest = t.Union[str, os.PathLike[str], t.BinaryIO]


def _export_request(bank: str, format: str, include_disabled: bool) -> t.Tuple[str, t.Dict[str, t.Any]]:
    return f"/v1/banks/{_seg(bank)}/export", _q(format=format, include_disabled=include_disabled or None)


def _open_dest(dest: ExportDest) -> t.Tuple[t.BinaryIO, bool]:
    if isinstance(dest, (str, os.PathLike)):
        return open(dest, "wb"), True
    return dest, False


def _seg(name: str) -> str:
    """One path segment: a name with ``/`` or ``?`` in it cannot reach another route."""
    return urllib.parse.quote(name, safe="")


def _job_of(job: t.Union[ImportJob, str]) -> str:
    return _seg(job.id if isinstance(job, ImportJob) else job)


@dataclass
class Hashes:
    kind: str
    md5: str = ""
    sha256: str = ""
    pdq: t.Optional[str] = None
    quality: t.Optional[int] = None
    frames: t.Optional[int] = None
    vpdq: t.Optional[t.List[t.Any]] = None
    raw: t.Dict[str, t.Any] = field(default_factory=dict, repr=False)


@dataclass
class Match:
    bank: str
    content_id: int
    signal_type: str
    distance: t.Optional[int] = None
    query_signal: t.Optional[str] = None
    video_frame: t.Optional[bool] = None
    query_percent: t.Optional[float] = None
    compared_percent: t.Optional[float] = None
    raw: t.Dict[str, t.Any] = field(default_factory=dict, repr=False)


@dataclass
class MatchResult:
    matches: t.List[Match]
    query: t.Optional[Hashes] = None
    raw: t.Dict[str, t.Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: t.Mapping[str, t.Any]) -> "MatchResult":
        q = d.get("query")
        r = cls([_from(Match, m) for m in d.get("matches", [])], _from(Hashes, q) if q else None)
        r.raw = dict(d)
        return r


@dataclass
class StampResult:
    """The delivery service's stamp: pass it to :func:`bulwark.receive`."""

    key_id: int
    mac: str
    signature: str
    accepted_at: int
    stamper: str
    raw: t.Dict[str, t.Any] = field(default_factory=dict, repr=False)

    def as_dict(self) -> t.Dict[str, t.Any]:
        return {"key_id": self.key_id, "mac": self.mac, "signature": self.signature}


@dataclass
class ReportReceipt:
    id: int
    status: str
    messages: int = 0
    attachments: t.List[t.Any] = field(default_factory=list)
    raw: t.Dict[str, t.Any] = field(default_factory=dict, repr=False)


@dataclass
class Report:
    id: int
    status: str
    received_at: str = ""
    submitted_by: str = ""
    reason: t.Optional[str] = None
    text: t.Optional[str] = None
    rejection: t.Optional[str] = None
    messages: t.List[t.Any] = field(default_factory=list)
    raw: t.Dict[str, t.Any] = field(default_factory=dict, repr=False)


@dataclass
class PdataRelease:
    release: int
    root: str
    entries: int = 0
    bytes: int = 0
    params: t.Dict[str, t.Any] = field(default_factory=dict)
    created_at: t.Optional[str] = None
    raw: t.Dict[str, t.Any] = field(default_factory=dict, repr=False)


@dataclass
class AccountStatus:
    account: str
    status: str
    matches: t.List[t.Dict[str, t.Any]] = field(default_factory=list)
    raw: t.Dict[str, t.Any] = field(default_factory=dict, repr=False)

    @property
    def flagged(self) -> bool:
        return self.status == "flagged"


@dataclass
class _Req(t.Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str
    parse: t.Callable[[httpx.Response], T]
    params: t.Optional[t.Dict[str, t.Any]] = None
    json: t.Any = None
    content: t.Optional[bytes] = None
    files: t.Optional[t.Dict[str, t.Any]] = None
    data: t.Optional[t.Dict[str, str]] = None
    headers: t.Optional[t.Dict[str, str]] = None


def _j(f: t.Callable[[t.Any], T]) -> t.Callable[[httpx.Response], T]:
    return lambda r: f(r.json())


def _obj(j: t.Any) -> t.Dict[str, t.Any]:
    return dict(j)


def _q(**kw: t.Any) -> t.Dict[str, t.Any]:
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in kw.items() if v is not None}


def _drop_none(**kw: t.Any) -> t.Dict[str, t.Any]:
    return {k: v for k, v in kw.items() if v is not None}


def _check(r: httpx.Response) -> httpx.Response:
    if r.is_success:
        return r
    code, message, body = "http_error", r.reason_phrase, None
    try:
        body = r.json()
        err = body.get("error", {})
        if isinstance(err, dict):
            code = err.get("code", code)
            message = err.get("message", message)
    except (ValueError, AttributeError):
        message = r.text[:500] or message
    raise ApiError(r.status_code, code, message, body)


def _file(data: t.Union[bytes, t.BinaryIO], filename: str) -> t.Tuple[str, bytes, str]:
    raw = data if isinstance(data, (bytes, bytearray)) else data.read()
    return (filename, bytes(raw), "application/octet-stream")


if t.TYPE_CHECKING:
    from typing_extensions import Concatenate, ParamSpec

    P = ParamSpec("P")

    class _endpoint(t.Generic[P, T]):
        def __init__(self, build: t.Callable[Concatenate[t.Any, P], _Req[T]]) -> None: ...
        @t.overload
        def __get__(self, obj: None, owner: t.Any) -> "_endpoint[P, T]": ...
        @t.overload
        def __get__(self, obj: "AsyncClient", owner: t.Any) -> t.Callable[P, t.Awaitable[T]]: ...
        @t.overload
        def __get__(self, obj: "Client", owner: t.Any) -> t.Callable[P, T]: ...
        def __get__(self, obj: t.Any, owner: t.Any) -> t.Any: ...

else:

    class _endpoint:
        """An endpoint written once, as a method that builds its request: on
        a :class:`Client` it returns the parsed answer, on an
        :class:`AsyncClient` an awaitable of it. (For type checkers the
        overloads above say exactly that.)"""

        def __init__(self, build):
            self.build = build
            functools.update_wrapper(self, build)

        def __get__(self, obj, owner=None):
            if obj is None:
                return self
            build = self.build

            @functools.wraps(build)
            def call(*args, **kwargs):
                return obj._run(build(obj, *args, **kwargs))

            sig = inspect.signature(build)
            call.__signature__ = sig.replace(parameters=list(sig.parameters.values())[1:])
            return call


class _Endpoints:
    """The endpoints, once: each builds its request; :class:`Client` and
    :class:`AsyncClient` execute it (see :class:`_endpoint`)."""

    # ---- service
    @_endpoint
    def health(self) -> _Req[t.Dict[str, t.Any]]:
        return _Req("GET", "/v1/health", _j(_obj))

    # ---- banks
    @_endpoint
    def list_banks(self) -> _Req[t.List[Bank]]:
        return _Req("GET", "/v1/banks", _j(lambda j: [_from(Bank, b) for b in j["banks"]]))

    @_endpoint
    def create_bank(
        self,
        name: str,
        *,
        threshold: t.Optional[int] = None,
        enabled: t.Optional[bool] = None,
        description: t.Optional[str] = None,
        provider: t.Optional[str] = None,
    ) -> _Req[Bank]:
        body = _drop_none(
            name=name, threshold=threshold, enabled=enabled, description=description, provider=provider
        )
        return _Req("POST", "/v1/banks", _j(lambda j: _from(Bank, j)), json=body)

    @_endpoint
    def get_bank(self, name: str) -> _Req[Bank]:
        return _Req("GET", f"/v1/banks/{_seg(name)}", _j(lambda j: _from(Bank, j)))

    @_endpoint
    def update_bank(self, /, name: str, **patch: t.Any) -> _Req[Bank]:
        return _Req("PATCH", f"/v1/banks/{_seg(name)}", _j(lambda j: _from(Bank, j)), json=patch)

    @_endpoint
    def delete_bank(self, name: str) -> _Req[t.Dict[str, t.Any]]:
        return _Req("DELETE", f"/v1/banks/{_seg(name)}", _j(_obj))

    # ---- content
    @_endpoint
    def add_content(
        self,
        bank: str,
        file: t.Union[bytes, t.BinaryIO],
        *,
        filename: str = "upload",
        note: t.Optional[str] = None,
        metadata: t.Optional[t.Dict[str, t.Any]] = None,
        source: t.Optional[str] = None,
    ) -> _Req[Content]:
        """Uploads media; the service hashes it (PDQ, MD5, SHA-256; vPDQ for video)."""
        data = _drop_none(note=note, source=source, metadata=json.dumps(metadata) if metadata is not None else None)
        return (
            _Req(
                "POST",
                f"/v1/banks/{_seg(bank)}/content",
                _j(Content.from_json),
                files={"file": _file(file, filename)},
                data=data,
            )
        )

    @_endpoint
    def add_signals(
        self,
        bank: str,
        signals: t.Mapping[str, str],
        *,
        quality: t.Optional[int] = None,
        note: t.Optional[str] = None,
        metadata: t.Optional[t.Dict[str, t.Any]] = None,
        source: t.Optional[str] = None,
    ) -> _Req[Content]:
        """Adds content known only by its hashes, e.g. ``{"pdq": HEX}``."""
        body = _drop_none(signals=dict(signals), quality=quality, note=note, metadata=metadata, source=source)
        return _Req("POST", f"/v1/banks/{_seg(bank)}/content", _j(Content.from_json), json=body)

    @_endpoint
    def list_content(self, bank: str, *, after: t.Optional[int] = None, limit: t.Optional[int] = None) -> _Req[Page[Content]]:
        return (
            _Req(
                "GET",
                f"/v1/banks/{_seg(bank)}/content",
                _j(lambda j: Page([Content.from_json(c) for c in j["items"]], j.get("next_after"))),
                params=_q(after=after, limit=limit),
            )
        )

    @_endpoint
    def get_content(self, bank: str, id: int) -> _Req[Content]:
        return _Req("GET", f"/v1/banks/{_seg(bank)}/content/{_seg(str(id))}", _j(Content.from_json))

    @_endpoint
    def update_content(self, /, bank: str, id: int, **patch: t.Any) -> _Req[Content]:
        return _Req("PATCH", f"/v1/banks/{_seg(bank)}/content/{_seg(str(id))}", _j(Content.from_json), json=patch)

    @_endpoint
    def delete_content(self, bank: str, id: int) -> _Req[t.Dict[str, t.Any]]:
        return _Req("DELETE", f"/v1/banks/{_seg(bank)}/content/{_seg(str(id))}", _j(_obj))

    # ---- import / export
    @_endpoint
    def import_list(
        self, bank: str, text: t.Union[str, bytes], *, format: str = "lines", source: t.Optional[str] = None
    ) -> _Req[ImportResult]:
        """Imports a hash list (``lines``, ``csv`` or ``jsonl``): see :func:`bulwark.write_list`."""
        body = text.encode() if isinstance(text, str) else bytes(text)
        return (
            _Req(
                "POST",
                f"/v1/banks/{_seg(bank)}/import",
                _j(lambda j: _from(ImportResult, j)),
                params=_q(format=format, source=source),
                content=body,
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
        )

    @_endpoint
    def export_list(self, bank: str, *, format: str = "lines", include_disabled: bool = False) -> _Req[str]:
        """The bank as a hash list: parse it with :func:`bulwark.read_list`."""
        return (
            _Req(
                "GET",
                f"/v1/banks/{_seg(bank)}/export",
                lambda r: r.text,
                params=_q(format=format, include_disabled=include_disabled or None),
            )
        )

    @_endpoint
    def get_import(self, job: t.Union[ImportJob, str]) -> _Req[ImportJob]:
        """An import job's progress, with its first 1,000 rejected lines."""
        return _Req("GET", f"/v1/imports/{_job_of(job)}", _j(ImportJob.from_json))

    @_endpoint
    def list_imports(self, *, bank: t.Optional[str] = None, limit: t.Optional[int] = None) -> _Req[t.List[ImportJob]]:
        """Recent import jobs, newest first (``limit`` 1 to 500, default 50)."""
        return (
            _Req(
                "GET",
                "/v1/imports",
                _j(lambda j: [ImportJob.from_json(x) for x in j["imports"]]),
                params=_q(bank=bank, limit=limit),
            )
        )

    @_endpoint
    def cancel_import(self, job: t.Union[ImportJob, str]) -> _Req[ImportJob]:
        """Cancels a queued or running job; batches already committed stay.
        A job that has already finished raises :class:`ApiError` (409)."""
        return _Req("DELETE", f"/v1/imports/{_job_of(job)}", _j(ImportJob.from_json))

    # ---- hashing and matching
    @_endpoint
    def hash(self, file: t.Union[bytes, t.BinaryIO], *, filename: str = "upload") -> _Req[Hashes]:
        return _Req("POST", "/v1/hash", _j(lambda j: _from(Hashes, j)), files={"file": _file(file, filename)})

    @_endpoint
    def match(
        self,
        *,
        file: t.Union[bytes, t.BinaryIO, None] = None,
        signals: t.Optional[t.Mapping[str, t.Union[str, t.Sequence[str]]]] = None,
        banks: t.Optional[t.Sequence[str]] = None,
        filename: str = "upload",
    ) -> _Req[MatchResult]:
        """Matches media (``file``) or hashes (``signals={"pdq": HEX or [HEX, ...]}``)."""
        if (file is None) == (signals is None):
            raise ValueError("give exactly one of file= or signals=")
        if file is not None:
            data = {"banks": ",".join(banks)} if banks else None
            return (
                _Req("POST", "/v1/match", _j(MatchResult.from_json), files={"file": _file(file, filename)}, data=data)
            )
        body = _drop_none(signals={k: (v if isinstance(v, str) else list(v)) for k, v in (signals or {}).items()},
                          banks=list(banks) if banks else None)
        return _Req("POST", "/v1/match", _j(MatchResult.from_json), json=body)

    # ---- franking and reports
    @_endpoint
    def stamp(
        self,
        tag: t.Union[bytes, str],
        *,
        sender: str,
        conversation: str,
        message_id: str,
        epoch: int,
        recipients: t.Sequence[str],
    ) -> _Req[StampResult]:
        """Delivery service (stamper key): stamps a franking tag."""
        body = {
            "tag": tag if isinstance(tag, str) else bytes(tag).hex(),
            "sender": sender,
            "conversation": conversation,
            "message_id": message_id,
            "epoch": epoch,
            "recipients": list(recipients),
        }
        return _Req("POST", "/v1/franking/stamp", _j(lambda j: _from(StampResult, j)), json=body)

    @_endpoint
    def franking_key(self) -> _Req[str]:
        """The service's Ed25519 stamp-verification key (64 hex)."""
        return _Req("GET", "/v1/franking/keys", _j(lambda j: j["public_key"]))

    @_endpoint
    def submit_report(self, body: t.Union[bytes, t.Mapping[str, t.Any]]) -> _Req[ReportReceipt]:
        """Submits a report (the JSON :func:`bulwark.report` builds)."""
        raw = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
        return (
            _Req(
                "POST",
                "/v1/reports",
                _j(lambda j: _from(ReportReceipt, j)),
                content=bytes(raw),
                headers={"Content-Type": "application/json"},
            )
        )

    @_endpoint
    def list_reports(
        self, *, status: t.Optional[str] = None, after: t.Optional[int] = None, limit: t.Optional[int] = None
    ) -> _Req[Page[Report]]:
        return (
            _Req(
                "GET",
                "/v1/reports",
                _j(lambda j: Page([_from(Report, x) for x in j["items"]], j.get("next_after"))),
                params=_q(status=status, after=after, limit=limit),
            )
        )

    @_endpoint
    def get_report(self, id: int) -> _Req[Report]:
        return _Req("GET", f"/v1/reports/{_seg(str(id))}", _j(lambda j: _from(Report, j)))

    # ---- safety vouchers
    @_endpoint
    def build_pdata(
        self, *, profile: t.Optional[str] = None, threshold: t.Optional[int] = None, min_providers: t.Optional[int] = None
    ) -> _Req[t.Dict[str, t.Any]]:
        body = _drop_none(profile=profile, threshold=threshold, min_providers=min_providers)
        return _Req("POST", "/v1/pdata/build", _j(_obj), json=body)

    @_endpoint
    def pdata_root(self) -> _Req[PdataRelease]:
        return _Req("GET", "/v1/pdata/root", _j(lambda j: _from(PdataRelease, j)))

    @_endpoint
    def pdata(self) -> _Req[bytes]:
        """The current release's tables (verify with :meth:`bulwark.Pdata.load_signed`)."""
        return _Req("GET", "/v1/pdata", lambda r: r.content)

    @_endpoint
    def pdata_signed_root(self) -> _Req[bytes]:
        """The current release's root with the providers' signatures."""
        return _Req("GET", "/v1/pdata/signed", lambda r: r.content)

    @_endpoint
    def enrol_provider(self, name: str, public_key: str) -> _Req[t.Dict[str, t.Any]]:
        """Admin: enrols a list provider's root-signing key (``bulwark providers keygen``)."""
        return _Req("POST", "/v1/providers", _j(_obj), json={"name": name, "public_key": public_key})

    @_endpoint
    def enrol_device(self, account: str, device: str, public_key: t.Union[bytes, str]) -> _Req[t.Dict[str, t.Any]]:
        """Messenger backend (stamper key): enrols a device's Ed25519 key."""
        pk = public_key if isinstance(public_key, str) else bytes(public_key).hex()
        return (
            _Req("POST", "/v1/devices", _j(_obj), json={"account": account, "device": device, "public_key": pk})
        )

    @_endpoint
    def submit_voucher(self, account: str, device: str, voucher: bytes, signature: bytes) -> _Req[bool]:
        """Sends a voucher signed by the device (:func:`bulwark.sign_voucher`)."""
        body = {
            "account": account,
            "device": device,
            "voucher": base64.b64encode(voucher).decode(),
            "signature": bytes(signature).hex(),
        }
        return _Req("POST", "/v1/vouchers", _j(lambda j: bool(j.get("accepted"))), json=body)

    @_endpoint
    def account_status(self, account: str) -> _Req[AccountStatus]:
        return _Req("GET", f"/v1/accounts/{_seg(account)}", _j(lambda j: _from(AccountStatus, j)))


def _kwargs(req: _Req[t.Any]) -> t.Dict[str, t.Any]:
    kw: t.Dict[str, t.Any] = {}
    for k in ("params", "json", "content", "files", "data", "headers"):
        v = getattr(req, k)
        if v is not None:
            kw[k] = v
    return kw


class Client(_Endpoints):
    """Synchronous client. ``api_key`` is sent as ``Authorization: Bearer``."""

    def __init__(self, base_url: str, api_key: t.Optional[str] = None, *, timeout: float = 30.0,
                 http: t.Optional[httpx.Client] = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = http or httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def _run(self, req: _Req[T]) -> T:
        return req.parse(_check(self._http.request(req.method, req.path, **_kwargs(req))))

    def start_import(
        self,
        bank: str,
        data: ImportSource,
        *,
        format: str = "lines",
        source: t.Optional[str] = None,
        idempotency_key: t.Optional[str] = None,
        progress: t.Optional[UploadProgress] = None,
    ) -> ImportJob:
        """Starts an import job (``POST /v1/banks/{bank}/imports``): streams
        the list in 1 MiB chunks and returns the queued job once the service
        has it on disk. Follow it with :meth:`wait_import`. With an
        ``idempotency_key``, a retry returns the first job (``reused``)."""
        up = _Upload(data, progress)
        try:
            path, params, headers = _import_request(bank, format, source, idempotency_key, up)
            r = self._http.request(
                "POST", path, params=params, headers=headers, content=iter(up), timeout=_upload_timeout(self._http.timeout)
            )
        finally:
            up.close()
        return ImportJob.from_json(_check(r).json(), reused=r.status_code == 200)

    def wait_import(
        self,
        job: t.Union[ImportJob, str],
        *,
        progress: t.Optional[t.Callable[[ImportJob], None]] = None,
        poll: float = 0.5,
        timeout: t.Optional[float] = None,
        check: bool = True,
    ) -> ImportJob:
        """Polls the job every ``poll`` seconds until it is done, failed or
        cancelled, calling ``progress`` with each state seen (the last one
        included), and returns the final state with its rejected lines.
        With ``check`` (the default) a failed or cancelled job raises
        :class:`ImportJobError`; past ``timeout`` seconds, ``TimeoutError``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            j = self.get_import(job)
            if progress is not None:
                progress(j)
            if j.finished:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"import job {j.id} is still {j.status} after {timeout} s")
            time.sleep(poll)
        if check and j.status != "done":
            raise ImportJobError(j)
        return j

    def export_to(
        self, bank: str, dest: ExportDest, *, format: str = "lines", include_disabled: bool = False
    ) -> int:
        """Streams the bank as a hash list into a file (a path or a binary
        file object), never holding it whole in memory; the bytes written."""
        path, params = _export_request(bank, format, include_disabled)
        with self._http.stream("GET", path, params=params) as r:
            if not r.is_success:
                r.read()
                _check(r)
            f, owned = _open_dest(dest)
            try:
                n = 0
                for chunk in r.iter_bytes(_CHUNK):
                    f.write(chunk)
                    n += len(chunk)
            finally:
                if owned:
                    f.close()
        return n

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.close()


class AsyncClient(_Endpoints):
    """asyncio client: the same methods as :class:`Client`, awaited."""

    def __init__(self, base_url: str, api_key: t.Optional[str] = None, *, timeout: float = 30.0,
                 http: t.Optional[httpx.AsyncClient] = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = http or httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    async def _run(self, req: _Req[T]) -> T:
        return req.parse(_check(await self._http.request(req.method, req.path, **_kwargs(req))))

    async def start_import(
        self,
        bank: str,
        data: t.Union[ImportSource, t.AsyncIterable[bytes]],
        *,
        format: str = "lines",
        source: t.Optional[str] = None,
        idempotency_key: t.Optional[str] = None,
        progress: t.Optional[UploadProgress] = None,
    ) -> ImportJob:
        """:meth:`Client.start_import`; files are read in a worker thread."""
        up = _Upload(data, progress)
        try:
            path, params, headers = _import_request(bank, format, source, idempotency_key, up)
            r = await self._http.request(
                "POST",
                path,
                params=params,
                headers=headers,
                content=up.__aiter__(),
                timeout=_upload_timeout(self._http.timeout),
            )
        finally:
            up.close()
        return ImportJob.from_json(_check(r).json(), reused=r.status_code == 200)

    async def wait_import(
        self,
        job: t.Union[ImportJob, str],
        *,
        progress: t.Optional[t.Callable[[ImportJob], None]] = None,
        poll: float = 0.5,
        timeout: t.Optional[float] = None,
        check: bool = True,
    ) -> ImportJob:
        """:meth:`Client.wait_import`, sleeping with ``asyncio.sleep``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            j = await self.get_import(job)
            if progress is not None:
                progress(j)
            if j.finished:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"import job {j.id} is still {j.status} after {timeout} s")
            await asyncio.sleep(poll)
        if check and j.status != "done":
            raise ImportJobError(j)
        return j

    async def export_to(
        self, bank: str, dest: ExportDest, *, format: str = "lines", include_disabled: bool = False
    ) -> int:
        """:meth:`Client.export_to`; the file is written in a worker thread."""
        path, params = _export_request(bank, format, include_disabled)
        loop = asyncio.get_running_loop()
        async with self._http.stream("GET", path, params=params) as r:
            if not r.is_success:
                await r.aread()
                _check(r)
            f, owned = await loop.run_in_executor(None, _open_dest, dest)
            try:
                n = 0
                async for chunk in r.aiter_bytes(_CHUNK):
                    await loop.run_in_executor(None, f.write, chunk)
                    n += len(chunk)
            finally:
                if owned:
                    f.close()
        return n

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: t.Any) -> None:
        await self.aclose()
