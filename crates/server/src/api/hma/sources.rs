//! Where exchanges fetch signals from, and the parsers of their formats.
//!
//! - `sample`: python-threatexchange's example signals (16 PDQ, 2 MD5), for
//!   trying the API without an outside service.
//! - `bulwark`: another Bulwark's bank, followed over its `/v1` change feed
//!   (`GET /v1/banks/<bank>/changes?after=SEQ`), incremental by change id,
//!   with an API key stored sealed under the server's key-encryption key.
//! - `threatexchange_file`: a file at a URL in the formats python-threatexchange
//!   writes (`threatexchange dataset -P`, with or without `--csv`), re-read
//!   when it changes; signals gone from the file are removed.
//! - `ncmec`: NCMEC's hash-sharing API (`GET <base>/v2/entries?from=&to=`,
//!   XML, HTTP basic auth, paged by `<paging><next>`).
//! - `stopncii`: StopNCII's `FetchHashes` (JSON, `Ocp-Apim-Subscription-Key`
//!   and `x-functions-key` headers, paged by `nextPageToken`, checkpointed by
//!   `nextSetTimestamp`).
//!
//! Signal types are mapped to Bulwark's by [`map_signal`]: media hashes,
//! and the text and entity types where the exchange has one
//! (python-threatexchange's `url` and `raw_text`, StopNCII's `URL` and
//! `Text`, and every Bulwark name from a Bulwark leader or a Bulwark-written
//! file). A type Bulwark does not hold (`url_md5`, `trend_query`,
//! `VideoTMK`, NCMEC's SHA-1, …) is skipped and counted by its remote name
//! ([`Skipped`]), never an error; a known type with a bad value is.
//!
//! The NCMEC and StopNCII clients are written against the request and
//! response shapes their documentation publishes (as python-threatexchange's
//! clients use them) and tested with fixtures written from those shapes: the
//! parsers here, and whole fetch runs against mock servers in
//! `tests/server/hma_conformance.rs`. They have not been run against the live
//! services (no network here).

use bulwark_banks::{AnySignal, Format, Signal, SignalType, TextSignal};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Signals of types Bulwark does not hold, skipped, counted by the name
/// the exchange gave the type.
pub use bulwark_service::exchanges::Skipped;

fn skip(skipped: &mut Skipped, type_name: &str) {
    *skipped
        .entry(type_name.chars().take(40).collect())
        .or_default() += 1;
}

/// python-threatexchange's `RawTextSignal` name (StopNCII's `Text` maps to it).
pub const RAW_TEXT: &str = "raw_text";

/// A remote signal as Bulwark holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// PDQ, MD5, SHA-256.
    Media(Signal),
    /// A text hash or an entity.
    Text(TextSignal),
}

/// Maps one remote signal, by the type name its exchange uses, to
/// Bulwark's types. `Ok(None)`: a type Bulwark does not hold (to be skipped
/// and counted); `Err`: a type it holds with a value that does not parse.
///
/// | remote name | source | Bulwark type |
/// | --- | --- | --- |
/// | `pdq`, `video_md5`, `photo_md5`, `md5`, `sha256` | python-threatexchange, Bulwark | `pdq`, `md5`, `sha256` |
/// | `ImagePDQ`, `VideoMD5` | StopNCII | `pdq`, `md5` |
/// | `url` (`URLSignal`) | python-threatexchange, Bulwark | `url` (canonicalised WHATWG URL) |
/// | `URL` | StopNCII | `url` |
/// | `raw_text` (`RawTextSignal`), `Text` | python-threatexchange, StopNCII | `text_hash` of the text |
/// | `text_hash`, `phone`, `telegram_user`, `btc_address`, `domain`, … | Bulwark | the same type |
///
/// `raw_text` is the text itself (python-threatexchange matches it by edit
/// distance); Bulwark banks its near-duplicate hash, so re-posts of the
/// text match as any banked ad does. A text without words (only numbers,
/// emoji or punctuation) has no hash and is an error.
pub fn map_signal(type_name: &str, value: &str) -> Result<Option<Mapped>, String> {
    let name = match type_name.trim() {
        "ImagePDQ" => "pdq",
        "VideoMD5" => "md5",
        "URL" => "url",
        "Text" => RAW_TEXT,
        other => other,
    };
    if name == RAW_TEXT {
        return bulwark_signals::TextHash::of_text(value)
            .map(|h| Some(Mapped::Text(TextSignal::TextHash(h))))
            .ok_or_else(|| "raw_text: the text has no words to hash".to_string());
    }
    if !AnySignal::is_type_name(name) {
        return Ok(None);
    }
    match AnySignal::parse(name, value).map_err(|e| e.to_string())? {
        AnySignal::Media(s) => Ok(Some(Mapped::Media(s))),
        AnySignal::Text(t) => Ok(Some(Mapped::Text(t))),
    }
}

/// An exchange API type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Static examples.
    Sample,
    /// Another Bulwark.
    Bulwark,
    /// A python-threatexchange file at a URL.
    TeFile,
    /// NCMEC hash sharing.
    Ncmec,
    /// StopNCII.
    StopNcii,
}

/// A field of an API's configuration or credentials, as HMA's schema
/// endpoint describes it.
pub struct Field {
    /// Name.
    pub name: &'static str,
    /// `string` or `number`.
    pub kind: &'static str,
    /// Must be given.
    pub required: bool,
    /// Help text.
    pub help: &'static str,
}

const fn f(name: &'static str, kind: &'static str, required: bool, help: &'static str) -> Field {
    Field {
        name,
        kind,
        required,
        help,
    }
}

impl Api {
    /// Every API, in the order listed.
    pub const ALL: [Api; 5] = [
        Api::Sample,
        Api::Bulwark,
        Api::TeFile,
        Api::Ncmec,
        Api::StopNcii,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Api::Sample => "sample",
            Api::Bulwark => "bulwark",
            Api::TeFile => "threatexchange_file",
            Api::Ncmec => "ncmec",
            Api::StopNcii => "stopncii",
        }
    }

    /// By name.
    pub fn parse(s: &str) -> Option<Api> {
        Api::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Fields of `api_json`.
    pub fn config_fields(self) -> Vec<Field> {
        match self {
            Api::Sample => vec![],
            Api::Bulwark => vec![
                f("url", "string", true, "base URL of the Bulwark to follow"),
                f("remote_bank", "string", true, "the bank to follow there"),
                f(
                    "key",
                    "string",
                    true,
                    "an API key there with the curator role (stored sealed; never shown)",
                ),
            ],
            Api::TeFile => vec![f(
                "url",
                "string",
                true,
                "URL of a `threatexchange dataset -P` file",
            )],
            Api::Ncmec => vec![
                f(
                    "base_url",
                    "string",
                    false,
                    "default https://report.cybertip.org/hashsharing",
                ),
                f(
                    "environment",
                    "string",
                    false,
                    "HMA's NCMEC environment, by name (Industry, NGO, Exploitative, test_Industry, \
                     test_NGO, test_Exploitative) or its URL; base_url wins when both are set",
                ),
                f(
                    "only_esp_ids",
                    "number list",
                    false,
                    "only entries from these member (ESP) ids",
                ),
                f(
                    "start_ts",
                    "number",
                    false,
                    "Unix time to fetch from (default: 0)",
                ),
            ],
            Api::StopNcii => vec![
                f(
                    "base_url",
                    "string",
                    false,
                    "default https://api.stopncii.org/v1",
                ),
                f(
                    "start_ts",
                    "number",
                    false,
                    "Unix time to fetch from (default: 10)",
                ),
            ],
        }
    }

    /// Fields of `credential_json`, for the APIs that take credentials.
    pub fn credential_fields(self) -> Option<Vec<Field>> {
        match self {
            Api::Ncmec => Some(vec![
                f("user", "string", true, "NCMEC hash-sharing user name"),
                f("password", "string", true, "its password"),
            ]),
            Api::StopNcii => Some(vec![
                f(
                    "subscription_key",
                    "string",
                    true,
                    "Ocp-Apim-Subscription-Key",
                ),
                f(
                    "fetch_function_key",
                    "string",
                    true,
                    "x-functions-key for FetchHashes",
                ),
            ]),
            _ => None,
        }
    }

    /// Interval between fetches when not configured, in seconds.
    pub fn default_interval(self) -> i64 {
        match self {
            Api::Bulwark => 60,
            _ => 3600,
        }
    }
}

/// NCMEC's hash-sharing environments (python-threatexchange's
/// `NCMECEnvironment`, which HMA's NCMEC exchange config names): name, base
/// URL. The first is the default.
pub const NCMEC_ENVIRONMENTS: [(&str, &str); 6] = [
    ("Industry", "https://report.cybertip.org/hashsharing"),
    ("NGO", "https://hashsharing.ncmec.org/npo"),
    ("Exploitative", "https://hashsharing.ncmec.org/exploitative"),
    ("test_Industry", "https://exttest.cybertip.org/hashsharing"),
    ("test_NGO", "https://hashsharing-test.ncmec.org/npo"),
    (
        "test_Exploitative",
        "https://hashsharing-test.ncmec.org/exploitative",
    ),
];

/// The base URL of an NCMEC environment given by name or by URL.
pub fn ncmec_environment(s: &str) -> Option<&'static str> {
    let s = s.trim_end_matches('/');
    NCMEC_ENVIRONMENTS
        .iter()
        .find(|(n, u)| *n == s || *u == s)
        .map(|(_, u)| *u)
}

/// Schema of a list of fields, HMA's shape.
#[derive(Debug, Serialize)]
pub struct Schema {
    /// The fields.
    pub fields: Vec<FieldSchema>,
}

/// A field in HMA's schema shape (fields in sorted order, as HMA's JSON).
#[derive(Debug, Serialize)]
pub struct FieldSchema {
    /// Always null: no field has a fixed set of values.
    pub choices: Option<Vec<String>>,
    /// Always null: no field has a default.
    pub default: Option<String>,
    /// Help text.
    pub help: &'static str,
    /// Name.
    pub name: &'static str,
    /// Must be given.
    pub required: bool,
    /// `string`, `number` or `number list`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// The schema of a list of fields.
pub fn schema(fields: &[Field]) -> Schema {
    Schema {
        fields: fields
            .iter()
            .map(|x| FieldSchema {
                choices: None,
                default: None,
                help: x.help,
                name: x.name,
                required: x.required,
                kind: x.kind,
            })
            .collect(),
    }
}

/// One fetched item: a remote content (by its key) and its signals, or its
/// removal.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The remote's id for it.
    pub key: String,
    /// Its signals, with PDQ quality where known.
    pub signals: Vec<(Signal, Option<u32>)>,
    /// Its text and entity signals (issue 18; from a Bulwark leader only).
    pub text: Vec<bulwark_banks::TextSignal>,
    /// A note.
    pub note: Option<String>,
    /// Metadata (kept under `json` of HMA's metadata).
    pub metadata: Option<Value>,
    /// Removed at the remote.
    pub deleted: bool,
}

impl Item {
    fn of(key: String, signals: Vec<(Signal, Option<u32>)>) -> Item {
        Item {
            key,
            signals,
            text: Vec::new(),
            note: None,
            metadata: None,
            deleted: false,
        }
    }

    fn mapped(key: String, m: Mapped, quality: Option<u32>) -> Item {
        match m {
            Mapped::Media(s) => Item::of(key, vec![(s, quality)]),
            Mapped::Text(t) => {
                let mut it = Item::of(key, Vec::new());
                it.text.push(t);
                it
            }
        }
    }

    fn gone(key: String) -> Item {
        Item {
            key,
            signals: Vec::new(),
            text: Vec::new(),
            note: None,
            metadata: None,
            deleted: true,
        }
    }
}

/// python-threatexchange's examples (`PdqSignal.get_examples()`,
/// `VideoMD5Signal.get_examples()`): benign photos (bridge edits, misc
/// images, GitHub's logos) and the MD5 of the empty file.
pub const SAMPLE_PDQ: [&str; 16] = [
    "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
    "f8f8f0cee0f4a84f06370a2a038f63f0b36e26d596621e1d33e6b39c4e9c9b22",
    "f8f8f0cee0f4a84f0637022a038f67f0b36e26d596621e1d33e6b39c4e9c9b22",
    "f8f8f0cee0f4a84f06370a2a068f67f0b36e26d596621e1d33e6339c4e9c9b22",
    "f8f8f0cee0f4a84f06370a22038f67f0b36e2ed596221e1d33e6b39c4e9c9b22",
    "f8f8f0cee0f4a84f0e370a22038f67f0b36e2ed596221e1d33e6b39c4a9c9b22",
    "d8f8f0cec0f4a84f8e370a22038f67f0b36a2ed597231e1d72e6b39c4a9c9b22",
    "f8f8f0cee0f4a84f06370a22038f67f0b36e2ed596621e1d33e6339c4e9c9b22",
    "d0f8f1ccc0f4a84d0a370a3a228f67f0b36e2ed5b6623e1d33e6339c4e9c9b22",
    "d8f8f1eec0f4a84f0e37022a078f63f0b36e2ed596621e1d33e6239c4e9c9b22",
    "d8f8f0cec4f4a84f0637022a078f67f0b36e2ee5b6621e1d33e6239c4e9c9b22",
    "d8f8f0cec0f4a84f0637022a278f67f0b36e2ed596621e1d33e6339c4e9c9b22",
    "e64cc9d91c623882f8d1f1d9a398e78c9f199b3bd83924f2b7e11e0bf861b064",
    "6227401f601ff4ccafcc9fad4b0d95d371a2eb7265a3285234d228ca94deeb2d",
    "c186f9619659658c4b6916daf934496985f4259c72c39676ab9edb631c3c349c",
    "62c9789627838f69f23cf98c29e37836d61c87c31c59587c4b49a783f496725c",
];

/// See [`SAMPLE_PDQ`].
pub const SAMPLE_MD5: [&str; 2] = [
    "cab08b36195edb1a1231d2d09fa450e0",
    "d41d8cd98f00b204e9800998ecf8427e",
];

/// The sample exchange's items.
pub fn sample_items() -> Vec<Item> {
    let mut out = Vec::new();
    for (t, list) in [
        (SignalType::Pdq, &SAMPLE_PDQ[..]),
        (SignalType::Md5, &SAMPLE_MD5[..]),
    ] {
        for v in list {
            if let Ok(s) = t.parse(v) {
                out.push(Item::of(format!("{t}:{v}"), vec![(s, None)]));
            }
        }
    }
    out
}

/// Parses a python-threatexchange file (`dataset -P` lines, or its
/// `--csv`); the same signal from several collaborations is one item.
/// Returns the items, the rejected lines (1-based, with why) and the
/// signals skipped for their type ([`map_signal`]).
///
/// `raw_text` is read from the CSV form, where the text is one quoted
/// field; in the lines form its text cannot be told from the opinion
/// columns that follow, so such a line is skipped (counted as
/// `raw_text (lines form)`).
pub fn parse_te_file(text: &str) -> (Vec<Item>, Vec<(usize, String)>, Skipped) {
    let csv = text.lines().next().is_some_and(|l| {
        l.trim_start_matches('\u{feff}')
            .starts_with("signal_type,signal_str")
    });
    let format = if csv { Format::Csv } else { Format::Lines };
    let mut items: Vec<Item> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut rejected = Vec::new();
    let mut skipped = Skipped::new();
    for (i, line) in text.lines().enumerate() {
        let parsed = match te_line_type(line, csv) {
            Some(TeType::Unknown(t)) => {
                skip(&mut skipped, &t);
                continue;
            }
            Some(TeType::RawTextLines) => {
                skip(&mut skipped, "raw_text (lines form)");
                continue;
            }
            Some(TeType::RawTextCsv { text, rest }) => match map_signal(RAW_TEXT, &text) {
                Ok(Some(Mapped::Text(t))) => {
                    format.parse_any_line(&format!("{},{}{rest}", t.signal_type(), t.value()))
                }
                Ok(_) => Err("raw_text did not map to a text hash".to_string()),
                Err(e) => Err(e),
            },
            None => format.parse_any_line(line),
        };
        match parsed {
            Ok(None) => {}
            Ok(Some(r)) => {
                let (key, m) = match r.signal {
                    AnySignal::Media(s) => (s.to_string(), Mapped::Media(s)),
                    AnySignal::Text(t) => (t.to_string(), Mapped::Text(t)),
                };
                let key = key.replace(' ', ":");
                let opinion = r.metadata.clone().unwrap_or_else(|| json!({}));
                match index.get(&key) {
                    Some(&at) => {
                        let it: &mut Item = &mut items[at];
                        if let Some(Value::Array(a)) =
                            it.metadata.as_mut().and_then(|m| m.get_mut("opinions"))
                        {
                            a.push(opinion);
                        }
                    }
                    None => {
                        index.insert(key.clone(), items.len());
                        let mut it = Item::mapped(key, m, r.quality);
                        it.metadata = Some(json!({ "opinions": [opinion] }));
                        items.push(it);
                    }
                }
            }
            Err(e) => rejected.push((i + 1, e)),
        }
    }
    (items, rejected, skipped)
}

/// What the type column of a threatexchange file line needs beyond
/// [`Format::parse_any_line`].
enum TeType {
    /// A type Bulwark does not hold (its name).
    Unknown(String),
    /// `raw_text` in the lines form (ambiguous).
    RawTextLines,
    /// `raw_text` in the CSV form: the text, and the line after its field.
    RawTextCsv { text: String, rest: String },
}

fn te_line_type(line: &str, csv: bool) -> Option<TeType> {
    let line = line.trim_start_matches('\u{feff}').trim_end_matches('\r');
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    let ty = if csv {
        t.split(',').next().unwrap_or("").trim()
    } else {
        t.split(char::is_whitespace).next().unwrap_or("")
    };
    if ty == RAW_TEXT {
        if !csv {
            return Some(TeType::RawTextLines);
        }
        let after_type = &t[t.find(',').map_or(t.len(), |i| i + 1)..];
        let (text, rest) = csv_field(after_type);
        return Some(TeType::RawTextCsv {
            text,
            rest: rest.to_string(),
        });
    }
    // A CSV header, or a PDQ CSV row (`hash,quality,…`) in a file without the
    // threatexchange header: the list parser decides.
    let header = ["signal_type", "hash", "pdq"].contains(&ty);
    let has_value = if csv {
        t.contains(',')
    } else {
        t.split_whitespace().nth(1).is_some()
    };
    let looks_like_type = ty.starts_with(|c: char| c.is_ascii_alphabetic())
        && ty.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !ty.chars().all(|c| c.is_ascii_hexdigit());
    if AnySignal::is_type_name(ty) || header || !has_value || !looks_like_type {
        return None;
    }
    Some(TeType::Unknown(ty.to_string()))
}

/// The first field of a CSV line (RFC 4180 quoting) and what follows it
/// (from its separating comma, or empty).
fn csv_field(s: &str) -> (String, &str) {
    let Some(body) = s.strip_prefix('"') else {
        return match s.find(',') {
            Some(i) => (s[..i].to_string(), &s[i..]),
            None => (s.to_string(), ""),
        };
    };
    let mut out = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            if chars.peek().map(|&(_, n)| n) == Some('"') {
                out.push('"');
                chars.next();
            } else {
                let rest = &body[i + 1..];
                return (out, rest.find(',').map_or("", |j| &rest[j..]));
            }
        } else {
            out.push(c);
        }
    }
    (out, "")
}

/// One page of NCMEC's `GET /v2/entries`: its items, the `next` path (empty
/// at the end), the `maxTimestamp` seen (Unix seconds), and the
/// fingerprints skipped for their type (SHA-1, PhotoDNA, …).
pub fn parse_ncmec(xml: &str) -> Result<(Vec<Item>, String, Option<i64>, Skipped), String> {
    let doc =
        roxmltree::Document::parse(xml).map_err(|e| format!("NCMEC answered invalid XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "queryResult" {
        return Err(format!(
            "NCMEC answered <{}>, not <queryResult>",
            root.tag_name().name()
        ));
    }
    let mut items = Vec::new();
    let mut max_ts = None;
    let mut skipped = Skipped::new();
    for group in root.children().filter(|n| n.is_element()) {
        let gname = group.tag_name().name();
        if gname != "images" && gname != "videos" {
            continue;
        }
        if let Some(ts) = group.attribute("maxTimestamp") {
            let t = crate::db::parse_rfc3339(ts).map_err(|e| format!("NCMEC maxTimestamp: {e}"))?
                / 1000;
            max_ts = Some(max_ts.map_or(t, |m: i64| m.max(t)));
        }
        for entry in group.children().filter(|n| n.is_element()) {
            let kind = entry.tag_name().name();
            let child = |name: &str| {
                entry
                    .children()
                    .find(|n| n.tag_name().name() == name)
                    .and_then(|n| n.text())
                    .map(|t| t.trim().to_string())
            };
            let id = child("id").ok_or_else(|| format!("NCMEC <{kind}> without <id>"))?;
            let member = entry
                .children()
                .find(|n| n.tag_name().name() == "member")
                .and_then(|n| n.attribute("id"))
                .unwrap_or("");
            let key = format!("{member}-{id}");
            match kind {
                "deletedImage" | "deletedVideo" => items.push(Item::gone(key)),
                "image" | "video" => {
                    let mut signals = Vec::new();
                    if let Some(fp) = entry
                        .children()
                        .find(|n| n.tag_name().name() == "fingerprints")
                    {
                        for h in fp.children().filter(|n| n.is_element()) {
                            let t = match h.tag_name().name() {
                                "md5" => SignalType::Md5,
                                "pdq" => SignalType::Pdq,
                                // SHA-1, PhotoDNA, TMK: not Bulwark's
                                other => {
                                    skip(&mut skipped, other);
                                    continue;
                                }
                            };
                            if let Some(Ok(s)) = h.text().map(|v| t.parse(v)) {
                                signals.push((s, None));
                            }
                        }
                    }
                    let mut it = Item::of(key, signals);
                    let mut m = Map::new();
                    m.insert("ncmec_id".into(), id.into());
                    m.insert("member_id".into(), member.into());
                    if let Some(c) = child("classification") {
                        m.insert("classification".into(), c.into());
                    }
                    it.metadata = Some(Value::Object(m));
                    if it.signals.is_empty() {
                        it.deleted = true;
                    }
                    items.push(it);
                }
                _ => {}
            }
        }
    }
    let next = root
        .children()
        .find(|n| n.tag_name().name() == "paging")
        .and_then(|p| p.children().find(|n| n.tag_name().name() == "next"))
        .and_then(|n| n.text())
        .unwrap_or("")
        .trim()
        .to_string();
    Ok((items, next, max_ts, skipped))
}

/// One page of StopNCII's `FetchHashes`: its items, the next page token
/// (when `hasMoreRecords`), `nextSetTimestamp`, and the records skipped
/// for their type. `ImagePDQ`, `VideoMD5`, `URL` and `Text` are held
/// ([`map_signal`]); `VideoTMK` and `Unknown` are not.
pub fn parse_stopncii(body: &str) -> Result<(Vec<Item>, Option<String>, i64, Skipped), String> {
    let v: Value =
        serde_json::from_str(body).map_err(|e| format!("StopNCII answered invalid JSON: {e}"))?;
    let next_ts = v["nextSetTimestamp"]
        .as_i64()
        .ok_or("StopNCII's answer has no nextSetTimestamp")?;
    let more = v["hasMoreRecords"].as_bool().unwrap_or(false);
    let token = v["nextPageToken"]
        .as_str()
        .filter(|t| more && !t.is_empty())
        .map(str::to_string);
    let mut items = Vec::new();
    let mut skipped = Skipped::new();
    for r in v["hashRecords"].as_array().map_or(&[][..], Vec::as_slice) {
        let (Some(st), Some(hv)) = (r["signalType"].as_str(), r["hashValue"].as_str()) else {
            return Err("a StopNCII hash record without signalType or hashValue".into());
        };
        if !matches!(st, "ImagePDQ" | "VideoMD5" | "URL" | "Text") {
            skip(&mut skipped, st);
            continue;
        }
        // A record replaces the earlier one of the same type and hash.
        let key = if matches!(st, "ImagePDQ" | "VideoMD5") {
            format!("{st}:{}", hv.trim().to_ascii_lowercase())
        } else {
            format!("{st}:{}", hv.trim())
        };
        let gone = |v: &Value| matches!(v.as_str(), Some("Withdrawn" | "Deleted"));
        // The aggregate status, or every case withdrawn, or a CSP's feedback
        // saying so: StopNCII's client is to delete the hash.
        let cases = r["caseNumbers"].as_object();
        let withdrawn =
            gone(&r["hashStatus"]) || cases.is_some_and(|c| !c.is_empty() && c.values().all(gone));
        let feedback_deleted = r["CSPFeedbacks"]
            .as_array()
            .is_some_and(|fs| fs.iter().any(|f| gone(&f["feedbackValue"])));
        if withdrawn || feedback_deleted {
            items.push(Item::gone(key));
            continue;
        }
        let m = map_signal(st, hv)
            .map_err(|e| format!("StopNCII record: {e}"))?
            .ok_or("StopNCII record of an unmapped type")?;
        let mut it = Item::mapped(key, m, None);
        it.metadata = Some(json!({
            "hash_status": r["hashStatus"],
            "case_numbers": r["caseNumbers"],
            "last_modified": r["lastModtimestamp"],
        }));
        items.push(it);
    }
    Ok((items, token, next_ts, skipped))
}

/// One change of a Bulwark leader's `/v1/banks/<bank>/changes` page: the
/// items, `next_after`, `more`, and the signals skipped for a type this
/// node does not know (a newer leader's).
pub fn parse_bulwark_changes(v: &Value) -> Result<(Vec<Item>, i64, bool, Skipped), String> {
    let next = v["next_after"]
        .as_i64()
        .ok_or("the leader's answer has no next_after")?;
    let more = v["more"].as_bool().unwrap_or(false);
    let mut items = Vec::new();
    let mut skipped = Skipped::new();
    for c in v["changes"]
        .as_array()
        .ok_or("the leader's answer has no changes")?
    {
        let id = c["content_id"]
            .as_i64()
            .ok_or("a change without content_id")?;
        let key = id.to_string();
        if c["deleted"].as_bool().unwrap_or(false) || !c["enabled"].as_bool().unwrap_or(true) {
            items.push(Item::gone(key));
            continue;
        }
        let mut signals = Vec::new();
        let mut text = Vec::new();
        for s in c["signals"].as_array().map_or(&[][..], Vec::as_slice) {
            let (Some(t), Some(v)) = (s["signal_type"].as_str(), s["value"].as_str()) else {
                return Err("a signal without signal_type or value".into());
            };
            // Media, text or entity signals (issue 18), checked as on import.
            match map_signal(t, v)? {
                Some(Mapped::Media(m)) => {
                    let q = s["quality"].as_u64().and_then(|q| u32::try_from(q).ok());
                    signals.push((m, q));
                }
                Some(Mapped::Text(x)) => text.push(x),
                None => skip(&mut skipped, t),
            }
        }
        let mut it = Item::of(key, signals);
        it.text = text;
        it.note = c["note"].as_str().map(str::to_string);
        it.metadata = c.get("metadata").filter(|m| m.is_object()).cloned();
        if it.signals.is_empty() && it.text.is_empty() {
            it.deleted = true;
        }
        items.push(it);
    }
    Ok((items, next, more, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PDQ: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

    /// A page written from NCMEC's published `GET /v2/entries` response
    /// shape: images and videos, a deleted entry, fingerprints Bulwark does
    /// not hold, and a `next` link.
    #[test]
    fn ncmec_entries_fixture() {
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">
  <images count="3" maxTimestamp="2024-03-01T10:00:00Z">
    <image>
      <member id="7">Member Seven</member>
      <timestamp>2024-03-01T09:00:00Z</timestamp>
      <id>img-1</id>
      <classification>B1</classification>
      <fingerprints>
        <md5>0123456789abcdef0123456789abcdef</md5>
        <sha1>0123456789abcdef0123456789abcdef01234567</sha1>
        <pdq>{PDQ}</pdq>
      </fingerprints>
    </image>
    <image>
      <member id="7">Member Seven</member>
      <id>img-2</id>
      <fingerprints><sha1>0123456789abcdef0123456789abcdef01234567</sha1></fingerprints>
    </image>
    <deletedImage>
      <member id="8">Member Eight</member>
      <id>img-3</id>
      <timestamp>2024-03-01T10:00:00Z</timestamp>
    </deletedImage>
  </images>
  <videos count="1" maxTimestamp="2024-03-01T11:00:00Z">
    <video>
      <member id="7">Member Seven</member>
      <id>vid-1</id>
      <fingerprints><md5>fedcba9876543210fedcba9876543210</md5></fingerprints>
    </video>
  </videos>
  <paging><next>/v2/entries?from=2024-03-01T00%3A00%3A00.000Z&amp;to=2024-03-02T00%3A00%3A00.000Z&amp;start=1001&amp;size=1000&amp;max=2000</next></paging>
</queryResult>"#
        );
        let (items, next, max_ts, skipped) = parse_ncmec(&xml).unwrap();
        assert_eq!(skipped.get("sha1"), Some(&2), "SHA-1 skipped and counted");
        assert_eq!(items.len(), 4);
        assert_eq!(items[0].key, "7-img-1");
        assert_eq!(items[0].signals.len(), 2, "MD5 and PDQ; SHA-1 skipped");
        assert_eq!(items[0].signals[1].0.value(), PDQ);
        assert_eq!(items[0].metadata.as_ref().unwrap()["classification"], "B1");
        assert!(items[1].deleted, "no usable fingerprint: nothing to bank");
        assert!(items[2].deleted && items[2].key == "8-img-3");
        assert_eq!(items[3].signals[0].0.signal_type(), SignalType::Md5);
        assert!(next.starts_with("/v2/entries?from=") && next.contains("&start=1001"));
        assert_eq!(max_ts, Some(1_709_290_800));
        let (items, next, _, _) = parse_ncmec(
            r#"<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2"><images count="0"/><videos count="0"/></queryResult>"#,
        )
        .unwrap();
        assert!(items.is_empty() && next.is_empty());
        assert!(parse_ncmec("<status/>").is_err());
        assert!(parse_ncmec("not xml").is_err());
    }

    /// A page written from StopNCII's published `FetchHashes` response shape.
    #[test]
    fn stopncii_fetch_hashes_fixture() {
        let body = json!({
            "count": 5,
            "nextPageToken": "page-2",
            "hasMoreRecords": true,
            "nextSetTimestamp": 1_700_000_500,
            "hashRecords": [
                {"lastModtimestamp": 1_700_000_100, "signalType": "ImagePDQ", "hashValue": PDQ,
                 "caseNumbers": {"c1": "Active"}, "CSPFeedbacks": []},
                {"lastModtimestamp": 1_700_000_200, "signalType": "VideoMD5",
                 "hashValue": "0123456789abcdef0123456789abcdef", "caseNumbers": {"c2": "Received"}},
                {"lastModtimestamp": 1_700_000_300, "signalType": "ImagePDQ",
                 "hashValue": "a".repeat(64), "caseNumbers": {"c3": "Withdrawn"}},
                {"lastModtimestamp": 1_700_000_400, "signalType": "VideoTMK", "hashValue": "xyz",
                 "caseNumbers": {}},
                {"lastModtimestamp": 1_700_000_450, "signalType": "VideoMD5",
                 "hashValue": "fedcba9876543210fedcba9876543210", "hashStatus": "Deleted",
                 "caseNumbers": {"c4": "Active"}}
            ]
        })
        .to_string();
        let (items, token, ts, skipped) = parse_stopncii(&body).unwrap();
        assert_eq!(skipped.get("VideoTMK"), Some(&1));
        assert_eq!(token.as_deref(), Some("page-2"));
        assert_eq!(ts, 1_700_000_500);
        assert_eq!(items.len(), 4, "TMK skipped");
        assert_eq!(items[0].signals[0].0.value(), PDQ);
        assert_eq!(items[1].signals[0].0.signal_type(), SignalType::Md5);
        assert!(items[2].deleted, "withdrawn cases are removed");
        assert!(
            items[3].deleted && items[3].key.starts_with("VideoMD5:"),
            "a Deleted aggregate hashStatus is removed"
        );
        let last = json!({"count": 0, "hasMoreRecords": false, "nextPageToken": "ignored",
                          "nextSetTimestamp": 5, "hashRecords": []})
        .to_string();
        assert_eq!(parse_stopncii(&last).unwrap().1, None);
        assert!(parse_stopncii("{}").is_err());
        let bad = json!({"nextSetTimestamp": 1, "hashRecords": [{"signalType": "ImagePDQ", "hashValue": "zz"}]});
        assert!(parse_stopncii(&bad.to_string()).is_err());
    }

    #[test]
    fn te_file_merges_collaborations() {
        let text = format!(
            "pdq {PDQ} 'Collab A' POSITIVE_CLASS t1\npdq {PDQ} 'Collab B' DISPUTED\nurl https://example.com 'A' POSITIVE_CLASS\n\nvideo_md5 {} 'A' POSITIVE_CLASS\n",
            "ab".repeat(16)
        );
        let (items, rejected, skipped) = parse_te_file(&text);
        assert_eq!(items.len(), 3, "pdq, url (an entity now), video_md5");
        assert!(skipped.is_empty());
        assert_eq!(
            items[0].metadata.as_ref().unwrap()["opinions"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert!(rejected.is_empty(), "{rejected:?}");
        let csv = format!(
            "signal_type,signal_str,collab,category,tags\npdq,{PDQ},Collab A,POSITIVE_CLASS,t1 t2\n"
        );
        let (items, rejected, _) = parse_te_file(&csv);
        assert_eq!((items.len(), rejected.len()), (1, 0));
    }

    #[test]
    fn ncmec_environments_by_name_or_url() {
        assert_eq!(
            ncmec_environment("Industry"),
            Some("https://report.cybertip.org/hashsharing")
        );
        assert_eq!(
            ncmec_environment("https://hashsharing-test.ncmec.org/npo/"),
            Some("https://hashsharing-test.ncmec.org/npo")
        );
        assert_eq!(ncmec_environment("industry"), None);
        assert_eq!(ncmec_environment("https://evil.example/hashsharing"), None);
    }

    #[test]
    fn sample_has_every_example() {
        let s = sample_items();
        assert_eq!(s.len(), 18);
        assert!(s.iter().all(|i| i.signals.len() == 1 && !i.deleted));
    }
}
