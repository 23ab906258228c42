//! The served knowledge artefacts (`/fhir/{ValueSet,CodeSystem,…}`): every artefact
//! by id and by url with its exact bytes and ETag, 304 on `If-None-Match`, `$expand`
//! of the IG's value sets checked against expansions computed here from the IG files,
//! 4xx OperationOutcomes for bad requests, the CapabilityStatement, and — as a
//! verifier would — every reference printed by `gateway publish --dry-run` fetched
//! from a running service and hashed to its thumbprint.

mod service;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use actix_web::http::header;
use actix_web::test::{self, TestRequest};
use base64::Engine as _;
use ddcc_mediator::artefacts::Artefacts;
use ddcc_mediator::config::Config;
use ddcc_mediator::services::load_artefacts;
use serde_json::Value;
use service::{app, config, root};
use sha2::{Digest, Sha256};

const PUBLIC: &str = "https://mediator.moh.example";

fn fixture_cql() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/artefacts-cql")
}

fn artefact_config(tag: &str) -> Config {
    let mut cfg = config(tag);
    cfg.ddcc.cql_dir = fixture_cql();
    cfg.server.public_base_url = Some(PUBLIC.into());
    cfg
}

/// Query-component encoding for the few characters canonicals carry.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Answer {
    status: u16,
    etag: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn get(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    uri: &str,
    if_none_match: Option<&str>,
) -> Answer {
    let mut req = TestRequest::get().uri(uri);
    if let Some(t) = if_none_match {
        req = req.insert_header((header::IF_NONE_MATCH, t));
    }
    let resp = test::call_service(app, req.to_request()).await;
    let status = resp.status().as_u16();
    let h = |n: header::HeaderName| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let etag = h(header::ETAG);
    let content_type = h(header::CONTENT_TYPE);
    let body = test::read_body(resp).await.to_vec();
    Answer {
        status,
        etag,
        content_type,
        body,
    }
}

fn is_outcome(a: &Answer) -> bool {
    a.json()["resourceType"] == "OperationOutcome"
        && a.content_type.as_deref() == Some("application/fhir+json")
}

fn report(what: &str, failures: &[String]) {
    for f in failures {
        println!("DIFF {what}: {f}");
    }
    assert!(
        failures.is_empty(),
        "{} {what} difference(s)",
        failures.len()
    );
}

#[actix_web::test]
async fn every_artefact_is_served_by_id_and_by_url_with_its_exact_bytes() {
    let cfg = artefact_config("artefacts-read");
    let artefacts = load_artefacts(&cfg).expect("artefacts");
    let app = app(cfg).await;
    let mut failures = Vec::new();
    let mut checked_by_url = 0;
    let mut types = BTreeSet::new();
    for s in artefacts.all() {
        types.insert(s.resource_type.clone());
        let path = format!("/fhir/{}/{}", s.resource_type, s.id);
        let a = get(&app, &path, None).await;
        if a.status != 200 {
            failures.push(format!("{path}: status {}", a.status));
            continue;
        }
        if a.body != s.bytes() {
            failures.push(format!("{path}: body differs from the loaded bytes"));
        }
        let digest = hex::encode(Sha256::digest(&a.body));
        if digest != s.thumbprint {
            failures.push(format!(
                "{path}: SHA-256 {digest} ≠ thumbprint {}",
                s.thumbprint
            ));
        }
        if a.etag.as_deref() != Some(format!("W/\"{digest}\"").as_str()) {
            failures.push(format!("{path}: ETag {:?}", a.etag));
        }
        if a.content_type.as_deref() != Some("application/fhir+json") {
            failures.push(format!("{path}: Content-Type {:?}", a.content_type));
        }
        let v = a.json();
        if v["resourceType"] != s.resource_type.as_str() || v["id"] != s.id.as_str() {
            failures.push(format!("{path}: body is {}/{}", v["resourceType"], v["id"]));
        }
        // Served bytes are RFC 8785: re-serialising with sorted keys gives them back.
        let resorted = serde_json::to_vec(&sorted(&v)).unwrap_or_default();
        if resorted != a.body {
            failures.push(format!(
                "{path}: bytes are not in canonical (sorted, compact) form"
            ));
        }
        let Some(url) = &s.url else { continue };
        let mut q = format!("/fhir/{}?url={}", s.resource_type, enc(url));
        if let Some(v) = &s.version {
            q.push_str(&format!("&version={}", enc(v)));
        }
        let b = get(&app, &q, None).await.json();
        let hits: Vec<&Value> = b["entry"]
            .as_array()
            .map(|e| e.iter().collect())
            .unwrap_or_default();
        let found = hits
            .iter()
            .any(|e| e["fullUrl"] == s.public_url.as_str() && e["resource"]["id"] == s.id.as_str());
        if b["type"] != "searchset" || !found || b["total"] != hits.len() {
            failures.push(format!(
                "{q}: {} hit(s), ours among them: {found}",
                hits.len()
            ));
        }
        checked_by_url += 1;
    }
    println!(
        "{} artefacts read by id, {checked_by_url} by url; types {types:?}",
        artefacts.all().len()
    );
    report("read", &failures);
    for t in [
        "ValueSet",
        "CodeSystem",
        "ConceptMap",
        "Questionnaire",
        "StructureDefinition",
        "StructureMap",
        "Library",
        "PlanDefinition",
    ] {
        assert!(types.contains(t), "no {t} served");
    }
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[actix_web::test]
async fn etag_revalidation_answers_304() {
    let cfg = artefact_config("artefacts-etag");
    let artefacts = load_artefacts(&cfg).expect("artefacts");
    let app = app(cfg).await;
    let mut failures = Vec::new();
    for s in artefacts.all() {
        let path = format!("/fhir/{}/{}", s.resource_type, s.id);
        let strong = s.etag.trim_start_matches("W/");
        for (header, want) in [
            (s.etag.clone(), 304),
            (strong.to_string(), 304),
            (format!("\"other\", {}", s.etag), 304),
            ("*".to_string(), 304),
            ("W/\"0000\"".to_string(), 200),
        ] {
            let a = get(&app, &path, Some(&header)).await;
            if a.status != want {
                failures.push(format!(
                    "{path} If-None-Match {header}: {} (want {want})",
                    a.status
                ));
            }
            if want == 304 && (!a.body.is_empty() || a.etag.as_deref() != Some(s.etag.as_str())) {
                failures.push(format!("{path}: 304 with a body or without the ETag"));
            }
        }
    }
    report("etag", &failures);
}

/// Every code of a served CodeSystem (nested concepts too), when it is complete.
fn code_system_codes(artefacts: &Artefacts, url: &str) -> Option<Vec<String>> {
    let cs = artefacts
        .of_type("CodeSystem")
        .find(|c| c.url.as_deref() == Some(url))?
        .resource();
    if cs["content"] != "complete" {
        return None;
    }
    let mut codes = Vec::new();
    let mut stack: Vec<&Value> = cs["concept"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    while let Some(c) = stack.pop() {
        codes.extend(c["code"].as_str().map(str::to_string));
        if let Some(a) = c["concept"].as_array() {
            stack.extend(a.iter());
        }
    }
    Some(codes)
}

/// The expansion computed straight from the files, for value sets made only of
/// enumerated concepts and whole complete CodeSystems (no filters, imports or
/// excludes); `None` when the value set needs more than that.
fn independent_expansion(artefacts: &Artefacts, vs: &Value) -> Option<BTreeSet<(String, String)>> {
    let compose = vs.get("compose")?;
    if compose.get("exclude").is_some() {
        return None;
    }
    let mut out = BTreeSet::new();
    for inc in compose["include"].as_array()? {
        if inc.get("filter").is_some() || inc.get("valueSet").is_some() {
            return None;
        }
        let system = inc["system"].as_str()?.to_string();
        match inc["concept"].as_array() {
            Some(concepts) => {
                for c in concepts {
                    out.insert((system.clone(), c["code"].as_str()?.to_string()));
                }
            }
            None => {
                for code in code_system_codes(artefacts, &system)? {
                    out.insert((system.clone(), code));
                }
            }
        }
    }
    Some(out)
}

fn expansion_codes(v: &Value) -> BTreeSet<(String, String)> {
    v["expansion"]["contains"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["system"].as_str().unwrap_or_default().to_string(),
                c["code"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn expand_of_every_served_value_set() {
    if let Some(shared) = service::shared() {
        // The IG package ships no pre-computed expansions; the expected ones are
        // computed below from the IG's own ValueSet and CodeSystem files.
        println!(
            "note: no IG expansions in {}; comparing with expansions computed from the IG files",
            shared.display()
        );
    }
    let cfg = artefact_config("artefacts-expand");
    let artefacts = load_artefacts(&cfg).expect("artefacts");
    let app = app(cfg).await;
    let mut failures = Vec::new();
    let (mut compared, mut expanded_only, mut refused) = (0, 0, 0);
    let mut ig_compared = 0;
    for s in artefacts.of_type("ValueSet") {
        let (id, url, vs) = (&s.id, s.url.clone().unwrap_or_default(), s.resource());
        let ig = s.source.to_string_lossy().contains("/ig/");
        let mut by_url_uri = format!("/fhir/ValueSet/$expand?url={}", enc(&url));
        if let Some(v) = &s.version {
            by_url_uri.push_str(&format!("&valueSetVersion={}", enc(v)));
        }
        let by_id = get(&app, &format!("/fhir/ValueSet/{id}/$expand"), None).await;
        let by_url = get(
            &app,
            &format!("/fhir/ValueSet/$expand?url={}", enc(&url)),
            None,
        )
        .await;
        if by_id.status != by_url.status {
            failures.push(format!(
                "{id}: by id {} but by url {}",
                by_id.status, by_url.status
            ));
        }
        match (by_id.status, independent_expansion(&artefacts, vs)) {
            (200, expected) => {
                let got = by_id.json();
                let codes = expansion_codes(&got);
                if got["url"] != url.as_str() || got["expansion"]["total"] != codes.len() {
                    failures.push(format!(
                        "{id}: url {} total {}",
                        got["url"], got["expansion"]["total"]
                    ));
                }
                if codes != expansion_codes(&by_url.json()) {
                    failures.push(format!("{id}: by id and by url differ"));
                }
                match expected {
                    Some(want) => {
                        compared += 1;
                        ig_compared += usize::from(ig);
                        for missing in want.difference(&codes) {
                            failures.push(format!("{id}: missing {missing:?}"));
                        }
                        for extra in codes.difference(&want) {
                            failures.push(format!("{id}: unexpected {extra:?}"));
                        }
                    }
                    None => expanded_only += 1,
                }
            }
            (422, None) if is_outcome(&by_id) => refused += 1,
            (status, expected) => failures.push(format!(
                "{id}: status {status} (independently expandable: {})",
                expected.is_some()
            )),
        }
    }
    println!(
        "$expand: {compared} compared with independent expansions ({ig_compared} of IG 1.0.0), {expanded_only} expanded beyond the independent check, {refused} refused as not local"
    );
    report("expand", &failures);
    assert!(
        ig_compared >= 25,
        "only {ig_compared} IG 1.0.0 value sets compared"
    );
}

#[actix_web::test]
async fn expand_parameters() {
    let app = app(artefact_config("artefacts-expand-params")).await;
    let url = "http://smart.who.int/ddcc/ValueSet/DDCCQRFormatValueSet";
    let all = get(
        &app,
        &format!("/fhir/ValueSet/$expand?url={}", enc(url)),
        None,
    )
    .await
    .json();
    let total = all["expansion"]["total"].as_u64().expect("total");
    assert!(total >= 2, "{all}");
    let page = get(
        &app,
        &format!("/fhir/ValueSet/$expand?url={}&offset=1&count=1", enc(url)),
        None,
    )
    .await
    .json();
    assert_eq!(page["expansion"]["total"], total);
    assert_eq!(page["expansion"]["offset"], 1);
    assert_eq!(
        page["expansion"]["contains"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        page["expansion"]["contains"][0],
        all["expansion"]["contains"][1]
    );
    let filtered = get(
        &app,
        &format!("/fhir/ValueSet/$expand?url={}&filter=PDF", enc(url)),
        None,
    )
    .await
    .json();
    let codes: Vec<&str> = filtered["expansion"]["contains"]
        .as_array()
        .expect("contains")
        .iter()
        .filter_map(|c| c["code"].as_str())
        .collect();
    assert_eq!(codes, vec!["pdf"], "{filtered}");
    let versioned = get(
        &app,
        &format!(
            "/fhir/ValueSet/$expand?url={}&valueSetVersion=1.0.0",
            enc(url)
        ),
        None,
    )
    .await;
    assert_eq!(versioned.status, 200);
    let wrong_version = get(
        &app,
        &format!(
            "/fhir/ValueSet/$expand?url={}&valueSetVersion=9.9.9",
            enc(url)
        ),
        None,
    )
    .await;
    assert_eq!(wrong_version.status, 404);
    assert!(is_outcome(&wrong_version));
}

#[actix_web::test]
async fn bad_requests_are_operation_outcomes() {
    let app = app(artefact_config("artefacts-bad")).await;
    for (uri, want) in [
        ("/fhir/ValueSet/no-such-value-set", 404),
        ("/fhir/PlanDefinition/no-such-plan", 404),
        ("/fhir/Library/no-such-library", 404),
        ("/fhir/StructureDefinition/%24nope", 404),
        ("/fhir/ValueSet?url=not%20a%20url", 400),
        ("/fhir/ValueSet?url=relative/ValueSet/x", 400),
        ("/fhir/ValueSet?url=", 400),
        ("/fhir/CodeSystem?url=http://a/b&url=http://a/c", 400),
        ("/fhir/ValueSet?publisher=WHO", 400),
        ("/fhir/ValueSet/$expand", 400),
        ("/fhir/ValueSet/$expand?url=%3Cscript%3E", 400),
        (
            "/fhir/ValueSet/$expand?url=http://example.org/ValueSet/unknown",
            404,
        ),
        ("/fhir/ValueSet/no-such-value-set/$expand", 404),
        (
            "/fhir/ValueSet/DDCCQRFormatValueSet/$expand?url=http://x/y",
            400,
        ),
        ("/fhir/ValueSet/DDCCQRFormatValueSet/$expand?count=-1", 400),
        ("/fhir/ValueSet/DDCCQRFormatValueSet/$expand?profile=x", 400),
    ] {
        let a = get(&app, uri, None).await;
        assert_eq!(
            a.status,
            want,
            "{uri}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert!(is_outcome(&a), "{uri}: not an OperationOutcome");
    }
    // Read-only: writes to an artefact type are refused, not stored.
    for (method, uri) in [
        (actix_web::http::Method::POST, "/fhir/ValueSet"),
        (
            actix_web::http::Method::PUT,
            "/fhir/ValueSet/DDCCQRFormatValueSet",
        ),
        (actix_web::http::Method::DELETE, "/fhir/Library/FixturePass"),
    ] {
        let req = TestRequest::default()
            .method(method.clone())
            .uri(uri)
            .insert_header((header::CONTENT_TYPE, "application/fhir+json"))
            .set_payload(r#"{"resourceType":"ValueSet","status":"draft"}"#)
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status().as_u16(), 405, "{method} {uri}");
        let body: Value =
            serde_json::from_slice(&test::read_body(resp).await).unwrap_or(Value::Null);
        assert_eq!(body["resourceType"], "OperationOutcome", "{method} {uri}");
    }
}

#[actix_web::test]
async fn other_types_still_reach_the_registry() {
    let app = app(artefact_config("artefacts-registry")).await;
    // QuestionnaireResponse starts with "Questionnaire": it must not be taken for one.
    let a = get(&app, "/fhir/QuestionnaireResponse?_count=1", None).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["type"], "searchset");
    let b = get(&app, "/fhir/List?_count=1", None).await;
    assert_eq!(b.status, 200);
}

#[actix_web::test]
async fn capability_statement_lists_the_artefact_types() {
    let app = app(artefact_config("artefacts-metadata")).await;
    let cs = get(&app, "/fhir/metadata", None).await.json();
    let resources = cs["rest"][0]["resource"].as_array().expect("resources");
    for t in ddcc_mediator::artefacts::SERVED_TYPES {
        let matching: Vec<&Value> = resources.iter().filter(|r| r["type"] == t).collect();
        assert_eq!(matching.len(), 1, "{t} listed {} times", matching.len());
        let r = matching[0];
        let interactions: Vec<&str> = r["interaction"]
            .as_array()
            .expect("interaction")
            .iter()
            .filter_map(|i| i["code"].as_str())
            .collect();
        assert!(
            interactions.contains(&"read") && interactions.contains(&"search-type"),
            "{t}: {interactions:?}"
        );
        assert!(r["searchParam"]
            .as_array()
            .expect("params")
            .iter()
            .any(|p| p["name"] == "url"));
    }
    let vs = resources
        .iter()
        .find(|r| r["type"] == "ValueSet")
        .expect("ValueSet");
    assert_eq!(vs["operation"][0]["name"], "expand");
    assert!(!vs["interaction"]
        .as_array()
        .expect("i")
        .iter()
        .any(|i| i["code"] == "create"));
}

#[test]
fn both_ig_editions_are_served_under_distinct_ids() {
    let cfg = artefact_config("artefacts-editions");
    let a = load_artefacts(&cfg).expect("artefacts");
    let current = a
        .get("ConceptMap", "who-ddcc-map-icd11-sct-vaccines")
        .expect("1.0.0 keeps the id");
    assert_eq!(current.version.as_deref(), Some("1.0.0"));
    let old = a
        .get("ConceptMap", "who-ddcc-map-icd11-sct-vaccines-0.2.1")
        .expect("0.2.1 under a suffixed id");
    assert_eq!(old.version.as_deref(), Some("0.2.1"));
    let body: Value = serde_json::from_slice(old.bytes()).expect("json");
    assert_eq!(body["id"], "who-ddcc-map-icd11-sct-vaccines-0.2.1");
    assert_eq!(
        old.public_url,
        format!("{PUBLIC}/fhir/ConceptMap/who-ddcc-map-icd11-sct-vaccines-0.2.1")
    );
    // Loading twice gives the same bytes: nothing depends on load order or time.
    let again = load_artefacts(&cfg).expect("artefacts");
    let pairs: Vec<(String, String)> = a
        .all()
        .iter()
        .map(|s| (s.public_url.clone(), s.thumbprint.clone()))
        .collect();
    let pairs2: Vec<(String, String)> = again
        .all()
        .iter()
        .map(|s| (s.public_url.clone(), s.thumbprint.clone()))
        .collect();
    assert_eq!(pairs, pairs2);
}

#[test]
fn published_are_value_sets_plan_definitions_and_the_libraries_they_use() {
    let cfg = artefact_config("artefacts-published");
    let a = load_artefacts(&cfg).expect("artefacts");
    let published = a.published();
    let urls: BTreeSet<&str> = published.iter().map(|p| p.url.as_str()).collect();
    let value_sets = a.of_type("ValueSet").count();
    assert_eq!(
        published
            .iter()
            .filter(|p| p.resource_type == "ValueSet")
            .count(),
        value_sets
    );
    for want in [
        "PlanDefinition/fixture-travel",
        "Library/FixturePass",
        "Library/FixtureHelpers",
    ] {
        assert!(
            urls.contains(format!("{PUBLIC}/fhir/{want}").as_str()),
            "{want} not published"
        );
    }
    assert!(
        !urls.contains(format!("{PUBLIC}/fhir/Library/FixtureUnused").as_str()),
        "a Library no PlanDefinition uses is served but not published"
    );
    assert!(published
        .iter()
        .all(|p| ["ValueSet", "PlanDefinition", "Library"].contains(&p.resource_type.as_str())));
    for p in &published {
        let (t, id) = p.url[PUBLIC.len() + "/fhir/".len()..]
            .split_once('/')
            .expect("type/id");
        let served = a.get(t, id).expect("published means served");
        assert_eq!(served.bytes(), p.bytes.as_slice(), "{}", p.url);
    }
    // The ELM file beside the Libraries is JSON but no FHIR resource: skipped.
    assert!(a
        .all()
        .iter()
        .all(|s| !s.source.to_string_lossy().ends_with(".elm.json")));
}

/// Load a profiles folder of our own to pin the loader's rules.
fn scratch(tag: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ddcc-artefacts-{tag}-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    for (name, body) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }
    dir
}

#[test]
fn served_bytes_depend_on_content_not_on_file_formatting() {
    let compact = r#"{"resourceType":"ValueSet","id":"v","url":"http://x.org/ValueSet/v","version":"1","name":"V","status":"active","compose":{"include":[{"system":"http://x.org/cs","concept":[{"code":"a"}]}]}}"#;
    let pretty = "\u{feff}{\n  \"status\": \"active\",\n  \"name\": \"V\",\n  \"version\": \"1\",\n  \"url\": \"http://x.org/ValueSet/v\",\n  \"id\": \"v\",\n  \"resourceType\": \"ValueSet\",\n  \"compose\": { \"include\": [ { \"concept\": [ { \"code\": \"a\" } ], \"system\": \"http://x.org/cs\" } ] }\n}\n";
    let d1 = scratch("fmt1", &[("ValueSet-v.json", compact)]);
    let d2 = scratch("fmt2", &[("ValueSet-v.json", pretty)]);
    let a1 = Artefacts::load(&d1, None, "https://a.example/fhir/").expect("load");
    let a2 = Artefacts::load(&d2, None, "https://a.example/fhir").expect("load");
    let (s1, s2) = (
        a1.get("ValueSet", "v").expect("v"),
        a2.get("ValueSet", "v").expect("v"),
    );
    assert_eq!(s1.bytes(), s2.bytes());
    assert_eq!(s1.public_url, "https://a.example/fhir/ValueSet/v");
    assert_eq!(s1.thumbprint, hex::encode(Sha256::digest(s1.bytes())),);
    for d in [d1, d2] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn loader_refuses_what_it_cannot_serve_faithfully() {
    let vs = |id: &str, version: &str| {
        format!(
            r#"{{"resourceType":"ValueSet","id":"{id}","url":"http://x.org/ValueSet/{id}","version":"{version}","name":"V","status":"active"}}"#
        )
    };
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "same id and version twice",
            vec![
                ("a/ValueSet-v.json", vs("v", "1.0.0")),
                ("b/ValueSet-v.json", vs("v", "1.0.0")),
            ],
            "defined by both",
        ),
        (
            "no id",
            vec![(
                "ValueSet-x.json",
                r#"{"resourceType":"ValueSet","url":"http://x.org/v"}"#.into(),
            )],
            "needs an id",
        ),
        (
            "bad id",
            vec![("ValueSet-x.json", vs("a b", "1"))],
            "not a FHIR id",
        ),
        (
            "bad JSON",
            vec![("ValueSet-x.json", "{\"resourceType\": ".into())],
            "ValueSet-x.json",
        ),
    ];
    for (what, files, needle) in cases {
        let refs: Vec<(&str, &str)> = files.iter().map(|(n, b)| (*n, b.as_str())).collect();
        let d = scratch("refuse", &refs);
        let err = Artefacts::load(&d, None, "https://a.example/fhir")
            .map(|_| ())
            .expect_err(what);
        assert!(err.to_string().contains(needle), "{what}: {err}");
        let _ = std::fs::remove_dir_all(d);
    }
    let d = scratch("base", &[("ValueSet-v.json", &vs("v", "1"))]);
    assert!(Artefacts::load(&d, None, "mediator.example/fhir").is_err());
    // Two versions of one id: the higher keeps it, the other gets a suffix.
    let d2 = scratch(
        "versions",
        &[
            ("old/ValueSet-v.json", &vs("v", "0.9.0")),
            ("new/ValueSet-v.json", &vs("v", "1.10.0")),
        ],
    );
    let a = Artefacts::load(&d2, None, "https://a.example/fhir").expect("load");
    assert_eq!(
        a.get("ValueSet", "v").and_then(|s| s.version.as_deref()),
        Some("1.10.0")
    );
    assert_eq!(
        a.get("ValueSet", "v-0.9.0")
            .and_then(|s| s.version.as_deref()),
        Some("0.9.0")
    );
    for d in [d, d2] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn libraries_are_followed_through_nested_actions_and_cyclic_dependencies() {
    let lib = |name: &str, deps: &[&str]| {
        let related: Vec<Value> = deps
            .iter()
            .map(|d| serde_json::json!({"type": "depends-on", "resource": format!("http://x.org/Library/{d}|1")}))
            .collect();
        serde_json::json!({"resourceType": "Library", "id": name, "url": format!("http://x.org/Library/{name}"),
            "version": "1", "name": name, "status": "active", "relatedArtifact": related})
        .to_string()
    };
    let pd = serde_json::json!({"resourceType": "PlanDefinition", "id": "pd", "url": "http://x.org/PlanDefinition/pd",
        "version": "1", "name": "PD", "status": "active",
        "action": [{"title": "outer", "action": [{"title": "inner", "definitionCanonical": "http://x.org/Library/A|1"}]}]})
    .to_string();
    let d = scratch(
        "libs",
        &[
            ("PlanDefinition-pd.json", &pd),
            // A and B depend on each other; C depends on A but nothing uses C.
            ("Library-A.json", &lib("A", &["B"])),
            ("Library-B.json", &lib("B", &["A"])),
            ("Library-C.json", &lib("C", &["A"])),
        ],
    );
    let a = Artefacts::load(&d, None, "https://a.example/fhir").expect("load");
    let mut urls: Vec<String> = a.published().into_iter().map(|p| p.url).collect();
    urls.sort();
    assert_eq!(
        urls,
        [
            "https://a.example/fhir/Library/A",
            "https://a.example/fhir/Library/B",
            "https://a.example/fhir/PlanDefinition/pd",
        ]
    );
    let _ = std::fs::remove_dir_all(d);
}

fn write_pem(dir: &Path, der: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let p = dir.join("tls.pem");
    std::fs::write(&p, ddcc_cert::x509::pem_encode("CERTIFICATE", der)).expect("pem");
    p
}

#[test]
fn dry_run_without_the_tls_certificate_names_the_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"))
        .args(["gateway", "publish", "--dry-run"])
        .env_remove("DDCC_TLS_CERT")
        .env("DDCC_PROFILES_DIR", root().join("fhir-profiles"))
        .env("DDCC_CQL_DIR", fixture_cql())
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DDCC_TLS_CERT"), "{err}");
    // The real publish belongs to the gateway client; without it, a clear error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"))
        .args(["gateway", "publish"])
        .env_remove("DDCC_GATEWAY_URL")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DDCC_GATEWAY_URL"));
}

#[test]
fn dry_run_refuses_urls_the_gateway_cannot_store() {
    let dir = std::env::temp_dir().join(format!("ddcc-artefacts-long-{}", std::process::id()));
    let identity_der = {
        // Any certificate will do for sslPublicKey: a DER from the corpus-free harness.
        let rt = actix_web::rt::System::new();
        let cfg = artefact_config("artefacts-long");
        let der = rt.block_on(async {
            ddcc_mediator::services::Services::build_with_env(&cfg, |_| None)
                .await
                .expect("services")
                .signing
                .get()
                .expect("local signer")
                .identity
                .dsc_der
        });
        let _ = std::fs::remove_dir_all(&cfg.data_dir);
        der
    };
    let pem = write_pem(&dir, &identity_der);
    let long_base = format!("https://{}.example", "x".repeat(60));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"))
        .args(["gateway", "publish", "--dry-run"])
        .env("DDCC_TLS_CERT", &pem)
        .env("DDCC_PUBLIC_BASE_URL", &long_base)
        .env("DDCC_PROFILES_DIR", root().join("fhir-profiles"))
        .env("DDCC_CQL_DIR", fixture_cql())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a URL over 100 characters must fail the dry run"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    assert!(
        err.contains("100 characters") && err.contains(&long_base),
        "{err}"
    );

    // Not a certificate: the variable and the file are named.
    std::fs::write(dir.join("not.pem"), "hello").expect("write");
    let cfg = artefact_config("artefacts-badpem");
    let not_pem = dir.join("not.pem").display().to_string();
    let e = ddcc_mediator::artefacts::publisher_from_env(&cfg, |k| {
        (k == "DDCC_TLS_CERT").then(|| not_pem.clone())
    })
    .expect_err("not a PEM certificate");
    assert!(
        e.to_string().contains("DDCC_TLS_CERT") && e.to_string().contains("not.pem"),
        "{e}"
    );
    let missing = dir.join("missing.pem").display().to_string();
    let e = ddcc_mediator::artefacts::publisher_from_env(&cfg, |k| {
        (k == "DDCC_TLS_CERT").then(|| missing.clone())
    })
    .expect_err("missing file");
    assert!(e.to_string().contains("missing.pem"), "{e}");
    let p = ddcc_mediator::artefacts::publisher_from_env(&cfg, |k| {
        (k == "DDCC_TLS_CERT").then(|| pem.display().to_string())
    })
    .expect("publisher");
    assert_eq!((p.country.as_str(), p.domain.as_str()), ("XA", "DDCC"));
    assert_eq!(
        p.ssl_public_key,
        base64::engine::general_purpose::STANDARD.encode(&identity_der)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a verifier does with the trust list: fetch each URL, hash the bytes, compare
/// with the thumbprint. The references come from the binary's dry run, the bytes from
/// a service listening on a real socket.
#[actix_web::test]
async fn a_verifier_matches_every_published_thumbprint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let base = format!("http://127.0.0.1:{port}");
    let mut cfg = artefact_config("artefacts-verifier");
    cfg.server.public_base_url = Some(base.clone());
    cfg.server.port = port;
    let data_dir = cfg.data_dir.clone();
    let services = ddcc_mediator::services::Services::build_with_env(&cfg, |_| None)
        .await
        .expect("services");
    // Any real certificate serves as "our TLS certificate": the development DSC.
    let tls_der = services
        .signing
        .get()
        .expect("local signer")
        .identity
        .dsc_der;
    let pem = write_pem(&data_dir.join("tls"), &tls_der);
    let state = ddcc_mediator::server::build_state(cfg, |b| services.install(b)).expect("state");
    let srv =
        actix_web::HttpServer::new(move || ddcc_mediator::server::build_app(state.clone(), |_| {}))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run();
    let handle = srv.handle();
    actix_web::rt::spawn(srv);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"))
        .args(["gateway", "publish", "--dry-run"])
        .env("DDCC_TLS_CERT", &pem)
        .env("DDCC_PUBLIC_BASE_URL", &base)
        .env("DDCC_PROFILES_DIR", root().join("fhir-profiles"))
        .env("DDCC_CQL_DIR", fixture_cql())
        .env("DDCC_ISSUER_COUNTRY", "XA")
        .output()
        .expect("dry run");
    assert!(
        out.status.success(),
        "dry run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refs: Vec<Value> =
        serde_json::from_slice(&out.stdout).expect("stdout is exactly a JSON array");
    assert!(!refs.is_empty());
    let ssl = base64::engine::general_purpose::STANDARD.encode(&tls_der);
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    let mut services_seen = BTreeSet::new();
    for r in &refs {
        let url = r["url"].as_str().expect("url");
        services_seen.insert(r["service"].as_str().unwrap_or_default().to_string());
        if url.len() > 100 {
            failures.push(format!("{url}: longer than the gateway's 100 characters"));
        }
        for (k, want) in [
            ("type", "FHIR"),
            ("country", "XA"),
            ("domain", "DDCC"),
            ("contentType", "application/fhir+json"),
            ("signatureType", "NONE"),
        ] {
            if r[k] != want {
                failures.push(format!("{url}: {k} = {}", r[k]));
            }
        }
        if r["sslPublicKey"] != ssl.as_str() {
            failures.push(format!("{url}: sslPublicKey is not our certificate"));
        }
        if r.get("uuid").is_some() {
            failures.push(format!("{url}: a new reference carries a uuid"));
        }
        let resp = match client.get(url).send().await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{url}: {e}"));
                continue;
            }
        };
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        let digest = hex::encode(Sha256::digest(&bytes));
        if status != 200 || digest != r["thumbprint"].as_str().unwrap_or_default() {
            failures.push(format!(
                "{url}: HTTP {status}, SHA-256 {digest} ≠ {}",
                r["thumbprint"]
            ));
        }
        // HEAD: the same ETag (the SHA-256 itself), no body.
        match client.head(url).send().await {
            Ok(h) => {
                let etag = h
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                if h.status().as_u16() != 200 || etag != Some(format!("W/\"{digest}\"")) {
                    failures.push(format!("{url}: HEAD {} ETag {etag:?}", h.status()));
                }
                if !h.bytes().await.map(|b| b.is_empty()).unwrap_or(false) {
                    failures.push(format!("{url}: HEAD answered a body"));
                }
            }
            Err(e) => failures.push(format!("{url}: HEAD {e}")),
        }
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if v["version"] != r["referenceVersion"] || v["name"] != r["name"] {
            failures.push(format!("{url}: version/name differ from the reference"));
        }
    }
    // StructureMaps are answered by the mapping routes; HEAD works there too.
    let sm = client
        .head(format!(
            "{base}/fhir/StructureMap/DDCCCoreDataSetVSToDocument"
        ))
        .send()
        .await
        .expect("HEAD StructureMap");
    assert_eq!(sm.status().as_u16(), 200);
    assert!(sm.headers().contains_key("etag"));
    println!(
        "{} references fetched and hashed; services {services_seen:?}",
        refs.len()
    );
    handle.stop(true).await;
    let _ = std::fs::remove_dir_all(&data_dir);
    report("verifier", &failures);
    for s in ["ValueSet", "PlanDefinition", "Library"] {
        assert!(services_seen.contains(s), "no {s} reference");
    }
}
