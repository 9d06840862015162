"""Hash-list formats (crates/banks) through Python."""

import pytest

import bulwark
from bulwark import ListRecord

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def test_round_trip_in_every_format():
    records = [
        ListRecord("pdq", PDQ, 90, "bridge, original", {"source": "ncmec"}),
        ListRecord("pdq", "0" * 63 + "1", None, None, None),
    ]
    for fmt in ("lines", "csv", "jsonl"):
        text = bulwark.write_list(records, fmt)
        back = bulwark.read_list(text, fmt)
        assert [(r.signal_type, r.signal) for r in back] == [("pdq", PDQ), ("pdq", "0" * 63 + "1")]
        if fmt == "jsonl":
            assert back == records
        if fmt == "csv":
            assert text.splitlines()[0] == "hash,quality,note"
            assert back[0].quality == 90 and back[0].note == "bridge, original"


def test_threatexchange_lines_with_comments_and_other_types():
    text = f"# a comment\n\npdq {PDQ}\nmd5 {MD5.upper()}\n"
    got = bulwark.read_list(text, "lines")
    assert [(r.signal_type, r.signal) for r in got] == [("pdq", PDQ), ("md5", MD5)]
    assert bulwark.write_list(got, "lines") == f"pdq {PDQ}\nmd5 {MD5}\n"


def test_bad_lines_name_their_line_and_csv_refuses_md5():
    with pytest.raises(bulwark.ListFormatError, match=r"line 3: .*pdq value must be 64 hex digits"):
        bulwark.read_list(f"pdq {PDQ}\n\npdq abc\n", "lines")
    with pytest.raises(bulwark.ListFormatError, match="line 1: quality 101 is out of range"):
        bulwark.read_list(f"{PDQ},101\n", "csv")
    with pytest.raises(bulwark.ListFormatError, match="PDQ hashes only"):
        bulwark.write_list([ListRecord("md5", MD5)], "csv")
    with pytest.raises(ValueError, match="unknown list format"):
        bulwark.read_list("", "xml")
