//! Stable-toolchain stand-in for the fuzz target (`fuzz/`, nightly + cargo-fuzz):
//! seeded mutations of real certificates of all four encodings, at every layer
//! (`ddcc_verify::fuzzing::wrap`), for a time budget. Every input must get a verdict
//! (no panic) whose `valid` agrees with its issues, and every issue must say
//! something. Fixed seed, so a failure reproduces; `DDCC_FUZZ_SECONDS` sets the
//! budget (default 3 s), `DDCC_FUZZ_SEED` another seed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ddcc_cert::hc1::{CwtClaims, HcertPayload};
use ddcc_cert::{eudcc, hc1, icao, shc};
use ddcc_verify::fuzzing::wrap;
use ddcc_verify::{verify_any, CheckKind, TrustList, MAX_SHC_INFLATED};

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

fn fixture(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cert/tests/data")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

/// The DSC is made now, so the clock is real; expiry windows are wide around it.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// xorshift64*: small, deterministic, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: [u8; 12] = [
    0, 0xff, 0x7f, 0x80, b'"', b'{', b'[', b'.', 0x18, 0x1b, 0x9f, 0xbf,
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                out[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                out[at] = rng.next() as u8;
            }
            2 => {
                let at = rng.below(len + 1);
                out.insert(at, INTERESTING[rng.below(INTERESTING.len())]);
            }
            3 if len > 0 => {
                out.remove(rng.below(len));
            }
            4 if len > 0 => out.truncate(rng.below(len)),
            5 if len > 1 => {
                // Duplicate a slice: nesting, repeated headers, longer strings.
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                let chunk = out[start..end].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, chunk);
            }
            6 if len > 1 => {
                let (a, b) = (rng.below(len), rng.below(len));
                out.swap(a, b);
            }
            _ if len > 0 => {
                let at = rng.below(len);
                out[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            _ => out.push(rng.next() as u8),
        }
    }
    out
}

/// (selector, bytes) seeds: each issued certificate at each of its layers.
fn seeds() -> (Vec<(u8, Vec<u8>)>, TrustList) {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = ddcc_cert::local::LocalSigner::load_or_create(dir.path(), "USA").expect("signer");
    let cds = fixture("core-data-set-en.json");
    let t = now();
    let claims = CwtClaims {
        iss: "US".into(),
        iat: t - 60,
        exp: t + 86_400,
    };
    let who = block_on(hc1::issue(&HcertPayload::Who(cds.clone()), &claims, &id)).expect("who");
    let dcc_payload = eudcc::from_core_data_set(&cds, &Default::default()).expect("dcc");
    let dcc = block_on(hc1::issue(&HcertPayload::Dcc(dcc_payload), &claims, &id)).expect("dcc");
    let card = block_on(shc::issue(
        &fixture("shc-bundle.json"),
        "https://x.example",
        t - 60,
        &id,
    ))
    .expect("shc");
    let seal = block_on(icao::issue(&cds, &id)).expect("icao").to_string();

    let mut out = Vec::new();
    for text in [&who, &dcc] {
        out.push((0, text.as_bytes().to_vec()));
        let raw = base45::decode(&text[4..]).expect("base45");
        let mut cose = Vec::new();
        flate2::read::ZlibDecoder::new(&raw[..])
            .read_to_end(&mut cose)
            .expect("zlib");
        out.push((1, raw));
        out.push((2, cose));
    }
    out.push((0, card.qr_numeric.as_bytes().to_vec()));
    out.push((3, card.jws.bytes().map(|b| b - 45).collect()));
    let parts: Vec<&str> = card.jws.split('.').collect();
    let header = URL_SAFE_NO_PAD.decode(parts[0]).expect("b64");
    let compressed = URL_SAFE_NO_PAD.decode(parts[1]).expect("b64");
    let mut inflated = Vec::new();
    flate2::read::DeflateDecoder::new(&compressed[..])
        .read_to_end(&mut inflated)
        .expect("inflate");
    out.push((4, header));
    out.push((5, inflated));
    out.push((6, compressed));
    out.push((7, seal.into_bytes()));

    let mut trust = TrustList::new();
    trust.add_der(&id.dsc_der).expect("trust");
    (out, trust)
}

#[test]
fn mutated_certificates_of_every_layer_get_a_verdict() {
    let budget = std::env::var("DDCC_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3u64);
    let seed = std::env::var("DDCC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_dcc0_u64);
    let (seeds, trust) = seeds();
    let t = now();
    // `DDCC_FUZZ_CORPUS_DIR`: also write the seeds as a cargo-fuzz corpus (the
    // selector byte, then the layer's bytes).
    if let Some(dir) = std::env::var_os("DDCC_FUZZ_CORPUS_DIR") {
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (i, (selector, bytes)) in seeds.iter().enumerate() {
            let mut file = vec![*selector];
            file.extend_from_slice(bytes);
            std::fs::write(Path::new(&dir).join(format!("seed-{i:02}")), file).expect("seed");
        }
    }
    // The unmutated seeds of the full texts verify: the harness reaches the end.
    for (selector, bytes) in &seeds {
        if *selector == 0 {
            let v = verify_any(&wrap(0, bytes), &trust, t);
            assert!(v.valid, "seed does not verify: {:?}", v.issues);
        }
    }
    let mut rng = Rng(seed | 1);
    let mut by_check: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut runs, mut valid) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(budget);
    while Instant::now() < deadline {
        for _ in 0..64 {
            let (selector, bytes) = &seeds[rng.below(seeds.len())];
            let mutated = mutate(&mut rng, bytes);
            let text = wrap(*selector, &mutated);
            let v = verify_any(&text, &trust, t);
            runs += 1;
            assert_eq!(
                v.valid,
                v.issues.is_empty(),
                "selector {selector}: {text:?}"
            );
            for issue in &v.issues {
                assert!(!issue.message.is_empty(), "empty message: {text:?}");
                *by_check.entry(issue.check.name()).or_default() += 1;
            }
            valid += u64::from(v.valid);
        }
    }
    println!(
        "seed {seed:#x}: {runs} mutated inputs in {budget} s, {valid} still valid; issues by check: {by_check:?}"
    );
    // The mutations reach past decoding: signature failures are among the verdicts.
    assert!(
        by_check.contains_key(CheckKind::Signature.name()),
        "{by_check:?}"
    );
}

#[test]
fn shc_decompression_bomb_is_rejected() {
    let bomb = vec![b' '; MAX_SHC_INFLATED * 4];
    let v = verify_any(&wrap(5, &bomb), &TrustList::new(), now());
    assert!(
        v.issues
            .iter()
            .any(|i| i.check == CheckKind::Decompression && i.message.contains("bomb")),
        "{:?}",
        v.issues
    );
}
