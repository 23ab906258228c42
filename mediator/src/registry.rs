//! The registry side of issuing, without HTTP: the store service, the idempotency key of
//! an event, and the one transaction that registers an issued certificate (document,
//! QR DocumentReferences, SubmissionSet, the holder's Folder) together with the key's
//! answer, so a resubmitted event gets the certificate already issued.

use std::future::Future;
use std::sync::Arc;

use base64::Engine;
use ddcc_issuing::issue::Issued;
use ddcc_store::{
    Claim, FolderUpsert, KeyCompletion, Store, StoreError, TxEntry, TxOp, TxRequest, TxResult,
};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, Issue};
use crate::openhim::Recorder;
use crate::state::AppState;

/// How long an unfinished claim blocks a resubmission before another caller may take it
/// over: longer than any issuance (Vault round trips included) takes.
pub const CLAIM_TTL_MS: i64 = 120_000;

/// MHD list type codes.
pub const MHD_LIST_TYPES: &str = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes";
/// LOINC "Immunization summary report": the type of the whole-document DocumentReference.
const DOCUMENT_TYPE: (&str, &str) = ("http://loinc.org", "82593-5");

/// The store behind the registry routes and the issuing flow.
pub struct Registry {
    pub store: Arc<dyn Store>,
}

/// The one mapping of store errors to HTTP: client mistakes keep the store's status,
/// back-end faults are 503 (the database is a dependency that may come back), corrupt
/// data is a 500.
pub fn store_error(e: StoreError) -> ApiError {
    let status = e.http_status();
    match e {
        StoreError::Backend(m) | StoreError::Codec(m) => ApiError::Unavailable {
            service: "store".into(),
            message: m,
        },
        StoreError::Upstream(m) => ApiError::Upstream {
            service: "FHIR server".into(),
            message: m,
        },
        StoreError::Corrupt(m) | StoreError::Crypto(m) => ApiError::internal(m),
        other => {
            let code = match status {
                404 | 410 => "not-found",
                409 | 412 => "conflict",
                _ if matches!(other, StoreError::UnsupportedSearchParam(_)) => "not-supported",
                _ => "invalid",
            };
            ApiError::Invalid {
                status,
                issues: vec![Issue::error(code, other.to_string())],
            }
        }
    }
}

/// Serializes with object keys sorted at every level, so equal content hashes equally
/// whatever the key order the client sent (serde_json here preserves insertion order).
fn canonical(v: &Value, out: &mut String, depth: usize) {
    if depth > 128 {
        out.push_str("null");
        return;
    }
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                canonical(&o[k.as_str()], out, depth + 1);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out, depth + 1);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The idempotency key of an event: the QuestionnaireResponse's business identifier when
/// it has one (the EMR's own id of the event), else a hash of its content without the
/// parts a resubmission may legitimately change (`id`, `meta`, `text`).
pub fn idempotency_key(response: &Value) -> String {
    let ident = response.get("identifier");
    let ident = ident
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .or(ident.filter(|i| i.is_object()));
    if let Some(value) = ident.and_then(|i| i.get("value")).and_then(Value::as_str) {
        let system = ident
            .and_then(|i| i.get("system"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return format!("qr-identifier:{system}|{value}");
    }
    let mut content = response.clone();
    if let Some(o) = content.as_object_mut() {
        for k in ["id", "meta", "text"] {
            o.remove(k);
        }
    }
    let mut text = String::new();
    canonical(&content, &mut text, 0);
    format!("qr-sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

fn urn() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

/// Rewrites `reference`/`url` strings naming a document entry to the transaction entry
/// that stores it; references to entries we do not store are dropped (keeping any
/// display), so the store never sees a dangling `urn:uuid:`.
fn relink(v: &mut Value, map: &std::collections::HashMap<String, String>, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        Value::Object(o) => {
            let mut drop_ref = false;
            for (k, x) in o.iter_mut() {
                match x {
                    Value::String(s) if k == "reference" || k == "url" => {
                        if let Some(t) = map.get(s.as_str()) {
                            *s = t.clone();
                        } else if k == "reference" && s.starts_with("urn:") {
                            drop_ref = true;
                        }
                    }
                    other => relink(other, map, depth + 1),
                }
            }
            if drop_ref {
                o.remove("reference");
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| relink(x, map, depth + 1)),
        _ => {}
    }
}

/// What the registration transaction stored, by role; each a `Type/id`.
#[derive(Debug, Clone, Default)]
pub struct Registered {
    pub document: Option<String>,
    pub document_reference: Option<String>,
    pub folder: Option<String>,
    pub qr_document_references: Vec<String>,
}

/// Builds the registration transaction for `issued`. The first entry is the document
/// Bundle; the completion value names every stored entry by its transaction fullUrl,
/// which the store turns into `Type/id`.
fn registration(issued: &Issued, now: &str) -> (Vec<TxEntry>, Value) {
    let mut entries = Vec::new();
    let mut map = std::collections::HashMap::new();
    let doc_entries: Vec<&Value> = issued
        .document
        .get("entry")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    // Every document entry becomes its own resource, so ITI-67 finds the QR
    // DocumentReferences and references between them resolve inside the registry.
    for e in &doc_entries {
        if let (Some(full), Some(_)) = (e.get("fullUrl").and_then(Value::as_str), e.get("resource"))
        {
            map.insert(full.to_string(), urn());
        }
    }
    // The document is stored as the Bundle it is (`GET /fhir/Bundle/{id}`; its internal
    // `urn:uuid:` references resolve against its own entries), under an id chosen here
    // so its DocumentReference can name the repository's byte view of it, `Binary/{id}`
    // (ITI-68), which serves exactly the signed document. The maps give documents no
    // `id`; one they carried would be kept.
    let doc_id = issued
        .document
        .get("id")
        .and_then(Value::as_str)
        .filter(|i| ddcc_store::ids::check_id(i).is_ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let bytes = issued.document.to_string();
    let mut stored_document = issued.document.clone();
    stored_document["id"] = json!(doc_id);
    entries.push(TxEntry {
        full_url: Some(urn()),
        op: TxOp::Update {
            resource_type: "Bundle".into(),
            id: doc_id.clone(),
            resource: stored_document,
            if_match: None,
        },
    });
    let size = bytes.len();
    let mut patient = None;
    let mut qr_urns = Vec::new();
    for e in &doc_entries {
        let (Some(full), Some(resource)) =
            (e.get("fullUrl").and_then(Value::as_str), e.get("resource"))
        else {
            continue;
        };
        let Some(tx_urn) = map.get(full).cloned() else {
            continue;
        };
        let mut r = resource.clone();
        relink(&mut r, &map, 0);
        match r.get("resourceType").and_then(Value::as_str) {
            Some("Patient") if patient.is_none() => patient = Some(tx_urn.clone()),
            Some("DocumentReference") => qr_urns.push(tx_urn.clone()),
            _ => {}
        }
        entries.push(TxEntry {
            full_url: Some(tx_urn),
            op: TxOp::Create { resource: r },
        });
    }
    let subject = patient.as_ref().map(|p| json!({"reference": p}));
    let identifier = issued.document.get("identifier").cloned();
    let docref_urn = urn();
    let mut docref = json!({
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"coding": [{"system": DOCUMENT_TYPE.0, "code": DOCUMENT_TYPE.1}]},
        "date": now,
        "content": [{"attachment": {
            "contentType": "application/fhir+json",
            "url": format!("Binary/{doc_id}"),
            "size": size,
        }}],
    });
    if let Some(id) = &identifier {
        docref["masterIdentifier"] = id.clone();
    }
    // The UVCI makes the certificate findable by it (ITI-67) and is what a revocation
    // hashes; `context.related` ties the QR DocumentReferences to the document so a
    // revocation retires them together.
    if let Some(uvci) = issued.uvci.as_deref().filter(|u| !u.is_empty()) {
        docref["identifier"] = json!([{"system": "urn:ietf:rfc:3986", "value": uvci}]);
    }
    if !qr_urns.is_empty() {
        docref["context"] =
            json!({"related": qr_urns.iter().map(|u| json!({"reference": u})).collect::<Vec<_>>()});
    }
    if let Some(s) = &subject {
        docref["subject"] = s.clone();
    }
    entries.push(TxEntry {
        full_url: Some(docref_urn.clone()),
        op: TxOp::Create { resource: docref },
    });
    let items: Vec<Value> = std::iter::once(&docref_urn)
        .chain(qr_urns.iter())
        .map(|u| json!({"item": {"reference": u}}))
        .collect();
    let mut submission = json!({
        "resourceType": "List",
        "status": "current",
        "mode": "working",
        "code": {"coding": [{"system": MHD_LIST_TYPES, "code": "submissionset"}]},
        "date": now,
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": urn()}],
        "entry": items,
    });
    if let Some(s) = &subject {
        submission["subject"] = s.clone();
    }
    entries.push(TxEntry {
        full_url: Some(urn()),
        op: TxOp::Create {
            resource: submission,
        },
    });
    let mut folder_index = None;
    if let Some(hcid) = issued.hcid.as_deref().filter(|h| !h.is_empty()) {
        let mut template = json!({
            "resourceType": "List",
            "status": "current",
            "mode": "working",
            "title": "DDCC Folder",
            "code": {"coding": [{"system": MHD_LIST_TYPES, "code": "folder"}]},
            "identifier": [{"value": hcid}],
            "date": now,
            "entry": [],
        });
        if let Some(s) = &subject {
            template["subject"] = s.clone();
        }
        folder_index = Some(entries.len());
        entries.push(TxEntry {
            full_url: None,
            op: TxOp::Folder(FolderUpsert {
                hcid: hcid.to_string(),
                template,
                add: std::iter::once(docref_urn.clone())
                    .chain(qr_urns.iter().cloned())
                    .collect(),
                remove: Vec::new(),
            }),
        });
    }
    // Positions in the transaction, so a replay (which gets the stored results back)
    // names the same resources.
    let docref_index = entries
        .iter()
        .position(|e| e.full_url.as_deref() == Some(docref_urn.as_str()))
        .unwrap_or(0);
    let qr_indexes: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.full_url.as_ref().is_some_and(|u| qr_urns.contains(u)))
        .map(|(i, _)| i)
        .collect();
    let mut locations = Map::new();
    locations.insert("document".into(), json!(0));
    locations.insert("documentReference".into(), json!(docref_index));
    locations.insert("qrDocumentReferences".into(), json!(qr_indexes));
    if let Some(i) = folder_index {
        locations.insert("folder".into(), json!(i));
    }
    (
        entries,
        json!({"document": issued.document, "locations": Value::Object(locations)}),
    )
}

fn type_id(r: &TxResult) -> String {
    format!("{}/{}", r.resource_type, r.id)
}

fn registered_from(value: &Value, results: &[TxResult]) -> Registered {
    let at = |v: &Value| {
        v.as_u64()
            .and_then(|i| results.get(usize::try_from(i).ok()?))
            .map(type_id)
    };
    let loc = &value["locations"];
    Registered {
        document: at(&loc["document"]),
        document_reference: at(&loc["documentReference"]),
        folder: at(&loc["folder"]),
        qr_document_references: loc["qrDocumentReferences"]
            .as_array()
            .map(|a| a.iter().filter_map(at).collect())
            .unwrap_or_default(),
    }
}

fn record(recorder: &Recorder, r: &Registered) {
    if let Some(d) = &r.document {
        recorder.property("registry-document", d.clone());
    }
    if let Some(d) = &r.document_reference {
        recorder.property("registry-document-reference", d.clone());
    }
    if let Some(f) = &r.folder {
        recorder.property("registry-folder", f.clone());
    }
}

/// Issues once per event. With no store configured it just issues. Otherwise: a
/// resubmitted event gets the stored document back (nothing is signed again); an event
/// being issued by another request right now is a 409; a new event is issued with
/// `issue` and registered, with its key answered, in one transaction. The returned
/// document is exactly what was signed.
///
/// With `audit`, the registration's AuditEvent is part of the registering transaction
/// (a replay, which writes nothing, records its own event); failures are the caller's
/// to audit.
pub async fn issue_once<F, Fut>(
    state: &AppState,
    response: &Value,
    recorder: &Recorder,
    audit: Option<&crate::audit::Audit>,
    issue: F,
) -> Result<Value, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Issued, ApiError>>,
{
    issue_once_in(state, None, response, recorder, audit, issue).await
}

/// [`issue_once`] within an issuer's namespace: with per-issuer keys, the same event
/// submitted by two issuers' callers is two certificates, and neither caller can
/// replay (read) the other's.
pub async fn issue_once_in<F, Fut>(
    state: &AppState,
    namespace: Option<&str>,
    response: &Value,
    recorder: &Recorder,
    audit: Option<&crate::audit::Audit>,
    issue: F,
) -> Result<Value, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Issued, ApiError>>,
{
    let Some(registry) = state.service::<Registry>() else {
        let issued = issue().await?;
        recorder.property("edition", issued.edition.clone());
        return Ok(issued.document);
    };
    let store = &registry.store;
    let key = match namespace {
        Some(ns) => format!("issuer:{ns}|{}", idempotency_key(response)),
        None => idempotency_key(response),
    };
    let token =
        match store
            .claim_key(&key, CLAIM_TTL_MS)
            .await
            .map_err(store_error)?
        {
            Claim::Existing(done) => {
                recorder.property("idempotent-replay", "true".to_string());
                let registered = registered_from(&done.value, &done.results);
                record(recorder, &registered);
                // Audit (added for BALP): the replay read what the first request stored.
                if let Some(a) = audit {
                    let touched: Vec<String> = registered
                        .document
                        .iter()
                        .chain(registered.document_reference.iter())
                        .cloned()
                        .collect();
                    a.record(store.as_ref(), &touched, 200).await;
                }
                return done.value.get("document").cloned().ok_or_else(|| {
                    ApiError::internal("stored idempotency answer has no document")
                });
            }
            Claim::InProgress => {
                return Err(ApiError::Conflict(
                    "this event is being issued by another request; retry shortly".into(),
                ))
            }
            Claim::Claimed(token) => token,
        };
    let issued = match issue().await {
        Ok(i) => i,
        Err(e) => {
            release(store.as_ref(), &token).await;
            return Err(e);
        }
    };
    recorder.property("edition", issued.edition.clone());
    let now = ddcc_cert::rfc3339_utc(crate::now_unix());
    let (mut entries, value) = registration(&issued, &now);
    // Audit (added for BALP): the event names every created entry by its fullUrl, which
    // the store resolves to `Type/id`, and commits (or not) with the registration.
    if let Some(a) = audit {
        let touched: Vec<String> = entries.iter().filter_map(|e| e.full_url.clone()).collect();
        entries.push(a.tx_entry(&touched, 200));
    }
    let request = TxRequest {
        entries,
        complete_key: Some(KeyCompletion {
            claim: token.clone(),
            value: value.clone(),
        }),
        revocations: Vec::new(),
    };
    let results = match store.transaction(request).await {
        Ok(r) => r,
        Err(e) => {
            release(store.as_ref(), &token).await;
            return Err(store_error(e));
        }
    };
    record(recorder, &registered_from(&value, &results));
    Ok(issued.document)
}

/// LOINC code of the whole-document DocumentReference, for callers telling it from the
/// QR DocumentReferences.
pub fn is_document_reference(docref: &Value) -> bool {
    docref
        .pointer("/type/coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("system").and_then(Value::as_str) == Some(DOCUMENT_TYPE.0)
                && c.get("code").and_then(Value::as_str) == Some(DOCUMENT_TYPE.1)
        })
}

fn qr_category(docref: &Value) -> Option<&str> {
    docref
        .pointer("/category/0/coding/0/code")
        .or_else(|| docref.pointer("/type/coding/0/code"))
        .and_then(Value::as_str)
}

fn serialized_payload(docref: &Value) -> Option<String> {
    let c = docref
        .get("content")?
        .as_array()?
        .iter()
        .find(|c| c.pointer("/format/code").and_then(Value::as_str) == Some("serialized"))?;
    let data = c.pointer("/attachment/data")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The EU DCC revocation entry of an `HC1:` certificate: the COSE signature and kid,
/// and the issuing country from the CWT `iss`.
fn revocation_of(
    hc1: &str,
    uvci: &str,
    fallback_country: &str,
    at: &str,
    document: &str,
) -> Option<ddcc_store::Revocation> {
    use coset::CborSerializable;
    use coset::TaggedCborSerializable;
    let cose = ddcc_cert::hc1::unpack(hc1).ok()?;
    let sign1 = coset::CoseSign1::from_tagged_slice(&cose)
        .or_else(|_| coset::CoseSign1::from_slice(&cose))
        .ok()?;
    let kid_bytes = if sign1.protected.header.key_id.is_empty() {
        &sign1.unprotected.key_id
    } else {
        &sign1.protected.header.key_id
    };
    let kid = base64::engine::general_purpose::STANDARD.encode(kid_bytes);
    let country = sign1
        .payload
        .as_deref()
        .and_then(|p| coset::cwt::ClaimsSet::from_slice(p).ok())
        .and_then(|c| c.issuer)
        .unwrap_or_else(|| fallback_country.to_string());
    if sign1.signature.is_empty() {
        return None;
    }
    Some(ddcc_store::Revocation::new(
        &country,
        uvci,
        &sign1.signature,
        ddcc_store::SignatureAlg::Ecdsa,
        &kid,
        at,
        document,
    ))
}

fn hcid_of(document: &Value) -> Option<String> {
    document
        .get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("publication"))?
        .get("url")?
        .as_str()
        .map(str::to_string)
}

fn reference_id<'a>(r: &'a str, t: &str) -> Option<&'a str> {
    r.strip_prefix(t)?
        .strip_prefix('/')
        .map(|id| id.split('/').next().unwrap_or(id))
}

/// A document Bundle as it was signed: without the `id` and the `meta.versionId` /
/// `meta.lastUpdated` the store gave it (issued documents carry none of these).
pub fn document_as_issued(stored: &Value) -> Value {
    let mut d = stored.clone();
    // `shift_remove` keeps the other members in place, so the text is the signed text.
    if let Some(o) = d.as_object_mut() {
        o.shift_remove("id");
        let empty = o
            .get_mut("meta")
            .and_then(Value::as_object_mut)
            .is_some_and(|m| {
                m.shift_remove("versionId");
                m.shift_remove("lastUpdated");
                m.is_empty()
            });
        if empty {
            o.shift_remove("meta");
        }
    }
    d
}

/// The document a DocumentReference's `Binary/{id}` names, with the `Type/id` that
/// holds it: the document Bundle of that id (issued certificates), else a Binary with
/// the document's bytes (ITI-65 submissions, and certificates registered before
/// documents were stored as Bundles). The Bundle is asked first because a FHIR server
/// that is another instance of this service answers `Binary/{id}` for it too, with its
/// byte view. `None` when neither exists any more.
pub async fn read_document(
    store: &dyn Store,
    id: &str,
) -> Result<Option<(String, Value)>, ApiError> {
    match store.read("Bundle", id).await {
        Ok(b) if b.resource.get("type").and_then(Value::as_str) == Some("document") => {
            return Ok(Some((
                format!("Bundle/{id}"),
                document_as_issued(&b.resource),
            )));
        }
        Ok(_) | Err(StoreError::NotFound { .. }) => {}
        Err(StoreError::Gone { .. }) => return Ok(None),
        Err(e) => return Err(store_error(e)),
    }
    match store.read("Binary", id).await {
        Ok(b) => {
            let document = b
                .resource
                .get("data")
                .and_then(Value::as_str)
                .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .ok_or_else(|| {
                    ApiError::internal(format!("Binary/{id} does not hold a document"))
                })?;
            Ok(Some((format!("Binary/{id}"), document)))
        }
        Err(StoreError::NotFound { .. } | StoreError::Gone { .. }) => Ok(None),
        Err(e) => Err(store_error(e)),
    }
}

/// The doses of the certificates already in the holder's Folder (their documents'
/// Immunizations), for the printable certificate. Revoked documents are no longer
/// in the Folder; a document that cannot be read is a store fault, not skipped.
pub async fn earlier_doses(
    store: &dyn Store,
    hcid: &str,
) -> Result<Vec<ddcc_cert::pdf::PdfDose>, ApiError> {
    let not_there =
        |e: &StoreError| matches!(e, StoreError::NotFound { .. } | StoreError::Gone { .. });
    let query = ddcc_store::SearchQuery::new()
        .with("code", "folder")
        .with("identifier", hcid.replace(',', "\\,"));
    let mut doses = Vec::new();
    for folder in store.search("List", &query).await.map_err(store_error)? {
        let items = folder
            .resource
            .get("entry")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for item in items {
            let Some(id) = item
                .pointer("/item/reference")
                .and_then(Value::as_str)
                .and_then(|r| reference_id(r, "DocumentReference"))
            else {
                continue;
            };
            let docref = match store.read("DocumentReference", id).await {
                Ok(s) => s.resource,
                Err(e) if not_there(&e) => continue,
                Err(e) => return Err(store_error(e)),
            };
            if !is_document_reference(&docref)
                || docref.get("status").and_then(Value::as_str) != Some("current")
            {
                continue;
            }
            let Some(bin) = docref
                .pointer("/content/0/attachment/url")
                .and_then(Value::as_str)
                .and_then(|u| reference_id(u, "Binary"))
            else {
                continue;
            };
            let Some((_, document)) = read_document(store, bin).await? else {
                continue;
            };
            doses.extend(
                document
                    .get("entry")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| ddcc_cert::pdf::PdfDose::from_immunization(e.get("resource")?)),
            );
        }
    }
    Ok(doses)
}

/// Revokes the certificate named by `id` (the whole-document DocumentReference id, the
/// document's `Bundle.identifier` value, or a stored Bundle's id). In one transaction:
/// the DocumentReferences become `entered-in-error`, the document is deleted from the
/// repository, the holder's Folder drops them, and the EU DCC revocation is recorded.
/// `Ok(false)` when it was already revoked.
pub async fn revoke(store: &dyn Store, id: &str, country: &str) -> Result<bool, ApiError> {
    revoke_audited(store, id, country, None).await
}

/// [`revoke`], with the revocation's AuditEvent committed in the same transaction
/// (added for BALP). When nothing changes (already revoked) no event is written here.
pub async fn revoke_audited(
    store: &dyn Store,
    id: &str,
    country: &str,
    audit: Option<&crate::audit::Audit>,
) -> Result<bool, ApiError> {
    let docref = find_document_reference(store, id).await?;
    let Some(docref) = docref else {
        // A document stored with `POST /fhir/Bundle` and never registered: delete it.
        return match store.read("Bundle", id).await {
            Ok(_) => {
                let mut entries = vec![TxEntry {
                    full_url: None,
                    op: TxOp::Delete {
                        resource_type: "Bundle".into(),
                        id: id.into(),
                    },
                }];
                if let Some(a) = audit {
                    entries.push(a.tx_entry(&[format!("Bundle/{id}")], 200));
                }
                store
                    .transaction(TxRequest::new(entries))
                    .await
                    .map_err(store_error)?;
                Ok(true)
            }
            Err(StoreError::Gone { .. }) => Ok(false),
            Err(StoreError::NotFound { .. }) => Err(ApiError::not_found(format!(
                "no certificate is registered under `{id}`"
            ))),
            Err(e) => Err(store_error(e)),
        };
    };
    if docref.resource.get("status").and_then(Value::as_str) == Some("entered-in-error") {
        return Ok(false);
    }
    let now = ddcc_cert::rfc3339_utc(crate::now_unix());
    let mut entries = Vec::new();
    let retire = |stored: &ddcc_store::Stored, entries: &mut Vec<TxEntry>| {
        let mut r = stored.resource.clone();
        r["status"] = json!("entered-in-error");
        entries.push(TxEntry {
            full_url: None,
            op: TxOp::Update {
                resource_type: "DocumentReference".into(),
                id: stored.id.clone(),
                resource: r,
                if_match: Some(stored.version_id),
            },
        });
    };
    retire(&docref, &mut entries);
    let mut removed = vec![format!("DocumentReference/{}", docref.id)];
    let mut revocation = None;
    let uvci = docref
        .resource
        .get("identifier")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find_map(|i| i.get("value")?.as_str()))
        .map(str::to_string);
    let related: Vec<String> = docref
        .resource
        .pointer("/context/related")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("reference")?.as_str())
        .filter_map(|r| reference_id(r, "DocumentReference"))
        .map(str::to_string)
        .collect();
    for qr_id in &related {
        let qr = match store.read("DocumentReference", qr_id).await {
            Ok(q) => q,
            Err(StoreError::NotFound { .. } | StoreError::Gone { .. }) => continue,
            Err(e) => return Err(store_error(e)),
        };
        if qr_category(&qr.resource) == Some("dcc") {
            if let (Some(uvci), Some(payload)) = (&uvci, serialized_payload(&qr.resource)) {
                revocation = revocation_of(
                    &payload,
                    uvci,
                    country,
                    &now,
                    &format!("DocumentReference/{}", docref.id),
                );
            }
        }
        retire(&qr, &mut entries);
        removed.push(format!("DocumentReference/{qr_id}"));
    }
    let binary = docref
        .resource
        .pointer("/content/0/attachment/url")
        .and_then(Value::as_str)
        .and_then(|u| reference_id(u, "Binary"))
        .map(str::to_string);
    let mut hcid = None;
    // Audit (added for BALP): what the revocation touches, by `Type/id`.
    let mut touched = removed.clone();
    if let Some(bin) = &binary {
        if let Some((held_by, document)) = read_document(store, bin).await? {
            hcid = hcid_of(&document);
            let (resource_type, id) = held_by.split_once('/').unwrap_or(("Binary", bin.as_str()));
            touched.push(held_by.clone());
            entries.push(TxEntry {
                full_url: None,
                op: TxOp::Delete {
                    resource_type: resource_type.into(),
                    id: id.into(),
                },
            });
        }
    }
    // The Folder key is the HCID as issued; the document's link carries it as
    // `urn:HCID:<hcid>`. Only an existing Folder is edited: an upsert for an unknown HCID
    // would create one.
    let candidates: Vec<String> = hcid
        .iter()
        .flat_map(|h| {
            [
                h.clone(),
                h.strip_prefix("urn:HCID:").unwrap_or(h).to_string(),
            ]
        })
        .collect();
    for candidate in candidates {
        let q = ddcc_store::SearchQuery::new()
            .with("code", "folder")
            .with("identifier", candidate.replace(',', "\\,"));
        if !store
            .search("List", &q)
            .await
            .map_err(store_error)?
            .is_empty()
        {
            entries.push(TxEntry {
                full_url: None,
                op: TxOp::Folder(FolderUpsert {
                    hcid: candidate,
                    template: json!({"resourceType": "List"}),
                    add: Vec::new(),
                    remove: removed,
                }),
            });
            break;
        }
    }
    if let Some(a) = audit {
        entries.push(a.tx_entry(&touched, 200));
    }
    store
        .transaction(TxRequest {
            entries,
            complete_key: None,
            revocations: revocation.into_iter().collect(),
        })
        .await
        .map_err(store_error)?;
    Ok(true)
}

/// The signed document a revocation request names (by DocumentReference id, document
/// identifier or document id), as issued; `None` when there is none.
pub async fn document_to_revoke(store: &dyn Store, id: &str) -> Result<Option<Value>, ApiError> {
    let Some(docref) = find_document_reference(store, id).await? else {
        return Ok(read_document(store, id).await?.map(|(_, d)| d));
    };
    let Some(bin) = docref
        .resource
        .pointer("/content/0/attachment/url")
        .and_then(Value::as_str)
        .and_then(|u| reference_id(u, "Binary"))
    else {
        return Ok(None);
    };
    Ok(read_document(store, bin).await?.map(|(_, d)| d))
}

async fn find_document_reference(
    store: &dyn Store,
    id: &str,
) -> Result<Option<ddcc_store::Stored>, ApiError> {
    if ddcc_store::ids::check_id(id).is_ok() {
        match store.read("DocumentReference", id).await {
            Ok(d) if is_document_reference(&d.resource) => return Ok(Some(d)),
            Ok(_) => {
                return Err(ApiError::Invalid {
                    status: 400,
                    issues: vec![Issue::error(
                        "invalid",
                        format!("DocumentReference/{id} is a QR code, not a certificate document"),
                    )],
                })
            }
            Err(StoreError::NotFound { .. } | StoreError::Gone { .. }) => {}
            Err(e) => return Err(store_error(e)),
        }
    }
    let mut keys = vec![id.to_string()];
    if let Ok(bundle) = store.read("Bundle", id).await {
        if let Some(v) = bundle
            .resource
            .pointer("/identifier/value")
            .and_then(Value::as_str)
        {
            keys.push(v.to_string());
        }
    }
    for key in keys {
        let q = ddcc_store::SearchQuery::new().with("identifier", key.replace(',', "\\,"));
        let found = store
            .search("DocumentReference", &q)
            .await
            .map_err(store_error)?;
        if let Some(d) = found
            .into_iter()
            .find(|d| is_document_reference(&d.resource))
        {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

async fn release(store: &dyn Store, token: &ddcc_store::ClaimToken) {
    if let Err(e) = store.release_key(token).await {
        tracing::warn!(error = %e, "cannot release an idempotency claim; it expires on its own");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_prefers_identifier_and_ignores_meta() {
        let a = json!({"resourceType": "QuestionnaireResponse", "id": "1", "status": "completed", "item": [{"linkId": "x"}]});
        let b = json!({"status": "completed", "item": [{"linkId": "x"}], "resourceType": "QuestionnaireResponse", "meta": {"versionId": "3"}});
        assert_eq!(idempotency_key(&a), idempotency_key(&b));
        let c = json!({"resourceType": "QuestionnaireResponse", "status": "completed", "item": [{"linkId": "y"}]});
        assert_ne!(idempotency_key(&a), idempotency_key(&c));
        let d = json!({"resourceType": "QuestionnaireResponse", "identifier": {"system": "s", "value": "v"}});
        assert_eq!(idempotency_key(&d), "qr-identifier:s|v");
    }

    #[test]
    fn relink_maps_and_drops_dangling() {
        let mut map = std::collections::HashMap::new();
        map.insert("urn:uuid:a".to_string(), "urn:uuid:b".to_string());
        let mut v = json!({"subject": {"reference": "urn:uuid:a"}, "x": [{"reference": "urn:uuid:z", "display": "d"}]});
        relink(&mut v, &map, 0);
        assert_eq!(v["subject"]["reference"], "urn:uuid:b");
        assert_eq!(v["x"][0], json!({"display": "d"}));
    }
}
