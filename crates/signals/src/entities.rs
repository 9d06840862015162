//! Entities in ad text: phone numbers, messaging handles and invite links,
//! crypto wallet addresses, URLs and registrable domains — each found with
//! its byte span and turned into one canonical value, so that a banked value
//! matches however a re-post spells it.
//!
//! | kind | canonical value | validation |
//! | --- | --- | --- |
//! | `phone` | E.164 (`+15555550123`), also from `wa.me/`, `api.whatsapp.com/send?phone=`, `t.me/+<number>`, `signal.me/#p/` | libphonenumber metadata (`phonenumber` crate): a valid number for its region |
//! | `whatsapp_invite` | the code of `chat.whatsapp.com/<code>` (case kept) | 16–32 letters/digits |
//! | `telegram_user` | `t.me/<name>` user or channel name, lower case | Telegram's rule: 5–32 of `[a-z0-9_]`, starting with a letter |
//! | `telegram_invite` | the code of `t.me/joinchat/<code>` or `t.me/+<code>` (case kept) | 16–32 of `[A-Za-z0-9_-]` |
//! | `signal_link` | the fragment of a `signal.me/#eu/…` username link (case kept) | non-empty |
//! | `signal_group` | the fragment of `signal.group/#…` (case kept) | non-empty |
//! | `handle` | a bare `@name`, lower case (platform unknown) | Telegram's username rule |
//! | `btc_address` | as written (base58) or lower case (bech32) | Base58Check (version 0x00/0x05, or testnet 0x6f/0xc4), or BIP-173 bech32 (witness v0) / BIP-350 bech32m (v1+) via the `bech32` crate |
//! | `eth_address` | `0x` + 40 lower-case hex digits | EIP-55 mixed-case checksum (Keccak-256 from `sha3`) when the address is mixed case; all-lower/all-upper addresses carry no checksum and are kept, marked `checksum: false` |
//! | `tron_address` | as written | Base58Check, version 0x41 |
//! | `xmr_address` | as written | Monero base58 (`base58-monero` crate), a known network byte (main/test/stage net; standard, subaddress or integrated), and the 4-byte Keccak-256 checksum (`sha3`) |
//! | `url` | WHATWG-parsed URL (`url` crate): lower-case host, IDNA → punycode, no fragment, no `utm_*`/`fbclid`/`gclid` | parses |
//! | `domain` | the registrable domain of a URL's host (eTLD+1, Public Suffix List embedded by the `psl` crate) | the host has a public suffix |
//!
//! Links of messaging services give their own entity and no `url`/`domain`
//! (everybody shares `t.me`, so that domain would match every Telegram ad).

use std::ops::Range;
use std::str::FromStr;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};

use crate::Error;
use crate::normalize::digit_value;

/// A kind of entity (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A phone number, E.164.
    Phone,
    /// A WhatsApp group invite code.
    WhatsappInvite,
    /// A Telegram user or channel name.
    TelegramUser,
    /// A Telegram group invite code.
    TelegramInvite,
    /// A Signal username link (`signal.me/#eu/…`).
    SignalLink,
    /// A Signal group link (`signal.group/#…`).
    SignalGroup,
    /// A bare `@name` handle, platform unknown.
    Handle,
    /// A Bitcoin address.
    BtcAddress,
    /// An Ethereum address.
    EthAddress,
    /// A TRON address.
    TronAddress,
    /// A Monero address (standard, subaddress or integrated).
    XmrAddress,
    /// A URL.
    Url,
    /// A registrable domain.
    Domain,
}

impl EntityKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EntityKind; 13] = [
        EntityKind::Phone,
        EntityKind::WhatsappInvite,
        EntityKind::TelegramUser,
        EntityKind::TelegramInvite,
        EntityKind::SignalLink,
        EntityKind::SignalGroup,
        EntityKind::Handle,
        EntityKind::BtcAddress,
        EntityKind::EthAddress,
        EntityKind::TronAddress,
        EntityKind::XmrAddress,
        EntityKind::Url,
        EntityKind::Domain,
    ];

    /// The wire name (`phone`, `telegram_user`, …).
    pub fn name(self) -> &'static str {
        match self {
            EntityKind::Phone => "phone",
            EntityKind::WhatsappInvite => "whatsapp_invite",
            EntityKind::TelegramUser => "telegram_user",
            EntityKind::TelegramInvite => "telegram_invite",
            EntityKind::SignalLink => "signal_link",
            EntityKind::SignalGroup => "signal_group",
            EntityKind::Handle => "handle",
            EntityKind::BtcAddress => "btc_address",
            EntityKind::EthAddress => "eth_address",
            EntityKind::TronAddress => "tron_address",
            EntityKind::XmrAddress => "xmr_address",
            EntityKind::Url => "url",
            EntityKind::Domain => "domain",
        }
    }

    /// Checks and canonicalises a value given on its own (a list entry), the
    /// same way extraction does: `+44 7700 900123` → `+447700900123`,
    /// `HTTPS://Example.COM/a#x` → `https://example.com/a`, a wallet with a
    /// bad checksum → error.
    pub fn canonicalize(self, value: &str) -> Result<String, Error> {
        let v = value.trim();
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "{} value {:?}: {why}",
                self.name(),
                v.chars().take(80).collect::<String>()
            ))
        };
        let ok = match self {
            EntityKind::Phone => phone_e164(v, None),
            EntityKind::WhatsappInvite => invite_code(v, false),
            EntityKind::TelegramInvite => invite_code(v, true),
            EntityKind::TelegramUser | EntityKind::Handle => {
                telegram_name(v.trim_start_matches('@'))
            }
            EntityKind::SignalLink | EntityKind::SignalGroup => {
                (!v.is_empty() && !v.contains(char::is_whitespace)).then(|| v.to_string())
            }
            EntityKind::BtcAddress => btc_address(v),
            EntityKind::EthAddress => eth_address(v).map(|(a, _)| a),
            EntityKind::TronAddress => tron_address(v),
            EntityKind::XmrAddress => xmr_address(v).map(|a| a.address),
            EntityKind::Url => canonical_url(v).map(|(u, _)| u),
            EntityKind::Domain => registrable_domain(&v.to_ascii_lowercase()),
        };
        ok.ok_or_else(|| bad("not a valid value of this kind"))
    }
}

impl std::fmt::Display for EntityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EntityKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        EntityKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown entity kind {s:?} (expected one of: {})",
                    EntityKind::ALL.map(|k| k.name()).join(", ")
                ))
            })
    }
}

/// One entity found in a text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entity {
    /// What it is.
    pub kind: EntityKind,
    /// Its canonical value.
    pub value: String,
    /// Byte span in the text.
    pub span: Range<usize>,
    /// For Ethereum: whether an EIP-55 checksum was present and verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<bool>,
}

/// Options for [`extract`].
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// The region whose national format numbers without `+` are read in
    /// (CLDR id such as `US`, `GB`, `IT`, `IQ`); `None` reads only
    /// international numbers.
    pub default_region: Option<phonenumber::country::Id>,
    /// The text's declared languages (BCP 47 tags), which choose the rule
    /// banks that run on it ([`crate::RuleBank::applies_to`]); empty: chosen
    /// by the scripts in the text.
    pub languages: Vec<String>,
}

impl ExtractOptions {
    /// Options with a default region, from its CLDR id (`GB`, `IT`…).
    pub fn with_region(region: &str) -> Result<ExtractOptions, Error> {
        let id = phonenumber::country::Id::from_str(&region.trim().to_ascii_uppercase()).map_err(
            |_| Error::InvalidInput(format!("unknown region {region:?} (CLDR id like GB)")),
        )?;
        Ok(ExtractOptions {
            default_region: Some(id),
            languages: Vec::new(),
        })
    }
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("built-in pattern compiles"))
}

fn messenger_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(
        &R,
        r"(?i)\b(?:https?://)?(?:www\.)?(wa\.me|api\.whatsapp\.com|chat\.whatsapp\.com|t\.me|telegram\.me|telegram\.dog|signal\.me|signal\.group)/[^\s<>\x22']*",
    )
}

fn url_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(
        &R,
        r"(?i)\bhttps?://[^\s<>\x22'\[\]{}]+|\b(?:www\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\b(?:/[^\s<>\x22'\[\]{}]*)?",
    )
}

fn phone_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"(?:\+|\b)\(?\d(?:[ \t.\-()/]{0,2}\d){6,16}")
}

fn handle_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"@[A-Za-z][A-Za-z0-9_]{4,31}\b")
}

fn btc58_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"\b[13mn2][1-9A-HJ-NP-Za-km-z]{25,34}\b")
}

fn bech32_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"(?i)\b(?:bc|tb)1[ac-hj-np-z02-9]{8,87}\b")
}

fn eth_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"\b0x[0-9a-fA-F]{40}\b")
}

fn xmr_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    // 95 characters (69 bytes: standard and subaddress) or 106 (77 bytes:
    // integrated), of Monero's base58 alphabet (Bitcoin's).
    re(
        &R,
        r"\b[1-9A-HJ-NP-Za-km-z]{95}(?:[1-9A-HJ-NP-Za-km-z]{11})?\b",
    )
}

fn tron_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"\bT[1-9A-HJ-NP-Za-km-z]{33}\b")
}

/// Parses a phone number to E.164, `None` unless libphonenumber says it is
/// valid. `00` and `+` both start an international number.
pub fn phone_e164(text: &str, region: Option<phonenumber::country::Id>) -> Option<String> {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        if let Some(d) = digit_value(c) {
            s.push(char::from_digit(d, 10)?);
        } else if c == '+' && s.is_empty() {
            s.push('+');
        }
    }
    if let Some(rest) = s.strip_prefix("00") {
        s = format!("+{rest}");
    }
    let digits = s.trim_start_matches('+').len();
    if !(7..=15).contains(&digits) {
        return None;
    }
    let region = if s.starts_with('+') {
        None
    } else {
        Some(region?)
    };
    let n = phonenumber::parse(region, &s).ok()?;
    if !phonenumber::is_valid(&n) {
        return None;
    }
    Some(n.format().mode(phonenumber::Mode::E164).to_string())
}

fn telegram_name(s: &str) -> Option<String> {
    let ok = (5..=32).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then(|| s.to_ascii_lowercase())
}

fn invite_code(s: &str, dashes: bool) -> Option<String> {
    let ok = (16..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || (dashes && (b == b'_' || b == b'-')));
    ok.then(|| s.to_string())
}

fn base58check(s: &str) -> Option<Vec<u8>> {
    bs58::decode(s).with_check(None).into_vec().ok()
}

/// A Bitcoin address, checksum-validated: Base58Check P2PKH/P2SH (main and
/// test net) or segwit bech32/bech32m.
pub fn btc_address(s: &str) -> Option<String> {
    if s.len() >= 14 && (s[..3].eq_ignore_ascii_case("bc1") || s[..3].eq_ignore_ascii_case("tb1")) {
        // Mixed case is invalid in bech32.
        if s.chars().any(|c| c.is_ascii_lowercase()) && s.chars().any(|c| c.is_ascii_uppercase()) {
            return None;
        }
        let (hrp, _version, _program) = bech32::segwit::decode(s).ok()?;
        let h = hrp.to_lowercase();
        return (h == "bc" || h == "tb").then(|| s.to_ascii_lowercase());
    }
    let raw = base58check(s)?;
    (raw.len() == 21 && matches!(raw[0], 0x00 | 0x05 | 0x6f | 0xc4)).then(|| s.to_string())
}

/// A TRON address: Base58Check with version byte 0x41.
pub fn tron_address(s: &str) -> Option<String> {
    let raw = base58check(s)?;
    (raw.len() == 21 && raw[0] == 0x41).then(|| s.to_string())
}

/// What a Monero address holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmrAddress {
    /// The address as written (its canonical value).
    pub address: String,
    /// `mainnet`, `testnet` or `stagenet`.
    pub network: &'static str,
    /// `standard`, `subaddress` or `integrated`.
    pub kind: &'static str,
    /// The public spend key.
    pub spend_key: [u8; 32],
    /// The public view key.
    pub view_key: [u8; 32],
    /// The payment id of an integrated address.
    pub payment_id: Option<[u8; 8]>,
}

/// A Monero address, checked: Monero's block base58 (decoded by the
/// `base58-monero` crate), a network byte Monero defines
/// (`cryptonote_config.h`: 18/42/19 main net, 53/63/54 test net, 24/36/25
/// stage net — standard, subaddress, integrated), the length that byte
/// calls for, and the checksum: the first 4 bytes of Keccak-256 (`sha3`) of
/// everything before it.
pub fn xmr_address(s: &str) -> Option<XmrAddress> {
    if !(s.len() == 95 || s.len() == 106) {
        return None;
    }
    let raw = base58_monero::decode(s).ok()?;
    let (network, kind) = match raw.first()? {
        18 => ("mainnet", "standard"),
        42 => ("mainnet", "subaddress"),
        19 => ("mainnet", "integrated"),
        53 => ("testnet", "standard"),
        63 => ("testnet", "subaddress"),
        54 => ("testnet", "integrated"),
        24 => ("stagenet", "standard"),
        36 => ("stagenet", "subaddress"),
        25 => ("stagenet", "integrated"),
        _ => return None,
    };
    let want = if kind == "integrated" { 77 } else { 69 };
    if raw.len() != want {
        return None;
    }
    let (body, check) = raw.split_at(want - 4);
    if Keccak256::digest(body)[..4] != *check {
        return None;
    }
    let mut spend_key = [0u8; 32];
    let mut view_key = [0u8; 32];
    spend_key.copy_from_slice(&body[1..33]);
    view_key.copy_from_slice(&body[33..65]);
    let payment_id = (kind == "integrated").then(|| {
        let mut p = [0u8; 8];
        p.copy_from_slice(&body[65..73]);
        p
    });
    Some(XmrAddress {
        address: s.to_string(),
        network,
        kind,
        spend_key,
        view_key,
        payment_id,
    })
}

/// An Ethereum address: `(lower-case canonical, checksummed)`; `None` when it
/// is mixed case and the EIP-55 checksum fails.
pub fn eth_address(s: &str) -> Option<(String, bool)> {
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let lower = hex.to_ascii_lowercase();
    let mixed =
        hex.bytes().any(|b| b.is_ascii_lowercase()) && hex.bytes().any(|b| b.is_ascii_uppercase());
    if mixed && eip55(&lower) != hex {
        return None;
    }
    Some((format!("0x{lower}"), mixed))
}

/// The EIP-55 checksummed spelling of 40 lower-case hex digits.
pub fn eip55(lower_hex: &str) -> String {
    let digest = Keccak256::digest(lower_hex.as_bytes());
    lower_hex
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let nibble = (digest[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0xf;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// The registrable domain (eTLD+1) of a lower-case ASCII host, by the Public
/// Suffix List; `None` for IP addresses and bare public suffixes.
pub fn registrable_domain(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.');
    if host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let d = psl::domain(host.as_bytes())?;
    if !d.suffix().is_known() {
        return None;
    }
    std::str::from_utf8(d.as_bytes()).ok().map(str::to_string)
}

/// Canonical URL and its host, `None` if it does not parse or has no host.
pub fn canonical_url(s: &str) -> Option<(String, String)> {
    let with_scheme = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    let mut u = url::Url::parse(&with_scheme).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let host = u.host_str()?.to_string();
    u.set_fragment(None);
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            !(k.starts_with("utm_") || k == "fbclid" || k == "gclid")
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(kept);
    }
    Some((u.to_string(), host))
}

fn trim_trailing(text: &str, m: Range<usize>) -> Range<usize> {
    let s = &text[m.clone()];
    let t = s.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '\'', '"']);
    m.start..m.start + t.len()
}

fn overlaps(taken: &[Range<usize>], r: &Range<usize>) -> bool {
    taken.iter().any(|t| t.start < r.end && r.start < t.end)
}

fn messenger_entity(text: &str, host: &str, m: Range<usize>) -> Option<(EntityKind, String)> {
    let raw = &text[m];
    let full = url::Url::parse(&if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    })
    .ok()?;
    let mut segs = full.path_segments()?.filter(|s| !s.is_empty());
    let first = segs.next();
    match host {
        "wa.me" => phone_e164(&format!("+{}", first?), None).map(|p| (EntityKind::Phone, p)),
        "api.whatsapp.com" => {
            let phone = full
                .query_pairs()
                .find(|(k, _)| k == "phone")?
                .1
                .into_owned();
            phone_e164(&format!("+{}", phone.trim_start_matches('+')), None)
                .map(|p| (EntityKind::Phone, p))
        }
        "chat.whatsapp.com" => invite_code(first?, false).map(|c| (EntityKind::WhatsappInvite, c)),
        "t.me" | "telegram.me" | "telegram.dog" => {
            let first = first?;
            if first.eq_ignore_ascii_case("joinchat") {
                return invite_code(segs.next()?, true).map(|c| (EntityKind::TelegramInvite, c));
            }
            if let Some(code) = first.strip_prefix('+') {
                if code.bytes().all(|b| b.is_ascii_digit()) {
                    return phone_e164(first, None).map(|p| (EntityKind::Phone, p));
                }
                return invite_code(code, true).map(|c| (EntityKind::TelegramInvite, c));
            }
            let name = if first == "s" { segs.next()? } else { first };
            const RESERVED: [&str; 12] = [
                "addstickers",
                "share",
                "c",
                "proxy",
                "socks",
                "iv",
                "login",
                "setlanguage",
                "addtheme",
                "bg",
                "confirmphone",
                "addemoji",
            ];
            if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
                return None;
            }
            telegram_name(name).map(|n| (EntityKind::TelegramUser, n))
        }
        "signal.me" => {
            let frag = full.fragment()?;
            if let Some(p) = frag.strip_prefix("p/") {
                return phone_e164(p, None).map(|p| (EntityKind::Phone, p));
            }
            let v = frag.strip_prefix("eu/").unwrap_or(frag);
            (!v.is_empty()).then(|| (EntityKind::SignalLink, v.to_string()))
        }
        "signal.group" => {
            let frag = full.fragment()?;
            (!frag.is_empty()).then(|| (EntityKind::SignalGroup, frag.to_string()))
        }
        _ => None,
    }
}

/// Finds every entity in `text`, each once per distinct (kind, value), in
/// order of first appearance.
pub fn extract(text: &str, opts: &ExtractOptions) -> Vec<Entity> {
    let mut out: Vec<Entity> = Vec::new();
    let mut taken: Vec<Range<usize>> = Vec::new();
    let push = |out: &mut Vec<Entity>, e: Entity| {
        if !out.iter().any(|x| x.kind == e.kind && x.value == e.value) {
            out.push(e);
        }
    };
    // Messaging links first: they own their span.
    for c in messenger_re().captures_iter(text) {
        let (Some(m), Some(h)) = (c.get(0), c.get(1)) else {
            continue;
        };
        let span = trim_trailing(text, m.range());
        taken.push(span.clone());
        if let Some((kind, value)) =
            messenger_entity(text, &h.as_str().to_ascii_lowercase(), span.clone())
        {
            push(
                &mut out,
                Entity {
                    kind,
                    value,
                    span,
                    checksum: None,
                },
            );
        }
    }
    // Wallets.
    for m in eth_re().find_iter(text) {
        if let Some((value, checked)) = eth_address(m.as_str()) {
            taken.push(m.range());
            push(
                &mut out,
                Entity {
                    kind: EntityKind::EthAddress,
                    value,
                    span: m.range(),
                    checksum: Some(checked),
                },
            );
        }
    }
    for m in bech32_re()
        .find_iter(text)
        .chain(btc58_re().find_iter(text))
    {
        if overlaps(&taken, &m.range()) {
            continue;
        }
        if let Some(value) = btc_address(m.as_str()) {
            taken.push(m.range());
            push(
                &mut out,
                Entity {
                    kind: EntityKind::BtcAddress,
                    value,
                    span: m.range(),
                    checksum: Some(true),
                },
            );
        }
    }
    for m in xmr_re().find_iter(text) {
        if overlaps(&taken, &m.range()) {
            continue;
        }
        if let Some(a) = xmr_address(m.as_str()) {
            taken.push(m.range());
            push(
                &mut out,
                Entity {
                    kind: EntityKind::XmrAddress,
                    value: a.address,
                    span: m.range(),
                    checksum: Some(true),
                },
            );
        }
    }
    for m in tron_re().find_iter(text) {
        if overlaps(&taken, &m.range()) {
            continue;
        }
        if let Some(value) = tron_address(m.as_str()) {
            taken.push(m.range());
            push(
                &mut out,
                Entity {
                    kind: EntityKind::TronAddress,
                    value,
                    span: m.range(),
                    checksum: Some(true),
                },
            );
        }
    }
    // URLs and domains.
    for m in url_re().find_iter(text) {
        let span = trim_trailing(text, m.range());
        if overlaps(&taken, &span) || span.is_empty() {
            continue;
        }
        // An e-mail address is not a URL.
        if text[..span.start].ends_with('@') {
            continue;
        }
        let raw = &text[span.clone()];
        let explicit = raw.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("http"));
        let Some((value, host)) = canonical_url(raw) else {
            continue;
        };
        let domain = registrable_domain(&host);
        if !explicit && domain.is_none() {
            continue; // `file.txt`, `e.g`: not a known public suffix
        }
        taken.push(span.clone());
        push(
            &mut out,
            Entity {
                kind: EntityKind::Url,
                value,
                span: span.clone(),
                checksum: None,
            },
        );
        if let Some(d) = domain {
            push(
                &mut out,
                Entity {
                    kind: EntityKind::Domain,
                    value: d,
                    span,
                    checksum: None,
                },
            );
        }
    }
    // Handles (not e-mail addresses).
    for m in handle_re().find_iter(text) {
        let before = text[..m.start()].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '.' || c == '_')
            || overlaps(&taken, &m.range())
        {
            continue;
        }
        if let Some(v) = telegram_name(&m.as_str()[1..]) {
            taken.push(m.range());
            push(
                &mut out,
                Entity {
                    kind: EntityKind::Handle,
                    value: v,
                    span: m.range(),
                    checksum: None,
                },
            );
        }
    }
    // Phone numbers, outside everything above.
    for m in phone_re().find_iter(text) {
        let mut span = m.range();
        // Trim separators the pattern may have eaten at the ends.
        while span.start < span.end
            && !text[span.start..]
                .starts_with(|c: char| c == '+' || c == '(' || digit_value(c).is_some())
        {
            span.start += text[span.start..].chars().next().map_or(1, char::len_utf8);
        }
        let before = text[..span.start].chars().next_back();
        let after = text[span.end..].chars().next();
        if before.is_some_and(|c| c.is_alphanumeric())
            || after.is_some_and(|c| c.is_alphanumeric())
            || overlaps(&taken, &span)
        {
            continue;
        }
        if let Some(value) = phone_e164(&text[span.clone()], opts.default_region) {
            push(
                &mut out,
                Entity {
                    kind: EntityKind::Phone,
                    value,
                    span,
                    checksum: None,
                },
            );
        }
    }
    out.sort_by_key(|e| e.span.start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str, kind: EntityKind) -> Vec<String> {
        extract(text, &ExtractOptions::with_region("US").unwrap())
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.value)
            .collect()
    }

    #[test]
    fn phones_in_every_spelling_become_one_e164() {
        // Fictional ranges: NANP 555-01xx, Ofcom's drama mobile range 07700 900xxx.
        let want = vec!["+12015550123".to_string()];
        assert_eq!(one("call (201) 555-0123 now", EntityKind::Phone), want);
        assert_eq!(one("call +1 201.555.0123", EntityKind::Phone), want);
        assert_eq!(one("call 001 201 555 0123", EntityKind::Phone), want);
        assert_eq!(one("wa.me/12015550123", EntityKind::Phone), want);
        assert_eq!(
            one(
                "https://api.whatsapp.com/send?phone=12015550123",
                EntityKind::Phone
            ),
            want
        );
        assert_eq!(one("signal.me/#p/+12015550123", EntityKind::Phone), want);
        assert_eq!(one("t.me/+12015550123", EntityKind::Phone), want);
        // Arabic-Indic digits; Ofcom's London drama range 020 7946 0xxx.
        assert_eq!(
            one("اتصل +٤٤ ٢٠ ٧٩٤٦ ٠١٢٣", EntityKind::Phone),
            vec!["+442079460123"]
        );
        assert_eq!(
            one("+44 20 7946 0123", EntityKind::Phone),
            vec!["+442079460123"]
        );
        // ACMA's fictional mobile range 0491 570 xxx.
        assert_eq!(
            one("+61 491 570 006", EntityKind::Phone),
            vec!["+61491570006"]
        );
        // libphonenumber's metadata leaves out Ofcom's drama *mobile* range
        // 07700 900xxx, so it is not a valid number: not extracted.
        assert!(one("+44 7700 900123", EntityKind::Phone).is_empty());
        // Not phone numbers: too short, an invalid country code, a year range.
        assert!(one("price 1200 eur, 2019-2020", EntityKind::Phone).is_empty());
        assert!(one("+999 1234 5678", EntityKind::Phone).is_empty());
    }

    #[test]
    fn messenger_links_and_handles() {
        let t = "Join t.me/joinchat/AAAAAEkdJ6fExampleCode or https://t.me/+AbCdEfGhIjKlMnOp12 \
                 or chat.whatsapp.com/AbCdEfGhIjKlMnOpQrStUv, ask @Kitten_Friends or t.me/Kitten_Shop. \
                 mail me at someone@example.com; signal.group/#CjQKIExample; signal.me/#eu/Xyz123";
        let es = extract(t, &ExtractOptions::default());
        let got: Vec<(EntityKind, &str)> = es.iter().map(|e| (e.kind, e.value.as_str())).collect();
        assert!(got.contains(&(EntityKind::TelegramInvite, "AAAAAEkdJ6fExampleCode")));
        assert!(got.contains(&(EntityKind::TelegramInvite, "AbCdEfGhIjKlMnOp12")));
        assert!(got.contains(&(EntityKind::WhatsappInvite, "AbCdEfGhIjKlMnOpQrStUv")));
        assert!(got.contains(&(EntityKind::Handle, "kitten_friends")));
        assert!(got.contains(&(EntityKind::TelegramUser, "kitten_shop")));
        assert!(got.contains(&(EntityKind::SignalGroup, "CjQKIExample")));
        assert!(got.contains(&(EntityKind::SignalLink, "Xyz123")));
        assert!(
            !got.iter()
                .any(|(_, v)| v.contains("someone") || *v == "example")
        ); // e-mail is neither handle nor URL
        assert!(
            !got.iter()
                .any(|(k, v)| *k == EntityKind::Domain && *v == "t.me")
        );
        for e in &es {
            assert!(!t[e.span.clone()].is_empty());
        }
    }

    #[test]
    fn bitcoin_base58check_and_bech32_test_vectors() {
        // Valid: the genesis-block P2PKH address; BIP-173 and BIP-350 vectors.
        for a in [
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
            "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
            "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        ] {
            assert!(btc_address(a).is_some(), "{a}");
            assert_eq!(
                one(&format!("pay to {a} thanks"), EntityKind::BtcAddress).len(),
                1,
                "{a}"
            );
        }
        // Invalid: one character changed (base58 checksum); BIP-350's invalid
        // list: bech32m checksum on v0, bech32 checksum on v1, mixed case.
        for a in [
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb",
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3T4",
        ] {
            assert!(btc_address(a).is_none(), "{a}");
            assert!(
                one(&format!("pay to {a} thanks"), EntityKind::BtcAddress).is_empty(),
                "{a}"
            );
        }
    }

    #[test]
    fn ethereum_eip55_test_vectors() {
        // The EIP-55 specification's examples.
        for a in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let lower = format!("0x{}", a[2..].to_ascii_lowercase());
            assert_eq!(eip55(&lower[2..]), a[2..]);
            assert_eq!(eth_address(a), Some((lower.clone(), true)));
            // One flipped letter case breaks the checksum.
            let i = a[2..].find(|c: char| c.is_ascii_alphabetic()).unwrap() + 2;
            let mut flipped = a.to_string();
            let c = a.as_bytes()[i] as char;
            let swapped = if c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            };
            flipped.replace_range(i..i + 1, &swapped.to_string());
            assert_eq!(eth_address(&flipped), None, "{flipped}");
            // All lower case carries no checksum: kept, marked unchecked.
            assert_eq!(eth_address(&lower), Some((lower.clone(), false)));
        }
    }

    #[test]
    fn tron_base58check() {
        // A TRON address built from a known payload through bs58's own check
        // encoder: the decoder is tested against an independent encoder.
        let mut payload = vec![0x41u8];
        payload.extend([7u8; 20]);
        let addr = bs58::encode(&payload).with_check().into_string();
        assert!(addr.starts_with('T'));
        assert_eq!(tron_address(&addr), Some(addr.clone()));
        assert_eq!(
            one(&format!("usdt {addr}"), EntityKind::TronAddress),
            vec![addr.clone()]
        );
        let mut bad = addr.clone();
        bad.pop();
        bad.push(if addr.ends_with('a') { 'b' } else { 'a' });
        assert_eq!(tron_address(&bad), None);
    }

    /// Published examples: monerodocs.org's standard-address and
    /// integrated-address pages (the integrated one embeds the same keys),
    /// and the Monero General Fund's donation address on getmonero.org.
    const XMR_DOCS_STANDARD: &str = "4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge";
    const XMR_DOCS_INTEGRATED: &str = "4LL9oSLmtpccfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2bYXZKKQePHES9khPK";
    const XMR_GENERAL_FUND: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";

    #[test]
    fn monero_published_addresses() {
        let s = xmr_address(XMR_DOCS_STANDARD).unwrap();
        assert_eq!(
            (s.network, s.kind, s.payment_id),
            ("mainnet", "standard", None)
        );
        let i = xmr_address(XMR_DOCS_INTEGRATED).unwrap();
        assert_eq!((i.network, i.kind), ("mainnet", "integrated"));
        assert!(i.payment_id.is_some());
        assert_eq!(
            (i.spend_key, i.view_key),
            (s.spend_key, s.view_key),
            "the docs' integrated address is built on the standard one's keys"
        );
        let g = xmr_address(XMR_GENERAL_FUND).unwrap();
        assert_eq!((g.network, g.kind), ("mainnet", "standard"));
        // In text, with the other wallets' extraction around it.
        let t = format!("donate: {XMR_GENERAL_FUND}, or {XMR_DOCS_INTEGRATED}.");
        assert_eq!(
            one(&t, EntityKind::XmrAddress),
            vec![
                XMR_GENERAL_FUND.to_string(),
                XMR_DOCS_INTEGRATED.to_string()
            ]
        );
        assert!(one(&t, EntityKind::BtcAddress).is_empty());
        assert!(one(&t, EntityKind::TronAddress).is_empty());
        assert_eq!(
            EntityKind::XmrAddress.canonicalize(&format!(" {XMR_DOCS_STANDARD} ")),
            Ok(XMR_DOCS_STANDARD.to_string())
        );
    }

    #[test]
    fn monero_corrupted_addresses_fail_the_checksum() {
        for good in [XMR_DOCS_STANDARD, XMR_DOCS_INTEGRATED, XMR_GENERAL_FUND] {
            // Every single-character change in the body: the Keccak checksum
            // (or the base58 block decoding) must refuse each.
            for pos in [1, 10, 40, 80, good.len() - 12] {
                let mut b = good.as_bytes().to_vec();
                b[pos] = if b[pos] == b'2' { b'3' } else { b'2' };
                let bad = String::from_utf8(b).unwrap();
                assert_eq!(xmr_address(&bad), None, "{bad}");
                assert!(EntityKind::XmrAddress.canonicalize(&bad).is_err());
            }
            // Truncated or extended.
            assert_eq!(xmr_address(&good[..good.len() - 1]), None);
            assert_eq!(xmr_address(&format!("{good}1")), None);
        }
        // A valid Bitcoin address is not a Monero one.
        assert_eq!(xmr_address("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"), None);
    }

    #[test]
    fn urls_and_registrable_domains() {
        let t = "See HTTPS://Shop.Example.CO.UK/Cats?utm_source=x&id=3#top, also www.example.com/a. and notes.txt";
        let urls = one(t, EntityKind::Url);
        assert_eq!(
            urls,
            vec![
                "https://shop.example.co.uk/Cats?id=3",
                "http://www.example.com/a"
            ]
        );
        assert_eq!(
            one(t, EntityKind::Domain),
            vec!["example.co.uk", "example.com"]
        );
        // IDNA: a Unicode host becomes punycode.
        assert_eq!(
            one("http://bücher.example/x", EntityKind::Url),
            vec!["http://xn--bcher-kva.example/x"]
        );
        assert_eq!(
            registrable_domain("a.b.example.github.io").as_deref(),
            Some("example.github.io")
        );
        assert_eq!(registrable_domain("co.uk"), None);
        assert_eq!(registrable_domain("127.0.0.1"), None);
    }

    #[test]
    fn canonicalize_checks_list_values() {
        assert_eq!(
            EntityKind::Phone.canonicalize("+44 20 7946 0123").unwrap(),
            "+442079460123"
        );
        assert!(EntityKind::Phone.canonicalize("12345").is_err());
        assert_eq!(
            EntityKind::TelegramUser
                .canonicalize("@Kitten_Shop")
                .unwrap(),
            "kitten_shop"
        );
        assert!(
            EntityKind::BtcAddress
                .canonicalize("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb")
                .is_err()
        );
        assert_eq!(
            EntityKind::Domain
                .canonicalize("Shop.Example.co.uk")
                .unwrap(),
            "example.co.uk"
        );
        for k in EntityKind::ALL {
            assert_eq!(k.name().parse::<EntityKind>().unwrap(), k);
        }
    }
}
