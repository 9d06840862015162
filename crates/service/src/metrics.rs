//! Prometheus text exposition of a few counters and one latency histogram.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// A counter family kept outside [`Metrics`] for [`Metrics::render`]:
/// (name, help, label, value by label value).
pub type CounterFamily<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, u64)]);

/// Request counters and latencies by route.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    matches: Mutex<BTreeMap<String, u64>>,
    extra_matches: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl Metrics {
    /// Records one request. The method is folded to the standard ones (any
    /// other is `OTHER`) and the route is a matched route template or
    /// `unmatched`, so what clients send cannot grow the label set.
    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "OTHER",
        };
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
        let s = took.as_secs_f64();
        let mut lat = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = lat.entry(format!("{method} {route}")).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += s;
        h.count += 1;
    }

    /// Distinct request label sets recorded (for tests).
    pub fn request_series(&self) -> usize {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Counts matches found, by bank.
    pub fn matched(&self, bank: &str, n: u64) {
        *self
            .matches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(bank.to_string())
            .or_default() += n;
    }

    /// Counts matches found only through an extra hash (content region,
    /// crops, rotations), by bank and hash kind (a fixed set of names): the
    /// query's kind, or the banked hash's when the query's full hash met a
    /// banked extra.
    pub fn matched_extra(&self, bank: &str, kind: bulwark_pdq::HashKind) {
        *self
            .extra_matches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((bank.to_string(), kind.as_str()))
            .or_default() += 1;
    }

    /// The exposition text; `gauges` are (name, help, value), and
    /// `counters` families kept elsewhere.
    pub fn render(&self, gauges: &[(&str, &str, f64)], counters: &[CounterFamily<'_>]) -> String {
        let mut out = String::new();
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        out.push_str("# HELP bulwark_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE bulwark_http_requests_total counter\n");
        for ((m, r, s), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "bulwark_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{s}\"}} {n}",
                esc(r)
            );
        }
        out.push_str("# HELP bulwark_http_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE bulwark_http_request_duration_seconds histogram\n");
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let r = esc(route);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "bulwark_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "bulwark_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "bulwark_http_request_duration_seconds_sum{{route=\"{r}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "bulwark_http_request_duration_seconds_count{{route=\"{r}\"}} {}",
                h.count
            );
        }
        out.push_str("# HELP bulwark_matches_total Matches returned, by bank.\n");
        out.push_str("# TYPE bulwark_matches_total counter\n");
        for (b, n) in self
            .matches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(out, "bulwark_matches_total{{bank=\"{}\"}} {n}", esc(b));
        }
        out.push_str(
            "# HELP bulwark_extra_matches_total Matches found only through an extra hash (region, crops, rotations) of the query or the bank, by bank and hash kind; also counted in bulwark_matches_total.\n",
        );
        out.push_str("# TYPE bulwark_extra_matches_total counter\n");
        for ((b, k), n) in self
            .extra_matches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "bulwark_extra_matches_total{{bank=\"{}\",hash_kind=\"{k}\"}} {n}",
                esc(b)
            );
        }
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        for (name, help, label, values) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (value, n) in *values {
                let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", esc(value));
            }
        }
        out
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    #[test]
    fn made_up_methods_do_not_grow_the_label_set() {
        let m = Metrics::default();
        for i in 0..10_000 {
            m.request(&format!("X{i}"), "unmatched", 405, Duration::from_millis(1));
        }
        m.request("GET", "/v1/health", 200, Duration::from_millis(1));
        assert_eq!(m.request_series(), 2);
        assert!(m.render(&[], &[]).len() < 8192);
    }
}
