//! Per-certificate cost of the issuing hot path with the local signer:
//! HC1 (who + dcc) and their QR PNGs, plus the QR encoder comparison that chose
//! `fast_qr` over `qrcode` for HC1.
//!
//! Run: `cargo bench -p ddcc-cert --bench issue`

use criterion::{criterion_group, criterion_main, Criterion};
use ddcc_cert::hc1::{self, CwtClaims, HcertPayload};
use ddcc_cert::{bundle_sig, eudcc, qr, shc, SigningIdentity};
use serde_json::Value;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("fixture JSON")
}

fn setup() -> (tempfile::TempDir, SigningIdentity, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = ddcc_cert::local::LocalSigner::load_or_create(dir.path(), "USA").expect("signer");
    (dir, id, fixture("core-data-set-en.json"))
}

fn claims() -> CwtClaims {
    CwtClaims {
        iss: "US".into(),
        iat: 1_617_580_800,
        exp: 1_649_116_800,
    }
}

fn issue_one(id: &SigningIdentity, cds: &Value) -> (String, String, Vec<u8>, Vec<u8>) {
    let who = block_on(hc1::issue(&HcertPayload::Who(cds.clone()), &claims(), id)).expect("who");
    let payload =
        eudcc::from_core_data_set(cds, &eudcc::DccOptions::default()).expect("dcc payload");
    let dcc = block_on(hc1::issue(&HcertPayload::Dcc(payload), &claims(), id)).expect("dcc");
    let who_png = qr::png(&who, qr::QrMode::Alphanumeric).expect("png");
    let dcc_png = qr::png(&dcc, qr::QrMode::Alphanumeric).expect("png");
    (who, dcc, who_png, dcc_png)
}

fn bench(c: &mut Criterion) {
    let (_dir, id, cds) = setup();
    let (who, _, _, _) = issue_one(&id, &cds);
    eprintln!("who HC1: {} chars", who.len());

    let mut g = c.benchmark_group("issue");
    g.sample_size(30)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("hc1_who", |b| {
        b.iter(|| {
            block_on(hc1::issue(&HcertPayload::Who(cds.clone()), &claims(), &id)).expect("who")
        })
    });
    g.bench_function("hc1_dcc_incl_mapping", |b| {
        b.iter(|| {
            let p = eudcc::from_core_data_set(&cds, &eudcc::DccOptions::default()).expect("dcc");
            block_on(hc1::issue(&HcertPayload::Dcc(p), &claims(), &id)).expect("dcc")
        })
    });
    g.bench_function("certificate_who_dcc_with_pngs", |b| {
        b.iter(|| issue_one(&id, black_box(&cds)))
    });
    let bundle = fixture("document-bundle-en.json");
    g.bench_function("bundle_signature", |b| {
        b.iter(|| block_on(bundle_sig::sign(&bundle, &id, "Organization/x", 0)).expect("sig"))
    });
    let shc_bundle = fixture("shc-bundle.json");
    g.bench_function("shc_with_png", |b| {
        b.iter(|| {
            let r = block_on(shc::issue(&shc_bundle, "https://x.example", 0, &id)).expect("shc");
            qr::png(&r.qr_numeric, qr::QrMode::ShcNumeric).expect("png")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("qr_hc1_level_q");
    g.sample_size(30)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("fast_qr_matrix", |b| {
        b.iter(|| qr::matrix(black_box(&who), qr::QrMode::Alphanumeric).expect("qr"))
    });
    g.bench_function("qrcode_matrix", |b| {
        b.iter(|| {
            qrcode::QrCode::with_error_correction_level(black_box(&who), qrcode::EcLevel::Q)
                .expect("qr")
        })
    });
    let m = qr::matrix(&who, qr::QrMode::Alphanumeric).expect("qr");
    eprintln!("who HC1 QR: version {}", m.version);
    g.bench_function("png_1bit", |b| {
        b.iter(|| qr::png_matrix(black_box(&m), qr::Render::default()).expect("png"))
    });
    g.bench_function("svg", |b| {
        b.iter(|| qr::svg_matrix(black_box(&m), qr::Render::default()))
    });
    g.finish();

    // SHC: two segments (byte `shc:/` + numeric) need qrcode's segment API; our
    // mask scoring replaces qrcode's `apply_best_mask`.
    let card = block_on(shc::issue(&shc_bundle, "https://x.example", 0, &id)).expect("shc");
    let digits = card
        .qr_numeric
        .trim_start_matches("shc:/")
        .as_bytes()
        .to_vec();
    let shc_m = qr::matrix(&card.qr_numeric, qr::QrMode::ShcNumeric).expect("qr");
    eprintln!(
        "SHC: {} chars, QR version {}",
        card.qr_numeric.len(),
        shc_m.version
    );
    let mut g = c.benchmark_group("qr_shc_level_q");
    g.sample_size(30)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("ours_segments_plus_mask_scoring", |b| {
        b.iter(|| qr::matrix(black_box(&card.qr_numeric), qr::QrMode::ShcNumeric).expect("qr"))
    });
    g.bench_function("qrcode_with_bits", |b| {
        b.iter(|| {
            let v = qrcode::Version::Normal(shc_m.version as i16);
            let mut bits = qrcode::bits::Bits::new(v);
            bits.push_byte_data(b"shc:/").expect("bits");
            bits.push_numeric_data(black_box(&digits)).expect("bits");
            bits.push_terminator(qrcode::EcLevel::Q).expect("bits");
            qrcode::QrCode::with_bits(bits, qrcode::EcLevel::Q).expect("qr")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
