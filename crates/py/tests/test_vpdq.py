"""vPDQ through Python against the reference's per-frame outputs."""

import os
import shutil

import pytest

import bulwark

need_ffmpeg = pytest.mark.skipif(
    not (shutil.which("ffmpeg") and shutil.which("ffprobe")) and os.environ.get("BULWARK_TEST_REQUIRE_ALL") != "1",
    reason="ffmpeg not installed",
)


@need_ffmpeg
def test_frames_equal_the_reference_at_128x128(conformance):
    d = conformance / "vpdq"
    name = "chair-19-sd-bar"
    want = bulwark.read_vpdq((d / "expected" / f"{name}-128x128.txt").read_text())
    got = bulwark.hash_video(d / "videos" / f"{name}.mp4", size=128)
    assert [(f.frame, f.quality, f.hash) for f in got] == [(f.frame, f.quality, f.hash) for f in want]
    assert bulwark.format_vpdq(got) == (d / "expected" / f"{name}-128x128.txt").read_text()


def test_match_rule_on_reference_files(conformance):
    e = conformance / "vpdq" / "expected"
    a = bulwark.read_vpdq((e / "chair-19-sd-bar.txt").read_text())
    b = bulwark.read_vpdq((e / "chair-20-sd-bar.txt").read_text())
    other = bulwark.read_vpdq((e / "pattern-sd-grey-bar.txt").read_text())
    same = bulwark.match_videos(a, a)
    assert same == (100.0, 100.0, True)
    assert bulwark.match_videos(a, b).is_match
    far = bulwark.match_videos(a, other)
    assert not far.is_match and far.query_percent < 80
    # Thresholds are the caller's: demanding 100 % of the other video too.
    strict = bulwark.match_videos(a, b, query_percent=100.0, compared_percent=100.0)
    assert strict.is_match == (strict.query_percent >= 100 and strict.compared_percent >= 100)


def test_bad_vpdq_lines_and_missing_video(tmp_path):
    with pytest.raises(bulwark.VideoError, match="line 2"):
        bulwark.read_vpdq("0,100," + "0" * 64 + ",0.000\nnot,a,line\n")
    with pytest.raises(bulwark.VideoError):
        bulwark.hash_video(tmp_path / "missing.mp4", ffprobe="/nonexistent/ffprobe", ffmpeg="/nonexistent/ffmpeg")
