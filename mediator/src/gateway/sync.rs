//! Trust-list sync (contract §8). A full sync downloads every certificate group, the
//! trusted references and the trusted issuers, verifies them against the trust
//! anchor and replaces what the store holds. A delta sync downloads only the DSCs
//! (what changes between full syncs) and checks them against the CSCA and UPLOAD
//! entries the last full sync verified. The gateway has no change feed for
//! certificates, so "delta" means "the volatile group only".

use std::time::Duration;

use ddcc_store::TrustEntry;
use serde::Serialize;
use serde_json::Value;
use trust_network::trustlist::{
    verify_certificates, verify_issuers, CertificateRow, IssuerRow, Rejection, VerifiedCert,
};

use super::{now_ms, Gateway, GatewayError};

#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub full: bool,
    pub accepted: usize,
    pub dscs: usize,
    pub rejected: Vec<Rejection>,
    pub references: usize,
    pub issuers: usize,
    /// What the revocation-list download did (full syncs).
    pub revocations: Value,
}

fn entry(v: VerifiedCert) -> TrustEntry {
    TrustEntry {
        group: v.group,
        country: v.country,
        domain: v.domain,
        thumbprint: v.thumbprint,
        kid: v.kid,
        der: v.der,
    }
}

fn verified(e: TrustEntry) -> VerifiedCert {
    VerifiedCert {
        group: e.group,
        country: e.country,
        domain: e.domain,
        kid: e.kid,
        thumbprint: e.thumbprint,
        der: e.der,
    }
}

/// True when the last full sync is older than `every` (or never ran).
pub async fn full_sync_due(g: &Gateway, every: Duration) -> Result<bool, GatewayError> {
    let last = g
        .gw()?
        .gateway_state("last_full_sync")
        .await?
        .and_then(|v| serde_json::from_str::<Value>(&v).ok())
        .and_then(|v| v["atMs"].as_i64());
    Ok(match last {
        None => true,
        Some(t) => now_ms() - t >= i64::try_from(every.as_millis()).unwrap_or(i64::MAX),
    })
}

impl Gateway {
    fn anchor(&self) -> Result<&[u8], GatewayError> {
        self.trust_anchor
            .as_deref()
            .ok_or(GatewayError::NoTrustAnchor)
    }

    fn log_rejections(rejected: &[Rejection]) {
        for r in rejected {
            tracing::warn!(group = %r.group, country = %r.country, kid = %r.kid, reason = %r.reason, "trust list entry rejected");
        }
    }

    async fn record(&self, key: &str, report: &SyncReport) -> Result<(), GatewayError> {
        let v = serde_json::json!({
            "atMs": now_ms(),
            "at": ddcc_store::time::format_instant(now_ms()),
            "report": report,
        });
        self.gw()?.set_gateway_state(key, &v.to_string()).await?;
        Ok(())
    }

    /// Downloads and verifies everything; stores only what verified.
    pub async fn sync_full(&self) -> Result<SyncReport, GatewayError> {
        let ta = self.anchor()?.to_vec();
        let rows: Vec<CertificateRow> = self.get_json("/trustList/certificate").await?;
        let list = verify_certificates(&rows, &ta, &[]);
        let references: Vec<Value> = self.get_json("/trustList/references").await?;
        let issuers: Vec<IssuerRow> = self.get_json("/trustList/issuers").await?;
        let (issuers_ok, issuers_bad) = verify_issuers(&issuers, &ta);
        let mut rejected = list.rejected;
        rejected.extend(issuers_bad);
        Self::log_rejections(&rejected);
        let mut report = SyncReport {
            full: true,
            accepted: list.accepted.len(),
            dscs: list.accepted.iter().filter(|c| c.group == "DSC").count(),
            rejected,
            // References carry no signature (contract §5.4): kept as listed.
            references: references.len(),
            issuers: issuers_ok.len(),
            revocations: Value::Null,
        };
        let gw = self.gw()?;
        gw.trust_list_replace(list.accepted.into_iter().map(entry).collect())
            .await?;
        gw.set_gateway_state(
            "trusted_references",
            &serde_json::to_string(&references).unwrap_or_default(),
        )
        .await?;
        gw.set_gateway_state(
            "trusted_issuers",
            &serde_json::to_string(&issuers_ok).unwrap_or_default(),
        )
        .await?;
        report.revocations = self.sync_revocations().await?;
        self.record("last_full_sync", &report).await?;
        self.record("last_sync", &report).await?;
        Ok(report)
    }

    /// DSCs only, checked against the CSCA/UPLOAD entries of the last full sync.
    pub async fn sync_delta(&self) -> Result<SyncReport, GatewayError> {
        let ta = self.anchor()?.to_vec();
        let gw = self.gw()?;
        let known: Vec<VerifiedCert> = gw
            .trust_list(None)
            .await?
            .into_iter()
            .filter(|e| e.group != "DSC")
            .map(verified)
            .collect();
        let rows: Vec<CertificateRow> = self.get_json("/trustList/certificate?group=DSC").await?;
        let list = verify_certificates(&rows, &ta, &known);
        Self::log_rejections(&list.rejected);
        let dscs: Vec<TrustEntry> = list
            .accepted
            .into_iter()
            .filter(|c| c.group == "DSC")
            .map(entry)
            .collect();
        let report = SyncReport {
            full: false,
            accepted: dscs.len(),
            dscs: dscs.len(),
            rejected: list.rejected,
            references: 0,
            issuers: 0,
            revocations: Value::Null,
        };
        gw.trust_list_replace_groups(&["DSC"], dscs).await?;
        self.record("last_sync", &report).await?;
        Ok(report)
    }

    /// Revocation batches (contract §7): `GET /revocation-list` since the last sync,
    /// then each batch's CMS, verified against an UPLOAD certificate of the batch's
    /// country from the verified trust list. TNG hides the per-batch download (404)
    /// and needs the `REVOCATION_LIST_READER` role (403): both end the sync quietly,
    /// reported as `available: false`.
    pub async fn sync_revocations(&self) -> Result<Value, GatewayError> {
        let gw = self.gw()?;
        let mut since = gw
            .gateway_state("revocations_since")
            .await?
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
        let uploaders = gw.trust_list(Some("UPLOAD")).await?;
        let (mut stored, mut deleted, mut rejected) = (0usize, 0usize, Vec::new());
        for _page in 0..1000 {
            let r = self
                .edge
                .send(super::EdgeRequest {
                    method: super::Method::Get,
                    path: "/revocation-list".into(),
                    content_type: None,
                    headers: vec![("If-Modified-Since", since.clone())],
                    body: Vec::new(),
                })
                .await?;
            match r.status {
                200 => {}
                204 => break,
                403 | 404 => {
                    return Ok(serde_json::json!({"available": false, "status": r.status}))
                }
                s => {
                    return Err(GatewayError::Status {
                        what: "GET /revocation-list".into(),
                        status: s,
                        problem: super::problem(&r.body),
                    })
                }
            }
            let page: Value =
                serde_json::from_slice(&r.body).map_err(|e| GatewayError::Protocol {
                    what: "GET /revocation-list".into(),
                    message: e.to_string(),
                })?;
            let batches = page["batches"].as_array().cloned().unwrap_or_default();
            let mut ids = Vec::new();
            let mut hashes = Vec::new();
            for b in &batches {
                let (Some(id), Some(country)) = (b["batchId"].as_str(), b["country"].as_str())
                else {
                    continue;
                };
                ids.push(id.to_string());
                if b["deleted"].as_bool() == Some(true) {
                    deleted += 1;
                    continue;
                }
                let cms = match self.get(&format!("/revocation-list/{id}")).await {
                    Ok(body) => String::from_utf8_lossy(&body).into_owned(),
                    Err(GatewayError::Status {
                        status: 403 | 404 | 410,
                        ..
                    }) => {
                        return Ok(
                            serde_json::json!({"available": false, "batches": batches.len()}),
                        )
                    }
                    Err(e) => return Err(e),
                };
                let signers: Vec<&[u8]> = uploaders
                    .iter()
                    .filter(|u| u.country == country)
                    .map(|u| u.der.as_slice())
                    .collect();
                let content = match trust_network::trustlist::verify_attached(&cms, &signers) {
                    Ok((c, _)) => c,
                    Err(e) => {
                        tracing::warn!(batch = id, country, error = %e, "revocation batch rejected");
                        rejected.push(format!("{id}: {e}"));
                        continue;
                    }
                };
                let v: Value = serde_json::from_slice(&content).unwrap_or(Value::Null);
                // The signer proves the uploader's country; a batch naming another
                // country is not that uploader's to publish.
                if v["country"].as_str() != Some(country) {
                    rejected.push(format!("{id}: batch content names another country"));
                    continue;
                }
                for e in v["entries"].as_array().into_iter().flatten() {
                    if let Some(h) = e["hash"].as_str() {
                        hashes.push(ddcc_store::RevokedHash {
                            batch_id: id.to_string(),
                            country: country.to_string(),
                            kid: v["kid"].as_str().unwrap_or_default().to_string(),
                            hash_type: v["hashType"].as_str().unwrap_or_default().to_string(),
                            hash: h.to_string(),
                        });
                    }
                }
            }
            stored += hashes.len();
            gw.revoked_replace(&ids, hashes).await?;
            if let Some(last) = batches.last().and_then(|b| b["date"].as_str()) {
                since = last.to_string();
                gw.set_gateway_state("revocations_since", &since).await?;
            }
            if page["more"].as_bool() != Some(true) {
                break;
            }
        }
        Ok(serde_json::json!({
            "available": true,
            "hashes": stored,
            "deletedBatches": deleted,
            "rejected": rejected,
        }))
    }
}
