//! Structured logging set-up. Request spans carry `request_id` and, behind
//! OpenHIM, `openhim_tx` (the core's transaction id); bodies are never logged.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(log: &LogConfig) {
    let filter = EnvFilter::try_new(&log.filter).unwrap_or_else(|e| {
        eprintln!("invalid log filter {:?} ({e}); using info", log.filter);
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    let result = match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Compact => builder.compact().with_ansi(false).try_init(),
    };
    // Already installed (tests start several servers in one process): keep the first.
    let _ = result;
}
