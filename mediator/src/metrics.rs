//! Prometheus text exposition, hand-rolled to keep the dependency tree small:
//! request counts by route/method/status, a latency histogram by route, and the
//! OpenHIM registration state.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use crate::openhim::{OpenHimStatus, RegistrationState};

/// Histogram bucket upper bounds, seconds.
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    /// Documents that failed their own profile before signing (our bug; must stay 0).
    self_check_failures: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Offsets of peers' `Date` headers against our clock.
    pub clock: crate::clock::ClockOffsets,
}

impl Metrics {
    pub fn self_check_failed(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .self_check_failures += 1;
    }

    /// `route` is the matched pattern (e.g. `/ddcc/{id}`), never the raw path, so
    /// the label set stays bounded.
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *g.requests
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
        let h = g.latency.entry(route.to_string()).or_default();
        let secs = elapsed.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    pub fn render(&self, openhim: &OpenHimStatus) -> String {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str(
            "# HELP ddcc_http_requests_total HTTP requests by route, method and status.\n",
        );
        out.push_str("# TYPE ddcc_http_requests_total counter\n");
        for ((route, method, status), n) in &g.requests {
            let _ = writeln!(
                out,
                "ddcc_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                esc(route),
                esc(method)
            );
        }
        out.push_str("# HELP ddcc_http_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE ddcc_http_request_duration_seconds histogram\n");
        for (route, h) in &g.latency {
            let r = esc(route);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "ddcc_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "ddcc_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "ddcc_http_request_duration_seconds_sum{{route=\"{r}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "ddcc_http_request_duration_seconds_count{{route=\"{r}\"}} {}",
                h.count
            );
        }
        drop(g);
        let state = openhim.state();
        out.push_str("# HELP ddcc_openhim_registration_state 1 for the current OpenHIM registration state.\n");
        out.push_str("# TYPE ddcc_openhim_registration_state gauge\n");
        for s in [
            RegistrationState::Disabled,
            RegistrationState::Registering,
            RegistrationState::Registered,
            RegistrationState::Stopped,
        ] {
            let _ = writeln!(
                out,
                "ddcc_openhim_registration_state{{state=\"{}\"}} {}",
                s.as_str(),
                u8::from(s == state)
            );
        }
        let counters = [
            (
                "ddcc_openhim_registration_attempts_total",
                &openhim.registration_attempts,
                "Registration requests sent.",
            ),
            (
                "ddcc_openhim_registration_failures_total",
                &openhim.registration_failures,
                "Registration requests that failed.",
            ),
            (
                "ddcc_openhim_heartbeats_total",
                &openhim.heartbeats,
                "Successful heartbeats.",
            ),
            (
                "ddcc_openhim_heartbeat_failures_total",
                &openhim.heartbeat_failures,
                "Failed heartbeats (including 404).",
            ),
            (
                "ddcc_openhim_config_updates_total",
                &openhim.config_updates,
                "Run-time config updates applied.",
            ),
            (
                "ddcc_openhim_config_rejections_total",
                &openhim.config_rejections,
                "Run-time config values rejected.",
            ),
        ];
        for (name, v, help) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP ddcc_document_self_check_failures_total Issued documents that failed their own profile before signing (a bug; never signed).\n");
        out.push_str("# TYPE ddcc_document_self_check_failures_total counter\n");
        let self_check_failures = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .self_check_failures;
        let _ = writeln!(
            out,
            "ddcc_document_self_check_failures_total {self_check_failures}"
        );
        self.clock.render(&mut out);
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_state() {
        let m = Metrics::default();
        m.observe("/health", "GET", 200, Duration::from_millis(3));
        m.observe("/health", "GET", 200, Duration::from_millis(70));
        m.observe("unmatched", "GET", 404, Duration::from_millis(1));
        let st = OpenHimStatus::default();
        st.set_state(RegistrationState::Registered);
        let text = m.render(&st);
        assert!(text.contains(
            "ddcc_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "ddcc_http_request_duration_seconds_bucket{route=\"/health\",le=\"0.005\"} 1"
        ));
        assert!(text
            .contains("ddcc_http_request_duration_seconds_bucket{route=\"/health\",le=\"0.1\"} 2"));
        assert!(text.contains("ddcc_http_request_duration_seconds_count{route=\"/health\"} 2"));
        assert!(text.contains("ddcc_openhim_registration_state{state=\"registered\"} 1"));
        assert!(text.contains("ddcc_openhim_registration_state{state=\"registering\"} 0"));
        assert_eq!(esc("a\"b"), "a\\\"b");
    }
}
