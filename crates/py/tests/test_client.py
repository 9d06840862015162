"""The /v1 client (sync and asyncio) against a started `bulwark serve`,
and the device side of franking and vouchers end to end through it."""

import asyncio
import time

import pytest

import bulwark
from bulwark.client import ApiError, AsyncClient, Client

BRIDGE = "pdq/images/bridge-mods/aaa-orig.jpg"


def test_banks_content_match_and_lists(server, conformance):
    with Client(server.url, server.admin) as c:
        assert c.health()["status"] == "ok"
        bank = c.create_bank("py_bank", description="from Python")
        assert (bank.name, bank.description) == ("py_bank", "from Python")
        assert "py_bank" in [b.name for b in c.list_banks()]
        img = (conformance / BRIDGE).read_bytes()
        content = c.add_content("py_bank", img, note="bridge", metadata={"case": 1})
        # The service hashes what the Python package hashes.
        assert content.signal("pdq") == bulwark.hash_bytes(img).hash
        assert content.note == "bridge" and content.metadata == {"case": 1}
        got = c.match(file=(conformance / "pdq/images/bridge-mods/blur-a-lot.jpg").read_bytes())
        assert [(m.bank, m.content_id) for m in got.matches] == [("py_bank", content.id)]
        assert got.matches[0].distance == bulwark.distance(
            content.signal("pdq"), bulwark.hash_file(conformance / "pdq/images/bridge-mods/blur-a-lot.jpg").hash
        )
        by_hash = c.match(signals={"pdq": content.signal("pdq")}, banks=["py_bank"])
        assert by_hash.matches[0].distance == 0
        # Import a list written by the package, export it back, read it back.
        far = "0f" * 32
        text = bulwark.write_list([bulwark.ListRecord("pdq", far, 80, "imported")], "csv")
        res = c.import_list("py_bank", text, format="csv", source="test")
        assert (res.added, res.rejected_count) == (1, 0)
        exported = bulwark.read_list(c.export_list("py_bank", format="jsonl"), "jsonl")
        assert {r.signal for r in exported if r.signal_type == "pdq"} == {far, content.signal("pdq")}
        assert {r.signal for r in exported if r.signal_type == "md5"} == {content.signal("md5")}
        page = c.list_content("py_bank", limit=1)
        assert len(page.items) == 1 and page.next_after is not None
        rest = c.list_content("py_bank", after=page.next_after)
        assert len(page.items) + len(rest.items) == 2
        assert c.get_content("py_bank", content.id).id == content.id
        assert c.update_content("py_bank", content.id, enabled=False).enabled is False
        assert c.match(signals={"pdq": content.signal("pdq")}, banks=["py_bank"]).matches == []
        with pytest.raises(ApiError) as e:
            c.get_bank("no_such_bank")
        assert (e.value.status, e.value.code) == (404, "not_found")
    with pytest.raises(ApiError) as e:
        Client(server.url, "not-a-key").list_banks()
    assert e.value.status == 401


def test_async_client(server, conformance):
    async def main():
        async with AsyncClient(server.url, server.admin) as c:
            await c.create_bank("py_async")
            img = (conformance / "pdq/images/misc-images/c.png").read_bytes()
            content, hashes = await asyncio.gather(c.add_content("py_async", img), c.hash(img))
            assert content.signal("pdq") == hashes.pdq == bulwark.hash_bytes(img).hash
            got = await c.match(signals={"pdq": [hashes.pdq, "00" * 32]}, banks=["py_async"])
            assert [m.content_id for m in got.matches] == [content.id]
            with pytest.raises(ApiError):
                await c.create_bank("py_async")

    asyncio.run(main())


def test_franking_round_trip_and_tampering(server):
    stamper = server.key("stamper")
    with Client(server.url, stamper) as ds, Client(server.url, server.admin) as admin:
        sent = bulwark.frank("alice", "group-1", "m-0001", "hello from python")
        stamp = ds.stamp(
            sent.tag, sender="alice", conversation="group-1", message_id="m-0001", epoch=3, recipients=["alice", "bob"]
        )
        key = ds.franking_key()
        ctx = dict(
            sender="alice",
            conversation="group-1",
            message_id="m-0001",
            epoch=3,
            recipients=["bob", "alice"],
            accepted_at=stamp.accepted_at,
            stamper=stamp.stamper,
        )
        got = bulwark.receive(sent.plaintext, sent.tag, stamp.as_dict(), key, **ctx)
        assert (got.body, got.sender, got.epoch) == (b"hello from python", "alice", 3)
        # Tampered content, another sender, another recipient set: dropped.
        bad = bytearray(sent.plaintext)
        bad[-1] ^= 1
        with pytest.raises(bulwark.FrankingError, match="tag does not match"):
            bulwark.receive(bytes(bad), sent.tag, stamp.as_dict(), key, **ctx)
        with pytest.raises(bulwark.FrankingError):
            bulwark.receive(sent.plaintext, sent.tag, stamp.as_dict(), key, **{**ctx, "sender": "mallory"})
        with pytest.raises(bulwark.FrankingError, match="signature"):
            bulwark.receive(sent.plaintext, sent.tag, stamp.as_dict(), key, **{**ctx, "recipients": ["bob"]})
        # An unsigned report is refused; Bob's enrolled device signs his.
        with pytest.raises(ApiError) as e:
            admin.submit_report(bulwark.report([got], reason="harassment"))
        assert e.value.status == 422 and "signed" in e.value.message
        bob_key = b"\x07" * 32
        ds.enrol_device("bob", "bob-phone", bulwark.ed25519_public_key(bob_key))
        receipt = admin.submit_report(bulwark.report([got], reason="harassment", reporter=("bob", "bob-phone", bob_key)))
        assert receipt.status == "queued" and receipt.messages == 1, receipt.raw
        stored = admin.get_report(receipt.id)
        assert stored.reason == "harassment" and stored.status == "queued"
        assert receipt.id in [r.id for r in admin.list_reports().items]


def test_franked_attachment_is_verified_opened_and_matched_by_the_service(server, conformance):
    """Python seals an attachment, franks it, reports it with its ciphertext:
    the Rust service verifies the frank, opens the attachment (commitment,
    digest, AES-GCM) and matches it against a bank."""
    stamper = server.key("stamper")
    orig = (conformance / BRIDGE).read_bytes()
    query = (conformance / "pdq/images/bridge-mods/blur-a-lot.jpg").read_bytes()
    with Client(server.url, stamper) as ds, Client(server.url, server.admin) as admin:
        admin.create_bank("fr_bank")
        banked = admin.add_content("fr_bank", orig)
        sealed = bulwark.seal_attachment(query, "image/jpeg", "blob-7")
        sent = bulwark.frank("alice", "group-2", "m-0007", "look", attachments=[sealed.reference])
        stamp = ds.stamp(
            sent.tag, sender="alice", conversation="group-2", message_id="m-0007", epoch=1, recipients=["alice", "bob"]
        )
        ctx = dict(
            sender="alice",
            conversation="group-2",
            message_id="m-0007",
            epoch=1,
            recipients=["alice", "bob"],
            accepted_at=stamp.accepted_at,
            stamper=stamp.stamper,
        )
        got = bulwark.receive(sent.plaintext, sent.tag, stamp.as_dict(), ds.franking_key(), **ctx)
        assert got.attachments == [sealed.reference]
        assert bulwark.open_attachment(got.attachments[0], sealed.ciphertext) == query
        bob_key = b"\x09" * 32
        ds.enrol_device("bob", "bob-tablet", bulwark.ed25519_public_key(bob_key))
        who = ("bob", "bob-tablet", bob_key)
        # Another ciphertext than the one the franked reference names: the report is refused.
        other = bulwark.seal_attachment(query, "image/jpeg", "blob-7").ciphertext
        with pytest.raises(ApiError) as e:
            admin.submit_report(bulwark.report_with_attachments([(got, [(0, other)])], reason="spam", reporter=who))
        assert (e.value.status, e.value.code) == (422, "report_rejected")
        with pytest.raises(ValueError, match="out of range"):
            bulwark.report_with_attachments([(got, [(1, sealed.ciphertext)])], reporter=who)
        receipt = admin.submit_report(
            bulwark.report_with_attachments([(got, [(0, sealed.ciphertext)])], reason="spam", reporter=who)
        )
        assert receipt.status == "queued", receipt.raw
        (att,) = receipt.attachments
        assert (att["status"], att["blob_id"], att["size"]) == ("opened", "blob-7", len(query)), att
        assert att["hashes"]["pdq"] == bulwark.hash_bytes(query).hash
        assert [(m["bank"], m["content_id"]) for m in att["matches"]] == [("fr_bank", banked.id)]


def test_vouchers_end_to_end(server, conformance, tmp_path):
    """Bank images in two providers' banks, publish signed pdata, and make
    vouchers in Python: the account is flagged once over the threshold."""
    stamper, matcher = server.key("stamper"), server.key("matcher")
    images = sorted((conformance / "pdq/images/reg-test-input").rglob("*.*"))
    banked = [p for p in images if p.suffix != ".md" and "bridge-1-original" not in p.name]
    unbanked = sorted(p for p in (conformance / "pdq/images/misc-images").rglob("*.*") if p.suffix != ".md")
    assert len(banked) >= 10 and unbanked
    with Client(server.url, server.admin) as admin, Client(server.url, stamper) as backend, Client(
        server.url, matcher
    ) as relay:
        for bank, provider in (("vo_a", "a"), ("vo_b", "b")):
            admin.create_bank(bank, provider=provider)
            for p in banked:
                admin.add_content(bank, p.read_bytes())
        release = admin.build_pdata(profile="compact", threshold=3)["release"]
        pins = []
        for name in ("vo_a", "vo_b"):
            keyfile = tmp_path / f"{name}.provider"
            public = server.cli("providers", "keygen", "--out", str(keyfile))
            admin.enrol_provider(name, public)
            server.cli("providers", "sign", "--server", server.url, "--release", str(release), "--key", str(keyfile))
            pins.append(public)
        data, signed = admin.pdata(), admin.pdata_signed_root()
        with pytest.raises(bulwark.VoucherError):
            bulwark.Pdata.load_signed(data, signed, pins)  # the default policy refuses t = 3
        with pytest.raises(bulwark.VoucherError):
            bulwark.Pdata.load_signed(data, signed, pins[:1], threshold=3)  # one provider is not enough
        pdata = bulwark.Pdata.load_signed(data, signed, pins, threshold=3)
        assert pdata.root == admin.pdata_root().root
        account = bulwark.DeviceAccount.generate()
        device_key = bytes(range(32))
        backend.enrol_device("carol", "carol-phone", bulwark.ed25519_public_key(device_key))

        def send(paths):
            for p in paths:
                v = bulwark.make_voucher(pdata, account, p.read_bytes())
                sig = bulwark.sign_voucher("carol", "carol-phone", v, device_key)
                assert relay.submit_voucher("carol", "carol-phone", v, sig)

        send(unbanked)
        time.sleep(2)
        assert not admin.account_status("carol").flagged
        send(banked)
        deadline = time.monotonic() + 60
        while not admin.account_status("carol").flagged and time.monotonic() < deadline:
            time.sleep(0.2)
        st = admin.account_status("carol")
        assert st.flagged and len(st.matches) > 3
        assert all(m["distance"] <= 31 for m in st.matches)
        # A voucher signed by a key that is not the enrolled one is refused.
        v = bulwark.make_voucher(pdata, account, banked[0].read_bytes())
        with pytest.raises(ApiError) as e:
            relay.submit_voucher("carol", "carol-phone", v, bulwark.sign_voucher("carol", "carol-phone", v, b"\1" * 32))
        assert e.value.status == 403


def test_device_state_round_trips_and_wrong_roots_are_refused():
    account = bulwark.DeviceAccount.generate()
    again = bulwark.DeviceAccount.from_bytes(account.to_bytes())
    assert again.to_bytes() == account.to_bytes()
    with pytest.raises(bulwark.VoucherError):
        bulwark.DeviceAccount.from_bytes(b"\0" * 5)
    seen = bulwark.SeenImages.restore(7, ["00" * 32])
    assert seen.remembered() == (7, ["00" * 32])
    with pytest.raises(bulwark.VoucherError):
        bulwark.Pdata.load_unsigned(b"not pdata", "00" * 32)
    with pytest.raises(bulwark.VoucherError, match="root"):
        bulwark.Pdata.load_unsigned(b"", "xyz")
