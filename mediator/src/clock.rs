//! Clock sanity. Certificate validity (`iat`, `exp`, DSC `notBefore`/`notAfter`) and
//! token checks depend on the host clock, so a drifting clock silently issues
//! certificates that verifiers reject. Peers we talk to anyway (the OpenHIM core, the
//! WHO gateway) stamp their replies with an HTTP `Date`; the difference to our clock is
//! exposed as `ddcc_clock_offset_seconds{source}` and logged as a warning past
//! `DDCC_CLOCK_OFFSET_WARN_SECS`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Default warning threshold: well inside the leeway verifiers give (EU DCC apps
/// accept a few minutes), well above the 1 s resolution of `Date`.
pub const DEFAULT_WARN_SECS: u64 = 30;

#[derive(Debug)]
pub struct ClockOffsets {
    /// Latest offset per source, in seconds: peer clock minus ours (positive when we
    /// are behind).
    offsets: Mutex<BTreeMap<String, f64>>,
    warn_secs: AtomicU64,
}

impl Default for ClockOffsets {
    fn default() -> Self {
        Self {
            offsets: Mutex::new(BTreeMap::new()),
            warn_secs: AtomicU64::new(DEFAULT_WARN_SECS),
        }
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl ClockOffsets {
    pub fn set_warn_threshold(&self, secs: u64) {
        self.warn_secs.store(secs, Ordering::Relaxed);
    }

    /// Records the offset from one reply: `date` is the raw `Date` header value,
    /// `sent`/`received` bracket the exchange (the peer stamped its reply somewhere
    /// in between, so the midpoint is our best reading). Returns the offset, or
    /// `None` when the header is absent or unparsable (nothing recorded).
    pub fn observe(
        &self,
        source: &str,
        date: Option<&str>,
        sent: SystemTime,
        received: SystemTime,
    ) -> Option<f64> {
        let peer = httpdate::parse_http_date(date?.trim()).ok()?;
        let ours = (unix(sent) + unix(received)) / 2.0;
        // `Date` truncates to whole seconds: the peer's true time is in [peer, peer+1).
        let offset = unix(peer) + 0.5 - ours;
        let warn = self.warn_secs.load(Ordering::Relaxed) as f64;
        let previous = self
            .offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(source.to_string(), offset);
        // Warn when crossing the threshold, not on every heartbeat.
        let was_over = previous.is_some_and(|p| p.abs() > warn);
        if offset.abs() > warn && !was_over {
            tracing::warn!(
                source,
                offset_s = offset,
                threshold_s = warn,
                "host clock differs from the peer's Date header beyond the threshold; certificate and token validity checks may be wrong"
            );
        } else if offset.abs() <= warn && was_over {
            tracing::info!(
                source,
                offset_s = offset,
                "host clock back within the threshold"
            );
        }
        Some(offset)
    }

    /// As [`Self::observe`], timing the exchange from `sent` to now.
    pub fn observe_reply(&self, source: &str, date: Option<&str>, sent: SystemTime) -> Option<f64> {
        self.observe(source, date, sent, SystemTime::now())
    }

    /// As [`Self::observe_reply`] from a reply's headers (reqwest 0.12 and 0.13 share
    /// the `http` 1 header map). For the gateway client:
    /// `state.metrics.clock.observe_headers("gateway", resp.headers(), sent)`.
    pub fn observe_headers(
        &self,
        source: &str,
        headers: &reqwest::header::HeaderMap,
        sent: SystemTime,
    ) -> Option<f64> {
        let date = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok());
        self.observe_reply(source, date, sent)
    }

    pub fn get(&self, source: &str) -> Option<f64> {
        self.offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(source)
            .copied()
    }

    /// The Prometheus gauge, one sample per source seen so far.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP ddcc_clock_offset_seconds Peer clock (HTTP Date of its replies) minus ours, by peer.\n");
        out.push_str("# TYPE ddcc_clock_offset_seconds gauge\n");
        let g = self.offsets.lock().unwrap_or_else(|p| p.into_inner());
        for (source, v) in g.iter() {
            let _ = writeln!(
                out,
                "ddcc_clock_offset_seconds{{source=\"{}\"}} {v:.3}",
                source.replace('\\', "\\\\").replace('"', "\\\"")
            );
        }
    }
}

/// Helper for callers holding a `Duration` since the epoch rather than a `SystemTime`.
pub fn at(unix_secs: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs_f64(unix_secs.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_from_date_headers() {
        let c = ClockOffsets::default();
        let now = at(1_700_000_000.0);
        let date = httpdate::fmt_http_date(at(1_700_000_120.0));
        let off = c.observe("openhim", Some(&date), now, now).expect("parsed");
        assert!((off - 120.5).abs() < 1e-6, "{off}");
        let behind = httpdate::fmt_http_date(at(1_699_999_990.0));
        let off = c
            .observe("gateway", Some(&behind), now, now)
            .expect("parsed");
        assert!((off + 9.5).abs() < 1e-6, "{off}");
        assert_eq!(c.observe("x", None, now, now), None);
        assert_eq!(c.observe("x", Some("yesterday"), now, now), None);
        let mut text = String::new();
        c.render(&mut text);
        assert!(text.contains("ddcc_clock_offset_seconds{source=\"openhim\"} 120.500"));
        assert!(text.contains("ddcc_clock_offset_seconds{source=\"gateway\"} -9.500"));
        assert!(!text.contains("source=\"x\""));
    }
}
