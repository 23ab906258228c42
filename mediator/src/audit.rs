//! IHE BALP-style `AuditEvent`s for the registry: who (the OpenHIM client), what (the
//! resources touched, by `Type/id` only), when, the outcome, and the OpenHIM transaction
//! id. Events never carry resource content, names, birth dates or HCIDs: search values
//! of parameters that may identify a person are replaced by `***`.
//!
//! Writes put their event into the same store transaction as the change (the event
//! exists iff the change committed); reads, searches and failures are recorded with a
//! separate create after the answer is decided, and a failing audit write is logged and
//! does not deny the answer: refusing reads because the audit store hiccups would make
//! the audit store a single point of failure for verification.

use actix_web::HttpRequest;
use base64::Engine;
use ddcc_store::{Store, TxEntry, TxOp};
use serde_json::{json, Value};

use crate::pipeline::{OPENHIM_CLIENT, OPENHIM_TX};
use crate::state::AppState;

const EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL: &str = "http://hl7.org/fhir/restful-interaction";
const OPERATION: &str = "http://smart.who.int/ddcc/OperationDefinition";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
/// The system of the OpenHIM transaction id in `entity.what.identifier`.
pub const OPENHIM_TX_SYSTEM: &str = "urn:openhim:transaction";
pub const OPENHIM_CLIENT_SYSTEM: &str = "urn:openhim:client";

/// Search parameters whose values are safe to keep in an audit record; every other
/// value (identifier, patient, subject, name, birthdate, entity, …) becomes `***`.
/// An allow-list, so a parameter added later is redacted until someone decides otherwise.
const SAFE_PARAMS: &[&str] = &[
    "status",
    "type",
    "category",
    "code",
    "date",
    "subtype",
    "outcome",
    "action",
    "_count",
    "_sort",
    "_format",
    "_lastUpdated",
    "_summary",
    "_total",
    "format",
];

/// FHIR `AuditEvent.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
    Execute,
}

impl Action {
    fn code(self) -> &'static str {
        match self {
            Action::Create => "C",
            Action::Read => "R",
            Action::Update => "U",
            Action::Delete => "D",
            Action::Execute => "E",
        }
    }
}

/// `AuditEvent.outcome` for an HTTP status: 0 success, 4 minor failure (the client's
/// mistake), 8 serious failure (ours).
pub fn outcome_code(status: u16) -> &'static str {
    match status {
        s if s < 400 => "0",
        s if s < 500 => "4",
        _ => "8",
    }
}

/// The query string with the value of every parameter not in [`SAFE_PARAMS`] replaced
/// by `***` (modifiers and chains count as their base parameter).
pub fn redact_query(qs: &str) -> String {
    qs.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let base = name.split([':', '.']).next().unwrap_or(name);
            if SAFE_PARAMS.contains(&base) {
                format!("{name}={value}")
            } else {
                format!("{name}=***")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// One audited request, before its outcome is known.
#[derive(Debug, Clone)]
pub struct Audit {
    observer: String,
    client: Option<String>,
    /// `who.identifier.system` of `client`.
    client_system: String,
    address: Option<String>,
    transaction: Option<String>,
    subtype: String,
    operation: bool,
    action: Action,
    query: Option<String>,
}

fn header(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_string)
}

/// The requesting network address as actix's connection info sees it (honouring
/// `Forwarded`/`X-Forwarded-For` from OpenHIM), without the port.
fn address(req: &HttpRequest) -> Option<String> {
    let ci = req.connection_info();
    let raw = ci.realip_remote_addr()?;
    let addr = match raw.parse::<std::net::SocketAddr>() {
        Ok(sa) => sa.ip().to_string(),
        Err(_) => raw.to_string(),
    };
    Some(addr).filter(|a| !a.is_empty() && a.len() <= 64)
}

impl Audit {
    /// A REST interaction (`create`, `read`, `vread`, `search-type`, `transaction`).
    pub fn interaction(state: &AppState, req: &HttpRequest, code: &str, action: Action) -> Self {
        // With authentication configured the middleware leaves the caller it
        // identified; the raw header is only believed when nothing checks it.
        let caller = {
            use actix_web::HttpMessage;
            req.extensions().get::<crate::auth::Caller>().cloned()
        };
        let (client, client_system) = match caller {
            Some(c) if c.is_authenticated() => (Some(c.id.clone()), c.system().to_string()),
            Some(_) => (None, OPENHIM_CLIENT_SYSTEM.to_string()),
            None => (
                header(req, OPENHIM_CLIENT),
                OPENHIM_CLIENT_SYSTEM.to_string(),
            ),
        };
        Self {
            observer: state.urn().to_string(),
            client,
            client_system,
            address: address(req),
            transaction: header(req, OPENHIM_TX),
            subtype: code.to_string(),
            operation: false,
            action,
            query: None,
        }
    }

    /// A FHIR operation, by name without the `$`.
    pub fn operation(state: &AppState, req: &HttpRequest, name: &str, action: Action) -> Self {
        Self {
            operation: true,
            ..Self::interaction(state, req, name, action)
        }
    }

    /// Records the (redacted) search query.
    pub fn with_query(mut self, qs: &str) -> Self {
        self.query = Some(redact_query(qs));
        self
    }

    /// The AuditEvent for this request with `entities` (`Type/id` or a transaction's
    /// `urn:uuid:` fullUrls, which the store resolves) and the HTTP status of the answer.
    pub fn event(&self, entities: &[String], status: u16) -> Value {
        let subtype = if self.operation {
            json!([
                {"system": RESTFUL, "code": "operation"},
                {"system": OPERATION, "code": self.subtype},
            ])
        } else {
            json!([{"system": RESTFUL, "code": self.subtype}])
        };
        let client = self.client.as_deref().unwrap_or("anonymous");
        let mut agent = json!({
            "type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                "code": "IRCP",
            }]},
            "who": {
                "identifier": {"system": self.client_system, "value": client},
                "display": client,
            },
            "requestor": true,
        });
        if let Some(addr) = &self.address {
            agent["network"] = json!({"address": addr, "type": "2"});
        }
        let server = json!({
            "who": {"identifier": {"system": "urn:ietf:rfc:3986", "value": self.observer}},
            "requestor": false,
        });
        let mut entity: Vec<Value> = entities
            .iter()
            .map(|r| {
                json!({
                    "what": {"reference": r},
                    "type": {"system": ENTITY_TYPE, "code": "2"},
                })
            })
            .collect();
        if let Some(q) = &self.query {
            entity.push(json!({
                "type": {"system": ENTITY_TYPE, "code": "2"},
                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24"},
                "query": base64::engine::general_purpose::STANDARD.encode(q.as_bytes()),
                "description": q,
            }));
        }
        if let Some(tx) = &self.transaction {
            entity.push(json!({
                "what": {"identifier": {"system": OPENHIM_TX_SYSTEM, "value": tx}},
                "type": {"system": ENTITY_TYPE, "code": "4"},
                "description": "OpenHIM transaction",
            }));
        }
        let desc = match status {
            s if s < 400 => format!("HTTP {s}"),
            s => format!(
                "HTTP {s} {}",
                actix_web::http::StatusCode::from_u16(s)
                    .ok()
                    .and_then(|c| c.canonical_reason())
                    .unwrap_or("error")
            ),
        };
        json!({
            "resourceType": "AuditEvent",
            "type": {"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"},
            "subtype": subtype,
            "action": self.action.code(),
            "recorded": ddcc_cert::rfc3339_utc(crate::now_unix()),
            "outcome": outcome_code(status),
            "outcomeDesc": desc,
            "agent": [agent, server],
            "source": {
                "observer": {"identifier": {"system": "urn:ietf:rfc:3986", "value": self.observer}},
                "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}],
            },
            "entity": entity,
        })
    }

    /// The success event as a transaction entry, so it commits with the change.
    pub fn tx_entry(&self, entities: &[String], status: u16) -> TxEntry {
        TxEntry {
            full_url: None,
            op: TxOp::Create {
                resource: self.event(entities, status),
            },
        }
    }

    /// Writes the event on its own. A failure is logged (the event holds no personal
    /// data, neither does the log line) and otherwise ignored; see the module docs.
    pub async fn record(&self, store: &dyn Store, entities: &[String], status: u16) {
        if let Err(e) = store.create(self.event(entities, status)).await {
            tracing::error!(
                error = %e,
                subtype = %self.subtype,
                status,
                "cannot write the AuditEvent of a request"
            );
        }
    }

    /// Records a handler's result when the store is configured: errors always, successes
    /// only when `write_done` is false (a committed write already holds its event).
    pub async fn record_result(
        &self,
        state: &AppState,
        entities: &[String],
        result: &Result<actix_web::HttpResponse, crate::ApiError>,
        write_done: bool,
    ) {
        let status = match result {
            Ok(_) if write_done => return,
            Ok(r) => r.status().as_u16(),
            Err(e) => actix_web::ResponseError::status_code(e).as_u16(),
        };
        self.record_status(state, entities, status).await;
    }

    /// Records an answer's status on its own, when the store is configured.
    pub async fn record_status(&self, state: &AppState, entities: &[String], status: u16) {
        if let Some(reg) = state.service::<crate::registry::Registry>() {
            self.record(reg.store.as_ref(), entities, status).await;
        }
    }
}

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// The AuditEvent of an authentication decision (DICOM "User Authentication"):
/// who (when identified), the route group asked for, and the outcome. Never the
/// credential itself.
pub fn authentication_event(
    observer: &str,
    caller: Option<&crate::auth::Caller>,
    group: &str,
    status: u16,
    reason: Option<&str>,
    address: Option<&str>,
) -> Value {
    let (system, who) = match caller {
        Some(c) => (c.system().to_string(), c.id.clone()),
        None => ("urn:ddcc:caller".to_string(), "unidentified".to_string()),
    };
    let mut agent = json!({
        "type": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "code": "IRCP",
        }]},
        "who": {"identifier": {"system": system, "value": who}, "display": who},
        "requestor": true,
    });
    if let Some(addr) = address {
        agent["network"] = json!({"address": addr, "type": "2"});
    }
    let desc = match reason {
        Some(r) => format!("HTTP {status}: {r}"),
        None => format!("HTTP {status}"),
    };
    json!({
        "resourceType": "AuditEvent",
        "type": {"system": DCM, "code": "110114", "display": "User Authentication"},
        "subtype": [{"system": DCM, "code": "110122", "display": "Login"}],
        "action": "E",
        "recorded": ddcc_cert::rfc3339_utc(crate::now_unix()),
        "outcome": outcome_code(status),
        "outcomeDesc": desc,
        "agent": [agent, {
            "who": {"identifier": {"system": "urn:ietf:rfc:3986", "value": observer}},
            "requestor": false,
        }],
        "source": {
            "observer": {"identifier": {"system": "urn:ietf:rfc:3986", "value": observer}},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}],
        },
        "entity": [{
            "what": {"identifier": {"system": "urn:ddcc:route-group", "value": group}},
            "type": {"system": ENTITY_TYPE, "code": "4"},
            "description": format!("route group {group}"),
        }],
    })
}

/// Writes [`authentication_event`] when the store is configured; a failing write is
/// logged, as for every other audit record.
pub async fn record_authentication(
    state: &AppState,
    req: &HttpRequest,
    caller: Option<&crate::auth::Caller>,
    group: &str,
    status: u16,
    reason: Option<&str>,
) {
    let Some(reg) = state.service::<crate::registry::Registry>() else {
        return;
    };
    let event = authentication_event(
        state.urn(),
        caller,
        group,
        status,
        reason,
        address(req).as_deref(),
    );
    if let Err(e) = reg.store.create(event).await {
        tracing::error!(error = %e, group, status, "cannot write the AuditEvent of an authentication decision");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_all_but_safe_params() {
        assert_eq!(
            redact_query(
                "patient=Patient/1&identifier=urn:HCID:x&status=current&name:exact=Ann&date=ge2020"
            ),
            "patient=***&identifier=***&status=current&name:exact=***&date=ge2020"
        );
        assert_eq!(redact_query(""), "");
    }

    #[test]
    fn event_shape_without_client_or_address() {
        let audit = Audit {
            observer: "urn:uuid:mediator".into(),
            client: None,
            client_system: OPENHIM_CLIENT_SYSTEM.into(),
            address: None,
            transaction: Some("tx-1".into()),
            subtype: "search-type".into(),
            operation: false,
            action: Action::Execute,
            query: None,
        }
        .with_query("identifier=urn:HCID:secret&status=current");
        let e = audit.event(&["DocumentReference/1".into()], 503);
        assert_eq!(e["outcome"], "8");
        assert_eq!(e["outcomeDesc"], "HTTP 503 Service Unavailable");
        assert_eq!(e["action"], "E");
        assert_eq!(e["subtype"][0]["code"], "search-type");
        assert_eq!(e["agent"][0]["who"]["display"], "anonymous");
        assert!(e["agent"][0].get("network").is_none());
        assert_eq!(
            e["source"]["observer"]["identifier"]["value"],
            "urn:uuid:mediator"
        );
        assert_eq!(e["entity"][0]["what"]["reference"], "DocumentReference/1");
        let q = base64::engine::general_purpose::STANDARD
            .decode(e["entity"][1]["query"].as_str().unwrap_or(""))
            .unwrap_or_default();
        assert_eq!(q, b"identifier=***&status=current");
        assert_eq!(e["entity"][2]["what"]["identifier"]["value"], "tx-1");
        assert!(!e.to_string().contains("secret"));
    }

    #[test]
    fn outcome_codes() {
        assert_eq!(outcome_code(200), "0");
        assert_eq!(outcome_code(404), "4");
        assert_eq!(outcome_code(503), "8");
    }
}
