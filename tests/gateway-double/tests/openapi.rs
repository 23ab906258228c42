//! Walks the published OpenAPI document (`shared/contracts/gateway-openapi/`):
//! every operation it lists is routed by the double, except the rules upload
//! and delete, which the contract does not describe beyond §4 (listed here so a
//! new gap shows up as a difference).

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::{json, Value};

const NOT_IMPLEMENTED: &[(&str, &str)] = &[
    ("DELETE", "/rules"),
    ("POST", "/rules"),
    ("POST", "/rules/delete"),
];

fn openapi() -> Option<Value> {
    let shared = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let p = shared.join("contracts/gateway-openapi/openapi.json");
    match std::fs::read_to_string(&p) {
        Ok(t) => Some(serde_json::from_str(&t).expect("openapi.json parses")),
        Err(_) => {
            eprintln!("SKIP: {} not found (set DDCC_SHARED)", p.display());
            None
        }
    }
}

#[tokio::test]
async fn every_published_operation_is_routed() {
    let Some(doc) = openapi() else { return };
    let Some(w) = world().await else {
        return;
    };
    w.gw.add_valueset(
        "vaccines-covid-19-names",
        json!({"valueSetId": "vaccines-covid-19-names"}),
    );
    let c = w.client(Some(&w.a.tls));
    let mut differences = Vec::new();
    let mut unrouted = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{type}", "CSCA")
            .replace("{country}", "XA")
            .replace("{uuid}", &gateway_double::model::random_uuid())
            .replace("{id}", "vaccines-covid-19-names");
        for method in ["get", "post", "put", "delete"] {
            if ops.get(method).is_none() {
                continue;
            }
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let a = send(
                c.request(m, w.url(&concrete))
                    .header("Content-Type", "application/cms")
                    .body("AAAA"),
            )
            .await;
            // Spring's own 404/405 body has `status`; gateway errors have `code`.
            let spring_miss = matches!(a.status, 404 | 405)
                && serde_json::from_str::<Value>(&a.text)
                    .map(|v| v.get("code").is_none())
                    .unwrap_or(true);
            println!("{} {concrete}: {}", method.to_uppercase(), a.status);
            if spring_miss {
                unrouted.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    unrouted.sort();
    let expected: Vec<(String, String)> = NOT_IMPLEMENTED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    if unrouted != expected {
        differences.push(format!("unrouted {unrouted:?}, expected {expected:?}"));
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[tokio::test]
async fn valuesets_and_rules_downloads() {
    let Some(w) = world().await else {
        return;
    };
    let c = w.client(Some(&w.b.tls));
    let vs = json!({"valueSetId": "disease-agent-targeted", "valueSetValues": {}});
    w.gw.add_valueset("disease-agent-targeted", vs.clone());
    let ids = send(c.get(w.url("/valuesets"))).await;
    assert_eq!(ids.json(), json!(["disease-agent-targeted"]));
    assert_eq!(
        send(c.get(w.url("/valuesets/disease-agent-targeted")))
            .await
            .json(),
        vs
    );
    send(c.get(w.url("/valuesets/nope")))
        .await
        .assert_error(404, "0x000");
    let rules = json!({"GR-XA-0001": [{"version": "1.0.0", "validFrom": "2026-01-01T00:00:00Z", "validTo": "2030-01-01T00:00:00Z", "cms": "AAAA"}]});
    w.gw.set_rules("XA", rules.clone());
    assert_eq!(send(c.get(w.url("/rules/xa"))).await.json(), rules);
    assert_eq!(send(c.get(w.url("/rules/XB"))).await.json(), json!({}));
    send(c.get(w.url("/rules/XXA")))
        .await
        .assert_error(400, "0x001");
    // Not onboarded: 401 as everywhere.
    send(w.client(Some(&w.c.tls)).get(w.url("/valuesets")))
        .await
        .assert_error(401, "0x402");
}
