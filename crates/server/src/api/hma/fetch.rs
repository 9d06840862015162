//! Fetching media by URL (`?url=` on the HMA routes, and exchanges that
//! read a list from a URL): a request the server makes to an address a
//! client chose, so it is refused unless configured and bounded:
//!
//! - off unless `[hma] fetch_allowed_hosts` lists hosts (a host matches
//!   itself and its subdomains; `*` is any host);
//! - `http` and `https` only, no user name or password in the URL;
//! - every address a host resolves to must be public: loopback, private,
//!   link-local, shared, multicast, documentation and reserved ranges are
//!   refused, checked by the resolver the connection uses (so a name cannot
//!   resolve to one address when checked and another when connected) and on
//!   every redirect (at most `fetch_max_redirects`, each re-checked against
//!   the allowlist);
//! - no proxy from the environment; at most `fetch_max_bytes` (a larger
//!   `Content-Length` or body is 413 "Content too large"); at most
//!   `fetch_timeout` in all.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use reqwest::Url;

use super::HmaConfig;
use crate::error::ApiError;

/// What a fetch may do.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Allowed hosts (empty: fetching is off).
    pub allowed_hosts: Vec<String>,
    /// Largest body.
    pub max_bytes: u64,
    /// Longest fetch.
    pub timeout: Duration,
    /// Most redirects.
    pub max_redirects: usize,
    /// Loopback addresses allowed (tests only).
    pub allow_loopback: bool,
}

impl Policy {
    /// The policy of a configuration.
    pub fn of(c: &HmaConfig) -> Policy {
        Policy {
            allowed_hosts: c.fetch_allowed_hosts.clone(),
            max_bytes: c.fetch_max_bytes,
            timeout: c.fetch_timeout,
            max_redirects: c.fetch_max_redirects,
            allow_loopback: c.fetch_allow_loopback,
        }
    }
}

/// A fetched body.
pub struct Fetched {
    /// The bytes.
    pub bytes: Bytes,
    /// The response's `Content-Type` (empty when absent).
    pub content_type: String,
}

fn refused(why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Invalid or unsafe URL provided: refused: {why}"))
}

/// Whether an address may be fetched from: a public unicast address (or
/// loopback, when the policy allows it for tests).
pub fn address_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4, allow_loopback),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_allowed(v4, allow_loopback);
            }
            let s = v6.segments();
            if v6.is_loopback() {
                return allow_loopback;
            }
            // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) embed an IPv4 address.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return v4_allowed(v4, false);
            }
            if s[0] == 0x2002 {
                let v4 =
                    Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
                return v4_allowed(v4, false);
            }
            !(v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments (Teredo etc.)
                || s[0..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible, deprecated
        }
    }
}

fn v4_allowed(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    let o = ip.octets();
    if ip.is_loopback() {
        return allow_loopback;
    }
    !(ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space (CGNAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240) // reserved
}

/// Whether a host is on the allowlist (itself or a subdomain of an entry).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allowed.iter().any(|a| {
        a == "*"
            || host == *a
            || host
                .strip_suffix(a.as_str())
                .is_some_and(|p| p.ends_with('.'))
    })
}

/// Checks a URL against the policy without any network access: scheme,
/// credentials, allowlist, and the address when the host is an IP literal.
pub fn check_url(policy: &Policy, url: &Url) -> Result<(), ApiError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refused(format!(
            "scheme {:?} (only http and https)",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("credentials in the URL"));
    }
    let host = match url.host() {
        None => return Err(refused("no host")),
        Some(h) => h,
    };
    let name = match &host {
        url::Host::Domain(d) => d.to_string(),
        url::Host::Ipv4(a) => a.to_string(),
        url::Host::Ipv6(a) => a.to_string(),
    };
    if !host_allowed(&name, &policy.allowed_hosts) {
        return Err(refused(format!(
            "host {:?} is not in [hma] fetch_allowed_hosts",
            crate::error::snippet(&name)
        )));
    }
    let literal = match host {
        url::Host::Ipv4(a) => Some(IpAddr::V4(a)),
        url::Host::Ipv6(a) => Some(IpAddr::V6(a)),
        url::Host::Domain(_) => None,
    };
    if let Some(ip) = literal
        && !address_allowed(ip, policy.allow_loopback)
    {
        return Err(refused(format!("{ip} is not a public address")));
    }
    Ok(())
}

/// A resolver that answers only public addresses (the client connects to
/// exactly what it answers).
struct PublicOnly {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| address_allowed(a.ip(), allow_loopback))
                .collect();
            if ok.is_empty() || ok.len() != addrs.len() {
                let e: Box<dyn std::error::Error + Send + Sync> = format!(
                    "refused: {host} resolves to an address that is not public ({})",
                    addrs
                        .iter()
                        .map(|a| a.ip().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
                .into();
                return Err(e);
            }
            let it: reqwest::dns::Addrs = Box::new(ok.into_iter());
            Ok(it)
        })
    }
}

fn client(policy: &Policy) -> Result<reqwest::Client, ApiError> {
    let p = policy.clone();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > p.max_redirects {
            return attempt.error(format!("refused: more than {} redirects", p.max_redirects));
        }
        match check_url(&p, attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(format!("redirect {}", e.message)),
        }
    });
    reqwest::Client::builder()
        .no_proxy()
        .redirect(redirects)
        .timeout(policy.timeout)
        .connect_timeout(policy.timeout)
        .dns_resolver(Arc::new(PublicOnly {
            allow_loopback: policy.allow_loopback,
        }))
        .user_agent(concat!("bulwark/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(ApiError::internal)
}

fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        "Content too large",
    )
}

/// Fetches a URL under the policy.
pub async fn fetch(policy: &Policy, url: &str) -> Result<Fetched, ApiError> {
    fetch_with(policy, url, &[]).await
}

/// [`fetch`] with request headers (an exchange's credentials).
pub async fn fetch_with(
    policy: &Policy,
    url: &str,
    headers: &[(String, String)],
) -> Result<Fetched, ApiError> {
    if policy.allowed_hosts.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "fetch_disabled",
            "fetching media by URL is off on this server (set [hma] fetch_allowed_hosts); upload the file instead",
        ));
    }
    let parsed = Url::parse(url).map_err(|e| refused(format!("not a URL ({e})")))?;
    check_url(policy, &parsed)?;
    let mut req = client(policy)?.get(parsed);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let mut resp = req
        .send()
        .await
        .map_err(|e| ApiError::bad_request(format!("Failed to fetch URL: {}", describe(&e))))?;
    if !resp.status().is_success() {
        return Err(ApiError::bad_request(format!(
            "Failed to fetch URL: the server answered {}",
            resp.status()
        )));
    }
    if resp.content_length().is_some_and(|n| n > policy.max_bytes) {
        return Err(too_large());
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ApiError::bad_request(format!("Failed to fetch URL: {}", describe(&e))))?
    {
        if (out.len() + chunk.len()) as u64 > policy.max_bytes {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        bytes: Bytes::from(out),
        content_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn addresses() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "2001:db8::1",
            "ff02::1",
        ] {
            let ip: IpAddr = a.parse().unwrap_or_else(|_| panic!("{a}"));
            assert!(!address_allowed(ip, false), "{a} must be refused");
        }
        for a in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = a.parse().unwrap_or_else(|_| panic!("{a}"));
            assert!(address_allowed(ip, false), "{a} is public");
        }
        assert!(address_allowed(
            "127.0.0.1"
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            true
        ));
        assert!(!address_allowed(
            "10.0.0.1"
                .parse()
                .unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            true
        ));
    }

    /// HMA's test_allowed_hosts cases (hashing.py `is_valid_url`).
    #[test]
    fn allowlist() {
        let allowed: Vec<String> = ["example.com", "cdn.example.com"]
            .map(String::from)
            .to_vec();
        for h in [
            "example.com",
            "cdn.example.com",
            "a.example.com",
            "EXAMPLE.COM.",
        ] {
            assert!(host_allowed(h, &allowed), "{h}");
        }
        for h in [
            "evil.com",
            "example.com.evil.com",
            "notexample.com",
            "malicious-site.com",
        ] {
            assert!(!host_allowed(h, &allowed), "{h}");
        }
        assert!(host_allowed("anything.org", &["*".to_string()]));
    }

    #[test]
    fn urls() {
        let p = Policy {
            allowed_hosts: vec!["*".into()],
            max_bytes: 10,
            timeout: Duration::from_secs(1),
            max_redirects: 1,
            allow_loopback: false,
        };
        for ok in [
            "https://example.com",
            "https://example.com/path",
            "https://example.com:8080/path",
            "http://example.com",
            "https://sub.example.com",
            "https://example.com/path?query=value",
            "https://example.com/path#fragment",
        ] {
            assert!(
                check_url(&p, &Url::parse(ok).unwrap_or_else(|_| panic!("{ok}"))).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "ftp://example.com",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "ws://example.com",
            "wss://example.com",
            "http://user:pw@example.com/",
            "http://127.0.0.1/",
            "http://[::1]/",
            "http://169.254.169.254/",
            "http://10.0.0.1/",
            "http://0x7f.1/",
        ] {
            let r = Url::parse(bad)
                .map_err(|_| ())
                .and_then(|u| check_url(&p, &u).map_err(|_| ()));
            assert!(r.is_err(), "{bad} must be refused");
        }
        for malformed in [
            "example.com",
            "//example.com",
            "http://",
            "https://",
            "",
            "not a url",
            "http://example.com:abc",
        ] {
            let r = Url::parse(malformed)
                .map_err(|_| ())
                .and_then(|u| check_url(&p, &u).map_err(|_| ()));
            assert!(r.is_err(), "{malformed:?} must be refused");
        }
    }
}
