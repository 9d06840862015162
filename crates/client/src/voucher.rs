//! One call per image attachment: its PDQ hash, a 32×32 grey derivative for
//! review, and the safety voucher to send with it.
//!
//! ```no_run
//! # fn demo(pdata_bytes: &[u8], signed_root: &[u8], image: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! use bulwark_client::voucher::{DeviceAccount, Policy, ProviderPublic, load_signed_pdata, voucher_for_image};
//! // Pin the list providers' keys (shipped with the app), at least two.
//! let providers: Vec<ProviderPublic> = vec!["…".parse()?, "…".parse()?];
//! let policy = Policy::default().pin(providers);
//! // Refuses a wrong root, fewer than two pinned signatures, or parameters
//! // that are not an allowed profile.
//! let pdata = load_signed_pdata(pdata_bytes, signed_root, &policy)?;
//! let account = DeviceAccount::generate(&mut rand::rngs::OsRng); // keep account.to_bytes() secret
//! let v = voucher_for_image(&pdata, &account, image)?;       // send v.to_bytes() with the image
//! # Ok(()) }
//! ```
//!
//! The app should also check that the signed root is in the service's public
//! log (`SignedRoot::check_logged`) and that each new tree head extends the one
//! it remembers (`log::TreeHead::check_extends`).

pub use bulwark_psi::log;
pub use bulwark_psi::{
    DeviceAccount, Pdata, Policy, Profile, ProviderPublic, Root, SeenImages, SignedRoot, Voucher,
};

/// Why no voucher was made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The image could not be decoded.
    #[error("image: {0}")]
    Image(#[from] bulwark_pdq::Error),
    /// The published tables are not the ones the root names, or their
    /// parameters are weaker than the policy allows.
    #[error("pdata: {0}")]
    Pdata(#[from] bulwark_psi::PdataError),
    /// The root is not 64 hex digits.
    #[error("root: {0}")]
    Root(String),
    /// The voucher could not be built.
    #[error("voucher: {0}")]
    Voucher(#[from] bulwark_psi::VoucherError),
}

/// What a device does with downloaded pdata: checks the signed root
/// ([`SignedRoot::to_bytes`] form), at least two distinct pinned provider
/// signatures over it, and that the parameters are one of the policy's
/// profiles ([`Pdata::from_signed`]).
pub fn load_signed_pdata(
    bytes: &[u8],
    signed_root: &[u8],
    policy: &Policy,
) -> Result<Pdata, Error> {
    let signed = SignedRoot::from_bytes(signed_root)?;
    Ok(Pdata::from_signed(bytes, &signed, policy)?)
}

/// Parses downloaded pdata and checks it against a root obtained out of band
/// and the default [`Policy`]'s profiles, **without** provider signatures:
/// for tests and for services that do not publish signed roots yet. Devices
/// use [`load_signed_pdata`].
pub fn load_pdata(bytes: &[u8], root_hex: &str) -> Result<Pdata, Error> {
    load_pdata_with_policy(bytes, root_hex, &Policy::default())
}

/// [`load_pdata`] under another policy (tests and demos with small
/// thresholds); no signatures either.
pub fn load_pdata_with_policy(
    bytes: &[u8],
    root_hex: &str,
    policy: &Policy,
) -> Result<Pdata, Error> {
    let root: Root = root_hex
        .trim()
        .parse()
        .map_err(|e| Error::Root(format!("{e}")))?;
    let pdata = Pdata::from_bytes(bytes, &root)?;
    pdata.check_policy(policy)?;
    Ok(pdata)
}

/// A `size`×`size` grey thumbnail (box filter over luminance), the visual
/// derivative a reviewer sees once an account is over the threshold.
pub fn grey_derivative(img: &bulwark_pdq::Image, size: usize) -> Vec<u8> {
    let (w, h, c) = (
        img.width as usize,
        img.height as usize,
        img.channels as usize,
    );
    let mut out = vec![0u8; size * size];
    for ty in 0..size {
        let (y0, y1) = (
            ty * h / size,
            ((ty + 1) * h / size).max(ty * h / size + 1).min(h),
        );
        for tx in 0..size {
            let (x0, x1) = (
                tx * w / size,
                ((tx + 1) * w / size).max(tx * w / size + 1).min(w),
            );
            let (mut sum, mut n) = (0u64, 0u64);
            for y in y0..y1 {
                for x in x0..x1 {
                    let p = &img.pixels[(y * w + x) * c..(y * w + x) * c + c];
                    let luma = if c == 1 {
                        p[0] as u64 * 1000
                    } else {
                        299 * p[0] as u64 + 587 * p[1] as u64 + 114 * p[2] as u64
                    };
                    sum += luma;
                    n += 1;
                }
            }
            out[ty * size + tx] = ((sum / n.max(1) + 500) / 1000).min(255) as u8;
        }
    }
    out
}

/// Hashes an image (PDQ, as the service does) and builds its voucher.
pub fn voucher_for_image(
    pdata: &Pdata,
    account: &DeviceAccount,
    image: &[u8],
) -> Result<Voucher, Error> {
    voucher_for_image_seen(pdata, account, &mut SeenImages::new(), image)
}

/// [`voucher_for_image`] remembering what this device sent in the epoch: a
/// copy within the pdata's radius of an earlier image (a re-encode, a resize)
/// reuses that image's share and counts once toward the threshold. Persist
/// `seen` on the device between calls.
pub fn voucher_for_image_seen(
    pdata: &Pdata,
    account: &DeviceAccount,
    seen: &mut SeenImages,
    image: &[u8],
) -> Result<Voucher, Error> {
    let img = bulwark_pdq::decode(image, &bulwark_pdq::Limits::default())?;
    // The hash with each bit's margin from the median (bit-exact with
    // `hash_image`): multi-probe profiles flip the least confident bits.
    let hashed = bulwark_pdq::hash_image_confidence(&img);
    let side = (f64::from(pdata.params().derivative_bytes)).sqrt() as usize;
    let derivative = grey_derivative(&img, side.clamp(1, 64));
    let identity = seen.identity(pdata, &hashed.hash);
    Ok(account.voucher_probing(
        pdata,
        &hashed.hash,
        Some(&hashed.margins),
        &identity,
        &derivative,
        &mut rand::rngs::OsRng,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivative_of_a_flat_image_is_flat_and_of_a_gradient_is_ordered() {
        let flat = bulwark_pdq::Image {
            width: 100,
            height: 60,
            channels: 3,
            pixels: [10u8, 20, 30].repeat(6000),
        };
        let d = grey_derivative(&flat, 32);
        let want = ((299 * 10 + 587 * 20 + 114 * 30) as f64 / 1000.0).round() as u8;
        assert!(d.iter().all(|v| *v == want));
        let grad = bulwark_pdq::Image {
            width: 64,
            height: 64,
            channels: 1,
            pixels: (0..64 * 64).map(|i| ((i % 64) * 4) as u8).collect(),
        };
        let d = grey_derivative(&grad, 32);
        assert!(d[..32].windows(2).all(|w| w[0] < w[1]));
        assert_eq!(d.len(), 1024);
    }
}
