//! Verifications per second of one DCC against a 1 000-entry trust list (the
//! issue's benchmark). Run: `cargo bench -p ddcc-verify`.

use std::time::Instant;

use ciborium::value::Value as Cbor;
use ddcc_verify::{kid_of, verify_any, verify_hc1, TrustList};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

fn cbor(v: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).expect("cbor");
    out
}

fn main() {
    let mut trust = TrustList::new();
    let mut signer = None;
    for i in 0..1000 {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("keygen");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("DSC {i}"));
        let cert = params.self_signed(&kp).expect("cert");
        trust.add_der(cert.der()).expect("trust");
        if i == 500 {
            signer = Some((cert.der().to_vec(), kp.serialize_der()));
        }
    }
    let (der, pkcs8) = signer.expect("signer");
    let key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &pkcs8,
        &SystemRandom::new(),
    )
    .expect("key");
    let int = |i: i64| Cbor::Integer(i.into());
    let dcc = Cbor::Map(vec![
        (Cbor::Text("ver".into()), Cbor::Text("1.3.0".into())),
        (
            Cbor::Text("v".into()),
            Cbor::Array(vec![Cbor::Map(vec![
                (
                    Cbor::Text("ci".into()),
                    Cbor::Text("URN:UVCI:01:XX:BENCH".into()),
                ),
                (Cbor::Text("dn".into()), int(2)),
                (Cbor::Text("sd".into()), int(2)),
            ])]),
        ),
    ]);
    let payload = cbor(&Cbor::Map(vec![
        (int(1), Cbor::Text("XX".into())),
        (int(4), int(2_000_000_000)),
        (int(6), int(1_600_000_000)),
        (int(-260), Cbor::Map(vec![(int(1), dcc)])),
    ]));
    let protected = cbor(&Cbor::Map(vec![
        (int(1), int(-7)),
        (int(4), Cbor::Bytes(kid_of(&der).to_vec())),
    ]));
    let tbs = cbor(&Cbor::Array(vec![
        Cbor::Text("Signature1".into()),
        Cbor::Bytes(protected.clone()),
        Cbor::Bytes(Vec::new()),
        Cbor::Bytes(payload.clone()),
    ]));
    let sig = key.sign(&SystemRandom::new(), &tbs).expect("sign");
    let cose = cbor(&Cbor::Tag(
        18,
        Box::new(Cbor::Array(vec![
            Cbor::Bytes(protected),
            Cbor::Map(Vec::new()),
            Cbor::Bytes(payload),
            Cbor::Bytes(sig.as_ref().to_vec()),
        ])),
    ));
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut z, &cose).expect("zlib");
    let text = format!("HC1:{}", base45::encode(z.finish().expect("zlib")));

    let now = 1_700_000_000;
    assert!(verify_hc1(&text, &trust, now).valid);
    let n = 20_000;
    let start = Instant::now();
    let mut ok = 0;
    for _ in 0..n {
        ok += usize::from(verify_hc1(std::hint::black_box(&text), &trust, now).valid);
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(ok, n);
    println!(
        "verify_hc1, {} trusted DSCs: {n} in {secs:.3} s = {:.0} verifications/s ({:.1} us each, one core)",
        trust.len(),
        n as f64 / secs,
        secs * 1e6 / n as f64
    );

    // The other encodings, as the issuer makes them, against the same list plus
    // the issuer's DSC.
    let dir = std::env::temp_dir().join(format!("ddcc-verify-bench-{}", std::process::id()));
    let id = ddcc_cert::local::LocalSigner::load_or_create(&dir, "USA").expect("signer");
    trust.add_der(&id.dsc_der).expect("trust");
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let bundle = serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "name": [{"text": "Eve Test"}], "birthDate": "1990-01-01"}},
        {"fullUrl": "urn:uuid:i", "resource": {"resourceType": "Immunization", "status": "completed",
            "vaccineCode": {"coding": [{"system": "http://id.who.int/icd11/mms", "code": "XM0GQ8"}]},
            "patient": {"reference": "urn:uuid:p"}, "occurrenceDateTime": "2021-06-01"}}]});
    let cds = serde_json::json!({"name": "Eve Test", "birthDate": "1990-01-01",
        "vaccination": {"vaccine": {"code": "XM0GQ8"}, "date": "2021-06-01", "dose": 1,
            "country": {"code": "USA"}},
        "certificate": {"hcid": {"value": "BENCH123"}}});
    let card = block_on(ddcc_cert::shc::issue(
        &bundle,
        "https://x.example",
        t - 60,
        &id,
    ))
    .expect("shc")
    .qr_numeric;
    let seal = block_on(ddcc_cert::icao::issue(&cds, &id))
        .expect("icao")
        .to_string();
    let _ = std::fs::remove_dir_all(&dir);
    for (name, text) in [("shc", card), ("icao", seal)] {
        assert!(verify_any(&text, &trust, t).valid, "{name}");
        let n = 10_000;
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(verify_any(std::hint::black_box(&text), &trust, t));
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "verify_any {name}, {} trusted DSCs: {:.0} verifications/s ({:.1} us each, one core)",
            trust.len(),
            n as f64 / secs,
            secs * 1e6 / n as f64
        );
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}
