//! Search paging and `$docref` over the embedded store: following `next` links from the
//! first page visits every match exactly once for List, DocumentReference, Bundle and
//! AuditEvent searches; `total` appears when a page reaches the end; the configured
//! default and maximum page sizes apply. `$docref` answers a patient's current
//! DocumentReferences, filtered by type and date, by GET and by POST.

mod service;

use std::collections::BTreeSet;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::{self, TestRequest};
use serde_json::{json, Value};
use service::{app, config, english_response};

async fn call(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = match method {
        "POST" => TestRequest::post(),
        _ => TestRequest::get(),
    }
    .uri(path);
    if let Some(b) = body {
        req = req
            .insert_header((CONTENT_TYPE, "application/fhir+json"))
            .set_payload(b.to_string());
    }
    let resp = test::call_service(app, req.to_request()).await;
    let status = resp.status().as_u16();
    let body = serde_json::from_slice(&test::read_body(resp).await).unwrap_or(Value::Null);
    (status, body)
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect()
}

fn link<'a>(bundle: &'a Value, relation: &str) -> Option<&'a str> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)?
        .get("url")?
        .as_str()
}

/// The path of an absolute link, for the in-process app.
fn path_of(url: &str) -> &str {
    url.find("/fhir/").map(|i| &url[i..]).unwrap_or(url)
}

/// Every page of `first`, following `next`; checks each page's size and links.
async fn walk(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    first: &str,
    page_size: usize,
) -> (Vec<String>, usize, Option<u64>) {
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut url = first.to_string();
    loop {
        let (s, page) = call(app, "GET", &url, None).await;
        assert_eq!(s, 200, "{url}: {page}");
        pages += 1;
        let got = ids(&page);
        assert!(got.len() <= page_size, "{url}: {} > {page_size}", got.len());
        assert!(link(&page, "self").is_some(), "{url}: a self link");
        if pages > 1 {
            assert!(link(&page, "previous").is_some(), "{url}: a previous link");
        }
        seen.extend(got);
        match link(&page, "next") {
            Some(next) => {
                assert!(
                    page.get("total").is_none(),
                    "{url}: no total before the end"
                );
                url = path_of(next).to_string();
            }
            None => return (seen, pages, page["total"].as_u64()),
        }
        assert!(pages < 100, "paging does not end");
    }
}

#[actix_web::test]
async fn next_links_visit_every_match_once() {
    let mut cfg = config("registry-paging");
    cfg.registry.search_default_count = 3;
    cfg.registry.search_max_count = 4;
    let app = app(cfg).await;
    let tag = format!("paging-{:x}", fastrand::u64(..));
    let mut created: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
    for n in 0..7 {
        let resources = [
            json!({"resourceType": "List", "status": "current", "mode": "working",
                   "identifier": [{"system": "urn:test", "value": tag}], "title": format!("l{n}")}),
            json!({"resourceType": "DocumentReference", "status": "current",
                   "identifier": [{"system": "urn:test", "value": tag}],
                   "content": [{"attachment": {"contentType": "text/plain", "data": "aGk="}}]}),
            json!({"resourceType": "Bundle", "type": "collection",
                   "identifier": {"system": "urn:test", "value": format!("{tag}-{n}")}}),
        ];
        for r in resources {
            let t = r["resourceType"].as_str().expect("type").to_string();
            let (s, b) = call(&app, "POST", &format!("/fhir/{t}"), Some(&r)).await;
            assert_eq!(s, 201, "{b}");
            let t: &str = match t.as_str() {
                "List" => "List",
                "DocumentReference" => "DocumentReference",
                _ => "Bundle",
            };
            created
                .entry(t)
                .or_default()
                .insert(b["id"].as_str().expect("id").to_string());
        }
    }

    for (t, query) in [
        ("List", format!("identifier=urn:test|{tag}")),
        ("DocumentReference", format!("identifier=urn:test|{tag}")),
        ("Bundle", String::new()),
    ] {
        let expected = &created[t];
        // `_count` given, below the maximum.
        let (seen, pages, total) = walk(&app, &format!("/fhir/{t}?{query}&_count=2"), 2).await;
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "{t}: a match on two pages");
        assert_eq!(&unique, expected, "{t}: every match once");
        assert_eq!(pages, 4, "{t}: 7 matches in pages of 2");
        assert_eq!(total, Some(7), "{t}: total on the last page");
        // The configured default, and a `_count` above the maximum lowered to it.
        let (seen, pages, _) = walk(&app, &format!("/fhir/{t}?{query}"), 3).await;
        assert_eq!((seen.len(), pages), (7, 3), "{t}: default page of 3");
        let (seen, pages, _) = walk(&app, &format!("/fhir/{t}?{query}&_count=100"), 4).await;
        assert_eq!((seen.len(), pages), (7, 2), "{t}: pages of at most 4");
    }

    // The 21 creates were audited; their events page the same way.
    let (seen, _, total) = walk(&app, "/fhir/AuditEvent?subtype=create&_count=4", 4).await;
    assert_eq!(seen.len(), 21);
    assert_eq!(total, Some(21));
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 21);

    // Past the end: an empty page that cannot tell the total, and `_count=0`.
    let (s, page) = call(&app, "GET", "/fhir/List?_offset=500", None).await;
    assert_eq!(s, 200);
    assert!(ids(&page).is_empty() && page.get("total").is_none());
    assert!(link(&page, "previous").is_some());
    let (s, page) = call(&app, "GET", "/fhir/List?_count=0", None).await;
    assert_eq!(s, 200);
    assert!(ids(&page).is_empty() && link(&page, "next").is_none());
}

#[actix_web::test]
async fn docref_answers_the_patients_current_documents() {
    let Some(response) = english_response() else {
        return;
    };
    let app = app(config("registry-docref")).await;
    let (s, doc) = call(
        &app,
        "POST",
        "/fhir/QuestionnaireResponse/$generateHealthCertificate",
        Some(&response),
    )
    .await;
    assert_eq!(s, 200, "{doc}");
    let master = doc["identifier"]["value"].as_str().expect("identifier");
    let (_, found) = call(
        &app,
        "GET",
        &format!("/fhir/DocumentReference?identifier={master}"),
        None,
    )
    .await;
    let docref = found["entry"][0]["resource"].clone();
    let docref_id = docref["id"].as_str().expect("id").to_string();
    let patient = docref["subject"]["reference"]
        .as_str()
        .expect("subject")
        .to_string();
    let patient_id = patient.trim_start_matches("Patient/");
    let (_, all) = call(
        &app,
        "GET",
        &format!("/fhir/DocumentReference?patient={patient}&status=current"),
        None,
    )
    .await;
    let all: BTreeSet<String> = ids(&all).into_iter().collect();
    assert!(all.len() > 1, "the document and its QR DocumentReferences");

    let by_get = |q: String| {
        let app = &app;
        async move {
            let (s, b) = call(
                app,
                "GET",
                &format!("/fhir/DocumentReference/$docref?{q}"),
                None,
            )
            .await;
            assert_eq!(s, 200, "{q}: {b}");
            assert_eq!(b["type"], "searchset");
            ids(&b).into_iter().collect::<BTreeSet<String>>()
        }
    };
    assert_eq!(by_get(format!("patient={patient}")).await, all);
    assert_eq!(
        by_get(format!("patient={patient_id}&on-demand=true")).await,
        all
    );
    assert_eq!(
        by_get(format!("patient={patient}&type=http://loinc.org|82593-5")).await,
        BTreeSet::from([docref_id.clone()]),
        "type selects the whole-document DocumentReference"
    );
    // Dates bound `DocumentReference.date`: the QR DocumentReferences carry none, so a
    // bounded `$docref` finds the document's own.
    assert_eq!(
        by_get(format!("patient={patient}&start=2000-01-01&end=2999-12-31")).await,
        BTreeSet::from([docref_id.clone()])
    );
    assert!(by_get(format!("patient={patient}&end=2000-01-01"))
        .await
        .is_empty());
    assert!(by_get("patient=someone-else".into()).await.is_empty());

    // Its pages link like a search's.
    let (seen, _, total) = walk(
        &app,
        &format!("/fhir/DocumentReference/$docref?patient={patient}&_count=2"),
        2,
    )
    .await;
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), all);
    assert_eq!(total, Some(all.len() as u64));

    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": patient}},
        {"name": "type", "valueCoding": {"system": "http://loinc.org", "code": "82593-5"}},
        {"name": "start", "valueDate": "2000-01-01"},
        {"name": "on-demand", "valueBoolean": false}]});
    let (s, b) = call(
        &app,
        "POST",
        "/fhir/DocumentReference/$docref",
        Some(&params),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(ids(&b), vec![docref_id.clone()]);

    // A revoked certificate is no longer current.
    let (s, _) = call(
        &app,
        "POST",
        &format!("/fhir/Bundle/{docref_id}/$revokeHealthCertificate"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(by_get(format!("patient={patient}")).await.is_empty());

    // Listed in the CapabilityStatement.
    let (_, cs) = call(&app, "GET", "/fhir/metadata", None).await;
    let ops: Vec<&str> = cs["rest"][0]["resource"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["type"] == "DocumentReference")
        .flat_map(|r| r["operation"].as_array().into_iter().flatten())
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert!(ops.contains(&"docref"), "{ops:?}");
}
