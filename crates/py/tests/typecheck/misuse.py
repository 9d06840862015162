"""Wrong uses that `mypy --strict` must refuse (tests/test_typing.py checks
that it reports exactly the lines marked `# error`): the types are not
`Any` in disguise, and the asyncio client's methods are awaitables."""

from __future__ import annotations

import bulwark
from bulwark.client import AsyncClient, Bank, Client


def sync(c: Client) -> None:
    c.create_bank(42)  # error
    b: str = c.get_bank("x")  # error
    c.match(signal={"pdq": "00"})  # error
    bulwark.frank("a", "g", "m", "hi", attachments=[b"not a ref"])  # error
    bulwark.hash_file("a.jpg").hash.quality  # error
    bulwark.Index.open("a.idx").search(1)  # error
    c.start_import("b", 42)  # error
    c.start_import("b", ["pdq " + "00" * 32])  # error
    c.wait_import(c.start_import("b", b""), progress=lambda sent, total: None)  # error
    n: str = c.get_import("id").lines  # error


async def asynchronous(c: AsyncClient) -> None:
    b: Bank = c.get_bank("x")  # error
    n: int = (await c.get_bank("x")).name  # error
    await c.list_banks(limit=3)  # error
    c.start_import("b", b"").id  # error
