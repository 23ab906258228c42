//! The issuing hot path measured the way `bench/node-reference/bench.js` measures the
//! reference Node stack, on the same EU DCC payload: CWT + COSE_Sign1 (ES256, local
//! key) + zlib + base45 `HC1:`, then a level-Q QR code as a PNG data URL. One thread,
//! like one Node process. Prints one JSON line.
//!
//! usage: cargo run --release -p ddcc-cert --example hot_path -- <iterations> <payload.json>

use base64::Engine;
use ddcc_cert::hc1::{self, CwtClaims, HcertPayload};
use ddcc_cert::local::LocalSigner;
use ddcc_cert::qr::{self, QrMode};
use std::time::Instant;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    // The local signer never waits, so polling once completes every future here.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| (kb / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or(0.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(n), Some(path)) = (args.get(1).and_then(|n| n.parse::<u32>().ok()), args.get(2))
    else {
        eprintln!("usage: hot_path <iterations> <payload.json>");
        std::process::exit(2);
    };
    let payload: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("payload file")).expect("payload JSON");
    let dir = std::env::temp_dir().join(format!("ddcc-hot-path-{}", std::process::id()));
    let identity = LocalSigner::load_or_create(&dir, "XA").expect("development key");
    let claims = CwtClaims {
        iss: "XA".into(),
        iat: 1_700_000_000,
        exp: 1_731_536_000,
    };
    let payload = HcertPayload::Dcc(payload);
    let sign = || block_on(hc1::issue(&payload, &claims, &identity)).expect("HC1");
    let qr_data_url = |hc1: &str| {
        let png = qr::png(hc1, QrMode::for_payload(hc1)).expect("QR");
        format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(png)
        )
    };
    for _ in 0..20 {
        qr_data_url(&sign());
    }
    let rate = |t: Instant| (f64::from(n) / t.elapsed().as_secs_f64() * 10.0).round() / 10.0;

    let t = Instant::now();
    let mut hc1 = String::new();
    for _ in 0..n {
        hc1 = sign();
    }
    let sign_rate = rate(t);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(qr_data_url(&hc1));
    }
    let qr_rate = rate(t);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(qr_data_url(&sign()));
    }
    let both = rate(t);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}",
        serde_json::json!({
            "stack": "rust (ddcc-cert: coset + ring + fast_qr)",
            "iterations": n,
            "hc1_length": hc1.len(),
            "sign_per_s": sign_rate,
            "qr_png_per_s": qr_rate,
            "certificates_per_s": both,
            "rss_mib": peak_rss_mib(),
        })
    );
}
