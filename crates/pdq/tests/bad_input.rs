//! Bad input gets a clear error, never a panic or an out-of-memory.

use std::path::PathBuf;

use bulwark_pdq::{Error, Limits, Mode, decode, hash_bytes, hash_luma};

fn conformance_image(rel: &str) -> Vec<u8> {
    let base = std::env::var("BULWARK_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        });
    std::fs::read(base.join("pdq/images").join(rel)).expect("conformance image")
}

#[test]
fn zero_bytes() {
    let e = decode(&[], &Limits::default()).expect_err("must be refused");
    assert!(matches!(e, Error::Decode(_)), "{e}");
    assert!(e.to_string().contains("0 bytes"));
}

#[test]
fn text_named_like_a_jpeg_is_not_an_image() {
    let e = hash_bytes(
        b"this is a text file, not a photo\n",
        Mode::Full,
        &Limits::default(),
    )
    .expect_err("must be refused");
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
}

#[test]
fn random_bytes_are_not_an_image() {
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert!(decode(&junk, &Limits::default()).is_err());
}

#[test]
fn truncated_jpeg() {
    let full = conformance_image("bridge-mods/aaa-orig.jpg");
    for cut in [3, 20, 200, full.len() / 2, full.len() - 2] {
        let e = decode(&full[..cut], &Limits::default()).expect_err("must be refused");
        assert!(matches!(e, Error::Decode(_)), "cut at {cut}: {e}");
    }
}

#[test]
fn truncated_png() {
    let full = conformance_image("misc-images/c.png");
    let e = decode(&full[..full.len() / 3], &Limits::default()).expect_err("must be refused");
    assert!(matches!(e, Error::Decode(_)), "{e}");
}

fn png_bytes(
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    rows: impl Fn(u32) -> Vec<u8>,
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        enc.set_compression(png::Compression::Fast);
        let mut wr = enc.write_header().expect("header");
        let mut stream = wr.stream_writer().expect("stream");
        for y in 0..h {
            std::io::Write::write_all(&mut stream, &rows(y)).expect("row");
        }
        stream.finish().expect("finish");
    }
    out
}

#[test]
fn decompression_bomb_30000_square_png() {
    // A real 30000×30000 1-bit PNG: ~100 KB on disk, 900 megapixels decoded.
    let bomb = png_bytes(
        30000,
        30000,
        png::ColorType::Grayscale,
        png::BitDepth::One,
        |_| vec![0u8; 3750],
    );
    assert!(
        bomb.len() < 2 << 20,
        "bomb is small on disk: {}",
        bomb.len()
    );
    let e = decode(&bomb, &Limits::default()).expect_err("must be refused");
    assert!(matches!(e, Error::LimitExceeded(_)), "{e}");
    assert!(e.to_string().contains("30000"), "{e}");
    // Even with a generous pixel cap, the side limit holds.
    let e = decode(&bomb, &Limits::new(64 << 20, u64::MAX, 20_000)).expect_err("must be refused");
    assert!(matches!(e, Error::LimitExceeded(_)), "{e}");
}

#[test]
fn lying_header_is_caught_before_allocation() {
    // A PNG whose header claims 20000×20000 but carries one row of data.
    let mut real = png_bytes(20000, 1, png::ColorType::Rgb, png::BitDepth::Eight, |_| {
        vec![7u8; 60000]
    });
    // Patch IHDR height (bytes 20..24) and its CRC (bytes 29..33).
    real[20..24].copy_from_slice(&20000u32.to_be_bytes());
    let crc = crc32(&real[12..29]);
    real[29..33].copy_from_slice(&crc.to_be_bytes());
    let e = decode(&real, &Limits::default()).expect_err("must be refused");
    assert!(matches!(e, Error::LimitExceeded(_)), "{e}");
    // Within limits it is simply a truncated image.
    let e = decode(&real, &Limits::new(64 << 20, u64::MAX, 20_000)).expect_err("must be refused");
    assert!(matches!(e, Error::Decode(_)), "{e}");
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn sixteen_bit_png_hashes_like_its_eight_bit_twin() {
    let (w, h) = (97u32, 61u32);
    let v8 = |x: u32, y: u32| ((x * 7 + y * 13) % 256) as u8;
    let png16 = png_bytes(
        w,
        h,
        png::ColorType::Grayscale,
        png::BitDepth::Sixteen,
        |y| {
            (0..w)
                .flat_map(|x| (u16::from(v8(x, y)) * 257).to_be_bytes())
                .collect()
        },
    );
    let img = decode(&png16, &Limits::default()).expect("16-bit PNG decodes");
    assert_eq!(img.channels, 1);
    let grey: Vec<u8> = (0..h).flat_map(|y| (0..w).map(move |x| v8(x, y))).collect();
    assert_eq!(img.pixels, grey);
    assert_eq!(
        bulwark_pdq::hash_image(&img, Mode::Full),
        hash_luma(&grey, w as usize, h as usize)
    );
}

#[test]
fn cmyk_jpeg_decodes_to_rgb() {
    let img = decode(
        &conformance_image("misc-images/modes/CMYK.jpg"),
        &Limits::default(),
    )
    .expect("decodes");
    assert_eq!((img.channels, img.width, img.height), (3, 1600, 1004));
}

#[test]
fn oversized_input_bytes() {
    let jpeg = conformance_image("bridge-mods/aaa-orig.jpg");
    let e = decode(&jpeg, &Limits::new(1000, u64::MAX, 20_000)).expect_err("must be refused");
    assert!(matches!(e, Error::LimitExceeded(_)), "{e}");
}

#[test]
fn malformed_icc_segment_is_ignored_like_the_reference_does() {
    // A bogus APP2 ICC chunk (sequence number 0) makes libjpeg warn; the pixels
    // are unaffected and the reference hashes such files.
    let jpeg = conformance_image("bridge-mods/aaa-orig.jpg");
    let mut seg = vec![0xFF, 0xE2];
    let body = b"ICC_PROFILE\0\x00\x00junk";
    seg.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    seg.extend_from_slice(body);
    let mut bad = jpeg[..2].to_vec();
    bad.extend_from_slice(&seg);
    bad.extend_from_slice(&jpeg[2..]);
    let a = decode(&jpeg, &Limits::default()).expect("original");
    let b = decode(&bad, &Limits::default()).expect("with a bogus ICC chunk");
    assert_eq!(a, b);
}

/// `dimensions` reads the size from the header alone: it agrees with a full
/// decode, works on a file cut right after its header, and is `None` (not a
/// panic) for bytes that are not an image.
#[test]
fn dimensions_from_the_header_agree_with_decoding() {
    for rel in [
        "bridge-mods/aaa-orig.jpg",
        "bridge-mods/square-128x128.jpg",
        "misc-images/c.png",
        "misc-images/small.jpg",
        "reg-test-input/pen-and-coaster.png",
    ] {
        let bytes = conformance_image(rel);
        let img = decode(&bytes, &Limits::default()).expect(rel);
        assert_eq!(
            bulwark_pdq::dimensions(&bytes),
            Some((img.width, img.height)),
            "{rel}"
        );
    }
    // The lying header of a 20000×20000 PNG carrying one row: its claimed
    // size, read without allocating the pixels.
    let mut lying = png_bytes(20000, 1, png::ColorType::Rgb, png::BitDepth::Eight, |_| {
        vec![7u8; 60000]
    });
    lying[20..24].copy_from_slice(&20000u32.to_be_bytes());
    let crc = crc32(&lying[12..29]);
    lying[29..33].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(bulwark_pdq::dimensions(&lying[..64]), Some((20000, 20000)));
    let jpeg = conformance_image("bridge-mods/aaa-orig.jpg");
    assert_eq!(bulwark_pdq::dimensions(&jpeg[..3]), None);
    assert_eq!(bulwark_pdq::dimensions(b"plain text"), None);
    assert_eq!(bulwark_pdq::dimensions(&[]), None);
}

/// TIFFs as ffmpeg writes them (PackBits by default, also LZW and Deflate)
/// decode and hash like a PNG of the same frame: the pixels are the same
/// RGB, so the hashes must be equal. Needs ffmpeg (skipped without it,
/// except under `BULWARK_TEST_REQUIRE_ALL=1`).
#[test]
fn ffmpeg_written_tiffs_hash_like_the_same_frame_as_png() {
    let have = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var("BULWARK_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
            "ffmpeg is required (BULWARK_TEST_REQUIRE_ALL=1) but not on PATH"
        );
        eprintln!("skipped: ffmpeg not on PATH");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, extra: &[&str]| {
        let path = dir.path().join(name);
        let mut args = vec![
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=1",
            "-frames:v",
            "1",
            "-pix_fmt",
            "rgb24",
        ];
        args.extend_from_slice(extra);
        args.push(path.to_str().unwrap());
        let st = std::process::Command::new("ffmpeg")
            .args(&args)
            .status()
            .unwrap();
        assert!(st.success(), "ffmpeg {args:?}");
        std::fs::read(path).unwrap()
    };
    let png = write("f.png", &[]);
    let want = hash_bytes(&png, Mode::Full, &Limits::default()).unwrap();
    for (name, extra) in [
        ("packbits.tiff", &[][..]),
        ("lzw.tiff", &["-compression_algo", "lzw"][..]),
        ("deflate.tiff", &["-compression_algo", "deflate"][..]),
        ("raw.tiff", &["-compression_algo", "raw"][..]),
    ] {
        let tiff = write(name, extra);
        let got = hash_bytes(&tiff, Mode::Full, &Limits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((got.hash, got.quality), (want.hash, want.quality), "{name}");
    }
}
