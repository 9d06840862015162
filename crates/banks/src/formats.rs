//! Hash-list formats, one record per line.

use std::io::{self, Write};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{AnySignal, Signal, SignalType, TextSignalType};

/// A list format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// python-threatexchange's lines: `pdq HASH` (also `md5 HEX`, `sha256 HEX`);
    /// blank lines and `#` comments are skipped.
    Lines,
    /// CSV of PDQ hashes: `hash,quality,...`; a first row starting with
    /// `hash` is a header; columns after quality are kept as metadata.
    Csv,
    /// JSON lines: `{"signal_type":"pdq","signal":HEX,"quality":N,"note":..,"metadata":{..}}`.
    JsonLines,
}

/// One record of a list; `Record` (of a media [`Signal`]) unless said otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<S = Signal> {
    /// The signal.
    pub signal: S,
    /// PDQ quality (0–100), where the list gives it.
    pub quality: Option<u32>,
    /// A free-text note.
    pub note: Option<String>,
    /// Anything else the list carried, as JSON.
    pub metadata: Option<serde_json::Value>,
}

/// A record of a list that may hold text and entity signals as well as media hashes.
pub type AnyRecord = Record<AnySignal>;

impl<S> Record<S> {
    /// A record with only a signal.
    pub fn new(signal: S) -> Record<S> {
        Record {
            signal,
            quality: None,
            note: None,
            metadata: None,
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lines" | "txt" | "te" => Ok(Format::Lines),
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" | "json" => Ok(Format::JsonLines),
            _ => Err(format!(
                "unknown list format {s:?} (expected lines, csv or jsonl)"
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRecord {
    #[serde(default)]
    signal_type: Option<String>,
    #[serde(alias = "hash")]
    signal: String,
    #[serde(default)]
    quality: Option<u32>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct JsonRecordOut<'a> {
    signal_type: &'static str,
    signal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a serde_json::Value>,
}

fn check_quality(q: Option<u32>) -> Result<Option<u32>, String> {
    match q {
        Some(q) if q > 100 => Err(format!("quality {q} is out of range 0..=100")),
        q => Ok(q),
    }
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 3] = [Format::Lines, Format::Csv, Format::JsonLines];

    /// The format's name (`lines`, `csv`, `jsonl`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Lines => "lines",
            Format::Csv => "csv",
            Format::JsonLines => "jsonl",
        }
    }

    /// The MIME type to serve an export with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Lines => "text/plain; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
            Format::JsonLines => "application/x-ndjson",
        }
    }

    /// The first line an export starts with, if the format has one.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Format::Csv => Some("hash,quality,note"),
            _ => None,
        }
    }

    /// Parses one line (without its line ending) of a list of media hashes.
    /// `Ok(None)` for lines that carry no record: blank lines, comments, a
    /// CSV header. A text or entity signal is an error here: read such lists
    /// with [`Format::parse_any_line`].
    pub fn parse_line(self, line: &str) -> Result<Option<Record>, String> {
        let Some(r) = self.parse_any_line(line)? else {
            return Ok(None);
        };
        match r.signal {
            AnySignal::Media(signal) => Ok(Some(Record {
                signal,
                quality: r.quality,
                note: r.note,
                metadata: r.metadata,
            })),
            AnySignal::Text(t) => Err(format!(
                "{} is a text signal; this list holds media hashes (pdq, md5, sha256)",
                t.signal_type()
            )),
        }
    }

    /// Parses one line of a list that may also hold text and entity signals
    /// (`text_hash HEX`, `phone +E164`, `url URL`, …; entity values are
    /// canonicalised and checked as on extraction). `Ok(None)` as for
    /// [`Format::parse_line`].
    pub fn parse_any_line(self, line: &str) -> Result<Option<AnyRecord>, String> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        if line.trim().is_empty() {
            return Ok(None);
        }
        match self {
            Format::Lines => {
                let t = line.trim();
                if t.starts_with('#') {
                    return Ok(None);
                }
                let (ty, rest) = t
                    .split_once(char::is_whitespace)
                    .ok_or("expected `TYPE VALUE`, e.g. `pdq <64 hex digits>`")?;
                let rest = rest.trim_start();
                let (value, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                let mut r = Record::new(AnySignal::parse(ty, value).map_err(|e| e.to_string())?);
                r.metadata = te_opinion(rest.trim())?;
                Ok(Some(r))
            }
            Format::Csv => {
                let fields = split_csv(line)?;
                let first = fields.first().map(|s| s.trim()).unwrap_or_default();
                // `threatexchange dataset -P --csv`: signal_type,signal_str,collab,category,tags
                // A text type with a bad value is that value's error (a media
                // type with a bad value may be a header: `pdq,quality`).
                if let (Ok(ty), Some(v)) = (first.parse::<TextSignalType>(), fields.get(1)) {
                    ty.parse(v).map_err(|e| e.to_string())?;
                }
                if let Some(v) = fields.get(1)
                    && AnySignal::is_type_name(first)
                    && let Ok(signal) = AnySignal::parse(first, v)
                {
                    let mut m = serde_json::Map::new();
                    for (i, k) in [(2, "collab"), (3, "category")] {
                        if let Some(x) = fields.get(i).map(|x| x.trim()).filter(|x| !x.is_empty()) {
                            m.insert(k.into(), x.into());
                        }
                    }
                    if let Some(tags) = fields.get(4) {
                        let tags: Vec<&str> = tags.split_whitespace().collect();
                        if !tags.is_empty() {
                            m.insert("tags".into(), tags.into());
                        }
                    }
                    let mut r = Record::new(signal);
                    r.metadata = (!m.is_empty()).then_some(serde_json::Value::Object(m));
                    return Ok(Some(r));
                }
                if first.eq_ignore_ascii_case("hash")
                    || first.eq_ignore_ascii_case("pdq")
                    || first.eq_ignore_ascii_case("signal_type")
                {
                    return Ok(None);
                }
                let signal =
                    AnySignal::Media(SignalType::Pdq.parse(first).map_err(|e| e.to_string())?);
                let quality = match fields.get(1).map(|s| s.trim()) {
                    None | Some("") => None,
                    Some(q) => Some(
                        q.parse::<u32>()
                            .map_err(|_| format!("quality {q:?} is not an integer"))?,
                    ),
                };
                let note = fields
                    .get(2)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.to_string());
                let metadata = (fields.len() > 3)
                    .then(|| serde_json::json!({ "columns": fields[3..].to_vec() }));
                Ok(Some(Record {
                    signal,
                    quality: check_quality(quality)?,
                    note,
                    metadata,
                }))
            }
            Format::JsonLines => {
                let r: JsonRecord =
                    serde_json::from_str(line).map_err(|e| format!("invalid JSON record: {e}"))?;
                let ty = r.signal_type.as_deref().unwrap_or("pdq");
                if let Some(m) = &r.metadata
                    && !m.is_object()
                {
                    return Err("metadata must be a JSON object".into());
                }
                Ok(Some(Record {
                    signal: AnySignal::parse(ty, &r.signal).map_err(|e| e.to_string())?,
                    quality: check_quality(r.quality)?,
                    note: r.note,
                    metadata: r.metadata,
                }))
            }
        }
    }

    /// Writes one record as a line, with its `\n`. The CSV format holds PDQ
    /// hashes only: other signals are an `InvalidInput` error.
    pub fn write_record(self, r: &Record, out: &mut impl Write) -> io::Result<()> {
        self.write_parts(
            (r.signal.signal_type().name(), r.signal.value()),
            r.signal.signal_type() == SignalType::Pdq,
            (r.quality, r.note.as_deref(), r.metadata.as_ref()),
            out,
        )
    }

    /// Writes a record that may be a text or entity signal (`phone +E164`
    /// in lines, `{"signal_type":"phone","signal":"+E164"}` in JSON lines).
    /// The CSV format holds PDQ hashes only: other signals are an
    /// `InvalidInput` error.
    pub fn write_any_record(self, r: &AnyRecord, out: &mut impl Write) -> io::Result<()> {
        self.write_parts(
            (r.signal.type_name(), r.signal.value()),
            matches!(r.signal, AnySignal::Media(Signal::Pdq(_))),
            (r.quality, r.note.as_deref(), r.metadata.as_ref()),
            out,
        )
    }

    fn write_parts(
        self,
        (signal_type, value): (&'static str, String),
        is_pdq: bool,
        (quality, note, metadata): (Option<u32>, Option<&str>, Option<&serde_json::Value>),
        out: &mut impl Write,
    ) -> io::Result<()> {
        match self {
            Format::Lines => writeln!(out, "{signal_type} {value}"),
            Format::Csv => {
                if !is_pdq {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "the CSV list format holds PDQ hashes only",
                    ));
                }
                let q = quality.map(|q| q.to_string()).unwrap_or_default();
                let note = csv_field(note.unwrap_or(""));
                write!(out, "{value},{q},{note}")?;
                // The columns after `note` that a CSV import kept.
                let columns = metadata
                    .and_then(|m| m.get("columns"))
                    .and_then(|c| c.as_array());
                for c in columns.into_iter().flatten() {
                    match c {
                        serde_json::Value::String(c) => write!(out, ",{}", csv_field(c))?,
                        other => write!(out, ",{}", csv_field(&other.to_string()))?,
                    }
                }
                writeln!(out)
            }
            Format::JsonLines => {
                let j = JsonRecordOut {
                    signal_type,
                    signal: value,
                    quality,
                    note,
                    metadata,
                };
                serde_json::to_writer(&mut *out, &j)?;
                out.write_all(b"\n")
            }
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"").replace(['\n', '\r'], " "))
    } else {
        s.to_string()
    }
}

/// Splits one CSV line (RFC 4180 quoting, no embedded line breaks).
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                    if !matches!(chars.peek(), None | Some(',')) {
                        return Err("text after a closing quote".into());
                    }
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            fields.push(std::mem::take(&mut cur));
            at_start = true;
        } else {
            cur.push(c);
            at_start = false;
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(cur);
    Ok(fields)
}

/// The rest of a `threatexchange dataset -P` line after `TYPE VALUE`: an
/// optional collaboration name (a Python string literal, as `repr` prints
/// it), then an opinion category (`POSITIVE_CLASS`, ...) and optional
/// comma-separated tags. Returns them as metadata.
fn te_opinion(rest: &str) -> Result<Option<serde_json::Value>, String> {
    if rest.is_empty() {
        return Ok(None);
    }
    let mut m = serde_json::Map::new();
    let mut rest = rest;
    if let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
        let (collab, after) = python_str(&rest[1..], q)?;
        m.insert("collab".into(), collab.into());
        rest = after.trim_start();
    }
    if !rest.is_empty() {
        let (category, tags) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if !category
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'_')
        {
            return Err(format!(
                "expected `TYPE VALUE ['COLLAB'] CATEGORY [TAG,...]`; {:?} is not a category",
                category.chars().take(40).collect::<String>()
            ));
        }
        m.insert("category".into(), category.into());
        let tags: Vec<&str> = tags
            .trim()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if !tags.is_empty() {
            m.insert("tags".into(), tags.into());
        }
    }
    Ok(Some(serde_json::Value::Object(m)))
}

/// A Python string literal's body up to its closing `quote`; returns the
/// text and what follows.
fn python_str(s: &str, quote: char) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut it = s.char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            c if c == quote => return Ok((out, &s[i + c.len_utf8()..])),
            '\\' => {
                let (_, e) = it.next().ok_or("unterminated string")?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String =
                            (0..n).filter_map(|_| it.next().map(|(_, h)| h)).collect();
                        let ch = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("bad escape \\{e}{hex}"))?;
                        out.push(ch);
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    Err("unterminated collaboration name".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

    #[test]
    fn threatexchange_lines() {
        let r = Format::Lines
            .parse_line(&format!("pdq {H}"))
            .unwrap()
            .unwrap();
        assert_eq!(r.signal.value(), H);
        assert_eq!(Format::Lines.parse_line("# comment").unwrap(), None);
        assert_eq!(Format::Lines.parse_line("   ").unwrap(), None);
        assert!(
            Format::Lines.parse_line(H).is_err(),
            "a bare hash has no type"
        );
        assert!(Format::Lines.parse_line(&format!("pdq {H} extra")).is_err());
        assert!(
            Format::Lines
                .parse_line(&format!("pdq {}", &H[2..]))
                .is_err()
        );
    }

    /// `threatexchange dataset -P` (python-threatexchange cli/dataset_cmd.py
    /// `_print_stdout`): `TYPE VALUE 'COLLAB' CATEGORY TAGS`, and `--csv`.
    #[test]
    fn threatexchange_dataset_print_signals() {
        let r = Format::Lines
            .parse_line(&format!("pdq {H} 'Sample Data' POSITIVE_CLASS tag_a,tag b"))
            .unwrap()
            .unwrap();
        assert_eq!(r.signal.value(), H);
        assert_eq!(
            r.metadata,
            Some(
                serde_json::json!({"collab": "Sample Data", "category": "POSITIVE_CLASS", "tags": ["tag_a", "tag b"]})
            )
        );
        let r = Format::Lines
            .parse_line(&format!(
                "video_md5 {} \"Bob's list\" INVESTIGATION_SEED",
                "ab".repeat(16)
            ))
            .unwrap()
            .unwrap();
        assert_eq!(r.signal.signal_type(), SignalType::Md5);
        assert_eq!(
            r.metadata,
            Some(serde_json::json!({"collab": "Bob's list", "category": "INVESTIGATION_SEED"}))
        );
        // One collaboration selected (`-c`): no name is printed.
        let r = Format::Lines
            .parse_line(&format!("pdq {H} DISPUTED"))
            .unwrap()
            .unwrap();
        assert_eq!(
            r.metadata,
            Some(serde_json::json!({"category": "DISPUTED"}))
        );
        let r = Format::Lines
            .parse_line(&format!("pdq {H} 'it\\'s \\x41' NEGATIVE_CLASS"))
            .unwrap()
            .unwrap();
        assert_eq!(r.metadata.unwrap()["collab"], "it's A");
        assert!(Format::Lines.parse_line(&format!("pdq {H} 'open")).is_err());
        assert!(
            Format::Lines
                .parse_line(&format!("pdq {H} lowercase"))
                .is_err()
        );
        // --csv, with its header
        assert_eq!(
            Format::Csv
                .parse_line("signal_type,signal_str,collab,category,tags")
                .unwrap(),
            None
        );
        let r = Format::Csv
            .parse_line(&format!("pdq,{H},Sample Data,POSITIVE_CLASS,t1 t2"))
            .unwrap()
            .unwrap();
        assert_eq!(r.signal.value(), H);
        assert_eq!(
            r.metadata,
            Some(
                serde_json::json!({"collab": "Sample Data", "category": "POSITIVE_CLASS", "tags": ["t1", "t2"]})
            )
        );
        let r = Format::Csv
            .parse_line(&format!("video_md5,{},c,POSITIVE_CLASS,", "cd".repeat(16)))
            .unwrap()
            .unwrap();
        assert_eq!(r.signal.signal_type(), SignalType::Md5);
    }

    #[test]
    fn csv_with_header_quality_and_quoted_note() {
        assert_eq!(Format::Csv.parse_line("hash,quality").unwrap(), None);
        let r = Format::Csv
            .parse_line(&format!("{H},87,\"a, \"\"quoted\"\" note\",x,y"))
            .unwrap()
            .unwrap();
        assert_eq!(r.quality, Some(87));
        assert_eq!(r.note.as_deref(), Some("a, \"quoted\" note"));
        assert_eq!(r.metadata, Some(serde_json::json!({"columns": ["x", "y"]})));
        assert!(Format::Csv.parse_line(&format!("{H},101")).is_err());
        assert!(Format::Csv.parse_line(&format!("{H},high")).is_err());
        assert!(Format::Csv.parse_line(&format!("{H},1,\"open")).is_err());
    }

    #[test]
    fn json_lines() {
        let r = Format::JsonLines
            .parse_line(&format!(
                r#"{{"signal_type":"pdq","signal":"{H}","quality":90,"metadata":{{"src":"x"}}}}"#
            ))
            .unwrap()
            .unwrap();
        assert_eq!(r.quality, Some(90));
        assert!(Format::JsonLines.parse_line(r#"{"signal":"00"}"#).is_err());
        assert!(Format::JsonLines.parse_line(r#"{"signal":"#).is_err());
        assert!(
            Format::JsonLines
                .parse_line(&format!(r#"{{"signal":"{H}","metadata":[1]}}"#))
                .is_err()
        );
        assert!(
            Format::JsonLines
                .parse_line(&format!(r#"{{"signal":"{H}","bogus":1}}"#))
                .is_err()
        );
    }

    #[test]
    fn csv_refuses_to_write_non_pdq() {
        let r = Record::new(SignalType::Md5.parse(&"ab".repeat(16)).unwrap());
        assert!(Format::Csv.write_record(&r, &mut Vec::new()).is_err());
    }

    #[test]
    fn csv_export_keeps_the_columns_a_csv_import_kept() {
        let line = format!("{H},90,\"a, note\",case-17,\"x \"\"y\"\"\"");
        let r = Format::Csv.parse_line(&line).unwrap().unwrap();
        let mut out = Vec::new();
        Format::Csv.write_record(&r, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let again = Format::Csv.parse_line(text.trim_end()).unwrap().unwrap();
        assert_eq!(again, r, "{text}");
        assert_eq!(
            r.metadata.unwrap()["columns"],
            serde_json::json!(["case-17", "x \"y\""])
        );
    }

    /// Text and entity signals in every format (fictional NANP 555-01xx
    /// numbers, example.com), canonicalised on import.
    #[test]
    fn text_and_entity_signals_in_lists() {
        let th = bulwark_signals::TextHash::of_text("Kittens for adoption, vaccinated").unwrap();
        let lines = [
            format!("text_hash {th}"),
            "phone +14155550142 'Example NGO' POSITIVE_CLASS ads".to_string(),
            "url https://Example.com/ad?id=7&utm_medium=x".to_string(),
            "telegram_user @Fictional_Seller_0001".to_string(),
            "domain listings.example.org".to_string(),
        ];
        let parsed: Vec<AnyRecord> = lines
            .iter()
            .map(|l| Format::Lines.parse_any_line(l).unwrap().unwrap())
            .collect();
        let shown: Vec<String> = parsed.iter().map(|r| r.signal.to_string()).collect();
        assert_eq!(
            shown,
            [
                format!("text_hash {th}"),
                "phone +14155550142".into(),
                "url https://example.com/ad?id=7".into(),
                "telegram_user fictional_seller_0001".into(),
                "domain example.org".into(),
            ]
        );
        assert_eq!(
            parsed[1].metadata,
            Some(
                serde_json::json!({"collab": "Example NGO", "category": "POSITIVE_CLASS", "tags": ["ads"]})
            )
        );
        // A media-only reader refuses them with a clear error, and still reads media.
        let e = Format::Lines.parse_line(&lines[1]).unwrap_err();
        assert!(e.contains("text signal"), "{e}");
        assert!(
            Format::Lines
                .parse_any_line(&format!("pdq {H}"))
                .unwrap()
                .is_some()
        );
        // Bad values are errors in every format.
        assert!(Format::Lines.parse_any_line("phone 12").is_err());
        assert!(
            Format::Csv
                .parse_any_line("phone,12,c,POSITIVE_CLASS,")
                .is_err()
        );
        assert!(
            Format::JsonLines
                .parse_any_line(r#"{"signal_type":"eth_address","signal":"0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}"#)
                .is_err()
        );
        // threatexchange CSV and JSON lines.
        let c = Format::Csv
            .parse_any_line("phone,+1 415 555 0199,c,POSITIVE_CLASS,t")
            .unwrap()
            .unwrap();
        assert_eq!(c.signal.to_string(), "phone +14155550199");
        let j = Format::JsonLines
            .parse_any_line(r#"{"signal_type":"url","signal":"http://EXAMPLE.net/x#y","note":"n"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(j.signal.value(), "http://example.net/x");
        assert_eq!(j.note.as_deref(), Some("n"));
        // Written and read back in lines and JSON lines; CSV holds PDQ only.
        for r in parsed.iter().chain([&c, &j]) {
            for f in [Format::Lines, Format::JsonLines] {
                let mut out = Vec::new();
                f.write_any_record(r, &mut out).unwrap();
                let text = String::from_utf8(out).unwrap();
                let back = f.parse_any_line(text.trim_end()).unwrap().unwrap();
                assert_eq!(back.signal, r.signal, "{f:?}: {text}");
            }
            assert!(Format::Csv.write_any_record(r, &mut Vec::new()).is_err());
        }
        let pdq = Format::Csv
            .parse_any_line(&format!("{H},80"))
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        Format::Csv.write_any_record(&pdq, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("{H},80,\n"));
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            prop::array::uniform32(any::<u8>()),
            prop::option::of(0u32..=100),
            prop::option::of("[ -~]{0,40}"),
        )
            .prop_map(|(b, quality, note)| Record {
                signal: Signal::Pdq(bulwark_pdq::PdqHash::from_bytes(b)),
                quality,
                note: note.filter(|n| !n.is_empty()),
                metadata: None,
            })
    }

    proptest! {
        #[test]
        fn every_format_round_trips(r in arb_record()) {
            for f in Format::ALL {
                let mut out = Vec::new();
                f.write_record(&r, &mut out).unwrap();
                let text = String::from_utf8(out).unwrap();
                let back = f.parse_line(text.trim_end_matches('\n')).unwrap().unwrap();
                prop_assert_eq!(back.signal, r.signal);
                if f != Format::Lines {
                    prop_assert_eq!(back.quality, r.quality);
                    prop_assert_eq!(back.note, r.note.clone());
                }
            }
        }
    }
}
