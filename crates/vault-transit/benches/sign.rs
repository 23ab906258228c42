//! Throughput of `VaultTransitSigner` against a local OpenBao dev server:
//! sequential vs 32 concurrent callers, with and without batching.
//!
//! `cargo bench -p vault-transit --bench sign` (release). Needs `bao`
//! (tests/tools/setup-openbao.sh); prints a skip message without it.
//! `DDCC_BENCH_SECONDS` sets the length of each run (default 5).

use openbao_harness as support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ddcc_cert::signer::Signer;
use vault_transit::{VaultConfig, VaultTransitSigner};

struct Run {
    name: String,
    signatures: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    sign_calls: u64,
}

async fn measure(name: &str, cfg: VaultConfig, concurrency: usize, run_for: Duration) -> Run {
    let signer = Arc::new(VaultTransitSigner::new(cfg).expect("signer"));
    // Warm up: connection pool, token, transit key cache.
    for _ in 0..20 {
        signer.sign(b"warm-up").await.expect("warm-up sign");
    }
    let before = signer.stats();
    let start = Instant::now();
    let end = start + run_for;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..concurrency {
        let s = signer.clone();
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while Instant::now() < end {
                let msg = format!("task {t} message {i}");
                let t0 = Instant::now();
                s.sign(msg.as_bytes()).await.expect("sign");
                lat.push(t0.elapsed());
                i += 1;
            }
            lat
        });
    }
    let mut lat: Vec<Duration> = Vec::new();
    while let Some(r) = tasks.join_next().await {
        lat.extend(r.expect("task"));
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let after = signer.stats();
    Run {
        name: name.to_owned(),
        signatures: lat.len() as u64,
        secs,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        sign_calls: after.sign_calls - before.sign_calls,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let Some(bao) = support::start().await else {
            return;
        };
        bao.enable("transit", "transit").await;
        bao.transit_key("bench").await;
        let run_for = Duration::from_secs(
            std::env::var("DDCC_BENCH_SECONDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(5),
        );
        let base = bao.root_config("bench");
        let no_batch = VaultConfig {
            batch_max: 1,
            max_in_flight: 32,
            batch_window: Duration::ZERO,
            ..base.clone()
        };
        let window = VaultConfig {
            batch_window: Duration::from_micros(500),
            ..base.clone()
        };
        let in_flight = |n| VaultConfig {
            max_in_flight: n,
            ..base.clone()
        };
        let runs = [
            measure("sequential, batching off", no_batch.clone(), 1, run_for).await,
            measure("sequential, default", base.clone(), 1, run_for).await,
            measure("sequential, window 500 us", window.clone(), 1, run_for).await,
            measure("32 concurrent, batching off", no_batch, 32, run_for).await,
            measure(
                "32 concurrent, default (4 in flight)",
                base.clone(),
                32,
                run_for,
            )
            .await,
            measure("32 concurrent, 2 in flight", in_flight(2), 32, run_for).await,
            measure("32 concurrent, 1 in flight", in_flight(1), 32, run_for).await,
            measure("32 concurrent, window 500 us", window, 32, run_for).await,
        ];
        println!(
            "{:<42} {:>10} {:>9} {:>9} {:>11}",
            "run", "sig/s", "p50 ms", "p99 ms", "sigs/call"
        );
        for r in runs {
            println!(
                "{:<42} {:>10.0} {:>9.2} {:>9.2} {:>11.1}",
                r.name,
                r.signatures as f64 / r.secs,
                r.p50_ms,
                r.p99_ms,
                r.signatures as f64 / r.sign_calls.max(1) as f64
            );
        }
    });
}
