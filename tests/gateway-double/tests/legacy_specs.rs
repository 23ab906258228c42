//! The `@reference` scenarios of the legacy Gauge specs, read from
//! `shared/contracts/gateway-api-tests/legacy-gauge-specs/` as written upstream and
//! played against the double with the openssl participant. Skips (with a
//! message) when the shared corpus is absent.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::*;
use gateway_double::participant::OpensslParticipant;
use gateway_double::spec::{self, Outcome, Runner};
use gateway_double::{Config, GatewayDouble, PartyType};

fn specs_dir() -> Option<PathBuf> {
    let shared = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("contracts/gateway-api-tests/legacy-gauge-specs");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: {} not found (set DDCC_SHARED to the shared corpus)",
            dir.display()
        );
        None
    }
}

fn read_spec(dir: &std::path::Path, rel: &str) -> spec::Spec {
    let text = std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    spec::parse(&text)
}

/// CountryA = XA, CountryB = XB (onboarded), CountryC = XC (not onboarded),
/// OtherGateway = XX with only a TLS certificate onboarded: a download-only peer.
async fn actors(w: &World) -> HashMap<String, OpensslParticipant> {
    let other = gateway_double::ParticipantKeys::generate("XX").unwrap();
    w.gw.onboard("XX", PartyType::Authentication, &other.tls.cert_der())
        .await
        .unwrap();
    let mk = |k: &gateway_double::ParticipantKeys| {
        OpensslParticipant::new(&w.gw.base_url(), w.gw.server_ca_pem(), k).unwrap()
    };
    HashMap::from([
        ("CountryA".to_string(), mk(&w.a)),
        ("CountryB".to_string(), mk(&w.b)),
        ("CountryC".to_string(), mk(&w.c)),
        ("OtherGateway".to_string(), mk(&other)),
    ])
}

fn report(outcomes: &[Outcome]) -> Vec<String> {
    let mut failures = Vec::new();
    for o in outcomes {
        let state = if o.skipped {
            "SKIPPED"
        } else if o.failures.is_empty() {
            "ok"
        } else {
            "FAILED"
        };
        println!("scenario {:?}: {state}", o.scenario);
        for f in &o.failures {
            println!("    {f}");
            failures.push(format!("{}: {f}", o.scenario));
        }
    }
    failures
}

fn ssl_public_key() -> String {
    let c = gateway_double::pki::generate(gateway_double::pki::Profile::Tls, "XA").unwrap();
    gateway_double::model::b64(&c.cert_der())
}

#[tokio::test]
async fn gateway_reference_md_holds() {
    let Some(dir) = specs_dir() else { return };
    let spec = read_spec(&dir, "specs/gateway/reference.md");
    assert_eq!(spec.scenarios.len(), 8, "scenarios in reference.md");
    let Some(w) = world_with(Config::legacy_suite()).await else {
        return;
    };
    let actors = actors(&w).await;
    let runner = Runner {
        actors: &actors,
        ssl_public_key: ssl_public_key(),
    };
    let outcomes = runner.run(&spec).await;
    let failures = report(&outcomes);
    assert!(outcomes.iter().all(|o| !o.skipped));
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The teardown deleted every uploaded reference.
    assert!(w.gw.references().is_empty(), "{:?}", w.gw.references());
}

/// Against today's gateway (domain column 32) the one scenario that relied on the
/// old column width no longer holds (contract §5.1 quirk); all others do.
#[tokio::test]
async fn gateway_reference_md_against_the_current_gateway() {
    let Some(dir) = specs_dir() else { return };
    let spec = read_spec(&dir, "specs/gateway/reference.md");
    let Some(w) = world().await else {
        return;
    };
    let actors = actors(&w).await;
    let runner = Runner {
        actors: &actors,
        ssl_public_key: ssl_public_key(),
    };
    let outcomes = runner.run(&spec).await;
    report(&outcomes);
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.failures.is_empty())
        .map(|o| o.scenario.as_str())
        .collect();
    assert_eq!(failed, vec!["Invalid domain in reference is rejected"]);
}

/// `federation_2p/reference.md` after the long-lived data of
/// `testdata/testdata_ref.md`: A and B upload on gateway 1, C on the second
/// gateway, which then holds A's and B's records as federated copies.
#[tokio::test]
async fn federation_reference_md_holds_on_existing_data() {
    let Some(dir) = specs_dir() else { return };
    let Some(w) = world_with(Config::legacy_suite()).await else {
        return;
    };
    let second = GatewayDouble::start(Config::legacy_suite()).await.unwrap();
    second.onboard_participant(&w.c).await.unwrap();
    let mut actors = actors(&w).await;
    let on_second =
        |k| OpensslParticipant::new(&second.base_url(), second.server_ca_pem(), k).unwrap();
    for g in ["2", "second_gateway"] {
        actors.insert(format!("CountryC@{g}"), on_second(&w.c));
    }
    let runner = Runner {
        actors: &actors,
        ssl_public_key: ssl_public_key(),
    };
    let data = read_spec(&dir, "testdata/testdata_ref.md");
    assert_eq!(data.scenarios.len(), 3);
    let failures = report(&runner.run(&data).await);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(w.gw.references().len(), 2);
    assert_eq!(second.references().len(), 1);
    assert_eq!(second.federate_references_from(&w.gw), 2);

    let fed = read_spec(&dir, "specs/federation_2p/reference.md");
    let outcomes = runner.run(&fed).await;
    let failures = report(&outcomes);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Upstream marks the first scenario with a `skip` step; the second ran.
    assert_eq!(
        outcomes.iter().map(|o| o.skipped).collect::<Vec<_>>(),
        vec![true, false]
    );
}

/// `specs/gateway/certificates.md` with `/signerCertificate` (DSC upload, data
/// distribution, both delete endpoints, other-country and wrong-CSCA refusals).
#[tokio::test]
async fn gateway_certificates_md_holds() {
    let Some(dir) = specs_dir() else { return };
    let spec = read_spec(&dir, "specs/gateway/certificates.md");
    assert_eq!(spec.scenarios.len(), 9, "scenarios in certificates.md");
    let Some(w) = world().await else {
        return;
    };
    let other = gateway_double::ParticipantKeys::generate("XX").unwrap();
    w.gw.onboard("XX", PartyType::Authentication, &other.tls.cert_der())
        .await
        .unwrap();
    let mk = |k: &gateway_double::ParticipantKeys| {
        OpensslParticipant::new(&w.gw.base_url(), w.gw.server_ca_pem(), k).unwrap()
    };
    let (pa, pb, pc, po) = (mk(&w.a), mk(&w.b), mk(&w.c), mk(&other));
    let actor = |participant, keys| spec::CertActor { participant, keys };
    let actors = HashMap::from([
        ("CountryA".to_string(), actor(&pa, &w.a)),
        ("CountryB".to_string(), actor(&pb, &w.b)),
        ("CountryC".to_string(), actor(&pc, &w.c)),
        ("OtherGateway".to_string(), actor(&po, &other)),
    ]);
    let outcomes = spec::run_certificates(&spec, &actors).await;
    let failures = report(&outcomes);
    assert!(outcomes.iter().all(|o| !o.skipped));
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        w.gw.signer_certificates().is_empty(),
        "teardown deleted every DSC"
    );
}

/// The long-lived certificate data of `testdata/testdata_cert.md` (C on the
/// second gateway).
#[tokio::test]
async fn testdata_cert_md_uploads() {
    let Some(dir) = specs_dir() else { return };
    let spec = read_spec(&dir, "testdata/testdata_cert.md");
    let Some(w) = world().await else {
        return;
    };
    let mk = |k: &gateway_double::ParticipantKeys| {
        OpensslParticipant::new(&w.gw.base_url(), w.gw.server_ca_pem(), k).unwrap()
    };
    let (pa, pb) = (mk(&w.a), mk(&w.b));
    // "select gateway" is not a certificate step: C's scenario must fail on it
    // rather than silently run against the first gateway.
    let actors = HashMap::from([
        (
            "CountryA".to_string(),
            spec::CertActor {
                participant: &pa,
                keys: &w.a,
            },
        ),
        (
            "CountryB".to_string(),
            spec::CertActor {
                participant: &pb,
                keys: &w.b,
            },
        ),
    ]);
    let outcomes = spec::run_certificates(&spec, &actors).await;
    report(&outcomes);
    let ok: Vec<bool> = outcomes.iter().map(|o| o.failures.is_empty()).collect();
    assert_eq!(ok, vec![true, true, false]);
    assert_eq!(
        w.gw.signer_certificates().len(),
        2,
        "no teardown in test data"
    );
}
