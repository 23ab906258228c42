//! One behavioural suite, run against SQLite and PostgreSQL (see `common::both_backends`).

mod common;
#[path = "common/iti65.rs"]
mod iti65;

use std::collections::HashSet;
use std::sync::Arc;

use common::Pair;
use ddcc_store::{
    Claim, FolderUpsert, KeyCompletion, Revocation, RevocationLookup, SearchQuery, SignatureAlg,
    Store, StoreError, TxEntry, TxOp, TxRequest,
};
use serde_json::json;

both_backends!(
    crud_and_versions,
    bad_input_changes_nothing,
    iti67_search,
    iti66_audit_and_identifier_search,
    iti65_transaction,
    transaction_is_all_or_nothing,
    idempotent_issuing,
    concurrent_claims_single_winner,
    concurrent_if_match_single_winner,
    concurrent_folder_updates_one_folder,
    revocation_flow,
    offset_pages_partition_the_matches,
    stored_document_bundle_keeps_its_references,
);

fn q(pairs: &[(&str, &str)]) -> SearchQuery {
    SearchQuery::from_pairs(pairs.iter().copied())
}

async fn ids(s: &dyn Store, t: &str, pairs: &[(&str, &str)]) -> Vec<String> {
    s.search(t, &q(pairs))
        .await
        .unwrap_or_else(|e| panic!("search {t} {pairs:?}: {e}"))
        .into_iter()
        .map(|x| x.id)
        .collect()
}

async fn set(s: &dyn Store, t: &str, pairs: &[(&str, &str)]) -> HashSet<String> {
    ids(s, t, pairs).await.into_iter().collect()
}

/// Everything visible through the API, for "nothing changed" checks.
async fn snapshot(s: &dyn Store) -> Vec<(String, String, i64)> {
    let mut all = Vec::new();
    for t in [
        "Patient",
        "Binary",
        "DocumentReference",
        "List",
        "Bundle",
        "AuditEvent",
    ] {
        for r in s
            .search(t, &q(&[("_count", "1000")]))
            .await
            .expect("snapshot search")
        {
            all.push((t.to_owned(), r.id, r.version_id));
        }
    }
    all.sort();
    all
}

async fn crud_and_versions(p: Pair) {
    let s = p.a.as_ref();
    let c = s
        .create(json!({"resourceType": "Patient", "id": "client-chosen", "active": true}))
        .await
        .unwrap();
    assert_ne!(c.id, "client-chosen", "create assigns the id");
    assert_eq!(c.version_id, 1);
    assert_eq!(c.resource["id"], c.id.as_str());
    assert_eq!(c.resource["meta"]["versionId"], "1");
    assert_eq!(c.resource["meta"]["lastUpdated"], c.last_updated.as_str());
    assert_eq!(c.etag(), "W/\"1\"");
    assert_eq!(c.location(), format!("Patient/{}/_history/1", c.id));

    // The other instance sees it.
    let r = p.b.read("Patient", &c.id).await.unwrap();
    assert_eq!(r, c);

    let mut body = r.resource.clone();
    body["active"] = json!(false);
    let u = s
        .update("Patient", &c.id, body.clone(), Some(1))
        .await
        .unwrap();
    assert_eq!(u.version_id, 2);
    assert!(u.last_updated > c.last_updated);
    let stale = s
        .update("Patient", &c.id, body.clone(), Some(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            stale,
            StoreError::VersionConflict {
                expected: 1,
                actual: Some(2),
                ..
            }
        ),
        "{stale}"
    );
    assert_eq!(stale.http_status(), 412);

    assert_eq!(
        s.vread("Patient", &c.id, 1).await.unwrap().resource["active"],
        true
    );
    assert_eq!(
        s.vread("Patient", &c.id, 2).await.unwrap().resource["active"],
        false
    );
    assert!(matches!(
        s.vread("Patient", &c.id, 3).await,
        Err(StoreError::NotFound { .. })
    ));

    let del = s.delete("Patient", &c.id).await.unwrap();
    assert_eq!(del, 3);
    let gone = s.read("Patient", &c.id).await.unwrap_err();
    assert!(
        matches!(gone, StoreError::Gone { version_id: 3, .. }),
        "{gone}"
    );
    assert_eq!(gone.http_status(), 410);
    assert!(matches!(
        s.vread("Patient", &c.id, 3).await,
        Err(StoreError::Gone { .. })
    ));
    assert_eq!(
        s.vread("Patient", &c.id, 2).await.unwrap().version_id,
        2,
        "history survives delete"
    );
    assert_eq!(
        s.delete("Patient", &c.id).await.unwrap(),
        3,
        "second delete is idempotent"
    );
    assert!(
        ids(s, "Patient", &[("_id", &c.id)]).await.is_empty(),
        "deleted resources are not found by search"
    );

    let hist = s.history("Patient", &c.id).await.unwrap();
    assert_eq!(
        hist.iter().map(|h| h.version_id).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
    assert!(hist[0].resource.is_null());

    // Update-as-create after delete, and with a client id.
    let again = s.update("Patient", &c.id, body, None).await.unwrap();
    assert_eq!(again.version_id, 4);
    let put = s
        .update(
            "Patient",
            "chosen-1",
            json!({"resourceType": "Patient"}),
            None,
        )
        .await
        .unwrap();
    assert_eq!((put.id.as_str(), put.version_id), ("chosen-1", 1));
    assert!(matches!(
        s.read("Patient", "never").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.delete("Patient", "never").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn bad_input_changes_nothing(p: Pair) {
    let s = p.a.as_ref();
    s.create(json!({"resourceType": "Patient"})).await.unwrap();
    let before = snapshot(s).await;
    let long = "a".repeat(65);
    let cases: Vec<(&str, StoreError)> = vec![
        (
            "unknown type create",
            s.create(json!({"resourceType": "Bogus"}))
                .await
                .unwrap_err(),
        ),
        (
            "no resourceType",
            s.create(json!({"id": "x"})).await.unwrap_err(),
        ),
        ("not an object", s.create(json!([1, 2])).await.unwrap_err()),
        ("unknown type read", s.read("Bogus", "1").await.unwrap_err()),
        ("slash id", s.read("Patient", "a/b").await.unwrap_err()),
        (
            "dotdot id",
            s.update("Patient", "..", json!({"resourceType": "Patient"}), None)
                .await
                .unwrap_err(),
        ),
        (
            "long id",
            s.update("Patient", &long, json!({"resourceType": "Patient"}), None)
                .await
                .unwrap_err(),
        ),
        (
            "type mismatch",
            s.update("Patient", "x1", json!({"resourceType": "Binary"}), None)
                .await
                .unwrap_err(),
        ),
        (
            "id mismatch",
            s.update(
                "Patient",
                "x1",
                json!({"resourceType": "Patient", "id": "x2"}),
                None,
            )
            .await
            .unwrap_err(),
        ),
        (
            "unsupported search",
            s.search("DocumentReference", &q(&[("author", "x")]))
                .await
                .unwrap_err(),
        ),
        (
            "bad date",
            s.search("DocumentReference", &q(&[("date", "ge2021-13-01")]))
                .await
                .unwrap_err(),
        ),
        (
            "search unknown type",
            s.search("Bogus", &q(&[])).await.unwrap_err(),
        ),
        (
            "delete bad id",
            s.delete("Patient", "../etc").await.unwrap_err(),
        ),
    ];
    for (what, e) in &cases {
        assert_eq!(e.http_status() / 100, 4, "{what}: {e}");
    }
    assert!(matches!(cases[0].1, StoreError::UnknownResourceType(_)));
    assert!(matches!(cases[4].1, StoreError::InvalidId(_)));
    assert!(matches!(cases[9].1, StoreError::UnsupportedSearchParam(_)));

    // Broken references, duplicate fullUrls, bad ids and types inside a transaction: the
    // valid entries before them are not stored either.
    let mut broken = iti65::iti65_request("bad", 1, 1);
    if let TxOp::Create { resource } = &mut broken.entries[2].op {
        resource["subject"] = json!({"reference": "urn:uuid:not-in-bundle"});
    }
    let e = s.transaction(broken).await.unwrap_err();
    assert!(matches!(e, StoreError::BrokenReference(_)), "{e}");
    let mut dup = iti65::iti65_request("bad", 2, 1);
    dup.entries[1].full_url = dup.entries[0].full_url.clone();
    assert!(matches!(
        s.transaction(dup).await.unwrap_err(),
        StoreError::DuplicateFullUrl(_)
    ));
    let mut bad_type = iti65::iti65_request("bad", 3, 1);
    bad_type.entries.push(TxEntry {
        full_url: None,
        op: TxOp::Create {
            resource: json!({"resourceType": "Nope"}),
        },
    });
    assert!(matches!(
        s.transaction(bad_type).await.unwrap_err(),
        StoreError::UnknownResourceType(_)
    ));
    let mut bad_id = iti65::iti65_request("bad", 4, 1);
    bad_id.entries.push(TxEntry {
        full_url: None,
        op: TxOp::Update {
            resource_type: "Patient".into(),
            id: "a/../b".into(),
            resource: json!({"resourceType": "Patient"}),
            if_match: None,
        },
    });
    assert!(matches!(
        s.transaction(bad_id).await.unwrap_err(),
        StoreError::InvalidId(_)
    ));
    let mut bad_folder_ref = iti65::iti65_request("bad", 5, 1);
    if let TxOp::Folder(f) = &mut bad_folder_ref.entries[4].op {
        f.add.push("urn:uuid:nowhere".into());
    }
    assert!(matches!(
        s.transaction(bad_folder_ref).await.unwrap_err(),
        StoreError::BrokenReference(_)
    ));
    let mut no_hcid = iti65::iti65_request("bad", 6, 1);
    if let TxOp::Folder(f) = &mut no_hcid.entries[4].op {
        f.template["identifier"][0]["value"] = json!("some-other-id");
    }
    assert!(matches!(
        s.transaction(no_hcid).await.unwrap_err(),
        StoreError::InvalidResource(_)
    ));
    let mut deep = json!("leaf");
    for _ in 0..100 {
        deep = json!({ "extension": [deep] });
    }
    let mut too_deep = iti65::iti65_request("bad", 7, 1);
    too_deep.entries.push(TxEntry {
        full_url: None,
        op: TxOp::Create {
            resource: json!({"resourceType": "Basic", "code": deep}),
        },
    });
    assert!(matches!(
        s.transaction(too_deep).await.unwrap_err(),
        StoreError::InvalidResource(_)
    ));
    let overlong_hcid = FolderUpsert {
        hcid: "h".repeat(300),
        template: json!({}),
        add: vec![],
        remove: vec![],
    };
    assert!(matches!(
        s.upsert_folder_for_hcid(overlong_hcid).await.unwrap_err(),
        StoreError::InvalidResource(_)
    ));

    assert_eq!(
        snapshot(s).await,
        before,
        "failed requests changed the store"
    );
}

async fn iti67_search(p: Pair) {
    let s = p.a.as_ref();
    let pat = s.create(json!({"resourceType": "Patient", "identifier": [{"system": "http://paper", "value": "P1"}]})).await.unwrap();
    let other = s.create(json!({"resourceType": "Patient", "identifier": [{"system": "http://paper", "value": "P2"}]})).await.unwrap();
    let mk = |subject: &str, status: &str, date: &str, ident: &str, cat: &str| {
        json!({"resourceType": "DocumentReference", "status": status, "date": date,
               "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": ident},
               "type": {"coding": [{"system": "http://loinc.org", "code": "82593-5"}]},
               "category": [{"coding": [{"system": "http://cat", "code": cat}]}],
               "subject": {"reference": format!("Patient/{subject}")}})
    };
    let d1 = s
        .create(mk(
            &pat.id,
            "current",
            "2021-01-10T00:00:00Z",
            "urn:uuid:d1",
            "a",
        ))
        .await
        .unwrap()
        .id;
    let d2 = s
        .create(mk(
            &pat.id,
            "current",
            "2021-02-10T00:00:00Z",
            "urn:uuid:d2",
            "b",
        ))
        .await
        .unwrap()
        .id;
    let d3 = s
        .create(mk(
            &pat.id,
            "superseded",
            "2021-03-10T00:00:00Z",
            "urn:uuid:d3",
            "a",
        ))
        .await
        .unwrap()
        .id;
    let d4 = s
        .create(mk(
            &other.id,
            "current",
            "2021-02-20T12:30:00+02:00",
            "urn:uuid:d4",
            "b",
        ))
        .await
        .unwrap()
        .id;
    let all: HashSet<String> = [&d1, &d2, &d3, &d4].into_iter().cloned().collect();
    let hs = |v: &[&String]| v.iter().map(|x| (*x).clone()).collect::<HashSet<_>>();
    let pref = format!("Patient/{}", pat.id);

    assert_eq!(set(s, "DocumentReference", &[]).await, all);
    assert_eq!(
        set(s, "DocumentReference", &[("patient", &pref)]).await,
        hs(&[&d1, &d2, &d3])
    );
    assert_eq!(
        set(s, "DocumentReference", &[("patient", &pat.id)]).await,
        hs(&[&d1, &d2, &d3]),
        "bare id"
    );
    assert_eq!(
        set(
            s,
            "DocumentReference",
            &[("patient", &format!("http://host/fhir/{pref}"))]
        )
        .await,
        hs(&[&d1, &d2, &d3])
    );
    assert_eq!(
        set(s, "DocumentReference", &[("subject", &pref)]).await,
        hs(&[&d1, &d2, &d3])
    );
    assert_eq!(
        set(
            s,
            "DocumentReference",
            &[("patient.identifier", "http://paper|P2")]
        )
        .await,
        hs(&[&d4])
    );
    assert_eq!(
        set(
            s,
            "DocumentReference",
            &[("patient", &pref), ("status", "current")]
        )
        .await,
        hs(&[&d1, &d2])
    );
    assert_eq!(
        set(s, "DocumentReference", &[("status", "current,superseded")]).await,
        all
    );
    assert_eq!(
        set(
            s,
            "DocumentReference",
            &[("identifier", "urn:ietf:rfc:3986|urn:uuid:d2")]
        )
        .await,
        hs(&[&d2])
    );
    assert_eq!(
        set(s, "DocumentReference", &[("identifier", "urn:uuid:d3")]).await,
        hs(&[&d3])
    );
    assert_eq!(
        set(
            s,
            "DocumentReference",
            &[("identifier", "other|urn:uuid:d3")]
        )
        .await,
        HashSet::new()
    );
    assert_eq!(
        set(
            s,
            "DocumentReference",
            &[("type", "http://loinc.org|82593-5")]
        )
        .await,
        all
    );
    assert_eq!(
        set(s, "DocumentReference", &[("type", "http://loinc.org|")]).await,
        all
    );
    assert_eq!(
        set(s, "DocumentReference", &[("category", "http://cat|a")]).await,
        hs(&[&d1, &d3])
    );
    assert_eq!(
        set(s, "DocumentReference", &[("date", "2021-02")]).await,
        hs(&[&d2, &d4])
    );
    assert_eq!(
        set(s, "DocumentReference", &[("date", "ge2021-02-10")]).await,
        hs(&[&d2, &d3, &d4])
    );
    assert_eq!(
        set(s, "DocumentReference", &[("date", "gt2021-02-10")]).await,
        hs(&[&d3, &d4])
    );
    assert_eq!(
        set(s, "DocumentReference", &[("date", "lt2021-02-10")]).await,
        hs(&[&d1])
    );
    assert_eq!(
        set(s, "DocumentReference", &[("date", "le2021-02-10")]).await,
        hs(&[&d1, &d2])
    );
    assert_eq!(
        set(
            s,
            "DocumentReference",
            &[("date", "ge2021-02-01"), ("date", "le2021-02-28")]
        )
        .await,
        hs(&[&d2, &d4])
    );
    assert_eq!(
        set(
            s,
            "DocumentReference",
            &[("date", "eq2021-02-20T10:30:00Z")]
        )
        .await,
        hs(&[&d4]),
        "time zones normalised"
    );
    assert_eq!(
        set(s, "DocumentReference", &[("date", "ne2021-02")]).await,
        hs(&[&d1, &d3])
    );
    assert_eq!(
        set(s, "DocumentReference", &[("_id", &format!("{d1},{d4}"))]).await,
        hs(&[&d1, &d4])
    );
    assert_eq!(
        ids(s, "DocumentReference", &[("_sort", "-date")]).await,
        vec![d3.clone(), d4.clone(), d2.clone(), d1.clone()]
    );
    assert_eq!(
        ids(
            s,
            "DocumentReference",
            &[("_sort", "date"), ("_count", "2")]
        )
        .await,
        vec![d1.clone(), d2.clone()]
    );
    assert!(ids(s, "DocumentReference", &[("_count", "0")])
        .await
        .is_empty());
    assert_eq!(
        set(s, "DocumentReference", &[("_lastUpdated", "ge2000-01-01")]).await,
        all
    );

    // Re-indexing on update: entered-in-error leaves "current" results.
    let mut doc = s.read("DocumentReference", &d1).await.unwrap().resource;
    doc["status"] = json!("entered-in-error");
    s.update("DocumentReference", &d1, doc, Some(1))
        .await
        .unwrap();
    assert_eq!(
        set(
            s,
            "DocumentReference",
            &[("patient", &pref), ("status", "current")]
        )
        .await,
        hs(&[&d2])
    );
    assert_eq!(
        set(s, "DocumentReference", &[("status", "entered-in-error")]).await,
        hs(&[&d1])
    );
    // Deleted resources leave the index; a deleted patient no longer matches chains.
    s.delete("DocumentReference", &d2).await.unwrap();
    assert_eq!(
        set(s, "DocumentReference", &[("patient", &pref)]).await,
        hs(&[&d1, &d3])
    );
    s.delete("Patient", &other.id).await.unwrap();
    assert!(set(
        s,
        "DocumentReference",
        &[("patient.identifier", "http://paper|P2")]
    )
    .await
    .is_empty());
}

async fn iti66_audit_and_identifier_search(p: Pair) {
    let s = p.a.as_ref();
    let pat = s.create(json!({"resourceType": "Patient", "identifier": [{"system": "http://paper", "value": "ID-1"}]})).await.unwrap();
    let pref = format!("Patient/{}", pat.id);
    let folder = s
        .create(iti65::folder_template("HCID-1", &pref))
        .await
        .unwrap()
        .id;
    let mut ss = iti65::folder_template("x", &pref);
    ss["code"]["coding"][0]["code"] = json!("submissionset");
    ss["identifier"][0]["value"] = json!("SS-1");
    ss["status"] = json!("retired");
    let ss = s.create(ss).await.unwrap().id;
    let hs = |v: &[&String]| v.iter().map(|x| (*x).clone()).collect::<HashSet<_>>();

    assert_eq!(
        set(s, "List", &[("identifier", "HCID-1")]).await,
        hs(&[&folder])
    );
    assert_eq!(
        set(
            s,
            "List",
            &[("identifier", "http://smart.who.int/ddcc/HCID|HCID-1")]
        )
        .await,
        hs(&[&folder])
    );
    assert_eq!(set(s, "List", &[("code", "folder")]).await, hs(&[&folder]));
    assert_eq!(
        set(
            s,
            "List",
            &[
                (
                    "code",
                    "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes|folder"
                ),
                ("patient", &pref),
                ("status", "current")
            ]
        )
        .await,
        hs(&[&folder])
    );
    assert_eq!(
        set(s, "List", &[("patient", &pref)]).await,
        hs(&[&folder, &ss])
    );
    assert_eq!(set(s, "List", &[("status", "retired")]).await, hs(&[&ss]));
    assert_eq!(
        set(
            s,
            "List",
            &[(
                "designationType",
                "http://smart.who.int/ddcc/CodeSystem/DDCCFolderDesignationTypeCodesystem|ddcc"
            )]
        )
        .await,
        hs(&[&folder, &ss])
    );
    assert_eq!(
        set(s, "Patient", &[("identifier", "http://paper|ID-1")]).await,
        hs(&[&pat.id])
    );
    let b = s.create(json!({"resourceType": "Bundle", "type": "document", "identifier": {"system": "urn:HCID", "value": "B-1"}})).await.unwrap().id;
    assert_eq!(
        set(s, "Bundle", &[("identifier", "urn:HCID|B-1")]).await,
        hs(&[&b])
    );

    let audit = |recorded: &str, subtype: &str, outcome: &str, what: &str| {
        json!({"resourceType": "AuditEvent",
               "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110112"},
               "subtype": [{"system": "urn:ihe:event-type-code", "code": subtype}],
               "recorded": recorded, "outcome": outcome,
               "agent": [{"who": {"reference": "Device/mediator"}, "requestor": false}],
               "source": {"observer": {"reference": "Device/mediator"}},
               "entity": [{"what": {"reference": what}, "name": "openhim-tx-123"}]})
    };
    let a1 = s
        .create(audit(
            "2022-01-01T10:00:00Z",
            "ITI-65",
            "0",
            &format!("Bundle/{b}"),
        ))
        .await
        .unwrap()
        .id;
    let a2 = s
        .create(audit("2022-01-02T10:00:00Z", "ITI-67", "4", &pref))
        .await
        .unwrap()
        .id;
    assert_eq!(
        set(s, "AuditEvent", &[("date", "2022-01-01")]).await,
        hs(&[&a1])
    );
    assert_eq!(
        set(
            s,
            "AuditEvent",
            &[("date", "ge2022-01-01"), ("date", "lt2022-01-03")]
        )
        .await,
        hs(&[&a1, &a2])
    );
    assert_eq!(
        set(
            s,
            "AuditEvent",
            &[(
                "type",
                "http://dicom.nema.org/resources/ontology/DCM|110112"
            )]
        )
        .await,
        hs(&[&a1, &a2])
    );
    assert_eq!(
        set(
            s,
            "AuditEvent",
            &[("subtype", "urn:ihe:event-type-code|ITI-67")]
        )
        .await,
        hs(&[&a2])
    );
    assert_eq!(
        set(s, "AuditEvent", &[("entity", &format!("Bundle/{b}"))]).await,
        hs(&[&a1])
    );
    assert_eq!(
        set(s, "AuditEvent", &[("patient", &pat.id)]).await,
        hs(&[&a2])
    );
    assert_eq!(
        set(s, "AuditEvent", &[("agent", "Device/mediator")]).await,
        hs(&[&a1, &a2])
    );
    assert_eq!(set(s, "AuditEvent", &[("outcome", "4")]).await, hs(&[&a2]));
    assert_eq!(
        set(s, "AuditEvent", &[("entity-name", "OPENHIM-tx")]).await,
        hs(&[&a1, &a2]),
        "string prefix, case-folded"
    );
    assert_eq!(
        set(s, "AuditEvent", &[("entity-name:exact", "openhim-tx")]).await,
        HashSet::new()
    );
    assert_eq!(
        ids(s, "AuditEvent", &[("_sort", "-date")]).await,
        vec![a2.clone(), a1.clone()]
    );
}

async fn iti65_transaction(p: Pair) {
    let s = p.a.as_ref();
    let req = iti65::iti65_request("t65", 7, 1);
    let n = req.entries.len();
    let res = s.transaction(req).await.unwrap();
    assert_eq!(res.len(), n);
    let kinds: Vec<&str> = res.iter().map(|r| r.resource_type.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["Patient", "Binary", "DocumentReference", "List", "List"],
        "one result per entry, in order"
    );
    assert!(res.iter().all(|r| r.status == 201 && r.version_id == 1));
    assert_eq!(
        res[2].location,
        format!("DocumentReference/{}/_history/1", res[2].id)
    );
    assert_eq!(res[2].etag, "W/\"1\"");

    let dr = s
        .read("DocumentReference", &res[2].id)
        .await
        .unwrap()
        .resource;
    assert_eq!(dr["subject"]["reference"], format!("Patient/{}", res[0].id));
    assert_eq!(
        dr["content"][0]["attachment"]["url"],
        format!("Binary/{}", res[1].id)
    );
    assert_eq!(
        dr["masterIdentifier"]["value"],
        iti65::doc_identifier("t65", 7),
        "identifiers are not references"
    );
    let ss = s.read("List", &res[3].id).await.unwrap().resource;
    assert_eq!(
        ss["entry"][0]["item"]["reference"],
        format!("DocumentReference/{}", res[2].id)
    );
    let folder = s.read("List", &res[4].id).await.unwrap().resource;
    assert_eq!(
        folder["subject"]["reference"],
        format!("Patient/{}", res[0].id)
    );
    assert_eq!(
        folder["entry"],
        json!([{"item": {"reference": format!("DocumentReference/{}", res[2].id)}}])
    );
    s.read("Binary", &res[1].id).await.unwrap();

    // A second dose for the same holder updates the same Folder.
    let res2 = s
        .transaction(iti65::iti65_request("t65", 8, 1))
        .await
        .unwrap();
    assert_eq!(res2[4].id, res[4].id);
    assert_eq!((res2[4].status, res2[4].version_id), (200, 2));
    let folders = s
        .search(
            "List",
            &q(&[
                ("identifier", &iti65::hcid("t65", 0, 1)),
                ("code", "folder"),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(folders.len(), 1);
    assert_eq!(
        folders[0].resource["entry"].as_array().map(Vec::len),
        Some(2)
    );

    // Update and delete entries; update of an unknown id creates it (201).
    let doc_id = res[2].id.clone();
    let mut doc = s.read("DocumentReference", &doc_id).await.unwrap().resource;
    doc["status"] = json!("entered-in-error");
    let res3 = s
        .transaction(TxRequest::new(vec![
            TxEntry {
                full_url: None,
                op: TxOp::Update {
                    resource_type: "DocumentReference".into(),
                    id: doc_id.clone(),
                    resource: doc,
                    if_match: Some(1),
                },
            },
            TxEntry {
                full_url: None,
                op: TxOp::Delete {
                    resource_type: "Binary".into(),
                    id: res[1].id.clone(),
                },
            },
            TxEntry {
                full_url: Some("urn:uuid:new-put".into()),
                op: TxOp::Update {
                    resource_type: "Patient".into(),
                    id: "put-in-tx".into(),
                    resource: json!({"resourceType": "Patient"}),
                    if_match: None,
                },
            },
        ]))
        .await
        .unwrap();
    assert_eq!(
        res3.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![200, 204, 201]
    );
    assert_eq!(res3[1].location, format!("Binary/{}", res[1].id));
    assert!(matches!(
        s.read("Binary", &res[1].id).await,
        Err(StoreError::Gone { .. })
    ));
}

async fn transaction_is_all_or_nothing(p: Pair) {
    let s = p.a.as_ref();
    let pat = s.create(json!({"resourceType": "Patient"})).await.unwrap();
    let before = snapshot(s).await;
    // Valid creates followed by a stale If-Match: everything rolls back.
    let mut req = iti65::iti65_request("aon", 1, 1);
    req.entries.push(TxEntry {
        full_url: None,
        op: TxOp::Update {
            resource_type: "Patient".into(),
            id: pat.id.clone(),
            resource: json!({"resourceType": "Patient"}),
            if_match: Some(7),
        },
    });
    assert!(matches!(
        s.transaction(req).await.unwrap_err(),
        StoreError::VersionConflict { .. }
    ));
    // Delete of a missing resource at the end: same.
    let mut req = iti65::iti65_request("aon", 2, 1);
    req.entries.push(TxEntry {
        full_url: None,
        op: TxOp::Delete {
            resource_type: "Binary".into(),
            id: "missing".into(),
        },
    });
    assert!(matches!(
        s.transaction(req).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert_eq!(snapshot(s).await, before);
    assert!(
        s.search("List", &q(&[("identifier", &iti65::hcid("aon", 0, 1))]))
            .await
            .unwrap()
            .is_empty(),
        "no folder either"
    );
}

async fn idempotent_issuing(p: Pair) {
    let s = p.a.as_ref();
    let key = "qr-identifier:urn:uuid:event-1";
    let Claim::Claimed(tok) = s.claim_key(key, 60_000).await.unwrap() else {
        panic!("first claim must win")
    };
    assert_eq!(
        p.b.claim_key(key, 60_000).await.unwrap(),
        Claim::InProgress,
        "held by the first issuer"
    );

    let mut req = iti65::iti65_request("idem", 1, 1);
    let dr_url = req.entries[2].full_url.clone().unwrap();
    req.complete_key = Some(KeyCompletion {
        claim: tok.clone(),
        value: json!({"document": dr_url, "hc1": "HC1:..."}),
    });
    let res = s.transaction(req).await.unwrap();

    let Claim::Existing(done) = p.b.claim_key(key, 60_000).await.unwrap() else {
        panic!("completed key must answer")
    };
    assert_eq!(done.results, res);
    assert_eq!(
        done.value["document"],
        format!("DocumentReference/{}", res[2].id),
        "urn:uuid rewritten in the stored answer"
    );
    assert_eq!(done.value["hc1"], "HC1:...");
    // Completing again is refused (the claim is spent) and stores nothing.
    let before = snapshot(s).await;
    let mut again = iti65::iti65_request("idem", 2, 1);
    again.complete_key = Some(KeyCompletion {
        claim: tok,
        value: json!({}),
    });
    assert!(matches!(
        s.transaction(again).await.unwrap_err(),
        StoreError::ClaimLost(_)
    ));
    assert_eq!(snapshot(s).await, before);

    // A crashed issuer: its claim expires and another takes over; the original's late
    // completion then fails whole, so only one certificate is ever stored.
    let key2 = "event-2";
    let Claim::Claimed(stale) = s.claim_key(key2, 0).await.unwrap() else {
        panic!("claim")
    };
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let Claim::Claimed(fresh) = p.b.claim_key(key2, 60_000).await.unwrap() else {
        panic!("expired claim must be taken over")
    };
    let mut late = iti65::iti65_request("idem", 3, 1);
    late.complete_key = Some(KeyCompletion {
        claim: stale,
        value: json!({"n": 1}),
    });
    assert!(matches!(
        s.transaction(late).await.unwrap_err(),
        StoreError::ClaimLost(_)
    ));
    let mut ok = iti65::iti65_request("idem", 4, 1);
    ok.complete_key = Some(KeyCompletion {
        claim: fresh,
        value: json!({"n": 2}),
    });
    p.b.transaction(ok).await.unwrap();
    let Claim::Existing(done2) = s.claim_key(key2, 60_000).await.unwrap() else {
        panic!("done")
    };
    assert_eq!(done2.value["n"], 2);
    assert!(ids(
        s,
        "DocumentReference",
        &[("identifier", &iti65::doc_identifier("idem", 3))]
    )
    .await
    .is_empty());

    // Release after a failure lets a retry claim at once.
    let Claim::Claimed(t3) = s.claim_key("event-3", 60_000).await.unwrap() else {
        panic!("claim")
    };
    s.release_key(&t3).await.unwrap();
    assert!(matches!(
        p.b.claim_key("event-3", 60_000).await.unwrap(),
        Claim::Claimed(_)
    ));
    assert!(s.claim_key("", 1000).await.is_err());
}

async fn concurrent_claims_single_winner(p: Pair) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s: Arc<dyn Store> = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
        tasks.push(tokio::spawn(async move {
            s.claim_key("same-event", 60_000).await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Claim::Claimed(_) => winners += 1,
            Claim::InProgress => {}
            Claim::Existing(_) => panic!("nothing was completed"),
        }
    }
    assert_eq!(winners, 1);
}

async fn concurrent_if_match_single_winner(p: Pair) {
    // Optimistic locking across instances: of N updates all sent with If-Match 1, exactly
    // one wins; the rest see the version it created.
    let c =
        p.a.create(json!({"resourceType": "Patient", "active": true}))
            .await
            .unwrap();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let s: Arc<dyn Store> = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
        let id = c.id.clone();
        tasks.push(tokio::spawn(async move {
            s.update("Patient", &id, json!({"resourceType": "Patient", "gender": if i % 2 == 0 { "male" } else { "female" }}), Some(1)).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(s) => {
                won += 1;
                assert_eq!(s.version_id, 2);
            }
            Err(StoreError::VersionConflict {
                actual: Some(2), ..
            }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(p.b.read("Patient", &c.id).await.unwrap().version_id, 2);
}

async fn concurrent_folder_updates_one_folder(p: Pair) {
    // Two instances, each issuing doses for the same HCID concurrently.
    let hcid = "HCID-CONCURRENT";
    let mut tasks = Vec::new();
    for i in 0..24 {
        let s: Arc<dyn Store> = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut req = iti65::iti65_request("conc", i, 1);
            let patient_url = req.entries[0].full_url.clone().unwrap();
            if let TxOp::Folder(f) = &mut req.entries[4].op {
                f.hcid = hcid.to_owned();
                f.template = iti65::folder_template(hcid, &patient_url);
            }
            s.transaction(req).await
        }));
    }
    let mut docs = HashSet::new();
    let mut folder_ids = HashSet::new();
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        docs.insert(format!("DocumentReference/{}", r[2].id));
        folder_ids.insert(r[4].id.clone());
    }
    assert_eq!(folder_ids.len(), 1, "every dose landed in the same Folder");
    let folders =
        p.b.search("List", &q(&[("identifier", hcid), ("code", "folder")]))
            .await
            .unwrap();
    assert_eq!(folders.len(), 1, "exactly one Folder for the HCID");
    let entries: HashSet<String> = folders[0].resource["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["item"]["reference"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(entries, docs, "all doses in it");
    assert_eq!(folders[0].version_id, 24);

    // The folder API on its own, from the other instance.
    let r =
        p.b.upsert_folder_for_hcid(FolderUpsert {
            hcid: hcid.into(),
            template: json!({}),
            add: vec!["DocumentReference/extra".into()],
            remove: vec![],
        })
        .await
        .unwrap();
    assert_eq!((r.status, r.version_id), (200, 25));
}

async fn revocation_flow(p: Pair) {
    let s = p.a.as_ref();
    let res = s
        .transaction(iti65::iti65_request("rev", 1, 1))
        .await
        .unwrap();
    let (doc_id, bin_id, folder_id) = (res[2].id.clone(), res[1].id.clone(), res[4].id.clone());
    let mut doc = s.read("DocumentReference", &doc_id).await.unwrap().resource;
    doc["status"] = json!("entered-in-error");
    let sig = [7u8; 64];
    let rev = Revocation::new(
        "XX",
        "URN:UVCI:V1:XX:ABC",
        &sig,
        SignatureAlg::Ecdsa,
        "kid1",
        "2024-01-01T00:00:00.000Z",
        &format!("Binary/{bin_id}"),
    );
    let doc_ref = format!("DocumentReference/{doc_id}");
    // Folder updated, DocumentReference entered-in-error, document deleted, revocation
    // recorded: one transaction.
    s.transaction(TxRequest {
        entries: vec![
            TxEntry {
                full_url: None,
                op: TxOp::Folder(FolderUpsert {
                    hcid: iti65::hcid("rev", 1, 1),
                    template: json!({}),
                    add: vec![],
                    remove: vec![doc_ref.clone()],
                }),
            },
            TxEntry {
                full_url: None,
                op: TxOp::Update {
                    resource_type: "DocumentReference".into(),
                    id: doc_id.clone(),
                    resource: doc,
                    if_match: None,
                },
            },
            TxEntry {
                full_url: None,
                op: TxOp::Delete {
                    resource_type: "Binary".into(),
                    id: bin_id.clone(),
                },
            },
        ],
        revocations: vec![rev.clone()],
        complete_key: None,
    })
    .await
    .unwrap();
    let folder = s.read("List", &folder_id).await.unwrap().resource;
    assert_eq!(folder["entry"], json!([]));
    assert!(matches!(
        s.read("Binary", &bin_id).await,
        Err(StoreError::Gone { .. })
    ));
    assert_eq!(
        s.read("DocumentReference", &doc_id).await.unwrap().resource["status"],
        "entered-in-error"
    );

    p.b.record_revocation(rev.clone()).await.unwrap();
    let rev2 = Revocation::new(
        "XX",
        "URN:UVCI:V1:XX:DEF",
        &sig,
        SignatureAlg::Ecdsa,
        "kid1",
        "2024-01-02T00:00:00.000Z",
        "Binary/other",
    );
    p.b.record_revocation(rev2.clone()).await.unwrap();
    let pending = s.pending_revocations(10).await.unwrap();
    assert_eq!(
        pending.iter().map(|p| &p.revocation).collect::<Vec<_>>(),
        vec![&rev, &rev2],
        "recorded once each, in order"
    );
    assert_eq!(
        s.mark_published(&[pending[0].seq], "2024-01-03T00:00:00.000Z")
            .await
            .unwrap(),
        1
    );
    let rest = p.b.pending_revocations(10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].revocation, rev2);
    assert_eq!(
        s.mark_published(&[pending[0].seq], "2024-01-04T00:00:00.000Z")
            .await
            .unwrap(),
        0,
        "already published"
    );

    // Looked up by any one of the three hashes, published or not.
    let lookup = |u: &str, c: &str, sg: &str| RevocationLookup {
        uvci_hash: u.into(),
        country_code_uvci_hash: c.into(),
        signature_hash: sg.into(),
    };
    let none = "0".repeat(64);
    for (what, l) in [
        ("uvci", lookup(&rev.uvci_hash, &none, &none)),
        (
            "country+uvci",
            lookup(&none, &rev.country_code_uvci_hash, &none),
        ),
        ("signature", lookup(&none, &none, &rev.signature_hash)),
    ] {
        let found = p.b.find_revocation(&l).await.unwrap();
        assert_eq!(found.as_ref(), Some(&rev), "{what}");
    }
    assert_eq!(
        s.find_revocation(&lookup(&rev2.uvci_hash, &none, &none))
            .await
            .unwrap(),
        Some(rev2)
    );
    assert_eq!(
        s.find_revocation(&lookup(&none, &none, &none))
            .await
            .unwrap(),
        None
    );
}

#[test]
fn search_value_is_plain_data() {
    // The query type the HTTP layer builds is plain data, comparable and clonable.
    let a = SearchQuery::new()
        .with("patient", "Patient/1")
        .with("status", "current");
    assert_eq!(
        a,
        SearchQuery::from_pairs([("patient", "Patient/1"), ("status", "current")])
    );
}

/// `_count` + `_offset` pages are disjoint and together give every match, in the same
/// order as one large page, for any sort.
async fn offset_pages_partition_the_matches(p: Pair) {
    let s = p.a.as_ref();
    let tag = format!(
        "paging-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    for n in 0..9 {
        s.create(
            json!({"resourceType": "List", "status": "current", "mode": "working",
            "identifier": [{"system": "urn:test", "value": tag}],
            "date": format!("2021-01-0{}", 9 - n)}),
        )
        .await
        .expect("create");
    }
    let ident = format!("urn:test|{tag}");
    for sort in [None, Some("date"), Some("-date"), Some("_id")] {
        let mut base = vec![("identifier", ident.as_str())];
        if let Some(so) = sort {
            base.push(("_sort", so));
        }
        let mut all_q = base.clone();
        all_q.push(("_count", "100"));
        let all = ids(s, "List", &all_q).await;
        assert_eq!(all.len(), 9);
        let mut paged = Vec::new();
        for offset in (0..12).step_by(4) {
            let off = offset.to_string();
            let mut page_q = base.clone();
            page_q.extend([("_count", "4"), ("_offset", off.as_str())]);
            // Both instances see the same pages (PostgreSQL: another connection).
            let page = ids(s, "List", &page_q).await;
            assert_eq!(page, ids(p.b.as_ref(), "List", &page_q).await);
            paged.extend(page);
        }
        assert_eq!(paged, all, "sort {sort:?}");
    }
}

/// A document Bundle stored in a transaction keeps its internal `urn:uuid:` references
/// (they name its own entries, not the transaction's); a reference naming neither is
/// still refused, and nothing is stored.
async fn stored_document_bundle_keeps_its_references(p: Pair) {
    let s = p.a.as_ref();
    let doc = json!({"resourceType": "Bundle", "type": "document", "entry": [
        {"fullUrl": "urn:uuid:4f1c0d7e-0000-4000-8000-000000000001",
         "resource": {"resourceType": "Composition",
            "subject": {"reference": "urn:uuid:4f1c0d7e-0000-4000-8000-000000000002"}}},
        {"fullUrl": "urn:uuid:4f1c0d7e-0000-4000-8000-000000000002",
         "resource": {"resourceType": "Patient"}}]});
    let tx = |resource: serde_json::Value| {
        TxRequest::new(vec![
            TxEntry {
                full_url: Some("urn:uuid:4f1c0d7e-0000-4000-8000-0000000000d0".into()),
                op: TxOp::Update {
                    resource_type: "Bundle".into(),
                    id: "doc-by-id".into(),
                    resource,
                    if_match: None,
                },
            },
            TxEntry {
                full_url: None,
                op: TxOp::Create {
                    resource: json!({"resourceType": "DocumentReference", "status": "current",
                        "content": [{"attachment": {"url": "urn:uuid:4f1c0d7e-0000-4000-8000-0000000000d0"}}]}),
                },
            },
        ])
    };
    let mut broken = doc.clone();
    broken["entry"][0]["resource"]["subject"]["reference"] =
        json!("urn:uuid:4f1c0d7e-0000-4000-8000-00000000dead");
    let before = snapshot(s).await;
    assert!(matches!(
        s.transaction(tx(broken)).await,
        Err(StoreError::BrokenReference(_))
    ));
    assert_eq!(
        snapshot(s).await,
        before,
        "a refused transaction stores nothing"
    );
    let r = s.transaction(tx(doc.clone())).await.expect("stored");
    let stored = s.read("Bundle", "doc-by-id").await.expect("read");
    assert_eq!(
        stored.resource["entry"], doc["entry"],
        "internal references kept"
    );
    let dr = s.read("DocumentReference", &r[1].id).await.expect("docref");
    assert_eq!(
        dr.resource["content"][0]["attachment"]["url"],
        "Bundle/doc-by-id"
    );
}
