//! The one HTTP client of Bulwark's tools (feature `http`): a small
//! blocking client (ureq) for the matcher service's API, used by the CLI
//! (`bulwark import`, `device`, `keys`…), the messenger client, the delivery
//! service's calls to the matcher, and the end-to-end tests that run the
//! `bulwark` binary.

use std::time::Duration;

use anyhow::Context as _;

/// Largest response body read, in bytes (attachments are the largest).
const MAX_RESPONSE: u64 = 256 << 20;

/// An HTTP endpoint: base URL and a connection pool.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
    base: String,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Http({})", self.base)
    }
}

/// A response: status and body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Response headers (lower-case names).
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON when the status is `want`, else an error naming the
    /// call, status and body.
    pub fn json(self, what: &str, want: &[u16]) -> anyhow::Result<serde_json::Value> {
        self.ok(what, want)?;
        serde_json::from_slice(&self.body).with_context(|| format!("{what}: response is not JSON"))
    }

    /// `Ok` when the status is one of `want`.
    pub fn ok(&self, what: &str, want: &[u16]) -> anyhow::Result<()> {
        if want.contains(&self.status) {
            Ok(())
        } else {
            anyhow::bail!(
                "{what}: HTTP {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
            )
        }
    }
}

impl Http {
    /// An endpoint at `base` (`http://host:port`, no trailing slash needed).
    pub fn new(base: &str) -> Http {
        Http::with_timeout(base, Some(Duration::from_secs(120)))
    }

    /// An endpoint whose calls each take at most `timeout` (`None`: no
    /// limit, for uploads of large lists).
    pub fn with_timeout(base: &str, timeout: Option<Duration>) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(timeout)
            .build()
            .into();
        Http {
            agent,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One request; `body` is `(content type, bytes)`.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) -> anyhow::Result<Reply> {
        let url = format!("{}{path}", self.base);
        let auth = bearer.map(|k| format!("Bearer {k}"));
        let resp = match method {
            "GET" | "DELETE" => {
                let mut r = if method == "GET" {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            "POST" | "PUT" | "PATCH" => {
                let mut r = match method {
                    "PUT" => self.agent.put(&url),
                    "PATCH" => self.agent.patch(&url),
                    _ => self.agent.post(&url),
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                let (ctype, bytes) = body.unwrap_or(("application/json", b""));
                r.content_type(ctype).send(bytes)
            }
            // Before, anything else went out as a POST.
            other => anyhow::bail!("unsupported HTTP method {other:?}"),
        };
        let mut resp = resp.with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .with_context(|| format!("{method} {url}: reading the response"))?;
        Ok(Reply {
            status,
            body,
            headers,
        })
    }

    /// `POST` a body streamed from `reader` (large uploads: nothing is held
    /// in memory); `content_type` names it.
    pub fn post_reader(
        &self,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
        content_type: &str,
        reader: &mut dyn std::io::Read,
    ) -> anyhow::Result<Reply> {
        let url = format!("{}{path}", self.base);
        let mut r = self.agent.post(&url).content_type(content_type);
        if let Some(k) = bearer {
            r = r.header("Authorization", format!("Bearer {k}"));
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let mut resp = r
            .send(ureq::SendBody::from_reader(reader))
            .with_context(|| format!("POST {url}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .with_context(|| format!("POST {url}: reading the response"))?;
        Ok(Reply {
            status,
            body,
            headers: Vec::new(),
        })
    }

    /// `POST` a JSON value.
    pub fn post_json(
        &self,
        path: &str,
        bearer: Option<&str>,
        v: &serde_json::Value,
    ) -> anyhow::Result<Reply> {
        let bytes = serde_json::to_vec(v)?;
        self.call(
            "POST",
            path,
            bearer,
            Some(("application/json", bytes.as_slice())),
        )
    }
}
