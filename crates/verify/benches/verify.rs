//! Verifications per second of one DCC against a 1 000-entry trust list (the
//! issue's benchmark). Run: `cargo bench -p ddcc-verify`.

use std::time::Instant;

use ciborium::value::Value as Cbor;
use ddcc_verify::{kid_of, verify_hc1, TrustList};
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
}
