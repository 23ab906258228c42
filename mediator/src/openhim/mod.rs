//! OpenHIM integration: registration, heartbeat and run-time config (client side
//! of contract §3 and §5), the per-request orchestration recorder, and the
//! mediator response envelope (§7).

pub mod backoff;
pub mod client;
pub mod configdefs;
pub mod envelope;
pub mod mediator_config;
pub mod orchestration;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

pub use backoff::Backoff;
pub use client::{Heartbeat, OpenHimClient};
pub use configdefs::RuntimeConfig;
pub use mediator_config::MediatorDoc;
pub use orchestration::{MediatorStatus, Orchestration, PendingOrchestration, Recorder};

/// Registration state as shown in `/ready` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// Standalone: OpenHIM is not used.
    Disabled,
    /// Trying to register (first start, after failures, or after a 404 heartbeat).
    Registering,
    Registered,
    /// The background task has stopped (shutdown).
    Stopped,
}

impl RegistrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Registering => "registering",
            Self::Registered => "registered",
            Self::Stopped => "stopped",
        }
    }
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Registering,
            2 => Self::Registered,
            3 => Self::Stopped,
            _ => Self::Disabled,
        }
    }
    fn to_u8(self) -> u8 {
        match self {
            Self::Disabled => 0,
            Self::Registering => 1,
            Self::Registered => 2,
            Self::Stopped => 3,
        }
    }
}

/// Counters shared by the background task, `/ready` and `/metrics`.
#[derive(Debug, Default)]
pub struct OpenHimStatus {
    state: AtomicU8,
    pub registration_attempts: AtomicU64,
    pub registration_failures: AtomicU64,
    pub registrations: AtomicU64,
    pub heartbeats: AtomicU64,
    pub heartbeat_failures: AtomicU64,
    pub config_updates: AtomicU64,
    pub config_rejections: AtomicU64,
    /// Unix ms of the last successful heartbeat; 0 = never.
    pub last_heartbeat_ms: AtomicU64,
}

impl OpenHimStatus {
    pub fn state(&self) -> RegistrationState {
        RegistrationState::from_u8(self.state.load(Ordering::Relaxed))
    }
    pub fn set_state(&self, s: RegistrationState) {
        self.state.store(s.to_u8(), Ordering::Relaxed);
    }
}

/// Settings of the background task, from [`crate::config::OpenHimConfig`].
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub heartbeat_interval: Duration,
    pub register_initial: Duration,
    pub register_max: Duration,
}

/// Stops the background task; `stop` waits for it to finish its current call.
pub struct RunnerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunnerHandle {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "OpenHIM task ended abnormally");
        }
    }
}

/// Starts registration and heartbeats in the background; never blocks the caller.
pub fn spawn(
    client: OpenHimClient,
    doc: MediatorDoc,
    settings: RunnerSettings,
    status: Arc<OpenHimStatus>,
    live: Arc<watch::Sender<RuntimeConfig>>,
    started: Instant,
) -> RunnerHandle {
    let (stop_tx, stop_rx) = watch::channel(false);
    status.set_state(RegistrationState::Registering);
    let task = tokio::spawn(run(client, doc, settings, status, live, started, stop_rx));
    RunnerHandle {
        stop: stop_tx,
        task,
    }
}

/// Sleeps for `d` unless asked to stop first; returns true when stopping.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}

async fn run(
    client: OpenHimClient,
    doc: MediatorDoc,
    settings: RunnerSettings,
    status: Arc<OpenHimStatus>,
    live: Arc<watch::Sender<RuntimeConfig>>,
    started: Instant,
    mut stop: watch::Receiver<bool>,
) {
    'outer: loop {
        status.set_state(RegistrationState::Registering);
        let mut backoff = Backoff::new(settings.register_initial, settings.register_max);
        loop {
            status.registration_attempts.fetch_add(1, Ordering::Relaxed);
            match client.register(&doc.doc).await {
                Ok(()) => {
                    status.registrations.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(urn = %doc.urn, version = %doc.version, "registered with OpenHIM");
                    break;
                }
                Err(e) => {
                    status.registration_failures.fetch_add(1, Ordering::Relaxed);
                    let delay = backoff.next_delay(fastrand::f64());
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, attempt = backoff.attempts(), "OpenHIM registration failed");
                    if sleep_or_stop(delay, &mut stop).await {
                        break 'outer;
                    }
                }
            }
        }
        status.set_state(RegistrationState::Registered);
        // The first heartbeat asks for config: the core only volunteers it when it
        // changed since the previous heartbeat (§5).
        let mut want_config = true;
        loop {
            let uptime = started.elapsed().as_secs_f64();
            match client.heartbeat(&doc.urn, uptime, want_config).await {
                Ok(Heartbeat::NotRegistered) => {
                    status.heartbeat_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(urn = %doc.urn, "heartbeat answered 404: mediator unknown to the core, registering again");
                    continue 'outer;
                }
                Ok(reply) => {
                    want_config = false;
                    if let Heartbeat::Config(map) = reply {
                        apply_config(&doc, &map, &live, &status);
                    }
                    // Counted after applying, so an observer that sees the count
                    // also sees the config it carried.
                    status
                        .last_heartbeat_ms
                        .store(unix_ms(SystemTime::now()), Ordering::Relaxed);
                    status.heartbeats.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    status.heartbeat_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "OpenHIM heartbeat failed");
                }
            }
            if sleep_or_stop(settings.heartbeat_interval, &mut stop).await {
                break 'outer;
            }
        }
    }
    status.set_state(RegistrationState::Stopped);
    tracing::info!("OpenHIM heartbeats stopped");
}

fn apply_config(
    doc: &MediatorDoc,
    map: &serde_json::Map<String, serde_json::Value>,
    live: &watch::Sender<RuntimeConfig>,
    status: &OpenHimStatus,
) {
    let mut report = None;
    live.send_if_modified(|rc| {
        let r = rc.apply(&doc.defs, map);
        let changed = !r.changed.is_empty();
        report = Some(r);
        changed
    });
    let Some(report) = report else { return };
    for rejected in &report.rejected {
        status.config_rejections.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %rejected, "OpenHIM config value rejected; previous value kept");
    }
    if !report.changed.is_empty() {
        status.config_updates.fetch_add(1, Ordering::Relaxed);
        // Only names: values may be passwords.
        tracing::info!(params = ?report.changed, "OpenHIM config applied");
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
