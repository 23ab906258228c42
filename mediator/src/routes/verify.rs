//! `POST /fhir/$verify-certificate` (alias `POST /ddcc/verify`): is a scanned QR
//! (`HC1:`, `shc:/` or ICAO VDS-NC JSON) genuine, current and not revoked, and if
//! not, which check failed; what it says, as the DDCC core data set (through the IG's
//! `Cert*toCoreDataSet` maps); and, when a rule engine is installed, each requested
//! rule's result. The answer is always 200 with the verdict inside; only a malformed
//! request is an HTTP error.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use base64::Engine as _;
use ddcc_verify::{verify_any, CheckKind, Format, Layered, TrustList, Verification};
use serde_json::{json, Value};

use crate::error::{ApiError, Issue};
use crate::mapping::MappingService;
use crate::now_unix;
use crate::registry::{store_error, Registry};
use crate::routes::{fhir_json, json_body};
use crate::state::AppState;

/// The IG maps from each certificate's payload to the DDCC core data set
/// (`fhir-profiles/maps/verify/`). A WHO `HC1:` payload already is one.
pub const DCC_TO_CORE_DATA_SET: &str =
    "http://smart.who.int/ddcc/StructureMap/CertDCCtoCoreDataSet";
pub const SHC_TO_CORE_DATA_SET: &str =
    "http://smart.who.int/ddcc/StructureMap/CertSHCtoCoreDataSet";
pub const ICAO_TO_CORE_DATA_SET: &str =
    "http://smart.who.int/ddcc/StructureMap/CertICAOtoCoreDataSet";

/// Business rules over a verified certificate's core data set (the `rule`
/// parameter: a PlanDefinition or Library canonical). The CQL engine installs one as
/// a [`Rules`] service; without it a requested rule is reported as not evaluated.
pub trait RuleEngine: Send + Sync {
    /// `core_data_set` is the Bundle of core data sets the certificate maps to.
    fn evaluate(
        &self,
        rule: &str,
        core_data_set: &Value,
        validation_time_unix: i64,
    ) -> Result<RuleOutcome, String>;
}

/// One rule's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOutcome {
    pub passed: bool,
    /// Why, in the rule's words, when it says.
    pub message: Option<String>,
}

/// The app-state slot for the rule engine (`AppStateBuilder::with_service`).
pub struct Rules(pub Arc<dyn RuleEngine>);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/fhir/$verify-certificate").route(web::post().to(verify)))
        .service(web::resource("/ddcc/verify").route(web::post().to(verify)));
}

struct Request {
    qr: String,
    validation_time: i64,
    trusted: Vec<(usize, String)>,
    trusted_jwks: Vec<(usize, String)>,
    rules: Vec<String>,
}

fn parse_request(body: &Value) -> Result<Request, ApiError> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(ApiError::bad_request(
            "$verify-certificate takes a Parameters resource",
        ));
    }
    let params = body
        .get("parameter")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut qr = None;
    let mut validation_time = None;
    let mut trusted = Vec::new();
    let mut trusted_jwks = Vec::new();
    let mut rules = Vec::new();
    for (i, p) in params.iter().enumerate() {
        let at = format!("Parameters.parameter[{i}]");
        let string_value = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| p.get(*k).and_then(Value::as_str))
                .map(str::to_string)
        };
        match p.get("name").and_then(Value::as_str) {
            Some("qr") => {
                let value = string_value(&["valueString"])
                    .ok_or_else(|| invalid("required", "qr needs a valueString", &at))?;
                if qr.replace(value).is_some() {
                    return Err(invalid("structure", "qr is given more than once", &at));
                }
            }
            Some("validationTime") => {
                let text = string_value(&["valueDateTime", "valueInstant", "valueString"])
                    .ok_or_else(|| {
                        invalid(
                            "required",
                            "validationTime needs a valueDateTime or valueInstant",
                            &at,
                        )
                    })?;
                let t = ddcc_verify::parse_iso8601(&text).ok_or_else(|| {
                    invalid(
                        "value",
                        format!("validationTime {text:?} is not an ISO-8601 date-time"),
                        &at,
                    )
                })?;
                validation_time = Some(t);
            }
            Some("trustedCertificate") => {
                let text =
                    string_value(&["valueString", "valueBase64Binary"]).ok_or_else(|| {
                        invalid(
                            "required",
                            "trustedCertificate needs a valueString (PEM or base64 DER)",
                            &at,
                        )
                    })?;
                trusted.push((i, text));
            }
            Some("trustedJwks") => {
                let text = string_value(&["valueString"]).ok_or_else(|| {
                    invalid(
                        "required",
                        "trustedJwks needs a valueString (a JWKS as JSON)",
                        &at,
                    )
                })?;
                trusted_jwks.push((i, text));
            }
            Some("rule") => {
                let rule = string_value(&["valueCanonical", "valueUri", "valueString"])
                    .ok_or_else(|| invalid("required", "rule needs a valueCanonical", &at))?;
                rules.push(rule);
            }
            // Unknown parameters are ignored, as FHIR operations may be extended.
            _ => {}
        }
    }
    let qr = qr.ok_or_else(|| invalid("required", "parameter qr is missing", "Parameters"))?;
    Ok(Request {
        qr,
        validation_time: validation_time.unwrap_or_else(now_unix),
        trusted,
        trusted_jwks,
        rules,
    })
}

fn invalid(code: &str, message: impl Into<String>, at: &str) -> ApiError {
    ApiError::Invalid {
        status: 422,
        issues: vec![Issue::error(code, message).at(at)],
    }
}

/// The trust list the trust-network sync verified and stored (DSCs and revoked-
/// certificate hashes), parsed once per change: verification reads one generation
/// value from the store and reuses the parsed list while it is unchanged. One per app
/// state (`Services::install`), so apps over different stores never share it.
#[derive(Default)]
pub struct SyncedTrust(std::sync::Mutex<Option<(Option<String>, Arc<TrustList>)>>);

impl SyncedTrust {
    fn cached(&self, generation: &Option<String>) -> Option<Arc<TrustList>> {
        let slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref()
            .filter(|(g, _)| g == generation)
            .map(|(_, list)| list.clone())
    }

    fn keep(&self, generation: Option<String>, list: Arc<TrustList>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((generation, list));
    }
}

/// The synced trust list, if the gateway client has stored one. A store failure
/// leaves a note and verification proceeds against our own DSC alone.
async fn synced_trust(state: &AppState, notes: &mut Vec<Value>) -> Arc<TrustList> {
    let empty = || Arc::new(TrustList::new());
    let Some(registry) = state.service::<crate::registry::Registry>() else {
        return empty();
    };
    let Some(gw) = registry.store.gateway() else {
        return empty();
    };
    let cache = state.service::<SyncedTrust>();
    let generation = match gw.trust_generation().await {
        Ok(g) => g,
        Err(e) => {
            notes.push(note(
                "warning",
                "transient",
                format!("the synced trust list could not be read: {e}"),
            ));
            return empty();
        }
    };
    if let Some(list) = cache.as_ref().and_then(|c| c.cached(&generation)) {
        return list;
    }
    let mut list = TrustList::new();
    match gw.trusted_dscs().await {
        Ok(dscs) => {
            for der in &dscs {
                if let Err(e) = list.add_der(der) {
                    tracing::warn!(error = %e, "a synced DSC does not parse; skipped");
                }
            }
        }
        Err(e) => {
            notes.push(note(
                "warning",
                "transient",
                format!("the synced trust list could not be read: {e}"),
            ));
            return empty();
        }
    }
    match gw.revoked_hashes().await {
        Ok(hashes) => {
            use base64::Engine;
            for h in &hashes {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(h.hash.trim())
                    .ok()
                    .and_then(|b| <[u8; 16]>::try_from(b.get(..16)?).ok());
                if let Some(h) = decoded {
                    list.add_revoked_hash(h);
                }
            }
        }
        Err(e) => {
            notes.push(note(
                "warning",
                "transient",
                format!("the synced revocation list could not be read: {e}"),
            ));
            return empty();
        }
    }
    let list = Arc::new(list);
    if let Some(c) = cache {
        c.keep(generation, list.clone());
    }
    list
}

fn trust_list(state: &AppState, request: &Request) -> Result<TrustList, ApiError> {
    let mut list = TrustList::new();
    let (trusted, trusted_jwks) = (&request.trusted, &request.trusted_jwks);
    if trusted.is_empty() && trusted_jwks.is_empty() {
        // Offline default: what this service signs must verify here.
        let signing = state
            .require::<crate::services::SigningSlot>("signer")?
            .get()
            .map_err(|message| ApiError::Unavailable {
                service: "signer".into(),
                message,
            })?;
        list.add_der(&signing.identity.dsc_der).map_err(|e| {
            ApiError::internal(format!("the service's own DSC does not parse: {e}"))
        })?;
        return Ok(list);
    }
    let mut issues = Vec::new();
    for (i, text) in trusted {
        if let Err(e) = list.add_text(text) {
            issues.push(
                Issue::error("invalid", format!("trustedCertificate: {e}"))
                    .at(format!("Parameters.parameter[{i}]")),
            );
        }
    }
    for (i, text) in trusted_jwks {
        let added = serde_json::from_str::<Value>(text)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|jwks| list.add_jwks(None, &jwks).map_err(|e| e.to_string()));
        if let Err(e) = added {
            issues.push(
                Issue::error("invalid", format!("trustedJwks: {e}"))
                    .at(format!("Parameters.parameter[{i}]")),
            );
        }
    }
    if issues.is_empty() {
        Ok(list)
    } else {
        Err(ApiError::Invalid {
            status: 422,
            issues,
        })
    }
}

/// FHIR IssueType for a failed check.
fn issue_code(check: CheckKind) -> &'static str {
    match check {
        CheckKind::Prefix
        | CheckKind::Base45
        | CheckKind::Decompression
        | CheckKind::Cbor
        | CheckKind::Cose
        | CheckKind::Kid
        | CheckKind::Numeric
        | CheckKind::Jws
        | CheckKind::Json
        | CheckKind::Structure
        | CheckKind::Certificate => "structure",
        CheckKind::UnknownSigner | CheckKind::Signature | CheckKind::Revocation => "security",
        CheckKind::DscValidity
        | CheckKind::KeyUsage
        | CheckKind::NotYetValid
        | CheckKind::Expired => "business-rule",
    }
}

fn outcome(v: &Verification, notes: &[Value]) -> Value {
    let mut issues: Vec<Value> = v
        .issues
        .iter()
        .map(|i| {
            json!({
                "severity": "error",
                "code": issue_code(i.check),
                "details": {"text": i.check.name()},
                "diagnostics": i.message,
            })
        })
        .collect();
    issues.extend(notes.iter().cloned());
    // OperationOutcome needs at least one issue.
    if issues.is_empty() {
        issues.push(json!({
            "severity": "information",
            "code": "informational",
            "diagnostics": "all checks passed",
        }));
    }
    json!({"resourceType": "OperationOutcome", "issue": issues})
}

/// What the route adds to the library's verdict.
struct Extras {
    core_data_set: Option<Value>,
    rules: Vec<Value>,
    notes: Vec<Value>,
}

fn response(v: &Verification, extras: &Extras) -> Value {
    let mut params = vec![json!({"name": "valid", "valueBoolean": v.valid})];
    if let Some(format) = v.format {
        params.push(json!({"name": "format", "valueCode": format.name()}));
    }
    if let Some(kid) = v.kid {
        params.push(json!({
            "name": "kid",
            "valueString": base64::engine::general_purpose::STANDARD.encode(kid),
        }));
    }
    if let Some(kid) = &v.jws_kid {
        params.push(json!({"name": "kid", "valueString": kid}));
    }
    if let Some(signer) = &v.signer {
        if let Some(country) = &signer.country {
            params.push(json!({"name": "signerCountry", "valueString": country}));
        }
        params.push(json!({"name": "signerSubject", "valueString": signer.subject}));
    }
    if let Some(iss) = &v.cwt.iss {
        params.push(json!({"name": "issuer", "valueString": iss}));
    }
    for (name, t) in [("issuedAt", v.cwt.iat), ("expiresAt", v.cwt.exp)] {
        if let Some(t) = t {
            params.push(json!({"name": name, "valueInstant": ddcc_cert::rfc3339_utc(t)}));
        }
    }
    if let Some(payload) = &v.payload {
        params.push(json!({"name": "payload", "valueString": payload.to_string()}));
    }
    if let Some(cds) = &extras.core_data_set {
        params.push(json!({"name": "coreDataSet", "resource": cds}));
    }
    params.extend(extras.rules.iter().cloned());
    params.push(json!({"name": "issues", "resource": outcome(v, &extras.notes)}));
    json!({"resourceType": "Parameters", "parameter": params})
}

fn note(severity: &str, code: &str, diagnostics: impl Into<String>) -> Value {
    json!({"severity": severity, "code": code, "diagnostics": diagnostics.into()})
}

/// The map and its source for a decoded payload; `None` for a WHO payload, which is
/// a core data set already, and when nothing was decoded.
fn core_data_set_source(v: &Verification) -> Option<Result<(&'static str, Value), Value>> {
    let payload = v.payload.as_ref()?;
    Some(match v.format? {
        Format::Hc1 if ["v", "t", "r"].iter().any(|k| payload.get(*k).is_some()) => {
            // The map reads the CWT claims by their numeric keys, as JSON text keys.
            let mut cwt = serde_json::Map::new();
            if let Some(iss) = &v.cwt.iss {
                cwt.insert("1".into(), json!(iss));
            }
            if let Some(exp) = v.cwt.exp {
                cwt.insert("4".into(), json!(exp));
            }
            if let Some(iat) = v.cwt.iat {
                cwt.insert("6".into(), json!(iat));
            }
            cwt.insert("-260".into(), json!({"1": payload}));
            Ok((DCC_TO_CORE_DATA_SET, Value::Object(cwt)))
        }
        Format::Hc1 => Err(json!({
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": payload}],
        })),
        Format::Shc => Ok((SHC_TO_CORE_DATA_SET, payload.clone())),
        Format::Icao => Ok((ICAO_TO_CORE_DATA_SET, json!({"data": payload}))),
    })
}

/// The core data set of a decoded certificate, as a `collection` Bundle of core data
/// set entries (what the IG maps produce). A map failure is a note, not an error:
/// the verdict on the signature stands either way.
fn core_data_set(state: &AppState, v: &Verification, notes: &mut Vec<Value>) -> Option<Value> {
    let (map, source) = match core_data_set_source(v)? {
        Ok(pair) => pair,
        Err(ready) => return Some(ready),
    };
    let mapping = match state.require::<MappingService>("mapping") {
        Ok(m) => m,
        Err(_) => {
            notes.push(note(
                "warning",
                "not-supported",
                "no mapping service: core data set not derived",
            ));
            return None;
        }
    };
    match mapping.transform(map, &source, now_unix()) {
        Ok(bundle) => Some(bundle),
        Err(e) => {
            notes.push(note(
                "warning",
                "processing",
                format!("core data set: {map} failed: {e}"),
            ));
            None
        }
    }
}

fn rule_results(
    state: &AppState,
    request: &Request,
    core_data_set: Option<&Value>,
    notes: &mut Vec<Value>,
) -> Vec<Value> {
    if request.rules.is_empty() {
        return Vec::new();
    }
    let Some(engine) = state.service::<Rules>() else {
        notes.push(note(
            "warning",
            "not-supported",
            "no rule engine is installed: the requested rules were not evaluated",
        ));
        return Vec::new();
    };
    let Some(cds) = core_data_set else {
        notes.push(note(
            "warning",
            "processing",
            "no core data set: the requested rules were not evaluated",
        ));
        return Vec::new();
    };
    request
        .rules
        .iter()
        .map(|rule| {
            let mut part = vec![json!({"name": "rule", "valueCanonical": rule})];
            match engine.0.evaluate(rule, cds, request.validation_time) {
                Ok(outcome) => {
                    part.push(json!({"name": "passed", "valueBoolean": outcome.passed}));
                    if let Some(m) = outcome.message {
                        part.push(json!({"name": "message", "valueString": m}));
                    }
                }
                Err(e) => {
                    notes.push(note("warning", "processing", format!("rule {rule}: {e}")));
                    part.push(json!({"name": "error", "valueString": e}));
                }
            }
            json!({"name": "ruleResult", "part": part})
        })
        .collect()
}

/// Ask the registry whether we revoked the certificate; if so, mark its hashes
/// revoked in the trust list and verify again, so the `revocation` check reports it
/// the same way as a synced revocation list would.
async fn apply_store_revocations(
    state: &AppState,
    trust: &mut TrustList,
    v: &Verification,
) -> Result<bool, ApiError> {
    let Some(hashes) = &v.revocation else {
        return Ok(false);
    };
    let Some(registry) = state.service::<Registry>() else {
        return Ok(false);
    };
    let (uvci_hash, country_code_uvci_hash, signature_hash) = hashes.hex();
    let lookup = ddcc_store::RevocationLookup {
        uvci_hash,
        country_code_uvci_hash,
        signature_hash,
    };
    let found = registry
        .store
        .find_revocation(&lookup)
        .await
        .map_err(store_error)?;
    let Some(revocation) = found else {
        return Ok(false);
    };
    // Only the hashes the stored entry actually matched are marked.
    let truncated = hashes.truncated();
    let (u, c, s) = hashes.hex();
    for (i, (mine, stored)) in [
        (u, &revocation.uvci_hash),
        (c, &revocation.country_code_uvci_hash),
        (s, &revocation.signature_hash),
    ]
    .into_iter()
    .enumerate()
    {
        if &mine == stored {
            trust.add_revoked_hash(truncated[i]);
        }
    }
    Ok(true)
}

async fn verify(state: AppState, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let request = parse_request(&json_body(&body)?)?;
    let mut notes = Vec::new();
    // Offline verification (`trustedCertificate`/`trustedJwks`) trusts exactly what
    // the caller gave; otherwise the synced trust list (other countries' issuers, ours
    // once uploaded, the network's revocations) joins our own DSC.
    let synced = if request.trusted.is_empty() && request.trusted_jwks.is_empty() {
        synced_trust(&state, &mut notes).await
    } else {
        Arc::new(TrustList::new())
    };
    let mut trust = trust_list(&state, &request)?;
    let check = |trust: &TrustList| {
        let both = Layered {
            first: trust,
            second: synced.as_ref(),
        };
        verify_any(&request.qr, &both, request.validation_time)
    };
    let mut verification = check(&trust);
    if apply_store_revocations(&state, &mut trust, &verification).await? {
        verification = check(&trust);
    }
    let core_data_set = core_data_set(&state, &verification, &mut notes);
    let rules = rule_results(&state, &request, core_data_set.as_ref(), &mut notes);
    let extras = Extras {
        core_data_set,
        rules,
        notes,
    };
    Ok(fhir_json(StatusCode::OK, &response(&verification, &extras)))
}
