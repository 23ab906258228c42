//! Each check of `verify_hc1` on certificates built here, plus garbled input of
//! every layer (no panic, a named issue).

use std::io::Write;

use ciborium::value::Value as Cbor;
use ddcc_verify::{kid_of, verify_hc1, CheckKind, TrustList, Verification, MAX_DECOMPRESSED};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

const NOW: i64 = 1_700_000_000;

struct Dsc {
    der: Vec<u8>,
    key: EcdsaKeyPair,
}

fn dsc(eku: &[&[u64]], not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> Dsc {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("keygen");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CountryName, "XX");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "XX DSC test");
    params.extended_key_usages = eku
        .iter()
        .map(|o| rcgen::ExtendedKeyUsagePurpose::Other(o.to_vec()))
        .collect();
    params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let cert = params.self_signed(&kp).expect("self-signed");
    let key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &kp.serialize_der(),
        &SystemRandom::new(),
    )
    .expect("pkcs8");
    Dsc {
        der: cert.der().to_vec(),
        key,
    }
}

fn plain_dsc() -> Dsc {
    dsc(&[], (2020, 1, 1), (2030, 1, 1))
}

fn trust(d: &Dsc) -> TrustList {
    let mut t = TrustList::new();
    t.add_der(&d.der).expect("trust");
    t
}

fn cbor(v: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).expect("cbor");
    out
}

fn int(i: i64) -> Cbor {
    Cbor::Integer(i.into())
}

fn claims(kind: &str, iat: i64, exp: i64) -> Vec<u8> {
    let dcc = Cbor::Map(vec![
        (Cbor::Text("ver".into()), Cbor::Text("1.3.0".into())),
        (
            Cbor::Text(kind.into()),
            Cbor::Array(vec![Cbor::Map(vec![(
                Cbor::Text("ci".into()),
                Cbor::Text("URN:UVCI:01:XX:1".into()),
            )])]),
        ),
    ]);
    cbor(&Cbor::Map(vec![
        (int(1), Cbor::Text("XX".into())),
        (int(4), int(exp)),
        (int(6), int(iat)),
        (int(-260), Cbor::Map(vec![(int(1), dcc)])),
    ]))
}

struct Parts {
    protected: Vec<u8>,
    unprotected: Vec<(Cbor, Cbor)>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn sign(d: &Dsc, payload: Vec<u8>) -> Parts {
    let protected = cbor(&Cbor::Map(vec![
        (int(1), int(-7)),
        (int(4), Cbor::Bytes(kid_of(&d.der).to_vec())),
    ]));
    let tbs = cbor(&Cbor::Array(vec![
        Cbor::Text("Signature1".into()),
        Cbor::Bytes(protected.clone()),
        Cbor::Bytes(Vec::new()),
        Cbor::Bytes(payload.clone()),
    ]));
    let signature = d
        .key
        .sign(&SystemRandom::new(), &tbs)
        .expect("sign")
        .as_ref()
        .to_vec();
    Parts {
        protected,
        unprotected: Vec::new(),
        payload,
        signature,
    }
}

fn cose(p: &Parts, tags: &[u64]) -> Vec<u8> {
    let mut v = Cbor::Array(vec![
        Cbor::Bytes(p.protected.clone()),
        Cbor::Map(p.unprotected.clone()),
        Cbor::Bytes(p.payload.clone()),
        Cbor::Bytes(p.signature.clone()),
    ]);
    for t in tags.iter().rev() {
        v = Cbor::Tag(*t, Box::new(v));
    }
    cbor(&v)
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).expect("zlib");
    z.finish().expect("zlib")
}

fn hc1(cose: &[u8]) -> String {
    format!("HC1:{}", base45::encode(zlib(cose)))
}

fn checks(v: &Verification) -> Vec<CheckKind> {
    v.issues.iter().map(|i| i.check).collect()
}

#[test]
fn a_good_certificate_verifies_tagged_untagged_and_cwt_wrapped() {
    let d = plain_dsc();
    let parts = sign(&d, claims("v", NOW - 10, NOW + 10));
    for tags in [&[18][..], &[], &[61, 18]] {
        let v = verify_hc1(&hc1(&cose(&parts, tags)), &trust(&d), NOW);
        assert!(v.valid, "tags {tags:?}: {:?}", v.issues);
        assert_eq!(v.kid, Some(kid_of(&d.der)));
        let signer = v.signer.expect("signer");
        assert_eq!(signer.country.as_deref(), Some("XX"));
        assert!(signer.subject.contains("XX DSC test"), "{}", signer.subject);
        assert_eq!(v.cwt.iss.as_deref(), Some("XX"));
        assert_eq!(v.cwt.iat, Some(NOW - 10));
        assert_eq!(
            v.payload.expect("payload")["v"][0]["ci"],
            "URN:UVCI:01:XX:1"
        );
    }
}

#[test]
fn kid_in_the_unprotected_header_is_used_when_the_protected_one_is_missing() {
    let d = plain_dsc();
    let mut parts = sign(&d, claims("v", NOW - 10, NOW + 10));
    // Re-sign with a protected header that holds only alg.
    parts.protected = cbor(&Cbor::Map(vec![(int(1), int(-7))]));
    let tbs = cbor(&Cbor::Array(vec![
        Cbor::Text("Signature1".into()),
        Cbor::Bytes(parts.protected.clone()),
        Cbor::Bytes(Vec::new()),
        Cbor::Bytes(parts.payload.clone()),
    ]));
    parts.signature = d
        .key
        .sign(&SystemRandom::new(), &tbs)
        .expect("sign")
        .as_ref()
        .to_vec();
    parts.unprotected = vec![(int(4), Cbor::Bytes(kid_of(&d.der).to_vec()))];
    let v = verify_hc1(&hc1(&cose(&parts, &[18])), &trust(&d), NOW);
    assert!(v.valid, "{:?}", v.issues);

    // A wrong unprotected kid does not override a right protected one.
    let mut parts = sign(&d, claims("v", NOW - 10, NOW + 10));
    parts.unprotected = vec![(int(4), Cbor::Bytes(vec![0; 8]))];
    let v = verify_hc1(&hc1(&cose(&parts, &[18])), &trust(&d), NOW);
    assert!(v.valid, "{:?}", v.issues);
}

#[test]
fn tampering_names_the_failed_check() {
    let d = plain_dsc();
    let parts = sign(&d, claims("v", NOW - 10, NOW + 10));

    let mut bad = sign(&d, parts.payload.clone());
    bad.signature[5] ^= 1;
    let v = verify_hc1(&hc1(&cose(&bad, &[18])), &trust(&d), NOW);
    assert_eq!(checks(&v), vec![CheckKind::Signature]);
    assert!(v.signer.is_none());

    let mut bad = sign(&d, parts.payload.clone());
    let last = bad.payload.len() - 1;
    bad.payload[last] ^= 1;
    let v = verify_hc1(&hc1(&cose(&bad, &[18])), &trust(&d), NOW);
    assert!(checks(&v).contains(&CheckKind::Signature), "{:?}", v.issues);

    let mut bad = sign(&d, parts.payload.clone());
    bad.protected = cbor(&Cbor::Map(vec![
        (int(1), int(-7)),
        (int(4), Cbor::Bytes(vec![1, 2, 3, 4, 5, 6, 7, 8])),
    ]));
    let v = verify_hc1(&hc1(&cose(&bad, &[18])), &trust(&d), NOW);
    assert_eq!(checks(&v), vec![CheckKind::UnknownSigner]);

    // Right kid, wrong key: another DSC whose kid was forged onto this one's.
    let other = plain_dsc();
    let v = verify_hc1(&hc1(&cose(&parts, &[18])), &trust(&other), NOW);
    assert_eq!(checks(&v), vec![CheckKind::UnknownSigner]);
}

#[test]
fn cwt_time_window() {
    let d = plain_dsc();
    let early = sign(&d, claims("v", NOW + 100, NOW + 200));
    let v = verify_hc1(&hc1(&cose(&early, &[18])), &trust(&d), NOW);
    assert_eq!(checks(&v), vec![CheckKind::NotYetValid]);
    let late = sign(&d, claims("v", NOW - 200, NOW - 100));
    let v = verify_hc1(&hc1(&cose(&late, &[18])), &trust(&d), NOW);
    assert_eq!(checks(&v), vec![CheckKind::Expired]);
    // Bounds are inclusive.
    let edge = sign(&d, claims("v", NOW, NOW));
    assert!(verify_hc1(&hc1(&cose(&edge, &[18])), &trust(&d), NOW).valid);
}

#[test]
fn dsc_validity_at_the_validation_time() {
    let d = dsc(&[], (2010, 1, 1), (2012, 1, 1));
    let parts = sign(&d, claims("v", NOW - 10, NOW + 10));
    let v = verify_hc1(&hc1(&cose(&parts, &[18])), &trust(&d), NOW);
    assert_eq!(checks(&v), vec![CheckKind::DscValidity]);
}

#[test]
fn extended_key_usage_per_certificate_type() {
    const TEST: &[u64] = &[1, 3, 6, 1, 4, 1, 1847, 2021, 1, 1];
    const VACC_MISTYPED: &[u64] = &[1, 3, 6, 1, 4, 1, 0, 1847, 2021, 1, 2];
    const RECOVERY: &[u64] = &[1, 3, 6, 1, 4, 1, 1847, 2021, 1, 3];
    const OTHER: &[u64] = &[2, 23, 136, 1, 1, 14, 2];
    let cases: [(&[&[u64]], &str, bool); 7] = [
        (&[TEST], "t", true),
        (&[TEST], "v", false),
        (&[VACC_MISTYPED], "v", true),
        (&[VACC_MISTYPED, RECOVERY], "r", true),
        (&[VACC_MISTYPED, RECOVERY], "t", false),
        (&[OTHER], "v", false),
        (&[], "r", true),
    ];
    for (eku, kind, ok) in cases {
        let d = dsc(eku, (2020, 1, 1), (2030, 1, 1));
        let parts = sign(&d, claims(kind, NOW - 10, NOW + 10));
        let v = verify_hc1(&hc1(&cose(&parts, &[18])), &trust(&d), NOW);
        let expected = if ok {
            vec![]
        } else {
            vec![CheckKind::KeyUsage]
        };
        assert_eq!(checks(&v), expected, "eku {eku:?} type {kind}");
    }
}

#[test]
fn decoding_layers_fail_by_name() {
    let d = plain_dsc();
    let parts = sign(&d, claims("v", NOW - 10, NOW + 10));
    let good = cose(&parts, &[18]);
    let t = trust(&d);

    let v = verify_hc1(&hc1(&good).replacen("HC1:", "HL0:", 1), &t, NOW);
    assert_eq!(checks(&v), vec![CheckKind::Prefix]);
    let v = verify_hc1("HC1:~~~~", &t, NOW);
    assert_eq!(checks(&v), vec![CheckKind::Base45]);

    // Uncompressed: reported, and the rest still checked.
    let v = verify_hc1(&format!("HC1:{}", base45::encode(&good)), &t, NOW);
    assert_eq!(checks(&v), vec![CheckKind::Decompression]);
    assert!(v.signer.is_some());

    let mut broken = zlib(&good);
    broken.truncate(broken.len() / 2);
    let v = verify_hc1(&format!("HC1:{}", base45::encode(&broken)), &t, NOW);
    assert_eq!(checks(&v), vec![CheckKind::Decompression]);

    let bomb = zlib(&vec![0u8; MAX_DECOMPRESSED * 16]);
    let v = verify_hc1(&format!("HC1:{}", base45::encode(&bomb)), &t, NOW);
    assert_eq!(checks(&v), vec![CheckKind::Decompression]);
    assert!(v.issues[0].message.contains("exceeds"), "{:?}", v.issues);

    let v = verify_hc1(&hc1(&[0xff, 0x00]), &t, NOW);
    assert_eq!(checks(&v), vec![CheckKind::Cbor]);
    let v = verify_hc1(&hc1(&cbor(&Cbor::Array(vec![int(1)]))), &t, NOW);
    assert_eq!(checks(&v), vec![CheckKind::Cose]);
    let v = verify_hc1(&hc1(&cbor(&Cbor::Tag(99, Box::new(int(1))))), &t, NOW);
    assert_eq!(checks(&v), vec![CheckKind::Cose]);

    let garbage_payload = sign(&d, vec![0xa1, 0x01]);
    let v = verify_hc1(&hc1(&cose(&garbage_payload, &[18])), &t, NOW);
    assert_eq!(checks(&v), vec![CheckKind::Cbor]);
}

#[test]
fn garbled_input_never_panics() {
    let d = plain_dsc();
    let parts = sign(&d, claims("v", NOW - 10, NOW + 10));
    let good_cose = cose(&parts, &[18]);
    let good = hc1(&good_cose);
    let t = trust(&d);
    assert!(verify_hc1(&good, &t, NOW).valid);
    // Every truncation of the text, of the compressed bytes and of the COSE.
    for n in 0..good.len() {
        assert!(!verify_hc1(&good[..n], &t, NOW).valid);
    }
    let compressed = zlib(&good_cose);
    for n in 0..compressed.len() {
        let text = format!("HC1:{}", base45::encode(&compressed[..n]));
        assert!(!verify_hc1(&text, &t, NOW).valid);
    }
    for n in 0..good_cose.len() {
        assert!(!verify_hc1(&hc1(&good_cose[..n]), &t, NOW).valid);
    }
    // Every byte of the COSE flipped: a single-bit change may never verify.
    for i in 0..good_cose.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bytes = good_cose.clone();
            bytes[i] ^= mask;
            let v = verify_hc1(&hc1(&bytes), &t, NOW);
            assert!(!v.valid, "byte {i} ^ {mask:#x} still verifies");
            assert!(!v.issues.is_empty());
        }
    }
    // Deep nesting in the payload.
    let mut deep = int(0);
    for _ in 0..200 {
        deep = Cbor::Array(vec![deep]);
    }
    let nested = cbor(&Cbor::Map(vec![(
        int(-260),
        Cbor::Map(vec![(int(1), deep)]),
    )]));
    let v = verify_hc1(&hc1(&cose(&sign(&d, nested), &[18])), &t, NOW);
    assert!(!v.valid);
}

#[test]
fn random_mutations_never_panic_nor_verify() {
    let d = plain_dsc();
    let t = trust(&d);
    let good_cose = cose(&sign(&d, claims("r", NOW - 10, NOW + 10)), &[18]);
    let good = hc1(&good_cose);
    let good_payload = verify_hc1(&good, &t, NOW).payload;
    assert!(good_payload.is_some());
    // xorshift: deterministic, so a failure reproduces.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..3000 {
        let mut bytes = good_cose.clone();
        let edits = 1 + (next() % 4) as usize;
        for _ in 0..edits {
            let i = (next() % bytes.len() as u64) as usize;
            match next() % 3 {
                0 => bytes[i] = next() as u8,
                1 => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i, next() as u8),
            }
        }
        let v = verify_hc1(&hc1(&bytes), &t, NOW);
        if bytes != good_cose {
            assert!(!v.valid, "round {round}: mutated COSE verifies");
        }
        // Mutate the text as well: base45 alphabet and outside it.
        let mut text: Vec<char> = good.chars().collect();
        let i = 4 + (next() % (text.len() as u64 - 4)) as usize;
        text[i] = char::from_u32(32 + (next() % 200) as u32).unwrap_or('?');
        let text: String = text.into_iter().collect();
        let v = verify_hc1(&text, &t, NOW);
        // A changed character may still verify only where the bytes it changes are
        // ignored (deflate padding bits); then the content must be the original.
        if v.valid {
            assert_eq!(v.payload, good_payload, "round {round}: {text}");
        }
    }
}

#[test]
fn trust_list_takes_pem_and_base64_and_rejects_garbage() {
    use base64::Engine as _;
    use ddcc_verify::TrustError;
    let d = plain_dsc();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&d.der);
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        b64.as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut t = TrustList::new();
    assert_eq!(t.add_text(&pem), Ok(kid_of(&d.der)));
    assert_eq!(t.add_text(&b64), Ok(kid_of(&d.der)));
    assert_eq!(t.len(), 1, "the same certificate twice is stored once");
    assert_eq!(t.get(&kid_of(&d.der)).len(), 1);
    assert!(t.get(&[1, 2, 3]).is_empty());
    assert_eq!(t.add_text("not base64!"), Err(TrustError::Encoding));
    assert_eq!(
        t.add_text("-----BEGIN CERTIFICATE-----\nAAAA"),
        Err(TrustError::Encoding)
    );
    assert!(matches!(t.add_text("AAAA"), Err(TrustError::X509(_))));
    assert!(matches!(
        t.add_der(&d.der[..d.der.len() - 1]),
        Err(TrustError::X509(_))
    ));
    let other = plain_dsc();
    t.add_der(&other.der).expect("second");
    assert_eq!(t.len(), 2);
}
