//! Everything the issuer (`ddcc-cert`) makes verifies with `verify_any`, and
//! flipping one byte of the signature, the payload or the kid fails with the check
//! that names it (table-driven). Plus the ICAO chain to a trusted CSCA, the SHC
//! issuer binding and the EU revocation hashes.

use std::io::{Read, Write};
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ciborium::value::Value as Cbor;
use ddcc_cert::hc1::{CwtClaims, HcertPayload};
use ddcc_cert::{eudcc, hc1, icao, shc, SigningIdentity};
use ddcc_verify::{verify_any, CheckKind, Format, TrustList, Verification};
use serde_json::Value;
use sha2::{Digest, Sha256};

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

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cert/tests/data")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

struct Issued {
    who: String,
    dcc: String,
    shc: String,
    icao: String,
}

fn issue_all(id: &SigningIdentity) -> Issued {
    let cds = fixture("core-data-set-en.json");
    let t = now();
    let claims = CwtClaims {
        iss: "US".into(),
        iat: t - 60,
        exp: t + 86_400 * 365,
    };
    let who = block_on(hc1::issue(&HcertPayload::Who(cds.clone()), &claims, id)).expect("who");
    let payload = eudcc::from_core_data_set(
        &cds,
        &eudcc::DccOptions {
            uvci_checksum: true,
            ..Default::default()
        },
    )
    .expect("dcc payload");
    let dcc = block_on(hc1::issue(&HcertPayload::Dcc(payload), &claims, id)).expect("dcc");
    let card = block_on(shc::issue(
        &fixture("shc-bundle.json"),
        "https://ddcc.example.org",
        t - 60,
        id,
    ))
    .expect("shc");
    let seal = block_on(icao::issue(&cds, id)).expect("icao");
    Issued {
        who,
        dcc,
        shc: card.qr_numeric,
        icao: seal.to_string(),
    }
}

fn identity(dir: &Path) -> (SigningIdentity, String) {
    let opened = ddcc_cert::local::open(dir, "USA").expect("local signer");
    (opened.identity, opened.sca_pem)
}

fn trust_dsc(id: &SigningIdentity) -> TrustList {
    let mut t = TrustList::new();
    t.add_der(&id.dsc_der).expect("trust");
    t
}

// ---- mutation helpers: decode a layer, flip one byte, encode again -------------

enum Part {
    Signature,
    Payload,
    Kid,
}

fn flip(bytes: &mut [u8], at: usize) {
    bytes[at] ^= 0x01;
}

fn tamper_hc1(text: &str, part: &Part) -> String {
    let raw = base45::decode(text.strip_prefix("HC1:").expect("prefix")).expect("base45");
    let mut cose = Vec::new();
    flate2::read::ZlibDecoder::new(&raw[..])
        .read_to_end(&mut cose)
        .expect("zlib");
    let value: Cbor = ciborium::de::from_reader(&cose[..]).expect("cbor");
    let Cbor::Tag(tag, inner) = value else {
        panic!("untagged COSE")
    };
    let Cbor::Array(mut items) = *inner else {
        panic!("not an array")
    };
    let index = match part {
        Part::Signature => 3,
        Part::Payload => 2,
        Part::Kid => 0,
    };
    let Cbor::Bytes(bytes) = &mut items[index] else {
        panic!("not bytes")
    };
    let at = match part {
        Part::Signature => 5,
        Part::Payload => bytes.len() / 2,
        // The protected header is {1: -7, 4: h'<8-byte kid>'}: the kid ends it.
        Part::Kid => bytes.len() - 3,
    };
    flip(bytes, at);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Cbor::Tag(tag, Box::new(Cbor::Array(items))), &mut out)
        .expect("cbor");
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&out).expect("zlib");
    format!("HC1:{}", base45::encode(z.finish().expect("zlib")))
}

fn tamper_shc(text: &str, part: &Part) -> String {
    let jws = shc::numeric_decode(text).expect("numeric");
    let mut parts: Vec<String> = jws.split('.').map(str::to_string).collect();
    match part {
        Part::Signature | Part::Payload => {
            let i = if matches!(part, Part::Signature) {
                2
            } else {
                1
            };
            let mut bytes = URL_SAFE_NO_PAD.decode(&parts[i]).expect("b64");
            let at = bytes.len() / 2;
            flip(&mut bytes, at);
            parts[i] = URL_SAFE_NO_PAD.encode(bytes);
        }
        Part::Kid => {
            let mut header: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[0]).expect("b64"))
                    .expect("header");
            let mut kid = header["kid"].as_str().expect("kid").as_bytes().to_vec();
            flip(&mut kid, 0);
            header["kid"] = Value::String(String::from_utf8(kid).expect("ascii"));
            parts[0] = URL_SAFE_NO_PAD.encode(header.to_string());
        }
    }
    shc::numeric_encode(&parts.join(".")).expect("numeric")
}

fn tamper_icao(text: &str, part: &Part) -> String {
    let mut seal: Value = serde_json::from_str(text).expect("json");
    match part {
        Part::Signature | Part::Kid => {
            let field = if matches!(part, Part::Signature) {
                "sigvl"
            } else {
                "cer"
            };
            let mut bytes = URL_SAFE_NO_PAD
                .decode(seal["sig"][field].as_str().expect("b64"))
                .expect("b64");
            // The last byte of a certificate is inside its own signature, so the DER
            // still parses: the certificate is a different, untrusted one.
            let at = bytes.len() - 1;
            flip(&mut bytes, at);
            seal["sig"][field] = Value::String(URL_SAFE_NO_PAD.encode(bytes));
        }
        Part::Payload => {
            let name = seal["data"]["msg"]["pid"]["n"].as_str().expect("name");
            let mut bytes = name.as_bytes().to_vec();
            flip(&mut bytes, 0);
            seal["data"]["msg"]["pid"]["n"] =
                Value::String(String::from_utf8(bytes).expect("utf8"));
        }
    }
    seal.to_string()
}

fn checks(v: &Verification) -> Vec<&'static str> {
    v.issues.iter().map(|i| i.check.name()).collect()
}

#[test]
fn everything_issued_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (id, _) = identity(dir.path());
    let issued = issue_all(&id);
    let trust = trust_dsc(&id);
    let t = now();
    let cases = [
        ("who", &issued.who, Format::Hc1),
        ("dcc", &issued.dcc, Format::Hc1),
        ("shc", &issued.shc, Format::Shc),
        ("icao", &issued.icao, Format::Icao),
    ];
    let mut failures = Vec::new();
    for (name, text, format) in cases {
        let v = verify_any(text, &trust, t);
        if !v.valid || v.format != Some(format) || v.signer.is_none() || v.payload.is_none() {
            failures.push(format!("{name}: {:?}", v.issues));
        }
    }
    println!("{} of 4 encodings verify", 4 - failures.len());
    assert!(failures.is_empty(), "{failures:#?}");

    // The DCC carries its UVCI's revocation hashes; the SHC its JWK kid.
    let dcc = verify_any(&issued.dcc, &trust, t);
    assert!(dcc.revocation.is_some());
    let shc_v = verify_any(&issued.shc, &trust, t);
    assert_eq!(
        shc_v.jws_kid.as_deref(),
        ddcc_verify::jwk_thumbprint(&id.public_key).as_deref()
    );
    assert_eq!(shc_v.cwt.iss.as_deref(), Some("https://ddcc.example.org"));
    // A newline from the scanner does not matter.
    assert!(verify_any(&format!("{}\n", issued.shc), &trust, t).valid);
}

#[test]
fn one_flipped_byte_names_the_failed_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (id, _) = identity(dir.path());
    let issued = issue_all(&id);
    let trust = trust_dsc(&id);
    let t = now();
    type Tamper = fn(&str, &Part) -> String;
    let encodings: [(&str, &String, Tamper); 4] = [
        ("who", &issued.who, tamper_hc1),
        ("dcc", &issued.dcc, tamper_hc1),
        ("shc", &issued.shc, tamper_shc),
        ("icao", &issued.icao, tamper_icao),
    ];
    let parts = [
        ("signature", Part::Signature, CheckKind::Signature),
        ("payload", Part::Payload, CheckKind::Signature),
        ("kid", Part::Kid, CheckKind::UnknownSigner),
    ];
    let mut diffs = Vec::new();
    let mut total = 0;
    for (encoding, text, tamper) in encodings {
        for (part_name, part, expected) in &parts {
            total += 1;
            let tampered = tamper(text, part);
            assert_ne!(&tampered, text);
            let v = verify_any(&tampered, &trust, t);
            if v.valid || !v.issues.iter().any(|i| i.check == *expected) || v.signer.is_some() {
                diffs.push(format!(
                    "{encoding}/{part_name}: expected {}, got valid={} {:?}",
                    expected.name(),
                    v.valid,
                    checks(&v)
                ));
            }
        }
    }
    println!(
        "{} of {total} tampered certificates fail with the expected check",
        total - diffs.len()
    );
    assert!(diffs.is_empty(), "{diffs:#?}");
}

#[test]
fn icao_signer_chains_to_a_trusted_csca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (id, sca_pem) = identity(dir.path());
    let issued = issue_all(&id);
    let t = now();
    let mut csca_only = TrustList::new();
    csca_only.add_text(&sca_pem).expect("sca");
    let v = verify_any(&issued.icao, &csca_only, t);
    assert!(v.valid, "{:?}", v.issues);
    assert_eq!(v.kid, Some(id.kid));

    // Another CSCA of the same name does not vouch for it.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let (_, other_sca) = identity(other_dir.path());
    let mut wrong = TrustList::new();
    wrong.add_text(&other_sca).expect("sca");
    let v = verify_any(&issued.icao, &wrong, t);
    assert_eq!(checks(&v), ["unknown-signer"]);

    // Nothing trusted at all.
    let v = verify_any(&issued.icao, &TrustList::new(), t);
    assert_eq!(checks(&v), ["unknown-signer"]);
}

#[test]
fn shc_keys_from_a_jwks_are_bound_to_their_issuer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (id, _) = identity(dir.path());
    let issued = issue_all(&id);
    let jwks = shc::jwks(&[&id]).expect("jwks");
    let t = now();

    let mut right = TrustList::new();
    assert_eq!(
        right.add_jwks(Some("https://ddcc.example.org/"), &jwks),
        Ok(1)
    );
    let v = verify_any(&issued.shc, &right, t);
    assert!(v.valid, "{:?}", v.issues);

    let mut wrong = TrustList::new();
    wrong
        .add_jwks(Some("https://elsewhere.example.org"), &jwks)
        .expect("jwks");
    assert_eq!(
        checks(&verify_any(&issued.shc, &wrong, t)),
        ["unknown-signer"]
    );

    let mut unbound = TrustList::new();
    unbound.add_jwks(None, &jwks).expect("jwks");
    assert!(verify_any(&issued.shc, &unbound, t).valid);

    assert!(TrustList::new()
        .add_jwks(None, &serde_json::json!({"k": 1}))
        .is_err());

    // Before nbf, and with an expired card.
    assert_eq!(
        checks(&verify_any(&issued.shc, &right, t - 3600)),
        ["not-yet-valid"]
    );
}

#[test]
fn revoked_dcc_fails_with_revocation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (id, _) = identity(dir.path());
    let issued = issue_all(&id);
    let t = now();
    let clean = verify_any(&issued.dcc, &trust_dsc(&id), t);
    let hashes = clean.revocation.clone().expect("hashes");
    let uvci = clean.payload.as_ref().expect("payload")["v"][0]["ci"]
        .as_str()
        .expect("ci")
        .to_string();
    // Independently: SHA-256 of the UVCI, of "US" + UVCI (CWT iss), first 16 bytes.
    let sha = |data: &[u8]| -> [u8; 16] {
        let d = Sha256::digest(data);
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        out
    };
    assert_eq!(hashes.truncated()[0], sha(uvci.as_bytes()));
    assert_eq!(hashes.truncated()[1], sha(format!("US{uvci}").as_bytes()));
    for which in 0..3 {
        let mut trust = trust_dsc(&id);
        trust.add_revoked_hash(hashes.truncated()[which]);
        let v = verify_any(&issued.dcc, &trust, t);
        assert_eq!(checks(&v), ["revocation"], "hash {which}");
        // The signer is still named: the certificate is genuine but revoked.
        assert!(v.signer.is_some());
    }
    let mut unrelated = trust_dsc(&id);
    unrelated.add_revoked_hash([7u8; 16]);
    assert!(verify_any(&issued.dcc, &unrelated, t).valid);
}
