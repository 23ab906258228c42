//! From a checked QuestionnaireResponse to a signed DDCC document.
//!
//! Order matters and is deliberate: everything that can reject the request (the
//! Questionnaire checks, both maps) runs in [`Issuer::prepare`] before the first
//! signature is asked for, so a bad request costs no Vault round trip and leaves
//! nothing behind. [`Issuer::sign`] then builds the certificates, QR images and PDF,
//! fills the QR DocumentReferences the document map created, and signs the Bundle.

use crate::pipeline::{Pipeline, Pipelines, QrContent};
use crate::questionnaire::{self, AnswerIssue};
use base64::Engine;
use ddcc_cert::hc1::{self, CwtClaims, HcertPayload};
use ddcc_cert::pdf::{PdfCertificate, PdfDose, PdfQr};
use ddcc_cert::qr::{self, QrMode};
use ddcc_cert::{bundle_sig, eudcc, icao, shc, CertError, SignError, SigningIdentity};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use terminology::Terminology;

/// Runs a StructureMap. The mediator implements it over the FML engine; the issuing
/// core only needs "this map, this input, that output".
pub trait Mapper: Send + Sync {
    fn transform(&self, map_url: &str, source: &Value, now_unix: i64) -> Result<Value, MapFailure>;
}

/// A check of the finished document against its profile before the Bundle is
/// signed. The mediator implements it with the profile validator.
pub trait DocumentCheck: Send + Sync {
    /// Error messages; empty when the document conforms.
    fn errors(&self, document: &Value, profile: &str) -> Vec<String>;
}

/// A transform that failed, with the map, group and rule when the engine knows them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{map}: {message}")]
pub struct MapFailure {
    pub map: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("the QuestionnaireResponse names no questionnaire")]
    NoQuestionnaire,
    #[error(
        "no certificate can be issued for questionnaire {0}: it is not one this service knows"
    )]
    UnknownQuestionnaire(String),
    #[error("the QuestionnaireResponse does not conform to its Questionnaire ({} issue(s))", .0.len())]
    Invalid(Vec<AnswerIssue>),
    #[error("mapping failed: {0}")]
    Mapping(#[from] MapFailure),
    /// The certificate content cannot be encoded (e.g. a name the EU DCC cannot carry).
    #[error("the certificate cannot be encoded: {0}")]
    Unencodable(String),
    /// The signer cannot be reached or is sealed: retry later.
    #[error("the signing service is unavailable: {0}")]
    SignerUnavailable(String),
    /// The finished document fails its own profile: a bug in our maps, never signed.
    #[error("the issued document does not conform to {profile}: {}", .errors.join("; "))]
    SelfCheck {
        profile: String,
        errors: Vec<String>,
    },
    /// Our own configuration or maps produced something unusable: a bug, not the caller's fault.
    #[error("internal issuing error: {0}")]
    Internal(String),
}

impl From<CertError> for IssueError {
    fn from(e: CertError) -> Self {
        match e {
            CertError::Sign(SignError::Unavailable(m)) => IssueError::SignerUnavailable(m),
            CertError::InvalidInput(m) | CertError::QrTooLarge(m) => IssueError::Unencodable(m),
            other => IssueError::Internal(other.to_string()),
        }
    }
}

/// The kinds of QR certificate we issue for a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QrKind {
    /// WHO DDCC core data set in a CWT (`HC1:`).
    Who,
    /// EU DCC 1.3.0 HCERT (`HC1:`).
    Dcc,
    /// SMART Health Card (`shc:/`).
    Shc,
    /// ICAO VDS-NC (JSON).
    Icao,
}

impl QrKind {
    pub fn code(self) -> &'static str {
        match self {
            QrKind::Who => "who",
            QrKind::Dcc => "dcc",
            QrKind::Shc => "shc",
            QrKind::Icao => "icao",
        }
    }
    fn label(self) -> &'static str {
        match self {
            QrKind::Who => "WHO DDCC",
            QrKind::Dcc => "EU DCC",
            QrKind::Shc => "SMART Health Card",
            QrKind::Icao => "ICAO VDS-NC",
        }
    }
    /// Media type of the serialized payload.
    fn content_type(self) -> &'static str {
        match self {
            QrKind::Icao => "application/json",
            _ => "text/plain",
        }
    }
}

/// One issued QR certificate.
#[derive(Debug, Clone)]
pub struct IssuedQr {
    pub kind: QrKind,
    /// The QR text (`HC1:…`, `shc:/…`, VDS-NC JSON).
    pub payload: String,
    pub png: Vec<u8>,
    pub svg: String,
    /// `fullUrl` of the DocumentReference that carries it in the document.
    pub document_reference: String,
}

#[derive(Debug, Clone)]
pub struct Issued {
    /// The signed document Bundle.
    pub document: Value,
    pub core_data_set: Value,
    pub hcid: Option<String>,
    /// UVCI of the EU DCC, the key of the EU revocation scheme.
    pub uvci: Option<String>,
    pub qrs: Vec<IssuedQr>,
    pub pdf: Vec<u8>,
    pub edition: String,
    pub document_profile: String,
}

/// What the core data set and the maps cannot know about the issuer.
#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// Certificate lifetime when the response gives no `valid_until`.
    pub validity_seconds: i64,
    /// `v[0].is` of the EU DCC when the core data set names no issuer.
    pub issuer_name: Option<String>,
    pub uvci_checksum: bool,
    /// The SMART Health Card issuer (`iss`): the base URL under which
    /// `/.well-known/jwks.json` serves our keys.
    pub shc_issuer_url: String,
}

impl Default for IssuerSettings {
    fn default() -> Self {
        IssuerSettings {
            validity_seconds: 365 * 86_400,
            issuer_name: None,
            uvci_checksum: true,
            shc_issuer_url: "http://localhost:4321".into(),
        }
    }
}

/// A response that passed every check and both maps: ready to sign.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub pipeline: Pipeline,
    pub core_data_set: Value,
    pub document: Value,
    /// The FHIR Bundle the SMART Health Card carries.
    pub shc_bundle: Value,
}

pub struct Issuer {
    questionnaires: HashMap<String, Value>,
    pipelines: Pipelines,
    terminology: Arc<Terminology>,
    mapper: Arc<dyn Mapper>,
    identity: SigningIdentity,
    settings: IssuerSettings,
    check: Option<Arc<dyn DocumentCheck>>,
}

impl Issuer {
    /// Validate every document against its profile before signing it.
    pub fn with_check(mut self, check: Arc<dyn DocumentCheck>) -> Self {
        self.check = Some(check);
        self
    }

    pub fn new(
        questionnaires: Vec<Value>,
        pipelines: Pipelines,
        terminology: Arc<Terminology>,
        mapper: Arc<dyn Mapper>,
        identity: SigningIdentity,
        settings: IssuerSettings,
    ) -> Self {
        let questionnaires = questionnaires
            .into_iter()
            .filter_map(|q| Some((q.get("url")?.as_str()?.to_string(), q)))
            .collect();
        Issuer {
            questionnaires,
            pipelines,
            terminology,
            mapper,
            identity,
            settings,
            check: None,
        }
    }

    pub fn identity(&self) -> &SigningIdentity {
        &self.identity
    }

    /// Check and map; no signature yet.
    pub fn prepare(&self, response: &Value, now_unix: i64) -> Result<Prepared, IssueError> {
        let canonical = response
            .get("questionnaire")
            .and_then(Value::as_str)
            .ok_or(IssueError::NoQuestionnaire)?;
        let url = canonical.split('|').next().unwrap_or(canonical);
        let pipeline = self
            .pipelines
            .for_questionnaire(url)
            .ok_or_else(|| IssueError::UnknownQuestionnaire(url.to_string()))?;
        let questionnaire = self
            .questionnaires
            .get(url)
            .ok_or_else(|| IssueError::UnknownQuestionnaire(url.to_string()))?;
        let issues = questionnaire::check(
            questionnaire,
            response,
            &self.terminology,
            &pipeline.also_accepted,
        );
        if !issues.is_empty() {
            return Err(IssueError::Invalid(issues));
        }
        let core_data_set =
            self.mapper
                .transform(&pipeline.core_data_set_map, response, now_unix)?;
        let document = self
            .mapper
            .transform(&pipeline.document_map, &core_data_set, now_unix)?;
        let shc_bundle = self
            .mapper
            .transform(&pipeline.shc_map, &core_data_set, now_unix)?;
        Ok(Prepared {
            pipeline: pipeline.clone(),
            core_data_set,
            document,
            shc_bundle,
        })
    }

    /// Build and sign every certificate of a prepared response.
    pub async fn sign(&self, prepared: Prepared, now_unix: i64) -> Result<Issued, IssueError> {
        self.sign_with_earlier_doses(prepared, now_unix, Vec::new())
            .await
    }

    /// As [`Issuer::sign`], with the doses of the holder's earlier certificates (from
    /// the registry's folder) listed on the printable certificate.
    pub async fn sign_with_earlier_doses(
        &self,
        prepared: Prepared,
        now_unix: i64,
        earlier_doses: Vec<PdfDose>,
    ) -> Result<Issued, IssueError> {
        let Prepared {
            pipeline,
            core_data_set: cds,
            mut document,
            shc_bundle,
        } = prepared;
        let claims = CwtClaims {
            iss: self.identity.country.clone(),
            iat: now_unix,
            exp: expiry(&cds, now_unix, self.settings.validity_seconds),
        };
        let hcid = str_at(&cds, &["certificate", "hcid", "value"]).map(str::to_string);
        let dcc_options = eudcc::DccOptions {
            issuer_name: self.settings.issuer_name.clone(),
            uvci_checksum: self.settings.uvci_checksum,
            ..Default::default()
        };
        let dcc_payload = eudcc::from_core_data_set(&cds, &dcc_options)?;
        let uvci = dcc_payload
            .pointer("/v/0/ci")
            .and_then(Value::as_str)
            .map(str::to_string);

        // The four signatures are independent: ask for them together, so a remote
        // signer can batch them into one round trip.
        let who_payload = HcertPayload::Who(cds.clone());
        let dcc_payload = HcertPayload::Dcc(dcc_payload);
        let (who, dcc, shc_card, vds) = futures_util::future::join4(
            hc1::issue(&who_payload, &claims, &self.identity),
            hc1::issue(&dcc_payload, &claims, &self.identity),
            shc::issue(
                &shc_bundle,
                &self.settings.shc_issuer_url,
                now_unix,
                &self.identity,
            ),
            icao::issue(&cds, &self.identity),
        )
        .await;
        let vds = serde_json::to_string(&vds?).map_err(|e| IssueError::Internal(e.to_string()))?;
        let payloads = [
            (QrKind::Who, who?),
            (QrKind::Dcc, dcc?),
            (QrKind::Shc, shc_card?.qr_numeric),
            (QrKind::Icao, vds),
        ];

        let mut qrs = Vec::with_capacity(payloads.len());
        let mut pdf_qrs = Vec::with_capacity(payloads.len());
        for (kind, payload) in payloads {
            let matrix = qr::matrix(&payload, QrMode::for_payload(&payload))?;
            let png = qr::png_matrix(&matrix, Default::default())?;
            let svg = qr::svg_matrix(&matrix, Default::default());
            pdf_qrs.push(PdfQr {
                label: kind.label().to_string(),
                matrix,
            });
            let document_reference = qr_document_reference(&document, kind).ok_or_else(|| {
                IssueError::Internal(format!(
                    "the document map made no '{}' QR DocumentReference",
                    kind.code()
                ))
            })?;
            qrs.push(IssuedQr {
                kind,
                payload,
                png,
                svg,
                document_reference,
            });
        }
        let mut printable =
            PdfCertificate::from_core_data_sets(std::slice::from_ref(&cds), pdf_qrs)?;
        // The printable certificate lists every dose in the holder's folder.
        printable.doses.splice(0..0, earlier_doses);
        printable.doses.sort_by(|a, b| a.date.cmp(&b.date));
        let pdf = ddcc_cert::pdf::render(&printable)?;

        for q in &qrs {
            fill_qr_contents(&mut document, q, &pdf, &pipeline)?;
        }
        if let Some(check) = &self.check {
            let errors = check.errors(&document, &pipeline.document_profile);
            if !errors.is_empty() {
                return Err(IssueError::SelfCheck {
                    profile: pipeline.document_profile.clone(),
                    errors,
                });
            }
        }
        let issuer_ref = entry_full_url(&document, "Organization").ok_or_else(|| {
            IssueError::Internal("the document map made no Organization entry".into())
        })?;
        let signature = bundle_sig::sign(&document, &self.identity, &issuer_ref, now_unix).await?;
        document["signature"] = signature;

        Ok(Issued {
            document,
            core_data_set: cds,
            hcid,
            uvci,
            qrs,
            pdf,
            edition: pipeline.edition,
            document_profile: pipeline.document_profile,
        })
    }

    pub async fn issue(&self, response: &Value, now_unix: i64) -> Result<Issued, IssueError> {
        let prepared = self.prepare(response, now_unix)?;
        self.sign(prepared, now_unix).await
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// `certificate.period.end` when the response gave one (end of that day), else the
/// configured lifetime.
fn expiry(cds: &Value, now: i64, validity: i64) -> i64 {
    str_at(cds, &["certificate", "period", "end"])
        .and_then(|end| unix_of_date(end.get(..10)?))
        .map(|day_start| day_start + 86_399)
        .filter(|&exp| exp > now)
        .unwrap_or(now + validity)
}

/// `YYYY-MM-DD` -> Unix seconds at 00:00 UTC.
fn unix_of_date(date: &str) -> Option<i64> {
    if !questionnaire::is_fhir_date(date) || date.len() != 10 {
        return None;
    }
    let month = time::Month::try_from(date[5..7].parse::<u8>().ok()?).ok()?;
    let day =
        time::Date::from_calendar_date(date[0..4].parse().ok()?, month, date[8..10].parse().ok()?)
            .ok()?;
    Some(day.midnight().assume_utc().unix_timestamp())
}

fn entries(document: &Value) -> impl Iterator<Item = &Value> {
    document
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn entry_full_url(document: &Value, resource_type: &str) -> Option<String> {
    entries(document)
        .find(|e| {
            e.pointer("/resource/resourceType").and_then(Value::as_str) == Some(resource_type)
        })
        .and_then(|e| e.get("fullUrl")?.as_str().map(str::to_string))
}

/// The QR kind code of a DocumentReference: its `type` in the current IG edition, its
/// `category` in 0.2.1.
fn is_qr_of_kind(resource: &Value, kind: QrKind) -> bool {
    if resource.get("resourceType").and_then(Value::as_str) != Some("DocumentReference") {
        return false;
    }
    let codes = |cc: &Value| -> bool {
        cc.get("coding")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c.get("code").and_then(Value::as_str) == Some(kind.code()))
    };
    resource.get("type").is_some_and(codes)
        || resource
            .get("category")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(codes)
}

fn qr_document_reference(document: &Value, kind: QrKind) -> Option<String> {
    entries(document)
        .find(|e| e.get("resource").is_some_and(|r| is_qr_of_kind(r, kind)))
        .and_then(|e| e.get("fullUrl")?.as_str().map(str::to_string))
}

fn fill_qr_contents(
    document: &mut Value,
    q: &IssuedQr,
    pdf: &[u8],
    pipeline: &Pipeline,
) -> Result<(), IssueError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let content = |content_type: &str, data: String, format: &str| {
        json!({
            "attachment": {"contentType": content_type, "data": data},
            "format": {"system": pipeline.qr_format_system, "code": format},
        })
    };
    let contents: Vec<Value> = pipeline
        .qr_contents
        .iter()
        .map(|c| match c {
            QrContent::Serialized => content(
                q.kind.content_type(),
                b64.encode(q.payload.as_bytes()),
                "serialized",
            ),
            QrContent::Png => content("image/png", b64.encode(&q.png), "image"),
            QrContent::Svg => content("image/svg+xml", b64.encode(q.svg.as_bytes()), "image"),
            QrContent::Pdf => content("application/pdf", b64.encode(pdf), "pdf"),
        })
        .collect();
    let entry = document
        .get_mut("entry")
        .and_then(Value::as_array_mut)
        .and_then(|es| {
            es.iter_mut().find(|e| {
                e.get("fullUrl").and_then(Value::as_str) == Some(q.document_reference.as_str())
            })
        })
        .and_then(|e| e.get_mut("resource"))
        .ok_or_else(|| {
            IssueError::Internal(format!(
                "QR DocumentReference {} vanished",
                q.document_reference
            ))
        })?;
    entry["content"] = Value::Array(contents);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_to_unix() {
        assert_eq!(unix_of_date("1970-01-01"), Some(0));
        assert_eq!(unix_of_date("2021-05-06"), Some(1_620_259_200));
        assert_eq!(unix_of_date("2000-02-29"), Some(951_782_400));
        assert_eq!(unix_of_date("2021-02-30"), None);
        assert_eq!(unix_of_date("2021"), None);
    }

    #[test]
    fn expiry_prefers_the_responses_end_date_when_in_the_future() {
        let cds = json!({"certificate": {"period": {"end": "2022-04-05"}}});
        assert_eq!(expiry(&cds, 1_620_259_200, 10), 1_649_116_800 + 86_399);
        // An end date already past does not produce an expired certificate.
        assert_eq!(expiry(&cds, 1_700_000_000, 10), 1_700_000_010);
        assert_eq!(expiry(&json!({}), 5, 10), 15);
    }

    #[test]
    fn qr_kinds_found_by_type_or_category() {
        let current =
            json!({"resourceType": "DocumentReference", "type": {"coding": [{"code": "dcc"}]}});
        let legacy = json!({"resourceType": "DocumentReference", "category": [{"coding": [{"code": "who"}]}]});
        assert!(is_qr_of_kind(&current, QrKind::Dcc));
        assert!(!is_qr_of_kind(&current, QrKind::Who));
        assert!(is_qr_of_kind(&legacy, QrKind::Who));
    }
}
