//! `FHIR_SERVER`: the registry's resources kept on an external FHIR server (HAPI, or
//! another instance of this service in store mode) over FHIR REST, behind the same
//! [`Store`] trait the route handlers use, so they have one code path whatever holds
//! the data.
//!
//! What a plain FHIR server cannot hold stays in the local store (SQLite or
//! PostgreSQL): idempotency keys, revocations awaiting the trust network, and the audit
//! trail (`AuditEvent`). A transaction therefore commits in two steps: the resources on
//! the FHIR server (one FHIR transaction, all-or-nothing there), then the key's answer,
//! revocations and AuditEvents locally. Nothing is written locally unless the FHIR
//! server committed; the converse gap (the server committed, the local commit failed or
//! the server's answer was lost) leaves the resources stored without the key answered,
//! so a resubmission issues again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ddcc_store::{
    refs, BoxFuture, Claim, ClaimToken, Completed, FolderUpsert, KeyCompletion, PendingRevocation,
    Result, SearchQuery, Store, StoreError, Stored, TxEntry, TxOp, TxRequest, TxResult,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Resource types that stay local: the audit trail is ours whoever holds the registry.
fn is_local(resource_type: &str) -> bool {
    resource_type == "AuditEvent"
}

/// Where a wrapped key answer keeps the FHIR server's per-entry results, since the
/// local transaction that completes the key only sees the local entries.
const WRAPPED: &str = "fhirServerAnswer";

pub struct FhirServerStore {
    base: String,
    http: reqwest::Client,
    local: Arc<dyn Store>,
    retries: u32,
}

impl FhirServerStore {
    /// `base` is the server's FHIR base (`http://host/fhir`); `local` keeps keys,
    /// revocations and AuditEvents.
    pub fn new(
        base: &str,
        local: Arc<dyn Store>,
        timeout: Duration,
        retries: u32,
    ) -> std::result::Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http,
            local,
            retries,
        })
    }

    /// The base without any user and password it carries, for logs.
    pub fn base_for_logs(&self) -> String {
        match reqwest::Url::parse(&self.base) {
            Ok(mut u) => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.to_string()
            }
            Err(_) => "(unparsable FHIR_SERVER)".into(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// One HTTP exchange. Reads (`retry`) are retried after a connection failure or a
    /// 5xx with doubling backoff; any request is retried when the connection could not
    /// be made, since the server then never saw it. Writes are FHIR transactions
    /// (POST), which a server may have committed before its answer was lost, so they are
    /// not resent once sent.
    async fn send(
        &self,
        method: Method,
        url: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        headers: &[(&str, String)],
        retry: bool,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>)> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            let mut req = self
                .http
                .request(method.clone(), url)
                .header("Accept", "application/fhir+json");
            if !query.is_empty() {
                req = req.query(query);
            }
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            if let Some(b) = body {
                req = req
                    .header("Content-Type", "application/fhir+json")
                    .body(b.to_string());
            }
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(b) => Ok((status, headers, b.to_vec())),
                        Err(e) => Err((e.is_connect(), unreachable(&e))),
                    }
                }
                Err(e) => Err((e.is_connect(), unreachable(&e))),
            };
            let again = attempt < self.retries
                && match &outcome {
                    Ok((s, _, _)) => retry && s.is_server_error(),
                    Err((connect, _)) => retry || *connect,
                };
            if !again {
                return outcome.map_err(|(_, e)| e);
            }
            attempt += 1;
            tracing::warn!(%method, attempt, "FHIR server request failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    async fn get_json(&self, path: &str, query: &[(String, String)]) -> Result<Value> {
        self.get_url(&self.url(path), query, path).await
    }

    /// `what` names the request in errors (`Type/id`, or the type searched).
    async fn get_url(&self, url: &str, query: &[(String, String)], what: &str) -> Result<Value> {
        let (status, headers, body) = self.send(Method::GET, url, query, None, &[], true).await?;
        if !status.is_success() {
            return Err(status_error(status, &headers, &body, what));
        }
        parse_json(&body)
    }

    /// Whether `url` is on the FHIR server's origin (scheme, host, port).
    fn same_origin(&self, url: &str) -> bool {
        match (reqwest::Url::parse(&self.base), reqwest::Url::parse(url)) {
            (Ok(a), Ok(b)) => a.origin() == b.origin(),
            _ => false,
        }
    }

    async fn remote_read(&self, resource_type: &str, id: &str) -> Result<Stored> {
        ddcc_store::ids::check_type(resource_type)?;
        ddcc_store::ids::check_id(id)?;
        let v = self.get_json(&format!("{resource_type}/{id}"), &[]).await?;
        stored_from(v, resource_type)
    }

    /// The matches the embedded store would give: as many as `_count` asks (its
    /// default when absent), following the server's `next` links, since a server may
    /// answer fewer per page than asked (HAPI caps its pages).
    async fn remote_search(&self, resource_type: &str, query: &SearchQuery) -> Result<Vec<Stored>> {
        // Refuse exactly what the embedded store refuses, before asking the server.
        ddcc_store::check_query(resource_type, query)?;
        let mut params = query.params.clone();
        let wanted = match params.iter().rev().find(|(k, _)| k == "_count") {
            Some((_, v)) => v
                .trim()
                .parse::<usize>()
                .unwrap_or(ddcc_store::DEFAULT_COUNT)
                .min(ddcc_store::MAX_COUNT + 1),
            None => {
                params.push(("_count".into(), ddcc_store::DEFAULT_COUNT.to_string()));
                ddcc_store::DEFAULT_COUNT
            }
        };
        let mut bundle = self.get_json(resource_type, &params).await?;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            for e in bundle
                .get("entry")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                // `include`/`outcome` entries are not matches.
                let mode = e.pointer("/search/mode").and_then(Value::as_str);
                if mode.is_some_and(|m| m != "match") {
                    continue;
                }
                if let Some(r) = e.get("resource") {
                    out.push(stored_from(r.clone(), resource_type)?);
                }
            }
            if out.len() >= wanted {
                break;
            }
            let Some(next) = next_link(&bundle) else {
                break;
            };
            // Only links to the same server: its answer does not choose where we go.
            if !self.same_origin(next) {
                return Err(StoreError::Upstream(
                    "a search page links outside the FHIR server".into(),
                ));
            }
            let next = next.to_string();
            bundle = self.get_url(&next, &[], resource_type).await?;
        }
        out.truncate(wanted);
        Ok(out)
    }

    /// The current Folder of `hcid` on the server, if any.
    async fn find_folder(&self, hcid: &str) -> Result<Option<Stored>> {
        let q = SearchQuery::new()
            .with("code", "folder")
            .with("identifier", hcid.replace(',', "\\,"));
        Ok(self.remote_search("List", &q).await?.into_iter().next())
    }

    /// The transaction entry writing `f`: the existing Folder updated under `If-Match`,
    /// or a new one under an id derived from the HCID, so two writers creating the
    /// same holder's Folder write one resource.
    async fn folder_entry(&self, f: &FolderUpsert) -> Result<Value> {
        if f.hcid.is_empty() || f.hcid.len() > 256 {
            return Err(StoreError::InvalidResource(
                "HCID must be 1..=256 characters".into(),
            ));
        }
        let (mut list, id, if_match) = match self.find_folder(&f.hcid).await? {
            Some(s) => (s.resource, s.id, Some(s.version_id)),
            None => {
                // Boxed: creating a Folder is itself a (one-entry) remote transaction.
                let created = Box::pin(self.ensure_folder(f)).await?;
                // The template as given (its references to this transaction's entries
                // resolve now), with the entries the Folder has by now.
                let mut t = f.template.clone();
                t["id"] = json!(created.id);
                t["entry"] = created.resource.get("entry").cloned().unwrap_or(json!([]));
                (t, created.id, Some(created.version_id))
            }
        };
        apply_folder(&mut list, f);
        if let Some(o) = list.as_object_mut() {
            o.remove("meta");
        }
        let mut request = json!({"method": "PUT", "url": format!("List/{id}")});
        if let Some(v) = if_match {
            request["ifMatch"] = json!(format!("W/\"{v}\""));
        }
        Ok(json!({"resource": list, "request": request}))
    }

    /// Creates the holder's Folder, empty, under the id derived from the HCID; entries
    /// are then added under `If-Match` like any Folder update. FHIR has no
    /// create-if-absent for a given id, so two writers may both write it: the one whose
    /// write replaced a version (200, not 201) puts back the entries that version had,
    /// which another writer added in between.
    async fn ensure_folder(&self, f: &FolderUpsert) -> Result<Stored> {
        let has_hcid = f
            .template
            .get("identifier")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|i| i.get("value").and_then(Value::as_str) == Some(f.hcid.as_str()));
        if !has_hcid {
            return Err(StoreError::InvalidResource(
                "Folder template identifier must carry the HCID".into(),
            ));
        }
        let id = folder_id(&f.hcid);
        let mut t = f.template.clone();
        t["id"] = json!(id);
        t["entry"] = json!([]);
        if let Some(o) = t.as_object_mut() {
            o.remove("meta");
        }
        // References to entries of the transaction to come do not resolve yet.
        drop_urn_references(&mut t, 0);
        let written = self
            .remote_transaction(&[TxEntry {
                full_url: None,
                op: TxOp::Update {
                    resource_type: "List".into(),
                    id: id.clone(),
                    resource: t,
                    if_match: None,
                },
            }])
            .await?;
        let replaced = written
            .first()
            .filter(|w| w.status != 201 && w.version_id > 1)
            .map(|w| w.version_id - 1);
        let Some(previous) = replaced else {
            return self.remote_read("List", &id).await;
        };
        let lost = match self.vread("List", &id, previous).await {
            Ok(p) => entry_refs(&p.resource),
            Err(StoreError::NotFound { .. } | StoreError::Gone { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        for _ in 0..=FOLDER_RETRIES {
            let cur = self.remote_read("List", &id).await?;
            let have = entry_refs(&cur.resource);
            let missing: Vec<String> = lost.iter().filter(|r| !have.contains(r)).cloned().collect();
            if missing.is_empty() {
                return Ok(cur);
            }
            let mut list = cur.resource.clone();
            apply_folder(
                &mut list,
                &FolderUpsert {
                    hcid: f.hcid.clone(),
                    template: Value::Null,
                    add: missing,
                    remove: Vec::new(),
                },
            );
            if let Some(o) = list.as_object_mut() {
                o.remove("meta");
            }
            match self
                .remote_transaction(&[TxEntry {
                    full_url: None,
                    op: TxOp::Update {
                        resource_type: "List".into(),
                        id: id.clone(),
                        resource: list,
                        if_match: Some(cur.version_id),
                    },
                }])
                .await
            {
                Ok(_) => {}
                Err(StoreError::VersionConflict { .. }) => {
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(10..50))).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::VersionConflict {
            resource_type: "List".into(),
            id,
            expected: previous,
            actual: None,
        })
    }

    /// The remote half of a transaction: the FHIR transaction Bundle's entries, in
    /// order. A lone create goes as `POST /{type}` (a server may reserve `POST /` with a
    /// transaction for whole submissions, as ITI-65 servers do).
    async fn remote_transaction(&self, entries: &[TxEntry]) -> Result<Vec<TxResult>> {
        if let [TxEntry {
            op: TxOp::Create { resource },
            ..
        }] = entries
        {
            let rt = resource
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default();
            ddcc_store::ids::check_type(rt)?;
            let (status, headers, body) = self
                .send(Method::POST, &self.url(rt), &[], Some(resource), &[], false)
                .await?;
            if !status.is_success() {
                return Err(status_error(status, &headers, &body, rt));
            }
            let stored = match parse_json(&body) {
                Ok(v) if v.get("id").is_some() => stored_from(v, rt)?,
                // A server answering `Prefer: return=minimal` gives only the Location.
                _ => {
                    let (t, id, _) = header_location(&headers).ok_or_else(|| {
                        StoreError::Upstream("create answered no Location".into())
                    })?;
                    self.remote_read(&t, &id).await?
                }
            };
            return Ok(vec![TxResult {
                location: stored.location(),
                etag: stored.etag(),
                resource_type: stored.resource_type,
                id: stored.id,
                version_id: stored.version_id,
                status: 201,
                last_updated: stored.last_updated,
            }]);
        }
        let mut bundle_entries = Vec::with_capacity(entries.len());
        for e in entries {
            let mut entry = match &e.op {
                TxOp::Create { resource } => {
                    let rt = resource
                        .get("resourceType")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    ddcc_store::ids::check_type(rt)?;
                    let mut r = resource.clone();
                    if let Some(o) = r.as_object_mut() {
                        o.remove("id");
                    }
                    json!({"resource": r, "request": {"method": "POST", "url": rt}})
                }
                TxOp::Update {
                    resource_type,
                    id,
                    resource,
                    if_match,
                } => {
                    ddcc_store::ids::check_type(resource_type)?;
                    ddcc_store::ids::check_id(id)?;
                    let mut request =
                        json!({"method": "PUT", "url": format!("{resource_type}/{id}")});
                    if let Some(v) = if_match {
                        request["ifMatch"] = json!(format!("W/\"{v}\""));
                    }
                    json!({"resource": resource, "request": request})
                }
                TxOp::Delete { resource_type, id } => {
                    ddcc_store::ids::check_type(resource_type)?;
                    ddcc_store::ids::check_id(id)?;
                    json!({"request": {"method": "DELETE", "url": format!("{resource_type}/{id}")}})
                }
                TxOp::Folder(f) => self.folder_entry(f).await?,
            };
            if let Some(u) = &e.full_url {
                entry["fullUrl"] = json!(u);
            }
            bundle_entries.push(entry);
        }
        let bundle =
            json!({"resourceType": "Bundle", "type": "transaction", "entry": bundle_entries});
        let (status, headers, body) = self
            .send(Method::POST, &self.base, &[], Some(&bundle), &[], false)
            .await?;
        if !status.is_success() {
            return Err(status_error(status, &headers, &body, "transaction"));
        }
        let answer = parse_json(&body)?;
        let got = answer
            .get("entry")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if got.len() != entries.len() {
            return Err(StoreError::Upstream(format!(
                "transaction of {} entries answered with {}",
                entries.len(),
                got.len()
            )));
        }
        got.iter()
            .zip(entries)
            .map(|(g, e)| tx_result_from(g, e))
            .collect()
    }
}

impl FhirServerStore {
    /// A Folder is written under `If-Match` of the version just read, so a concurrent
    /// writer (another instance issuing for the same holder) makes the transaction fail
    /// with 412 instead of losing its entries; it is then rebuilt from the Folder as it
    /// is now and sent again.
    async fn remote_transaction_retrying_folders(
        &self,
        entries: &[TxEntry],
    ) -> Result<Vec<TxResult>> {
        let has_folder = entries.iter().any(|e| matches!(e.op, TxOp::Folder(_)));
        let mut attempt = 0;
        loop {
            match self.remote_transaction(entries).await {
                Err(StoreError::VersionConflict { .. })
                    if has_folder && attempt < FOLDER_RETRIES =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(10..50) * attempt))
                        .await;
                }
                other => return other,
            }
        }
    }
}

/// Rebuilds of a transaction whose Folder changed under it before giving up (409/412).
const FOLDER_RETRIES: u64 = 5;

/// Pages followed for one search before answering with what was found.
const MAX_PAGES: usize = 100;

fn next_link(bundle: &Value) -> Option<&str> {
    bundle
        .get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))?
        .get("url")?
        .as_str()
}

/// Client-assigned id of a new Folder: letters first, so servers that refuse numeric
/// client ids (HAPI's default) accept it.
fn folder_id(hcid: &str) -> String {
    let h = Sha256::digest(hcid.as_bytes());
    format!("ddcc-folder-{}", hex::encode(&h[..16]))
}

/// Removes `{reference: "urn:…"}` elements (a template's links to entries not written
/// yet).
fn drop_urn_references(v: &mut Value, depth: usize) {
    if depth > refs::MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(o) => {
            o.retain(|_, x| {
                !x.get("reference")
                    .and_then(Value::as_str)
                    .is_some_and(|r| r.starts_with("urn:"))
            });
            o.values_mut()
                .for_each(|x| drop_urn_references(x, depth + 1));
        }
        Value::Array(a) => {
            a.retain(|x| {
                !x.get("reference")
                    .and_then(Value::as_str)
                    .is_some_and(|r| r.starts_with("urn:"))
            });
            a.iter_mut().for_each(|x| drop_urn_references(x, depth + 1));
        }
        _ => {}
    }
}

/// The `entry.item.reference`s of a List.
fn entry_refs(list: &Value) -> Vec<String> {
    list.get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.pointer("/item/reference").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// The same edit the embedded store makes: drop `remove`, append missing `add`.
fn apply_folder(list: &mut Value, f: &FolderUpsert) {
    let mut entries: Vec<Value> = match list.get("entry") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    entries.retain(|e| {
        !e.pointer("/item/reference")
            .and_then(Value::as_str)
            .is_some_and(|r| f.remove.iter().any(|x| x == r))
    });
    for r in &f.add {
        let present = entries
            .iter()
            .any(|e| e.pointer("/item/reference").and_then(Value::as_str) == Some(r.as_str()));
        if !present && !f.remove.contains(r) {
            entries.push(json!({"item": {"reference": r}}));
        }
    }
    list["entry"] = Value::Array(entries);
}

fn unreachable(e: &reqwest::Error) -> StoreError {
    // The URL may carry credentials; reqwest's Display includes it.
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    StoreError::Backend(format!("FHIR server unreachable: {kind}"))
}

fn parse_json(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body)
        .map_err(|e| StoreError::Upstream(format!("answer is not JSON: {e}")))
}

/// The first OperationOutcome diagnostics of an error answer, shortened.
fn diagnostics(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v.get("issue")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| {
            i.get("diagnostics")
                .or_else(|| i.pointer("/details/text"))
                .and_then(Value::as_str)
        })
        .collect::<Vec<_>>()
        .join("; ")
        .chars()
        .take(300)
        .collect()
}

fn etag_version(headers: &reqwest::header::HeaderMap) -> Option<i64> {
    headers
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(ddcc_store::bundle::parse_etag)
}

/// `Type`, `id` and version of a `Location` / `location`: absolute or relative,
/// with or without `/_history/v`.
fn split_location(loc: &str) -> Option<(String, String, Option<i64>)> {
    let path = loc.split('?').next().unwrap_or(loc);
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let (t, id, v) = match parts.as_slice() {
        [.., t, id, "_history", v] => (*t, *id, v.parse().ok()),
        [.., t, id] => (*t, *id, None),
        _ => return None,
    };
    Some((t.to_string(), id.to_string(), v))
}

fn header_location(headers: &reqwest::header::HeaderMap) -> Option<(String, String, Option<i64>)> {
    headers
        .get(reqwest::header::LOCATION)
        .or_else(|| headers.get("content-location"))
        .and_then(|v| v.to_str().ok())
        .and_then(split_location)
}

/// An error answer as the store error the embedded store would give.
fn status_error(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    what: &str,
) -> StoreError {
    let detail = diagnostics(body);
    let (rt, id) = what.split_once('/').unwrap_or((what, ""));
    let (rt, id) = (rt.to_string(), id.to_string());
    match status.as_u16() {
        404 if !id.is_empty() => StoreError::NotFound {
            resource_type: rt,
            id,
        },
        410 => StoreError::Gone {
            resource_type: rt,
            id,
            version_id: etag_version(headers).unwrap_or(0),
        },
        409 => StoreError::AlreadyExists {
            resource_type: rt,
            id,
        },
        412 => StoreError::VersionConflict {
            resource_type: rt,
            id,
            expected: 0,
            actual: None,
        },
        400 | 404 | 422 => StoreError::InvalidResource(format!(
            "the FHIR server refused it ({}): {detail}",
            status.as_u16()
        )),
        // The server is there but cannot serve now (e.g. its own database is down).
        503 => StoreError::Backend(format!("FHIR server unavailable: {detail}")),
        s => StoreError::Upstream(format!("answered {s}: {detail}")),
    }
}

/// A resource from the server as a [`Stored`] (version and time from its `meta`).
fn stored_from(resource: Value, expected_type: &str) -> Result<Stored> {
    let rt = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if rt != expected_type && expected_type != "transaction" {
        return Err(StoreError::Upstream(format!(
            "asked for a {expected_type}, got a {rt}"
        )));
    }
    let id = resource
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| StoreError::Upstream(format!("a {rt} without id")))?
        .to_string();
    let version_id = resource
        .pointer("/meta/versionId")
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let last_updated = resource
        .pointer("/meta/lastUpdated")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(Stored {
        resource_type: rt,
        id,
        version_id,
        last_updated,
        resource,
    })
}

/// One `transaction-response` entry as a [`TxResult`].
fn tx_result_from(entry: &Value, sent: &TxEntry) -> Result<TxResult> {
    let r = entry.get("response").ok_or_else(|| {
        StoreError::Upstream("transaction-response entry without response".into())
    })?;
    let status: u16 = r
        .get("status")
        .and_then(Value::as_str)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let location = r
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (rt, id, v) = match split_location(location) {
        Some(x) => x,
        None => match &sent.op {
            TxOp::Delete { resource_type, id }
            | TxOp::Update {
                resource_type, id, ..
            } => (resource_type.clone(), id.clone(), None),
            _ => {
                return Err(StoreError::Upstream(format!(
                    "transaction-response entry without location (status {status})"
                )))
            }
        },
    };
    let version_id = v
        .or_else(|| {
            r.get("etag")
                .and_then(Value::as_str)
                .and_then(ddcc_store::bundle::parse_etag)
        })
        .unwrap_or(1);
    let location = if status == 204 {
        format!("{rt}/{id}")
    } else {
        format!("{rt}/{id}/_history/{version_id}")
    };
    Ok(TxResult {
        resource_type: rt,
        id,
        version_id,
        location,
        status,
        etag: format!("W/\"{version_id}\""),
        last_updated: r
            .get("lastModified")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}

/// The local entries of a transaction: AuditEvent writes.
fn entry_is_local(e: &TxEntry) -> bool {
    match &e.op {
        TxOp::Create { resource } => resource
            .get("resourceType")
            .and_then(Value::as_str)
            .is_some_and(is_local),
        TxOp::Update { resource_type, .. } | TxOp::Delete { resource_type, .. } => {
            is_local(resource_type)
        }
        TxOp::Folder(_) => false,
    }
}

impl Store for FhirServerStore {
    fn backend(&self) -> &'static str {
        "fhir-server"
    }

    fn create(&self, resource: Value) -> BoxFuture<'_, Result<Stored>> {
        Box::pin(async move {
            let rt = resource
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if is_local(&rt) {
                return self.local.create(resource).await;
            }
            let r = self
                .remote_transaction(&[TxEntry {
                    full_url: None,
                    op: TxOp::Create { resource },
                }])
                .await?;
            let first = r
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::Upstream("empty create answer".into()))?;
            self.remote_read(&first.resource_type, &first.id).await
        })
    }

    fn read<'a>(&'a self, resource_type: &'a str, id: &'a str) -> BoxFuture<'a, Result<Stored>> {
        Box::pin(async move {
            if is_local(resource_type) {
                return self.local.read(resource_type, id).await;
            }
            self.remote_read(resource_type, id).await
        })
    }

    fn vread<'a>(
        &'a self,
        resource_type: &'a str,
        id: &'a str,
        version_id: i64,
    ) -> BoxFuture<'a, Result<Stored>> {
        Box::pin(async move {
            if is_local(resource_type) {
                return self.local.vread(resource_type, id, version_id).await;
            }
            ddcc_store::ids::check_type(resource_type)?;
            ddcc_store::ids::check_id(id)?;
            let v = self
                .get_json(&format!("{resource_type}/{id}/_history/{version_id}"), &[])
                .await?;
            stored_from(v, resource_type)
        })
    }

    fn update<'a>(
        &'a self,
        resource_type: &'a str,
        id: &'a str,
        resource: Value,
        if_match: Option<i64>,
    ) -> BoxFuture<'a, Result<Stored>> {
        Box::pin(async move {
            if is_local(resource_type) {
                return self
                    .local
                    .update(resource_type, id, resource, if_match)
                    .await;
            }
            let r = self
                .remote_transaction(&[TxEntry {
                    full_url: None,
                    op: TxOp::Update {
                        resource_type: resource_type.to_string(),
                        id: id.to_string(),
                        resource,
                        if_match,
                    },
                }])
                .await?;
            let first = r
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::Upstream("empty update answer".into()))?;
            self.remote_read(&first.resource_type, &first.id).await
        })
    }

    fn delete<'a>(&'a self, resource_type: &'a str, id: &'a str) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            if is_local(resource_type) {
                return self.local.delete(resource_type, id).await;
            }
            let r = self
                .remote_transaction(&[TxEntry {
                    full_url: None,
                    op: TxOp::Delete {
                        resource_type: resource_type.to_string(),
                        id: id.to_string(),
                    },
                }])
                .await?;
            Ok(r.first().map(|r| r.version_id).unwrap_or(0))
        })
    }

    fn history<'a>(
        &'a self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Stored>>> {
        Box::pin(async move {
            if is_local(resource_type) {
                return self.local.history(resource_type, id).await;
            }
            ddcc_store::ids::check_type(resource_type)?;
            ddcc_store::ids::check_id(id)?;
            let b = self
                .get_json(&format!("{resource_type}/{id}/_history"), &[])
                .await?;
            let mut out = Vec::new();
            for e in b
                .get("entry")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match e.get("resource") {
                    Some(r) => out.push(stored_from(r.clone(), resource_type)?),
                    // A deletion: a tombstone, as the embedded store lists it.
                    None => {
                        let (_, _, v) = e
                            .pointer("/request/url")
                            .or_else(|| e.get("fullUrl"))
                            .and_then(Value::as_str)
                            .and_then(split_location)
                            .unwrap_or_default();
                        out.push(Stored {
                            resource_type: resource_type.to_string(),
                            id: id.to_string(),
                            version_id: v.unwrap_or(0),
                            last_updated: e
                                .pointer("/response/lastModified")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            resource: Value::Null,
                        });
                    }
                }
            }
            Ok(out)
        })
    }

    fn search<'a>(
        &'a self,
        resource_type: &'a str,
        query: &'a SearchQuery,
    ) -> BoxFuture<'a, Result<Vec<Stored>>> {
        Box::pin(async move {
            if is_local(resource_type) {
                return self.local.search(resource_type, query).await;
            }
            self.remote_search(resource_type, query).await
        })
    }

    fn transaction(&self, request: TxRequest) -> BoxFuture<'_, Result<Vec<TxResult>>> {
        Box::pin(async move {
            let TxRequest {
                entries,
                complete_key,
                revocations,
            } = request;
            let (local_pos, remote_pos): (Vec<usize>, Vec<usize>) =
                (0..entries.len()).partition(|i| entry_is_local(&entries[*i]));
            let mut slots: Vec<Option<TxEntry>> = entries.into_iter().map(Some).collect();
            let remote: Vec<TxEntry> = remote_pos.iter().filter_map(|i| slots[*i].take()).collect();
            let remote_results = if remote.is_empty() {
                Vec::new()
            } else {
                self.remote_transaction_retrying_folders(&remote).await?
            };
            // fullUrl → `Type/id` as the server assigned them, for the local half.
            let mut map = HashMap::new();
            for (e, r) in remote.iter().zip(&remote_results) {
                if let Some(u) = &e.full_url {
                    map.insert(u.clone(), format!("{}/{}", r.resource_type, r.id));
                }
            }
            let mut local_entries = Vec::with_capacity(local_pos.len());
            for i in &local_pos {
                let Some(mut e) = slots[*i].take() else {
                    continue;
                };
                match &mut e.op {
                    TxOp::Create { resource } | TxOp::Update { resource, .. } => {
                        refs::rewrite(resource, &map)?;
                    }
                    _ => {}
                }
                local_entries.push(e);
            }
            let complete_key = complete_key.map(|kc| {
                let mut value = kc.value;
                refs::rewrite_all_strings(&mut value, &map, 0);
                KeyCompletion {
                    claim: kc.claim,
                    value: json!({WRAPPED: {"value": value, "results": remote_results}}),
                }
            });
            let needs_local =
                !local_entries.is_empty() || complete_key.is_some() || !revocations.is_empty();
            let local_results = if needs_local {
                self.local
                    .transaction(TxRequest {
                        entries: local_entries,
                        complete_key,
                        revocations,
                    })
                    .await?
            } else {
                Vec::new()
            };
            // Results in request order, wherever each entry went.
            let mut out: Vec<Option<TxResult>> = vec![None; local_pos.len() + remote_pos.len()];
            for (i, r) in remote_pos.iter().zip(remote_results) {
                out[*i] = Some(r);
            }
            for (i, r) in local_pos.iter().zip(local_results) {
                out[*i] = Some(r);
            }
            out.into_iter()
                .map(|r| {
                    r.ok_or_else(|| StoreError::Backend("a transaction entry has no result".into()))
                })
                .collect()
        })
    }

    fn claim_key<'a>(&'a self, key: &'a str, ttl_ms: i64) -> BoxFuture<'a, Result<Claim>> {
        Box::pin(async move {
            Ok(match self.local.claim_key(key, ttl_ms).await? {
                Claim::Existing(done) => Claim::Existing(unwrap_completed(done)),
                other => other,
            })
        })
    }

    fn release_key<'a>(&'a self, claim: &'a ClaimToken) -> BoxFuture<'a, Result<()>> {
        self.local.release_key(claim)
    }

    fn pending_revocations(&self, limit: usize) -> BoxFuture<'_, Result<Vec<PendingRevocation>>> {
        self.local.pending_revocations(limit)
    }

    /// What this service keeps itself (keys, revocations, audit, gateway bookkeeping)
    /// is sealed locally; the FHIR server's resources are that server's to protect.
    fn reencrypt(&self, limit: usize) -> BoxFuture<'_, Result<usize>> {
        self.local.reencrypt(limit)
    }

    /// Revocations are recorded locally (they are ours to publish).
    fn find_revocation<'a>(
        &'a self,
        lookup: &'a ddcc_store::RevocationLookup,
    ) -> BoxFuture<'a, Result<Option<ddcc_store::Revocation>>> {
        self.local.find_revocation(lookup)
    }

    /// The gateway outbox and the verified trust list stay in the local store.
    fn gateway(&self) -> Option<&dyn ddcc_store::gateway::GatewayStore> {
        self.local.gateway()
    }

    fn mark_published<'a>(
        &'a self,
        seqs: &'a [i64],
        published_at: &'a str,
    ) -> BoxFuture<'a, Result<u64>> {
        self.local.mark_published(seqs, published_at)
    }
}

/// A key answered through this store carries the server's results; a key answered
/// before `FHIR_SERVER` was set is returned as stored.
fn unwrap_completed(done: Completed) -> Completed {
    let Some(inner) = done.value.get(WRAPPED) else {
        return done;
    };
    let results = inner
        .get("results")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default();
    Completed {
        value: inner.get("value").cloned().unwrap_or(Value::Null),
        results,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_never_show_credentials() {
        let local: Arc<dyn Store> = Arc::new(
            ddcc_store::SqliteStore::open(
                std::env::temp_dir().join(format!("ddcc-fhir-server-unit-{}", std::process::id())),
            )
            .expect("sqlite"),
        );
        let s = FhirServerStore::new(
            "https://user:secret@hapi:8443/fhir/",
            local,
            Duration::from_secs(1),
            0,
        )
        .expect("client");
        assert_eq!(s.base_for_logs(), "https://hapi:8443/fhir");
    }

    #[test]
    fn locations_of_every_shape() {
        assert_eq!(
            split_location("http://h/fhir/List/a/_history/3"),
            Some(("List".into(), "a".into(), Some(3)))
        );
        assert_eq!(
            split_location("Binary/b"),
            Some(("Binary".into(), "b".into(), None))
        );
        assert_eq!(split_location("x"), None);
    }

    #[test]
    fn folder_edit_matches_the_embedded_store() {
        let mut list = json!({"resourceType": "List", "entry": [
            {"item": {"reference": "DocumentReference/a"}},
            {"item": {"reference": "DocumentReference/b"}}]});
        apply_folder(
            &mut list,
            &FolderUpsert {
                hcid: "h".into(),
                template: Value::Null,
                add: vec!["DocumentReference/a".into(), "urn:uuid:c".into()],
                remove: vec!["DocumentReference/b".into()],
            },
        );
        let refs: Vec<&str> = list["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.pointer("/item/reference").and_then(Value::as_str))
            .collect();
        assert_eq!(refs, ["DocumentReference/a", "urn:uuid:c"]);
        assert!(folder_id("x").starts_with("ddcc-folder-"));
        assert_ne!(folder_id("x"), folder_id("y"));
    }

    #[test]
    fn new_folder_drops_links_to_entries_not_written_yet() {
        let mut t = json!({"resourceType": "List", "subject": {"reference": "urn:uuid:p"},
            "identifier": [{"value": "h"}],
            "entry": [{"item": {"reference": "urn:uuid:d"}}, {"item": {"reference": "DocumentReference/x"}}]});
        drop_urn_references(&mut t, 0);
        assert_eq!(
            t,
            json!({"resourceType": "List", "identifier": [{"value": "h"}],
                "entry": [{}, {"item": {"reference": "DocumentReference/x"}}]})
        );
        assert_eq!(entry_refs(&t), ["DocumentReference/x"]);
    }

    #[test]
    fn error_answers_map_like_the_embedded_store() {
        let h = reqwest::header::HeaderMap::new();
        let oo = br#"{"resourceType":"OperationOutcome","issue":[{"diagnostics":"nope"}]}"#;
        let cases = [
            (404, "Binary/x", 404),
            (410, "Binary/x", 410),
            (412, "List/x", 412),
            (400, "transaction", 400),
            (422, "transaction", 400),
            (500, "transaction", 502),
            (503, "transaction", 500),
        ];
        for (status, what, want) in cases {
            let e = status_error(StatusCode::from_u16(status).unwrap(), &h, oo, what);
            assert_eq!(e.http_status(), want, "{status} {what}: {e}");
        }
    }
}
