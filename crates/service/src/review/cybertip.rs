//! CyberTipline reports of confirmed items: the report XML of the Reporting
//! API ([`report_xml`]), stored for a lead to look at ([`build`]), and its
//! submission with the item's kept files ([`submit`]).

use std::time::Duration;

use bulwark_store::console::actions as store;
use bulwark_store::{Store, random_hex, rfc3339};
use serde_json::{Value, json};

use super::Http;
use super::evidence::{Evidence, EvidenceFile, KINDS, gather};
use crate::error::{Error, Kind, Result};

/// The reporting organisation's contact, for the `reporter` element.
#[derive(Debug, Clone, Default)]
pub struct Reporter {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Email address.
    pub email: String,
}

/// How long one request of a submission may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// XML text escaping.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // Characters XML 1.0 cannot carry.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => o.push(c),
        }
    }
    o
}

/// The line a CyberTipline report's `additionalInfo` gets for an item's text
/// matches (`None` when there are none): each signal and normalised value,
/// and how it matched — not the bank names (they are this service's, or a
/// partner's, internal names) and not keyword/regex rule matches (review
/// leads only, not findings).
pub fn text_matches_line(matches: &[Value]) -> Option<String> {
    let mut parts: Vec<String> = matches
        .iter()
        .filter(|m| !m["review_only"].as_bool().unwrap_or(false))
        .map(|m| {
            let at = m["message"]
                .as_i64()
                .map(|i| format!(" in message {i}"))
                .unwrap_or_default();
            let v = m["value"].as_str().unwrap_or("");
            match m["signal_type"].as_str().unwrap_or("") {
                "text_hash" => format!(
                    "near-duplicate ad text{at} (text hash {v}, Hamming distance {} of 256 bits to a banked ad)",
                    m["distance"].as_i64().unwrap_or(0)
                ),
                t => format!("{t} {v}{at} (exact match of the normalised value)"),
            }
        })
        .collect();
    parts.dedup();
    (!parts.is_empty()).then(|| {
        format!(
            "Text and entity signals that matched known content: {}",
            parts.join("; ")
        )
    })
}

/// A CyberTipline report (`<report>` of the Reporting API) for a confirmed
/// item: incident summary, reporter and the reported account. The Reporting
/// API takes at most one `personOrUserReported` (the suspect; several only in
/// a batched viral/meme report), so that is the item's first account; any
/// further accounts (other senders in a reported conversation) are named in
/// the report's `additionalInfo`. Kept files and their hashes follow
/// separately (`/upload` and `fileDetails`); the hashes of files the service
/// did not keep are listed in `additionalInfo`. Element order is the XSD's.
/// `Conflict` for an item that is not confirmed.
pub fn report_xml(reporter: &Reporter, e: &Evidence) -> Result<String> {
    let (category, _, confirmed_at) = e
        .confirmed
        .as_ref()
        .ok_or_else(|| Error::conflict("only confirmed items can be reported"))?;
    let x = xml_escape;
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    o.push_str("<report xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:noNamespaceSchemaLocation=\"https://report.cybertip.org/ispws/xsd\">\n");
    o.push_str("  <incidentSummary>\n");
    o.push_str("    <incidentType>Child Pornography (possession, manufacture, and distribution)</incidentType>\n");
    o.push_str(&format!(
        "    <incidentDateTime>{}</incidentDateTime>\n",
        x(&rfc3339(e.at))
    ));
    o.push_str(&format!(
        "    <incidentDateTimeDescription>{}</incidentDateTimeDescription>\n",
        x(&format!(
            "Detected by hash matching ({}); confirmed by a reviewer as {category} at {}",
            e.item,
            rfc3339(*confirmed_at)
        ))
    ));
    o.push_str("  </incidentSummary>\n");
    o.push_str("  <reporter>\n    <reportingPerson>\n");
    o.push_str(&format!(
        "      <firstName>{}</firstName>\n",
        x(&reporter.first_name)
    ));
    o.push_str(&format!(
        "      <lastName>{}</lastName>\n",
        x(&reporter.last_name)
    ));
    o.push_str(&format!("      <email>{}</email>\n", x(&reporter.email)));
    o.push_str("    </reportingPerson>\n  </reporter>\n");
    if let Some(a) = e.accounts.first() {
        o.push_str("  <personOrUserReported>\n");
        o.push_str(&format!("    <espIdentifier>{}</espIdentifier>\n", x(a)));
        o.push_str(&format!("    <screenName>{}</screenName>\n", x(a)));
        o.push_str("  </personOrUserReported>\n");
    }
    let mut info = Vec::new();
    if e.accounts.len() > 1 {
        info.push(format!(
            "Other accounts that sent the reported messages: {}",
            e.accounts[1..].join(", ")
        ));
    }
    // Files the service did not keep (a match keeps a thumbnail, an opened
    // voucher a derivative) cannot be uploaded with fileDetails: their
    // hashes go here, so the report still carries them.
    let unsent: Vec<String> = e
        .files
        .iter()
        .filter(|f| f.bytes.is_none())
        .map(|f| {
            let hashes: Vec<String> = [
                ("MD5", &f.md5),
                ("SHA1", &f.sha1),
                ("SHA256", &f.sha256),
                ("PDQ", &f.pdq),
            ]
            .into_iter()
            .filter_map(|(t, v)| v.as_ref().map(|v| format!("{t} {v}")))
            .collect();
            format!("{} ({})", f.name, hashes.join(", "))
        })
        .collect();
    if !unsent.is_empty() {
        info.push(format!(
            "Matched files not kept by the service, so not uploaded, with their hashes: {}",
            unsent.join("; ")
        ));
    }
    info.extend(text_matches_line(&e.text_matches));
    if !info.is_empty() {
        o.push_str(&format!(
            "  <additionalInfo>{}</additionalInfo>\n",
            x(&info.join("\n"))
        ));
    }
    o.push_str("</report>\n");
    Ok(o)
}

/// The `fileDetails` document for one uploaded file (its hashes as
/// `originalFileHash` elements). `fileViewedByEsp` is `false`: the API means
/// "viewed the entire contents of the file", and the console never shows a
/// file, only a grey thumbnail of at most 320 px (or video frames).
pub fn file_details_xml(report_id: &str, file_id: &str, f: &EvidenceFile) -> String {
    let x = xml_escape;
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<fileDetails>\n");
    o.push_str(&format!(
        "  <reportId>{}</reportId>\n  <fileId>{}</fileId>\n",
        x(report_id),
        x(file_id)
    ));
    o.push_str(&format!(
        "  <originalFileName>{}</originalFileName>\n",
        x(&f.name)
    ));
    o.push_str("  <fileViewedByEsp>false</fileViewedByEsp>\n");
    for (t, v) in [("MD5", &f.md5), ("SHA1", &f.sha1), ("PDQ", &f.pdq)] {
        if let Some(v) = v {
            o.push_str(&format!(
                "  <originalFileHash hashType=\"{t}\">{}</originalFileHash>\n",
                x(v)
            ));
        }
    }
    o.push_str("</fileDetails>\n");
    o
}

/// Builds and stores the report XML of a confirmed item (`kind:id`) and
/// audits it (`console.cybertip.build` by `actor`); returns the stored
/// report's id. `BadRequest` for a key that names no kind of item,
/// `Conflict` for an item that is not confirmed.
pub async fn build(
    s: &Store,
    reporter: &Reporter,
    item: &str,
    actor: &str,
    created_by: &str,
) -> Result<i64> {
    let Some((kind, id)) = item.split_once(':') else {
        return Err(Error::bad_request("No such item."));
    };
    if !KINDS.contains(&kind) {
        return Err(Error::bad_request("No such item."));
    }
    let e = gather(s, kind, id).await?;
    let xml = report_xml(reporter, &e)?;
    let tid = store::insert_cybertip(s, item, &xml, created_by).await?;
    super::audit(
        s,
        actor,
        "console.cybertip.build",
        json!({"item": item, "cybertip": tid}),
    )
    .await?;
    Ok(tid)
}

fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim().to_string())
}

/// Submits stored report `tid` to the Reporting API at `base_url`:
/// `POST {url}/submit` (the report XML), then for each kept file
/// `POST {url}/upload` and `POST {url}/fileinfo`, then `POST {url}/finish`;
/// a `responseCode` other than 0 stops it. Records the submission and
/// returns the NCMEC report id. Any failure is `Unprocessable` with code
/// `submission_failed` and the whole reason as its message.
pub async fn submit(
    s: &Store,
    http: &dyn Http,
    base_url: Option<&str>,
    tid: i64,
) -> Result<String> {
    submit_steps(s, http, base_url, tid)
        .await
        .map_err(|e| Error::new(Kind::Unprocessable, "submission_failed", format!("{e:#}")))
}

async fn submit_steps(
    s: &Store,
    http: &dyn Http,
    base_url: Option<&str>,
    tid: i64,
) -> anyhow::Result<String> {
    let base = base_url.ok_or_else(|| anyhow::anyhow!("no console.cybertip_url configured"))?;
    let base = base.trim_end_matches('/').to_string();
    let (item, xml) = store::cybertip_xml(s, tid).await?;
    let t = REQUEST_TIMEOUT;
    let ct = |v: &str| vec![("content-type", v.to_string())];
    let check = |what: &str, status: u16, body: &[u8]| -> anyhow::Result<String> {
        let text = String::from_utf8_lossy(body).to_string();
        let code = xml_field(&text, "responseCode");
        anyhow::ensure!(
            (200..300).contains(&status) && code.as_deref() == Some("0"),
            "{what}: HTTP {status}, responseCode {code:?}: {}",
            xml_field(&text, "responseDescription").unwrap_or_default()
        );
        Ok(text)
    };
    let (st, body) = http
        .request(
            "POST",
            &format!("{base}/submit"),
            &ct("text/xml; charset=utf-8"),
            xml.into_bytes(),
            t,
        )
        .await?;
    let text = check("submit", st, &body)?;
    let report_id =
        xml_field(&text, "reportId").ok_or_else(|| anyhow::anyhow!("submit: no reportId"))?;
    let (kind, id) = item.split_once(':').unwrap_or(("", ""));
    let e = gather(s, kind, id).await?;
    for f in e.files.iter().filter(|f| f.bytes.is_some()) {
        let boundary = format!("bulwark{}", random_hex());
        let mut mp = Vec::new();
        mp.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\n{report_id}\r\n"
            )
            .as_bytes(),
        );
        mp.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n", f.name, f.media_type).as_bytes());
        mp.extend_from_slice(f.bytes.as_deref().unwrap_or_default());
        mp.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let (st, body) = http
            .request(
                "POST",
                &format!("{base}/upload"),
                &ct(&format!("multipart/form-data; boundary={boundary}")),
                mp,
                t,
            )
            .await?;
        let text = check("upload", st, &body)?;
        let file_id =
            xml_field(&text, "fileId").ok_or_else(|| anyhow::anyhow!("upload: no fileId"))?;
        let fd = file_details_xml(&report_id, &file_id, f);
        let (st, body) = http
            .request(
                "POST",
                &format!("{base}/fileinfo"),
                &ct("text/xml; charset=utf-8"),
                fd.into_bytes(),
                t,
            )
            .await?;
        check("fileinfo", st, &body)?;
    }
    let (st, body) = http
        .request(
            "POST",
            &format!("{base}/finish"),
            &ct("application/x-www-form-urlencoded"),
            format!("id={report_id}").into_bytes(),
            t,
        )
        .await?;
    let text = check("finish", st, &body)?;
    store::cybertip_submitted(s, tid, &report_id, &text).await?;
    Ok(report_id)
}
