//! Hostile input never panics: decoders and mappers get random and mutated data
//! and must answer `Err` (or `Ok` for inputs that happen to be valid).

mod common;

use common::{block_on, fixture, identity};
use ddcc_cert::hc1::{self, CwtClaims, HcertPayload};
use ddcc_cert::{bundle_sig, eudcc, icao, jcs, qr, shc, x509};
use serde_json::{json, Value};

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const B45: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

#[test]
fn decoders_reject_random_and_mutated_input() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(dir.path());
    let claims = CwtClaims {
        iss: "US".into(),
        iat: 1,
        exp: 2,
    };
    let cds = fixture("core-data-set-en.json");
    let good = block_on(hc1::issue(&HcertPayload::Who(cds.clone()), &claims, &id)).unwrap();
    let card = block_on(shc::issue(&fixture("shc-bundle.json"), "https://x", 0, &id)).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted_mutations = 0;
    for round in 0..400 {
        // Random base45 text behind the prefix.
        let len = rng.below(200);
        let text: String = (0..len)
            .map(|_| char::from(B45[rng.below(B45.len())]))
            .collect();
        assert!(hc1::verify(&format!("HC1:{text}"), &id.public_key).is_err());
        // One-character mutation of a valid HC1 (base45 stays base45).
        let mut bytes = good.clone().into_bytes();
        let at = 4 + rng.below(bytes.len() - 4);
        bytes[at] = B45[rng.below(B45.len())];
        let mutated = String::from_utf8(bytes).unwrap();
        if hc1::verify(&mutated, &id.public_key).is_ok() {
            // Possible only when the signed COSE bytes are unchanged: the same
            // character, or padding bits after the final deflate block.
            assert_eq!(
                hc1::unpack(&mutated).unwrap(),
                hc1::unpack(&good).unwrap(),
                "round {round}: mutated HC1 verified with different content"
            );
            accepted_mutations += 1;
        }
        // Random digits for SHC.
        let digits: String = (0..rng.below(300))
            .map(|_| char::from(b'0' + rng.below(10) as u8))
            .collect();
        assert!(shc::verify(&format!("shc:/{digits}"), &id.public_key).is_err());
        let mut jws = card.jws.clone().into_bytes();
        let at = rng.below(jws.len());
        jws[at] = b"ABCxyz019-_."[rng.below(12)];
        let jws = String::from_utf8(jws).unwrap();
        if jws != card.jws {
            assert!(
                shc::verify(&jws, &id.public_key).is_err(),
                "round {round}: mutated SHC verified"
            );
        }
        // Random DER for the certificate reader.
        let der: Vec<u8> = (0..rng.below(400)).map(|_| rng.next() as u8).collect();
        assert!(x509::p256_public_key(&der).is_err());
    }
    assert!(accepted_mutations < 400);
    assert!(shc::verify(&card.qr_numeric, &id.public_key).is_ok());
}

#[test]
fn mappers_survive_wrong_types_everywhere() {
    let cds = fixture("core-data-set-en.json");
    let replacements = [
        json!(null),
        json!(7),
        json!(-1),
        json!("x"),
        json!([]),
        json!({}),
        json!(true),
        json!("２００３"),
    ];
    let mut paths = Vec::new();
    collect_paths(&cds, String::new(), &mut paths);
    let mut outcomes = (0, 0);
    for p in &paths {
        for r in &replacements {
            let mut v = cds.clone();
            if let Some(slot) = v.pointer_mut(p) {
                *slot = r.clone();
            }
            match eudcc::from_core_data_set(&v, &eudcc::DccOptions::default()) {
                Ok(_) => outcomes.0 += 1,
                Err(_) => outcomes.1 += 1,
            }
            let _ = icao::data_from_core_data_set(&v, "USA");
            let _ = ddcc_cert::pdf::PdfCertificate::from_core_data_sets(&[v.clone()], vec![])
                .map(|c| ddcc_cert::pdf::render(&c));
            jcs::canonicalize(&v).unwrap();
        }
    }
    println!(
        "{} mutated core data sets: {} mapped, {} refused",
        outcomes.0 + outcomes.1,
        outcomes.0,
        outcomes.1
    );
    assert!(outcomes.0 > 0 && outcomes.1 > 0);
    // Nesting beyond our guards is refused. (Parsed input cannot be deeper than
    // serde_json's recursion limit of 128; 300 levels exceed every guard here.)
    let mut deep = json!(1);
    for _ in 0..300 {
        deep = json!([deep]);
    }
    assert!(jcs::canonicalize(&deep).is_err());
    assert!(ddcc_cert::cbor::json_to_cbor(&deep).is_err());
    assert!(shc::minify_bundle(&json!({"entry": [{"resource": deep}]})).is_err());
    // Oversized QR payloads are an error, not a panic.
    assert!(qr::png(&"A".repeat(5000), qr::QrMode::Alphanumeric).is_err());
    assert!(qr::png(
        &format!("shc:/{}", "1".repeat(9000)),
        qr::QrMode::ShcNumeric
    )
    .is_err());
    assert!(bundle_sig::verify(&json!({"signature": {"data": "!!"}}), &[4; 65]).is_err());
}

fn collect_paths(v: &Value, prefix: String, out: &mut Vec<String>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, c)| collect_paths(c, format!("{prefix}/{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, c)| collect_paths(c, format!("{prefix}/{i}"), out)),
        _ => {}
    }
}
