//! Every `/v1` response a test receives is checked against `openapi.json`:
//! the operation and its status must be documented, and a JSON body must have
//! the documented shape. Objects with `properties` are closed (a field the
//! document does not name is a mismatch) unless they say
//! `additionalProperties`; `required` fields must be present; types, enums,
//! items, `oneOf`/`anyOf` and numeric bounds are checked.
//!
//! A mismatch fails the test that received the response. With
//! `BULWARK_OPENAPI_REPORT=FILE` mismatches are appended to FILE instead, to
//! list them all in one run.

use std::io::Write;
use std::sync::LazyLock;

use axum::http::Method;
use serde_json::Value;

static DOC: LazyLock<Value> = LazyLock::new(|| {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{p}: {e}"))
});

/// Checks one response; panics (or records, see the module docs) on a mismatch.
pub fn check(method: &Method, uri: &str, status: u16, content_type: Option<&str>, body: &[u8]) {
    if let Err(e) = mismatch(&DOC, method, uri, status, content_type, body) {
        let line = format!("{method} {uri} -> {status}: {e}");
        match std::env::var_os("BULWARK_OPENAPI_REPORT") {
            Some(f) => {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(f)
                    .expect("opening the OpenAPI report file");
                writeln!(file, "{line}").expect("writing the OpenAPI report file");
            }
            None => panic!("response does not match openapi.json: {line}"),
        }
    }
}

/// Why a response does not match `doc`, if it does not.
pub fn mismatch(
    doc: &Value,
    method: &Method,
    uri: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    let path = uri.split('?').next().unwrap_or(uri);
    if !path.starts_with("/v1/") {
        return Ok(());
    }
    let Some((template, item)) = path_item(doc, path) else {
        // The router's own answer to a path nobody documents.
        return if status == 404 {
            Ok(())
        } else {
            Err("path is not documented".into())
        };
    };
    let Some(op) = item.get(method.as_str().to_ascii_lowercase()) else {
        return if status == 405 {
            Ok(())
        } else {
            Err(format!("{method} is not documented for {template}"))
        };
    };
    let responses = &op["responses"];
    let Some(resp) = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"))
    else {
        return Err(format!(
            "status {status} is not documented for {method} {template}"
        ));
    };
    let resp = resolve(doc, resp)?;
    let Some(schema) = resp
        .get("content")
        .and_then(|c| c.get("application/json"))
        .and_then(|c| c.get("schema"))
    else {
        return Ok(());
    };
    if !content_type.is_some_and(|c| c.starts_with("application/json")) {
        return Err(format!(
            "documented as JSON, answered {}",
            content_type.unwrap_or("without a content type")
        ));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    validate(doc, schema, &value, "$")
}

/// The documented path that `path` instantiates; literal segments win over
/// parameters.
fn path_item<'a>(doc: &'a Value, path: &str) -> Option<(&'a str, &'a Value)> {
    let segs: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .iter()
        .filter_map(|(t, item)| {
            let tsegs: Vec<&str> = t.split('/').collect();
            if tsegs.len() != segs.len() {
                return None;
            }
            let mut literal = 0;
            for (t, s) in tsegs.iter().zip(&segs) {
                if t.starts_with('{') && t.ends_with('}') {
                    if s.is_empty() {
                        return None;
                    }
                } else if t == s {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, t.as_str(), item))
        })
        .max_by_key(|(literal, _, _)| *literal)
        .map(|(_, t, item)| (t, item))
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> Result<&'a Value, String> {
    let mut v = v;
    for _ in 0..8 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return Ok(v);
        };
        let pointer = r
            .strip_prefix('#')
            .ok_or_else(|| format!("external $ref {r}"))?;
        v = doc
            .pointer(pointer)
            .ok_or_else(|| format!("dangling $ref {r}"))?;
    }
    Err("$ref chain too long".into())
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

/// Validates `v` (at JSON path `at`) against `schema`.
pub fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema)?;
    if schema.as_bool() == Some(true) {
        return Ok(());
    }
    if let Some(t) = schema.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| type_ok(t, v)),
            _ => return Err(format!("{at}: bad type keyword {t}")),
        };
        if !ok {
            return Err(format!("{at}: expected type {t}, got {}", short(v)));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        return Err(format!(
            "{at}: {} is not one of {}",
            short(v),
            Value::from(e.clone())
        ));
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(format!("{at}: {n} < minimum {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(format!("{at}: {n} > maximum {max}"));
        }
    }
    for (key, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            let fits = alts
                .iter()
                .filter(|s| validate(doc, s, v, at).is_ok())
                .count();
            if fits == 0 || (exactly_one && fits > 1) {
                let why: Vec<String> = alts
                    .iter()
                    .filter_map(|s| validate(doc, s, v, at).err())
                    .collect();
                return Err(format!(
                    "{at}: fits {fits} of the {key} alternatives ({})",
                    why.join("; ")
                ));
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(doc, items, x, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        if let Some(req) = schema.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    return Err(format!("{at}: required field {r:?} is missing"));
                }
            }
        }
        let extra = schema.get("additionalProperties");
        for (k, x) in obj {
            let here = format!("{at}.{k}");
            match (props.and_then(|p| p.get(k)), extra) {
                (Some(s), _) => validate(doc, s, x, &here)?,
                (None, Some(Value::Bool(true))) => {}
                (None, Some(Value::Bool(false))) => {
                    return Err(format!("{here}: not a documented field"));
                }
                (None, Some(s)) => validate(doc, s, x, &here)?,
                // Closed unless the schema lists no properties at all.
                (None, None) if props.is_some() => {
                    return Err(format!("{here}: not a documented field"));
                }
                (None, None) => {}
            }
        }
    }
    Ok(())
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}…", &s[..s.floor_char_boundary(60)])
    } else {
        s
    }
}
