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
        let report = SyncReport {
            full: true,
            accepted: list.accepted.len(),
            dscs: list.accepted.iter().filter(|c| c.group == "DSC").count(),
            rejected,
            // References carry no signature (contract §5.4): kept as listed.
            references: references.len(),
            issuers: issuers_ok.len(),
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
        };
        gw.trust_list_replace_groups(&["DSC"], dscs).await?;
        self.record("last_sync", &report).await?;
        Ok(report)
    }
}
