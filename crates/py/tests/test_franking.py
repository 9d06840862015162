"""Franking and committed attachments from Python, checked against an
independent implementation of the byte layouts the Rust crates document
(crates/franking: content.rs, attachment.rs, lib.rs; crates/client:
franking.rs), with Python's hmac/hashlib and the `cryptography` package's
HKDF and AES-GCM. That implementation is itself pinned by the Rust crate's
known answer (crates/franking/tests/franking.rs). The service-side check
(Rust verifies, opens and matches what Python made) is in test_client.py."""

import hashlib
import hmac
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import bulwark

IMAGE = b"\x89PNG benign test bytes " * 40


def lp(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def tag_of(salt: bytes, sender: str, conversation: str, message_id: str, content: bytes) -> bytes:
    msg = b"".join(lp(p) for p in (b"bulwark-franking-tag-v2", sender.encode(), conversation.encode(), message_id.encode(), content))
    return hmac.new(salt, msg, hashlib.sha256).digest()


def hkdf64(key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"bulwark-attachment-v1").derive(key)


def parse_content(b: bytes):
    """content.rs: "BWC1" ‖ u32 body length ‖ body ‖ u16 count ‖ attachments."""
    assert b[:4] == b"BWC1"
    (n,) = struct.unpack(">I", b[4:8])
    body, rest = b[8 : 8 + n], b[8 + n :]
    (count,) = struct.unpack(">H", rest[:2])
    rest = rest[2:]
    atts = []
    for _ in range(count):
        (ln,) = struct.unpack(">H", rest[:2])
        blob, rest = rest[2 : 2 + ln].decode(), rest[2 + ln :]
        key, commitment, digest, rest = rest[:32], rest[32:64], rest[64:96], rest[96:]
        (size, ln) = struct.unpack(">QH", rest[:10])
        media, rest = rest[10 : 10 + ln].decode(), rest[10 + ln :]
        atts.append((blob, key, commitment, digest, size, media))
    assert rest == b""
    return body, atts


def test_independent_tag_matches_the_rust_known_answer():
    # crates/franking/tests/franking.rs::known_answers_from_an_independent_implementation
    tag = tag_of(bytes(range(16)), "alice@example", "group-42", "msg-0001", b"hello, this is a benign test message")
    assert tag.hex() == "46443372089509be6cac8a775874eb034314acc4859254beba127eb5a2811de3"


def test_sealed_attachment_decrypts_independently_and_opens():
    ref, ct = bulwark.seal_attachment(IMAGE, "image/png", "blob-1")
    okm = hkdf64(ref.key)
    assert ref.commitment == okm[32:]
    assert ref.ciphertext_sha256 == hashlib.sha256(ct).digest()
    assert AESGCM(okm[:32]).decrypt(b"\0" * 12, ct, b"bulwark-attachment-v1") == IMAGE
    assert (ref.size, ref.media_type, ref.blob_id) == (len(IMAGE), "image/png", "blob-1")
    assert bulwark.open_attachment(ref, ct) == IMAGE
    assert ref.key.hex() not in repr(ref)
    # Rebuilt from stored fields it is the same reference; another key is not.
    fields = (ref.blob_id, ref.key, ref.commitment, ref.ciphertext_sha256, ref.size, ref.media_type)
    same = bulwark.AttachmentRef(*fields)
    assert same == ref and hash(same) == hash(ref)
    assert bulwark.AttachmentRef(ref.blob_id, b"\1" * 32, *fields[2:]) != ref
    assert ref != fields
    # A fresh key each time.
    assert bulwark.seal_attachment(IMAGE, "image/png", "blob-1").reference.key != ref.key


def test_open_attachment_refuses_what_the_reference_does_not_name():
    ref, ct = bulwark.seal_attachment(IMAGE, "image/png", "blob-1")
    bad = bytearray(ct)
    bad[0] ^= 1
    with pytest.raises(bulwark.FrankingError, match="SHA-256 differs"):
        bulwark.open_attachment(ref, bytes(bad))
    # Another key with the reference's commitment: refused before decrypting.
    other = bulwark.AttachmentRef(ref.blob_id, b"\1" * 32, ref.commitment, ref.ciphertext_sha256, ref.size, ref.media_type)
    with pytest.raises(bulwark.FrankingError, match="key commitment"):
        bulwark.open_attachment(other, ct)
    # The key's own commitment but a tampered, re-digested ciphertext.
    forged = bulwark.AttachmentRef(ref.blob_id, ref.key, ref.commitment, hashlib.sha256(bytes(bad)).digest(), ref.size, ref.media_type)
    with pytest.raises(bulwark.FrankingError, match="does not authenticate"):
        bulwark.open_attachment(forged, bytes(bad))
    wrong_size = bulwark.AttachmentRef(ref.blob_id, ref.key, ref.commitment, ref.ciphertext_sha256, ref.size + 1, ref.media_type)
    with pytest.raises(bulwark.FrankingError, match="size differs"):
        bulwark.open_attachment(wrong_size, ct)
    with pytest.raises(ValueError, match="32 bytes"):
        bulwark.AttachmentRef("b", b"short", ref.commitment, ref.ciphertext_sha256, 1, "image/png")
    with pytest.raises(bulwark.FrankingError, match="media type empty or over 256 bytes"):
        bulwark.seal_attachment(IMAGE, "", "blob-1")


def test_franked_envelope_commits_to_body_and_attachments():
    a = bulwark.seal_attachment(IMAGE, "image/png", "blob-1").reference
    b = bulwark.seal_attachment(b"second benign file", "text/plain", "blob-2").reference
    sent = bulwark.frank("alice", "group-1", "m-0001", "look at these", attachments=[a, b])
    # crates/client/src/franking.rs: 0x02 ‖ salt (16) ‖ content.
    assert sent.plaintext[0] == 2
    salt, content = sent.plaintext[1:17], sent.plaintext[17:]
    assert sent.tag == tag_of(salt, "alice", "group-1", "m-0001", content)
    body, atts = parse_content(content)
    assert body == b"look at these"
    assert atts == [
        (r.blob_id, r.key, r.commitment, r.ciphertext_sha256, r.size, r.media_type) for r in (a, b)
    ]
    # Text only: no attachments, as before.
    plain = bulwark.frank("alice", "group-1", "m-0002", b"hi")
    assert parse_content(plain.plaintext[17:]) == (b"hi", [])
    with pytest.raises(bulwark.FrankingError, match="more than 10 attachments"):
        bulwark.frank("alice", "group-1", "m-0003", "x", attachments=[a] * 11)
    with pytest.raises(TypeError):
        bulwark.frank("alice", "group-1", "m-0003", "x", attachments=[b"not a reference"])  # type: ignore[list-item]
