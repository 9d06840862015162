"""Import jobs through the client (sync and asyncio) against a started
`bulwark serve`: every line of a list accounted for, the bank's content
checked by exporting it, idempotent retries, cancelling, a failed job, the
upload streamed rather than read into memory, and errors as exceptions."""

import asyncio
import io
import random
import tracemalloc

import pytest

import bulwark
from bulwark.client import ApiError, AsyncClient, Client, ImportJob, ImportJobError

STATES = {"queued", "running", "done", "failed", "cancelled"}


def pdq_lines(seed, n):
    rng = random.Random(seed)
    return [f"pdq {rng.getrandbits(256):064x}" for _ in range(n)]


def write_big_list(path, seed, n):
    """n random `pdq HEX` lines, written without holding them in memory."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            f.write(f"pdq {rng.getrandbits(256):064x}\n")
    return path.stat().st_size


def exported(c, bank):
    return {(r.signal_type, r.signal) for r in bulwark.read_list(c.export_list(bank), "lines")}


def test_a_job_accounts_for_every_line(server, tmp_path):
    lines = pdq_lines(1, 3000)
    lines[100:100] = [f"md5 {random.Random(2).getrandbits(128):032x}"]
    # In-file duplicate, bad lines, a blank line, a comment and a CRLF line.
    lines.insert(10, lines[3])
    lines.insert(20, "pdq nothex")
    lines.insert(30, "")
    lines.insert(35, "# a comment")
    lines.insert(40, "md5 0123")
    lines[50] += "\r"
    good = {tuple(ln.strip().split(" ")) for ln in lines if ln.strip() and ln[0] != "#" and len(ln.strip()) in (36, 68)}
    path = tmp_path / "list.txt"
    path.write_text("\n".join(lines) + "\n")
    size = path.stat().st_size
    with Client(server.url, server.admin) as c:
        c.create_bank("imp_every")
        sent = []
        job = c.start_import(
            "imp_every", str(path), source="py-test", progress=lambda n, total: sent.append((n, total))
        )
        assert isinstance(job, ImportJob) and not job.reused
        assert (job.bank, job.format, job.source, job.bytes_total) == ("imp_every", "lines", "py-test", size)
        assert job.status in ("queued", "running", "done")
        assert sent[-1] == (size, size) and sent == sorted(sent)
        seen = []
        done = c.wait_import(job, progress=seen.append, poll=0.05)
        # The progress callback saw each state, ending with the returned one.
        assert seen[-1] == done and all(j.status in STATES for j in seen)
        assert [j.bytes_done for j in seen] == sorted(j.bytes_done for j in seen)
        assert [j.lines for j in seen] == sorted(j.lines for j in seen)
        assert done.status == "done" and done.finished and done.fraction == 1.0
        assert done.lines == len(lines)
        assert (done.added, done.duplicates, done.rejected_count) == (len(good), 1, 2), done.raw
        assert [r.line for r in done.rejected] == [21, 41]  # 1-based, as the service numbers them
        assert "hex" in done.rejected[0].error
        assert done.bytes_done == done.bytes_total == size
        # Independent truth: the bank now holds exactly the good lines.
        assert exported(c, "imp_every") == good
        assert c.get_bank("imp_every").content_count == len(good)
        listed = c.list_imports(bank="imp_every")
        assert [j.id for j in listed] == [job.id] and listed[0].status == "done"
        assert listed[0].rejected == []  # the list carries no rejected lines; get_import does
        assert c.get_import(job.id).rejected == done.rejected
        assert job.id in [j.id for j in c.list_imports(limit=500)]
        # The bank streamed back into a file: what export_list answers, byte for byte.
        out = tmp_path / "export.txt"
        assert c.export_to("imp_every", out) == out.stat().st_size
        assert out.read_text() == c.export_list("imp_every")
        with pytest.raises(ApiError) as e:
            c.export_to("imp_no_such_bank", tmp_path / "none.txt")
        assert e.value.status == 404 and not (tmp_path / "none.txt").exists()


def test_async_streams_retries_are_idempotent_and_reimports_add_nothing(server, tmp_path):
    first, other = pdq_lines(3, 500), pdq_lines(4, 7)
    path = tmp_path / "first.txt"
    path.write_text("\n".join(first))

    async def chunks(text):
        data = text.encode()
        for i in range(0, len(data), 1000):
            await asyncio.sleep(0)
            yield data[i : i + 1000]

    async def main():
        async with AsyncClient(server.url, server.admin) as c:
            await c.create_bank("imp_idem")
            job = await c.start_import("imp_idem", chunks("\n".join(first)), idempotency_key="list-2026-12-01")
            assert not job.reused
            # A retry with the same key, even with another body, is the first job.
            again = await c.start_import("imp_idem", "\n".join(other).encode(), idempotency_key="list-2026-12-01")
            assert (again.id, again.reused) == (job.id, True)
            done = await c.wait_import(again, poll=0.05)
            assert (done.lines, done.added, done.duplicates, done.rejected_count) == (500, 500, 0, 0)
            # The same list again, from an open file, under another key: nothing added.
            with open(path, "rb") as f:
                second = await c.start_import("imp_idem", f, idempotency_key="list-2026-12-01-retry")
            assert second.id != job.id and not second.reused
            second = await c.wait_import(second, poll=0.05)
            assert (second.lines, second.added, second.duplicates) == (500, 0, 500)
            assert {j.id for j in await c.list_imports(bank="imp_idem")} == {job.id, second.id}
            assert (await c.get_bank("imp_idem")).content_count == 500
            buf = io.BytesIO()
            assert await c.export_to("imp_idem", buf, format="jsonl") == len(buf.getvalue())
            got = bulwark.read_list(buf.getvalue().decode(), "jsonl")
            assert {(r.signal_type, r.signal) for r in got} == {tuple(ln.split(" ")) for ln in first}

    asyncio.run(main())
    with Client(server.url, server.admin) as c:
        assert exported(c, "imp_idem") == {tuple(ln.split(" ")) for ln in first}
        # Sync client, list given as an iterable of chunks.
        job = c.wait_import(c.start_import("imp_idem", iter([b"pdq ", other[0][4:].encode(), b"\n"])), poll=0.05)
        assert (job.lines, job.added) == (1, 1)


def test_cancel_a_failed_job_and_the_upload_is_streamed(server, tmp_path):
    """A big job keeps the worker (one job at a time, oldest first) busy, so
    the jobs queued behind it are still queued when they are cancelled or
    their bank deleted."""
    big = tmp_path / "big.txt"
    size = write_big_list(big, 5, 300_000)  # about 20 MB
    with Client(server.url, server.admin) as c:
        c.create_bank("imp_cancel")
        c.create_bank("imp_gone")
        tracemalloc.start()
        try:
            a = c.start_import("imp_cancel", big)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # Streamed in 1 MiB chunks, never read whole into memory.
        assert a.bytes_total == size and peak < size // 4, (peak, size)
        b = c.start_import("imp_gone", b"\n".join(x.encode() for x in pdq_lines(6, 10)))
        queued = c.start_import("imp_cancel", "\n".join(pdq_lines(7, 10)).encode())
        cancelled = c.cancel_import(queued)
        assert (cancelled.status, cancelled.lines, cancelled.added) == ("cancelled", 0, 0)
        assert not (server.data_dir / "imports" / f"{queued.id}.list").exists()
        with pytest.raises(ApiError) as e:
            c.cancel_import(queued)
        assert (e.value.status, e.value.code) == (409, "conflict") and "cancelled" in e.value.message
        # The bank of a queued job goes away: the job fails when its turn comes.
        c.delete_bank("imp_gone")
        a_cancelled = c.cancel_import(a)
        assert a_cancelled.status == "cancelled"
        with pytest.raises(ImportJobError) as e:
            c.wait_import(a, poll=0.05)
        final = e.value.job
        assert final.status == "cancelled" and final.lines < 300_000 and final.finished
        assert c.wait_import(a.id, check=False) == final
        # What was committed before the cancel stays, and nothing after it.
        assert c.get_bank("imp_cancel").content_count == final.added
        assert len(exported(c, "imp_cancel")) == final.added
        with pytest.raises(ImportJobError, match="deleted during the import") as e:
            c.wait_import(b, poll=0.05)
        assert (e.value.job.status, e.value.job.added) == ("failed", 0)


def test_errors_are_exceptions_with_the_service_message(server, tmp_path):
    with Client(server.url, server.admin) as c:
        # An unknown bank: refused before the body is read, even a large streamed one.
        big = (b"pdq " + b"0" * 64 + b"\n" for _ in range(250_000))  # 17 MB, generated
        with pytest.raises(ApiError) as e:
            c.start_import("imp_no_such_bank", big)
        assert (e.value.status, e.value.code) == (404, "not_found")
        assert "imp_no_such_bank" in e.value.message
        with pytest.raises(ApiError) as e:
            c.start_import("imp_no_such_bank", b"pdq " + b"0" * 64)
        assert e.value.status == 404
        c.create_bank("imp_err")
        with pytest.raises(ApiError) as e:
            c.start_import("imp_err", b"", format="xml")
        assert e.value.status == 400 and "xml" in e.value.message
        with pytest.raises(ApiError) as e:
            c.start_import("imp_err", b"", idempotency_key="k" * 201)
        assert e.value.status == 400 and "Idempotency-Key" in e.value.message
        with pytest.raises(ApiError) as e:
            c.get_import("no-such-job")
        assert (e.value.status, e.value.code) == (404, "not_found")
        with pytest.raises(ApiError) as e:
            c.cancel_import("no-such-job")
        assert e.value.status == 404
        # A job id or bank name is one path segment: one from elsewhere cannot reach another route.
        with pytest.raises(ApiError) as e:
            c.cancel_import("../banks/imp_err")
        assert (e.value.status, e.value.code) == (404, "not_found") and "import job" in e.value.message
        with pytest.raises(ApiError) as e:
            c.delete_bank("../banks/imp_err")  # unencoded, this would be DELETE /v1/banks/imp_err
        assert e.value.status == 404
        assert c.get_bank("imp_err").name == "imp_err"
        with pytest.raises(TypeError, match="path, a binary file, bytes"):
            c.start_import("imp_err", 42)  # type: ignore[arg-type]
        with pytest.raises(FileNotFoundError):
            c.start_import("imp_err", str(tmp_path / "missing.txt"))
        with pytest.raises(TypeError, match="chunks must be bytes"):
            c.start_import("imp_err", ["pdq " + "0" * 64])  # type: ignore[list-item]
        assert c.list_imports(bank="imp_err") == []
    # Import jobs need the curator role.
    with Client(server.url, server.key("matcher")) as m:
        with pytest.raises(ApiError) as e:
            m.start_import("imp_err", b"pdq " + b"0" * 64)
        assert e.value.status == 403
        with pytest.raises(ApiError) as e:
            m.list_imports()
        assert e.value.status == 403
