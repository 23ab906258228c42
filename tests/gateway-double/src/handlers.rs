//! Request handling: authentication (§3), the CMS envelope (§4) and the
//! endpoints of §5–§8 with their statuses, error bodies (§10) and quirks.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::model::{
    self, b64, is_lower_uuid, legacy_item, sha256_hex, PartyType, RecordedRequest, RevocationBatch,
    SignerCertificate, TrustedReference,
};
use crate::{openssl, Inner};

const BODY_LIMIT: usize = 8 * 1024 * 1024;

/// A gateway-generated error (§10).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub problem: String,
    pub send_value: String,
    pub details: String,
}

fn err(status: u16, code: &str, problem: &str, send_value: &str, details: &str) -> ApiError {
    ApiError {
        status,
        code: code.into(),
        problem: problem.into(),
        send_value: send_value.into(),
        details: details.into(),
    }
}

/// Errors of Spring itself (404 path, 405 method, 415 media type): its default
/// body, not the gateway's (§10).
fn spring(status: u16, reason: &str, path: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({
            "timestamp": model::timestamp(OffsetDateTime::now_utc()),
            "status": status,
            "error": reason,
            "path": path,
        }),
    )
}

fn json_response(status: u16, v: &Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn empty(status: u16) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

impl ApiError {
    fn response(&self) -> Response<Full<Bytes>> {
        json_response(
            self.status,
            &json!({
                "code": self.code,
                "problem": self.problem,
                "sendValue": self.send_value,
                "details": self.details,
            }),
        )
    }
}

/// An internal error in the gateway's own mapping (§10: `0x008`, details = the
/// exception message).
fn internal(details: &str) -> ApiError {
    err(500, "0x008", "Internal Server Error", "", details)
}

/// The request, read once.
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|c| {
            c.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    }
    /// Query values of `name`, repeated or comma-separated (§5.4).
    fn query_values(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for pair in self.query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if url_decode(k) == name {
                out.extend(
                    url_decode(v)
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty()),
                );
            }
        }
        out
    }
    fn query_bool(&self, name: &str) -> bool {
        self.query_values(name)
            .first()
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

fn url_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

pub async fn handle(
    inner: Arc<Inner>,
    peer_cert: Option<&[u8]>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return spring(413, "Payload Too Large", parts.uri.path()),
    };
    let req = Req {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts.headers,
        body,
    };
    let (response, country) = dispatch(&inner, peer_cert, &req).await;
    inner.lock().requests.push(RecordedRequest {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        content_type: req.header("content-type"),
        country,
        status: response.status().as_u16(),
        body: req.body.clone(),
    });
    response
}

/// Endpoints by (method, path pattern); `*` matches one segment.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/trust/reference"),
    ("DELETE", "/trust/reference"),
    ("GET", "/trust/reference/*"),
    ("GET", "/trustList/references"),
    ("GET", "/trustList/certificate"),
    ("GET", "/trustList/issuers"),
    ("GET", "/trustList"),
    ("GET", "/trustList/*"),
    ("GET", "/trustList/*/*"),
    ("POST", "/signerCertificate"),
    ("DELETE", "/signerCertificate"),
    ("POST", "/signerCertificate/delete"),
    ("POST", "/trustedCertificate"),
    ("DELETE", "/trustedCertificate"),
    ("POST", "/trustedCertificate/delete"),
    ("GET", "/countrylist"),
    ("GET", "/valuesets"),
    ("GET", "/valuesets/*"),
    ("GET", "/rules/*"),
    ("GET", "/revocation-list"),
    ("POST", "/revocation-list"),
    ("DELETE", "/revocation-list"),
    ("POST", "/revocation-list/delete"),
    ("GET", "/revocation-list/*"),
];

fn matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    p.len() == s.len() && p.iter().zip(&s).all(|(a, b)| *a == "*" || a == b)
}

/// The most specific pattern first: literal segments beat `*`.
fn route(method: &str, path: &str) -> Result<&'static str, u16> {
    let mut found: Vec<&'static str> = ROUTES
        .iter()
        .filter(|(_, p)| matches(p, path))
        .map(|(_, p)| *p)
        .collect();
    if found.is_empty() {
        return Err(404);
    }
    found.sort_by_key(|p| p.matches('*').count());
    let best = found[0];
    let specific: Vec<&str> = found
        .iter()
        .copied()
        .filter(|p| p.matches('*').count() == best.matches('*').count())
        .collect();
    for p in &specific {
        if ROUTES.iter().any(|(m, q)| q == p && *m == method) {
            return Ok(p);
        }
    }
    // A wildcard route may still take this method (e.g. GET /trustList/* for a
    // path that is also a literal POST route).
    for p in &found {
        if ROUTES.iter().any(|(m, q)| q == p && *m == method) {
            return Ok(p);
        }
    }
    Err(405)
}

/// Revocation endpoints hidden on a default TNG (§7).
fn hidden(method: &str, pattern: &str) -> bool {
    matches!(
        (method, pattern),
        ("POST", "/revocation-list")
            | ("DELETE", "/revocation-list")
            | ("POST", "/revocation-list/delete")
            | ("GET", "/revocation-list/*")
    )
}

async fn dispatch(
    inner: &Arc<Inner>,
    peer_cert: Option<&[u8]>,
    req: &Req,
) -> (Response<Full<Bytes>>, Option<String>) {
    if req.method == "GET" && req.path == "/actuator/health" {
        return (json_response(200, &json!({"status": "UP"})), None);
    }
    if let Some(status) = inner.lock().fail_status {
        let e = err(
            status,
            "0x008",
            "Service Unavailable",
            "",
            "set_fail_status",
        );
        return (e.response(), None);
    }
    let pattern = match route(&req.method, &req.path) {
        Ok(p) if hidden(&req.method, p) && !inner.config.revocation_hidden_endpoints => {
            return (spring(404, "Not Found", &req.path), None)
        }
        Ok(p) => p,
        Err(404) => return (spring(404, "Not Found", &req.path), None),
        Err(_) => return (spring(405, "Method Not Allowed", &req.path), None),
    };
    let caller = match authenticate(inner, peer_cert, req).await {
        Ok(c) => c,
        Err(e) => return (e.response(), None),
    };
    let country = Some(caller.country.clone());
    let result = match (req.method.as_str(), pattern) {
        ("POST", "/trust/reference") => upload_reference(inner, &caller, req).await,
        ("DELETE", "/trust/reference") => delete_reference(inner, &caller, req).await,
        ("GET", "/trust/reference/*") => get_reference(inner, req),
        ("GET", "/trustList/references") => list_references(inner, req),
        ("GET", "/trustList/certificate") => certificate_list(inner, req).await,
        ("GET", "/trustList/issuers") => issuer_list(inner, req).await,
        ("GET", "/trustList") => legacy_list(inner, None, None).await,
        ("GET", "/trustList/*") => {
            let seg: Vec<&str> = req.path.split('/').collect();
            legacy_list(inner, Some(seg[2]), None).await
        }
        ("GET", "/trustList/*/*") => {
            let seg: Vec<&str> = req.path.split('/').collect();
            legacy_list(inner, Some(seg[2]), Some(seg[3])).await
        }
        ("POST", "/signerCertificate") => upload_signer(inner, &caller, req).await,
        ("DELETE", "/signerCertificate")
        | ("POST", "/signerCertificate/delete")
        | ("DELETE", "/trustedCertificate")
        | ("POST", "/trustedCertificate/delete") => delete_signer(inner, &caller, req).await,
        ("POST", "/trustedCertificate") => upload_trusted_certificate(inner, &caller, req).await,
        ("GET", "/countrylist") => country_list(inner),
        ("GET", "/valuesets") => {
            let ids: Vec<String> = inner.lock().valuesets.keys().cloned().collect();
            Ok(json_response(200, &json!(ids)))
        }
        ("GET", "/valuesets/*") => {
            let id = url_decode(req.path.rsplit('/').next().unwrap_or_default());
            match inner.lock().valuesets.get(&id) {
                Some(v) => Ok(json_response(200, v)),
                None => Err(err(404, "0x000", "Valueset not found", &id, "").into()),
            }
        }
        ("GET", "/rules/*") => {
            let c = req.path.rsplit('/').next().unwrap_or_default();
            if c.len() != 2 || !c.chars().all(|x| x.is_ascii_alphabetic()) {
                Err(err(400, "0x001", "Validation Error", c, "Invalid country").into())
            } else {
                let rules = inner.lock().rules.get(&c.to_ascii_uppercase()).cloned();
                Ok(json_response(200, &rules.unwrap_or_else(|| json!({}))))
            }
        }
        ("GET", "/revocation-list") => revocation_list(inner, &caller, req),
        ("POST", "/revocation-list") => upload_revocation(inner, &caller, req).await,
        ("DELETE", "/revocation-list") | ("POST", "/revocation-list/delete") => {
            delete_revocation(inner, &caller, req).await
        }
        ("GET", "/revocation-list/*") => get_revocation(inner, &caller, req),
        _ => return (spring(405, "Method Not Allowed", &req.path), country),
    };
    match result {
        Ok(r) => (r, country),
        Err(Reply::Api(e)) => (e.response(), country),
        Err(Reply::Spring(status, reason)) => (spring(status, reason, &req.path), country),
    }
}

enum Reply {
    Api(ApiError),
    Spring(u16, &'static str),
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply::Api(e)
    }
}

type Handled = Result<Response<Full<Bytes>>, Reply>;

// ---------------------------------------------------------------- §3 identity

pub struct Caller {
    pub country: String,
    pub roles: Vec<String>,
}

/// Splits a DN at `,` and `=` (keys upper-cased, values trimmed), as §3 does.
pub fn split_dn(dn: &str) -> Vec<(String, String)> {
    dn.split(',')
        .filter_map(|part| {
            let (k, v) = part.split_once('=')?;
            Some((k.trim().to_ascii_uppercase(), v.trim().to_string()))
        })
        .collect()
}

fn cert_identity(der: &[u8]) -> Option<(String, String)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((sha256_hex(der), cert.subject().to_string()))
}

/// The hash header: 64 hex characters, or standard base64 of the 32 bytes,
/// URL-encoded when it contains `%` (§3).
fn header_hash(v: &str) -> Option<String> {
    let v = if v.contains('%') {
        url_decode(v)
    } else {
        v.to_string()
    };
    let v = v.trim();
    if v.len() == 64 && v.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Some(v.to_ascii_lowercase());
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
    (raw.len() == 32).then(|| hex::encode(raw))
}

fn header_identity(inner: &Inner, req: &Req) -> Option<(String, String)> {
    let c = &inner.config;
    if let (Some(hash), Some(dn)) = (req.header(&c.header_sha256), req.header(&c.header_dn)) {
        return Some((header_hash(&hash)?, url_decode(&dn)));
    }
    let pem = url_decode(&req.header(&c.header_cert)?);
    let der = openssl::pem_certificates(&pem).into_iter().next()?;
    cert_identity(&der)
}

async fn authenticate(
    inner: &Inner,
    peer_cert: Option<&[u8]>,
    req: &Req,
) -> Result<Caller, ApiError> {
    let identity = match peer_cert {
        Some(der) => cert_identity(der),
        None if inner.config.trust_proxy_headers => header_identity(inner, req),
        None => None,
    };
    let Some((thumbprint, dn)) = identity else {
        return Err(err(
            401,
            "0x400",
            "No authentication information available",
            "",
            "No client certificate or authentication headers",
        ));
    };
    let Some(country) = split_dn(&dn)
        .into_iter()
        .rev()
        .find(|(k, _)| k == "C")
        .map(|(_, v)| v)
    else {
        return Err(err(
            400,
            "0x401",
            "Client Certificate must contain country property",
            &dn,
            "",
        ));
    };
    let unauthorized = || {
        err(
            401,
            "0x402",
            "Client is not authorized to access the service",
            &thumbprint,
            "",
        )
    };
    let party = inner
        .valid_party(&thumbprint, &country, PartyType::Authentication)
        .await
        .ok_or_else(unauthorized)?;
    if party.source_gateway.is_some() {
        return Err(unauthorized());
    }
    Ok(Caller {
        country,
        roles: party.roles,
    })
}

fn require_role(caller: &Caller, role: &str) -> Result<(), ApiError> {
    if caller.roles.iter().any(|r| r == role) {
        Ok(())
    } else {
        Err(err(
            403,
            "0x403",
            "Client is not authorized to access the endpoint",
            role,
            "",
        ))
    }
}

// ---------------------------------------------------------------- §4 CMS

#[derive(Clone, Copy, PartialEq, Eq)]
enum Payload {
    Text,
    Certificate,
}

pub struct Cms {
    pub content: Vec<u8>,
    pub signer_der: Vec<u8>,
    pub signer_subject: String,
}

/// Why a CMS body was refused: `Parse` (400 `0x402` on most endpoints) or
/// `Signature` (the endpoint's own code).
pub enum CmsFailure {
    Parse(&'static str),
    Signature,
}

fn parse_openssl_time(s: &str) -> Option<i64> {
    // `Nov  4 05:56:41 2026 GMT`
    let f: Vec<&str> = s.split_whitespace().collect();
    if f.len() != 5 || f[4] != "GMT" {
        return None;
    }
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == f[0])?;
    let month = time::Month::try_from(month as u8 + 1).ok()?;
    let day: u8 = f[1].parse().ok()?;
    let year: i32 = f[3].parse().ok()?;
    let hms: Vec<u8> = f[2].split(':').filter_map(|x| x.parse().ok()).collect();
    if hms.len() != 3 {
        return None;
    }
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let t = time::Time::from_hms(hms[0], hms[1], hms[2]).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// §4: strict single-line base64, a parseable SignedData with encapsulated
/// content, exactly one certificate and one signer, a verifying signature, a
/// signing-time inside the signer's validity, the right payload kind.
async fn parse_cms(body: &[u8], kind: Payload) -> Result<Cms, CmsFailure> {
    // Java's basic decoder over the raw bytes: no line breaks, no trailing newline.
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| CmsFailure::Parse("Invalid Base64 CMS Message"))?;
    let s = openssl::inspect(&der)
        .await
        .map_err(|_| CmsFailure::Parse("Could not parse CMS Message"))?;
    if !s.signed_data {
        return Err(CmsFailure::Parse("Could not parse CMS Message"));
    }
    if !s.content_attached || !s.content_type_data {
        return Err(CmsFailure::Parse(
            "CMS Message needs to have binary data as body.",
        ));
    }
    if s.certificates != 1 {
        return Err(CmsFailure::Parse(
            "CMS Message needs to contain exactly one X509 certificate",
        ));
    }
    if s.signers != 1 {
        return Err(CmsFailure::Parse(
            "CMS Message needs to have exactly 1 signer information.",
        ));
    }
    let (content, certs) = openssl::verify_attached(&der)
        .await
        .map_err(|_| CmsFailure::Signature)?;
    let signer_der = certs.into_iter().next().ok_or(CmsFailure::Signature)?;
    let (_, signer) =
        x509_parser::parse_x509_certificate(&signer_der).map_err(|_| CmsFailure::Signature)?;
    // BouncyCastle fails the signature when signing-time lies outside the signer
    // certificate's validity (§4); OpenSSL with -noverify does not look.
    if let Some(st) = &s.signing_time {
        let t = parse_openssl_time(st).ok_or(CmsFailure::Signature)?;
        let v = signer.validity();
        if t < v.not_before.timestamp() || t > v.not_after.timestamp() {
            return Err(CmsFailure::Signature);
        }
    }
    let signer_subject = signer.subject().to_string();
    match kind {
        Payload::Text if std::str::from_utf8(&content).is_err() => Err(CmsFailure::Parse(
            "CMS Message payload needs to be a String",
        )),
        Payload::Certificate if x509_parser::parse_x509_certificate(&content).is_err() => Err(
            CmsFailure::Parse("CMS Message payload needs to be a DER encoded X509 certificate"),
        ),
        _ => Ok(Cms {
            content,
            signer_der,
            signer_subject,
        }),
    }
}

/// CMS for string endpoints (§4): 400 `0x402` / 400 `0x260`.
async fn text_cms(req: &Req) -> Result<Cms, Reply> {
    match req.media_type().as_deref() {
        Some("application/cms") | Some("application/cms-text") => {}
        _ => return Err(Reply::Spring(415, "Unsupported Media Type")),
    }
    parse_cms(&req.body, Payload::Text)
        .await
        .map_err(|f| match f {
            CmsFailure::Parse(p) => err(400, "0x402", p, "", p).into(),
            CmsFailure::Signature => err(
                400,
                "0x260",
                "CMS signature is invalid",
                "",
                "Signature verification failed",
            )
            .into(),
        })
}

/// CMS for certificate endpoints (§4, §6.1): only `application/cms`.
async fn certificate_cms(req: &Req, signature_code: &str) -> Result<Cms, Reply> {
    if req.media_type().as_deref() != Some("application/cms") {
        return Err(Reply::Spring(415, "Unsupported Media Type"));
    }
    parse_cms(&req.body, Payload::Certificate)
        .await
        .map_err(|f| match f {
            CmsFailure::Parse(p) => err(400, "0x402", p, "", p).into(),
            CmsFailure::Signature => err(
                400,
                signature_code,
                "Invalid CMS Signature",
                "",
                "Signature verification failed",
            )
            .into(),
        })
}

async fn upload_certificate_onboarded(inner: &Inner, caller: &Caller, cms: &Cms) -> bool {
    inner
        .valid_party(
            &sha256_hex(&cms.signer_der),
            &caller.country,
            PartyType::Upload,
        )
        .await
        .is_some()
}

// ---------------------------------------------------------------- §5 references

/// Jackson's view of a string field: strings as is, numbers and booleans
/// coerced, null = absent, containers = parse error.
fn string_field(o: &Map<String, Value>, name: &str) -> Result<Option<String>, ()> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(()),
    }
}

fn not_parseable() -> ApiError {
    err(400, "0x000", "JSON Could not be parsed", "", "")
}

fn parse_json_object(content: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(content) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(not_parseable()),
    }
}

struct ReferenceUpload {
    uuid: Option<String>,
    url: Option<String>,
    country: Option<String>,
    kind: Option<String>,
    service: Option<String>,
    thumbprint: Option<String>,
    name: Option<String>,
    ssl_public_key: Option<String>,
    content_type: Option<String>,
    signature_type: Option<String>,
    reference_version: Option<String>,
    domain: Option<String>,
    source_gateway: Option<String>,
}

fn reference_upload(o: &Map<String, Value>) -> Result<ReferenceUpload, ApiError> {
    let f = |n: &str| string_field(o, n).map_err(|_| not_parseable());
    // Enum fields: a value that is not a constant fails deserialisation.
    let kind = f("type")?;
    if kind.as_deref().is_some_and(|k| k != "DCC" && k != "FHIR") {
        return Err(not_parseable());
    }
    let signature_type = f("signatureType")?;
    if signature_type
        .as_deref()
        .is_some_and(|k| !["CMS", "JWS", "NONE"].contains(&k))
    {
        return Err(not_parseable());
    }
    match o.get("version") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.is_i64() => {}
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => {}
        Some(_) => return Err(not_parseable()),
    }
    Ok(ReferenceUpload {
        uuid: f("uuid")?,
        url: f("url")?,
        country: f("country")?,
        kind,
        service: f("service")?,
        thumbprint: f("thumbprint")?,
        name: f("name")?,
        ssl_public_key: f("sslPublicKey")?,
        content_type: f("contentType")?,
        signature_type,
        reference_version: f("referenceVersion")?,
        domain: f("domain")?,
        source_gateway: f("sourceGateway")?,
    })
}

/// Bean validation (§5.1 table): `field: message` for each violation.
fn validate_reference(r: &ReferenceUpload) -> Vec<String> {
    let mut v = Vec::new();
    let mut sized = |name: &str, value: &Option<String>, min: usize, max: usize| match value {
        None => v.push(format!("{name}: must not be null")),
        Some(s) if s.chars().count() < min || s.chars().count() > max => {
            v.push(format!("{name}: size must be between {min} and {max}"))
        }
        _ => {}
    };
    sized("url", &r.url, 1, 100);
    sized("country", &r.country, 2, 2);
    sized("service", &r.service, 1, 1024);
    sized("thumbprint", &r.thumbprint, 1, 64);
    sized("name", &r.name, 1, 512);
    sized("sslPublicKey", &r.ssl_public_key, 1, 2048);
    sized("contentType", &r.content_type, 1, 512);
    if r.kind.is_none() {
        v.push("type: must not be null".into());
    }
    if r.signature_type.is_none() {
        v.push("signatureType: must not be null".into());
    }
    if r.reference_version.is_none() {
        v.push("referenceVersion: must not be null".into());
    }
    let pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
    if r.uuid.as_deref().is_some_and(|u| !is_lower_uuid(u)) {
        v.push(format!("uuid: must match \"{pattern}\""));
    }
    if r.source_gateway
        .as_deref()
        .is_some_and(|u| !is_lower_uuid(u))
    {
        v.push(format!("sourceGateway: must match \"{pattern}\""));
    }
    v.sort();
    v
}

async fn upload_reference(inner: &Inner, caller: &Caller, req: &Req) -> Handled {
    let cms = text_cms(req).await?;
    if !upload_certificate_onboarded(inner, caller, &cms).await {
        return Err(err(
            403,
            "0x000",
            "Invalid Upload Certificate",
            &cms.signer_subject,
            "Upload certificate is not onboarded for the authenticated country",
        )
        .into());
    }
    let o = parse_json_object(&cms.content)?;
    let r = reference_upload(&o)?;
    // Quirk (§5.1): a missing country dereferences null in the service.
    let Some(country) = r.country.clone() else {
        return Err(internal("java.lang.NullPointerException").into());
    };
    if country != caller.country {
        return Err(err(403, "0x000", "Invalid Country sent", &country, "").into());
    }
    let violations = validate_reference(&r);
    if !violations.is_empty() {
        return Err(err(
            400,
            "0x000",
            "Uploaded data has invalid values.",
            "",
            &violations.join(", "),
        )
        .into());
    }
    let domain = r.domain.clone().unwrap_or_else(|| "DDCC".into());
    let reference_version = r.reference_version.clone().unwrap_or_default();
    let mut s = inner.lock();
    let existing = match &r.uuid {
        Some(uuid) => match s.references.iter().position(|x| &x.uuid == uuid) {
            Some(i) => Some(i),
            None => {
                return Err(
                    err(404, "0x000", "Trusted Reference does not exists.", uuid, "").into(),
                )
            }
        },
        None => None,
    };
    if let Some(i) = existing {
        if inner.config.refuse_cross_country_update && s.references[i].country != caller.country {
            return Err(err(
                403,
                "0x000",
                "It is not allowed to update trusted references of other countries.",
                r.uuid.as_deref().unwrap_or_default(),
                "",
            )
            .into());
        }
    }
    // Column widths: over-long values fail in the database, not in validation.
    if domain.chars().count() > inner.config.reference_domain_max_len {
        return Err(internal(&format!(
            "could not execute statement; SQL [n/a]; value too long for column domain ({})",
            inner.config.reference_domain_max_len
        ))
        .into());
    }
    if reference_version.chars().count() > 256 {
        return Err(internal(
            "could not execute statement; SQL [n/a]; value too long for column reference_version (256)",
        )
        .into());
    }
    let record = TrustedReference {
        uuid: existing
            .map(|i| s.references[i].uuid.clone())
            .unwrap_or_else(model::random_uuid),
        url: r.url.unwrap_or_default(),
        country: caller.country.clone(),
        kind: r.kind.unwrap_or_default(),
        service: r.service.unwrap_or_default(),
        thumbprint: r.thumbprint.unwrap_or_default(),
        name: r.name.unwrap_or_default(),
        ssl_public_key: r.ssl_public_key.unwrap_or_default(),
        content_type: r.content_type.unwrap_or_default(),
        signature_type: r.signature_type.unwrap_or_default(),
        reference_version,
        domain,
        version: 1,
        source_gateway: None,
    };
    match existing {
        Some(i) => s.references[i] = record,
        None => s.references.push(record),
    }
    Ok(empty(201))
}

async fn delete_reference(inner: &Inner, caller: &Caller, req: &Req) -> Handled {
    let cms = text_cms(req).await?;
    if !upload_certificate_onboarded(inner, caller, &cms).await {
        return Err(err(
            403,
            "0x000",
            "Invalid Upload Certificate",
            &cms.signer_subject,
            "Upload certificate is not onboarded for the authenticated country",
        )
        .into());
    }
    let o = parse_json_object(&cms.content)?;
    let Ok(Some(uuid)) = string_field(&o, "uuid") else {
        return Err(not_parseable().into());
    };
    let mut s = inner.lock();
    let Some(i) = s
        .references
        .iter()
        .position(|r| r.uuid == uuid && r.source_gateway.is_none())
    else {
        return Err(err(
            404,
            "0x000",
            "Trusted Reference does not exists.",
            &uuid,
            "",
        )
        .into());
    };
    if s.references[i].country != caller.country {
        return Err(err(
            403,
            "0x000",
            "It is not allowed to delete trusted references of other countries.",
            &uuid,
            "",
        )
        .into());
    }
    s.references.remove(i);
    Ok(empty(204))
}

fn get_reference(inner: &Inner, req: &Req) -> Handled {
    let uuid = req.path.rsplit('/').next().unwrap_or_default();
    if !is_lower_uuid(uuid) {
        return Err(err(400, "0x001", "Validation Error", uuid, "").into());
    }
    let s = inner.lock();
    match s.references.iter().find(|r| r.uuid == uuid) {
        Some(r) => Ok(json_response(200, &r.to_json())),
        // §5.3: 400, not 404.
        None => Err(err(
            400,
            "0x000",
            "Requested Entity could not be found",
            uuid,
            "",
        )
        .into()),
    }
}

/// Enum filter values that are not constants are dropped; if none is left, the
/// filter is off (§5.4).
fn enum_filter(values: Vec<String>, allowed: &[&str]) -> Option<BTreeSet<String>> {
    let valid: BTreeSet<String> = values
        .into_iter()
        .filter(|v| allowed.contains(&v.as_str()))
        .collect();
    (!valid.is_empty()).then_some(valid)
}

fn list_references(inner: &Inner, req: &Req) -> Handled {
    // Quirk (§5.4): `country` is matched against the domain column and `domain`
    // against the country column.
    let country_param = req.query_values("country");
    let domain_param = req.query_values("domain");
    let types = enum_filter(req.query_values("referenceType"), &["DCC", "FHIR"]);
    let sig_types = enum_filter(req.query_values("signatureType"), &["CMS", "JWS", "NONE"]);
    let federation = req.query_bool("withFederation");
    let s = inner.lock();
    let items: Vec<Value> = s
        .references
        .iter()
        .filter(|r| federation || r.source_gateway.is_none())
        .filter(|r| country_param.is_empty() || country_param.contains(&r.domain))
        .filter(|r| domain_param.is_empty() || domain_param.contains(&r.country))
        .filter(|r| types.as_ref().is_none_or(|t| t.contains(&r.kind)))
        .filter(|r| {
            sig_types
                .as_ref()
                .is_none_or(|t| t.contains(&r.signature_type))
        })
        .map(TrustedReference::to_json)
        .collect();
    Ok(json_response(200, &Value::Array(items)))
}

// ---------------------------------------------------------------- §8 downloads

async fn certificate_list(inner: &Inner, req: &Req) -> Handled {
    let groups = req.query_values("group");
    let countries = req.query_values("country");
    let domains = req.query_values("domain");
    let federation = req.query_bool("withFederation");
    let keep = |group: &str, country: &str, domain: &str, fed: bool| {
        (federation || !fed)
            && (groups.is_empty() || groups.iter().any(|g| g == group))
            && (countries.is_empty() || countries.iter().any(|c| c == country))
            && (domains.is_empty() || domains.iter().any(|d| d == domain))
    };
    let (parties, signers) = {
        let s = inner.lock();
        (s.parties.clone(), s.signers.clone())
    };
    let mut items = Vec::new();
    for p in &parties {
        if keep(
            p.kind.as_str(),
            &p.country,
            &p.domain,
            p.source_gateway.is_some(),
        ) && inner.ta_signature_valid(&p.raw_der, &p.signature).await
        {
            items.push(inner.lock().party_json(p));
        }
    }
    let s = inner.lock();
    for c in &signers {
        if keep(&c.group, &c.country, &c.domain, c.source_gateway.is_some()) {
            items.push(s.signer_json(c));
        }
    }
    Ok(json_response(200, &Value::Array(items)))
}

async fn issuer_list(inner: &Inner, req: &Req) -> Handled {
    let countries = req.query_values("country");
    let domains = req.query_values("domain");
    let federation = req.query_bool("withFederation");
    let issuers = inner.lock().issuers.clone();
    let mut items = Vec::new();
    for i in issuers
        .iter()
        .filter(|i| federation || i.source_gateway.is_none())
        .filter(|i| countries.is_empty() || countries.contains(&i.country))
        .filter(|i| domains.is_empty() || domains.contains(&i.domain))
    {
        // Entries whose TA signature fails are left out (§8).
        if inner
            .ta_signature_valid(i.signed_string().as_bytes(), &i.signature)
            .await
        {
            items.push(i.to_json());
        }
    }
    Ok(json_response(200, &Value::Array(items)))
}

/// `/trustList[/{type}[/{country}]]`: the legacy EU list, domain DCC,
/// non-federated, sorted by kid (§8).
async fn legacy_list(inner: &Inner, kind: Option<&str>, country: Option<&str>) -> Handled {
    let kind = match kind {
        None => None,
        Some(k) => {
            let k = k.to_ascii_uppercase();
            match k.as_str() {
                "AUTHENTICATION" | "UPLOAD" | "CSCA" | "DSC" | "TRUSTANCHOR" | "DECA" => Some(k),
                // Quirk: DESC is looked up as a trusted-party type, which does not exist.
                "DESC" => {
                    return Err(internal(
                        "No enum constant TrustedPartyEntity.CertificateType.DESC",
                    )
                    .into())
                }
                _ => return Err(err(400, "0x001", "Validation Error", &k, "Unknown type").into()),
            }
        }
    };
    let country = match country {
        None => None,
        Some(c) if c.len() == 2 && c.chars().all(|x| x.is_ascii_alphabetic()) => {
            Some(c.to_ascii_uppercase())
        }
        Some(c) => return Err(err(400, "0x001", "Validation Error", c, "Invalid country").into()),
    };
    let party_types: &[&str] = match kind.as_deref() {
        None => &["AUTHENTICATION", "UPLOAD", "CSCA"],
        Some("DSC") => &[],
        Some(k) => &[k][..],
    };
    let party_types: Vec<String> = party_types.iter().map(|s| s.to_string()).collect();
    let want_dsc = matches!(kind.as_deref(), None | Some("DSC"));
    let (parties, signers) = {
        let s = inner.lock();
        (s.parties.clone(), s.signers.clone())
    };
    let mut items: Vec<(String, Value)> = Vec::new();
    for p in parties.iter().filter(|p| {
        p.domain == "DCC"
            && p.source_gateway.is_none()
            && party_types.iter().any(|t| t == p.kind.as_str())
            && country.as_ref().is_none_or(|c| c == &p.country)
    }) {
        if inner.ta_signature_valid(&p.raw_der, &p.signature).await {
            let kid = p.kid();
            let v = legacy_item(
                &kid,
                p.created,
                &p.country,
                p.kind.as_str(),
                &p.raw_der,
                &p.signature,
            );
            items.push((kid, v));
        }
    }
    if want_dsc {
        for c in signers.iter().filter(|c| {
            c.group == "DSC"
                && c.domain == "DCC"
                && c.source_gateway.is_none()
                && country.as_ref().is_none_or(|x| x == &c.country)
        }) {
            let v = legacy_item(
                &c.kid,
                c.created,
                &c.country,
                "DSC",
                &c.raw_der,
                &c.signature,
            );
            items.push((c.kid.clone(), v));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(json_response(
        200,
        &Value::Array(items.into_iter().map(|(_, v)| v).collect()),
    ))
}

fn country_list(inner: &Inner) -> Handled {
    let s = inner.lock();
    let set: BTreeSet<&str> = s
        .parties
        .iter()
        .filter(|p| p.source_gateway.is_none())
        .map(|p| p.country.as_str())
        .collect();
    Ok(json_response(
        200,
        &json!(set.into_iter().collect::<Vec<_>>()),
    ))
}

// ---------------------------------------------------------------- §6 certificates

fn cert_400(details: &str, send_value: &str) -> ApiError {
    err(
        400,
        "0x004",
        "Possible reasons: Wrong Format, no CMS, not the correct signing alg missing attributes, invalid signature, certificate not signed by known CA",
        send_value,
        details,
    )
}

fn subject_countries(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    cert.subject()
        .iter_country()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect()
}

/// Whether `der` is signed by one of `cas` (signature only: no chain, no
/// validity, §6.1 step 5).
fn signed_by_any(der: &[u8], cas: &[crate::TrustedParty]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    cas.iter().any(|ca| {
        x509_parser::parse_x509_certificate(&ca.raw_der)
            .map(|(_, ca)| cert.verify_signature(Some(ca.public_key())).is_ok())
            .unwrap_or(false)
    })
}

/// The upload CMS re-packed as a detached signature (§6.1 storage): the same
/// SignedData without eContent.
fn detached(cms_b64: &[u8]) -> Option<String> {
    use der::{Decode, Encode};
    let der_bytes = base64::engine::general_purpose::STANDARD
        .decode(cms_b64)
        .ok()?;
    let mut ci = cms::content_info::ContentInfo::from_der(&der_bytes).ok()?;
    let mut sd: cms::signed_data::SignedData = ci.content.decode_as().ok()?;
    sd.encap_content_info.econtent = None;
    ci.content = der::Any::encode_from(&sd).ok()?;
    Some(b64(&ci.to_der().ok()?))
}

async fn upload_signer(inner: &Inner, caller: &Caller, req: &Req) -> Handled {
    let cms = certificate_cms(req, "0x009").await?;
    if !upload_certificate_onboarded(inner, caller, &cms).await {
        return Err(cert_400(
            "Uploader certificate is not onboarded for the country",
            &cms.signer_subject,
        )
        .into());
    }
    let dsc = cms.content;
    let countries = subject_countries(&dsc);
    if countries.len() != 1 || countries[0] != caller.country {
        return Err(cert_400(
            "Uploaded certificate has no or a different country",
            &countries.join(","),
        )
        .into());
    }
    let cscas = inner
        .valid_parties_of(&caller.country, PartyType::Csca)
        .await;
    if !signed_by_any(&dsc, &cscas) {
        return Err(cert_400("Uploaded certificate is not signed by a known CSCA", "").into());
    }
    let thumbprint = sha256_hex(&dsc);
    let kid = model::kid(&dsc);
    let signature = detached(&req.body).ok_or_else(|| internal("CMS re-encoding failed"))?;
    let mut s = inner.lock();
    if s.signers.iter().any(|c| c.thumbprint == thumbprint) {
        return Err(err(
            409,
            "0x002",
            "You cant upload an existing certificate.",
            &thumbprint,
            "",
        )
        .into());
    }
    if s.signers.iter().any(|c| c.kid == kid) {
        return Err(cert_400("A certificate with the same kid already exists", &kid).into());
    }
    s.signers.push(SignerCertificate {
        uuid: model::random_uuid(),
        kid,
        country: caller.country.clone(),
        group: "DSC".into(),
        raw_der: dsc,
        thumbprint,
        signature,
        properties: None,
        domain: "DCC".into(),
        created: OffsetDateTime::now_utc(),
        source_gateway: None,
    });
    Ok(empty(201))
}

async fn delete_signer(inner: &Inner, caller: &Caller, req: &Req) -> Handled {
    let cms = certificate_cms(req, "0x007").await?;
    if !upload_certificate_onboarded(inner, caller, &cms).await {
        return Err(err(
            400,
            "0x007",
            "Upload certificate is not onboarded",
            &cms.signer_subject,
            "",
        )
        .into());
    }
    let countries = subject_countries(&cms.content);
    if countries.len() != 1 || countries[0] != caller.country {
        return Err(err(
            400,
            "0x007",
            "Certificate country does not match",
            &countries.join(","),
            "",
        )
        .into());
    }
    let thumbprint = sha256_hex(&cms.content);
    let mut s = inner.lock();
    let before = s.signers.len();
    s.signers
        .retain(|c| !(c.thumbprint == thumbprint && c.source_gateway.is_none()));
    if s.signers.len() == before {
        return Err(err(
            404,
            "0x005",
            "The certificate doesn't exists in the database.",
            &thumbprint,
            "",
        )
        .into());
    }
    Ok(empty(204))
}

const PROPERTY_KEYS: &[&str] = &[
    "purpose",
    "usergroup",
    "scope",
    "standard",
    "displayName",
    "displayLogo",
    "validFrom",
    "validUntil",
    "pubkey",
    "displayURL",
];

async fn upload_trusted_certificate(inner: &Inner, caller: &Caller, req: &Req) -> Handled {
    if req.media_type().as_deref() != Some("application/json") {
        return Err(Reply::Spring(415, "Unsupported Media Type"));
    }
    let bad = |d: &str| -> Reply { err(400, "n/a", "Invalid request", "", d).into() };
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(&req.body) else {
        return Err(bad("JSON could not be parsed"));
    };
    let text = |n: &str| -> Result<Option<String>, Reply> {
        match o.get(n) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(&format!("{n} must be a string"))),
        }
    };
    // Bean validation of the request body runs before the service code.
    let Some(cms_text) = text("cms")? else {
        return Err(bad("cms must not be null"));
    };
    let group = text("group")?.unwrap_or_else(|| "DSC".into());
    if !["DSC", "DESC", "SIGN", "AUTH", "CUSTOM"].contains(&group.as_str()) {
        return Err(bad(&format!("Invalid group: {group}")));
    }
    let domain = text("domain")?.unwrap_or_else(|| "DCC".into());
    if !inner.config.domains.contains(&domain) {
        return Err(bad(&format!("Invalid domain: {domain}")));
    }
    let properties = match o.get("properties") {
        // Quirk (§6.2): a missing properties object is dereferenced.
        None | Some(Value::Null) => return Err(internal("java.lang.NullPointerException").into()),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => return Err(bad("properties must be an object")),
    };
    if let Some(k) = properties
        .keys()
        .find(|k| !PROPERTY_KEYS.contains(&k.as_str()))
    {
        return Err(bad(&format!("Invalid property key: {k}")));
    }
    let custom_kid = text("kid")?;
    let cms = parse_cms(cms_text.as_bytes(), Payload::Certificate)
        .await
        .map_err(|f| match f {
            CmsFailure::Parse(p) => bad(p),
            CmsFailure::Signature => bad("Invalid CMS Signature"),
        })?;
    if !upload_certificate_onboarded(inner, caller, &cms).await {
        return Err(cert_400(
            "Uploader certificate is not onboarded for the country",
            &cms.signer_subject,
        )
        .into());
    }
    let cert = cms.content;
    if group == "DSC" {
        let countries = subject_countries(&cert);
        if countries.len() != 1 || countries[0] != caller.country {
            return Err(cert_400(
                "Uploaded certificate has no or a different country",
                &countries.join(","),
            )
            .into());
        }
    }
    let ca_type = if group == "DESC" {
        PartyType::Deca
    } else {
        PartyType::Csca
    };
    let cas = inner.valid_parties_of(&caller.country, ca_type).await;
    if !signed_by_any(&cert, &cas) {
        return Err(cert_400(
            &format!(
                "Uploaded certificate is not signed by a known {}",
                ca_type.as_str()
            ),
            "",
        )
        .into());
    }
    let thumbprint = sha256_hex(&cert);
    let kid = custom_kid.unwrap_or_else(|| model::kid(&cert));
    let mut s = inner.lock();
    if s.signers.iter().any(|c| c.thumbprint == thumbprint) {
        return Err(err(
            409,
            "0x002",
            "You cant upload an existing certificate.",
            &thumbprint,
            "",
        )
        .into());
    }
    if s.signers.iter().any(|c| c.kid == kid) {
        return Err(cert_400("A certificate with the same kid already exists", &kid).into());
    }
    s.signers.push(SignerCertificate {
        uuid: model::random_uuid(),
        kid,
        country: caller.country.clone(),
        group: if group == "DESC" {
            "DESC".into()
        } else {
            "DSC".into()
        },
        raw_der: cert,
        thumbprint,
        signature: cms_text,
        properties: Some(properties),
        domain,
        created: OffsetDateTime::now_utc(),
        source_gateway: None,
    });
    Ok(empty(201))
}

// ---------------------------------------------------------------- §7 revocation

fn revocation_list(inner: &Inner, caller: &Caller, req: &Req) -> Handled {
    require_role(caller, "REVOCATION_LIST_READER")?;
    let Some(since) = req.header("if-modified-since").and_then(|v| {
        OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339).ok()
    }) else {
        return Err(err(
            400,
            "0x000",
            "Invalid If-Modified-Since header",
            "",
            "ISO date-time required",
        )
        .into());
    };
    if since > OffsetDateTime::now_utc() {
        return Err(err(
            400,
            "0x000",
            "Invalid If-Modified-Since header",
            "",
            "date is in the future",
        )
        .into());
    }
    let s = inner.lock();
    let mut batches: Vec<&RevocationBatch> = s.batches.iter().filter(|b| b.date >= since).collect();
    if batches.is_empty() {
        return Ok(empty(204));
    }
    batches.sort_by_key(|b| b.date);
    let more = batches.len() > 1000;
    let items: Vec<Value> = batches
        .iter()
        .take(1000)
        .map(|b| {
            json!({
                "batchId": b.batch_id,
                "country": b.country,
                "date": model::timestamp(b.date),
                "deleted": b.deleted,
            })
        })
        .collect();
    Ok(json_response(200, &json!({"more": more, "batches": items})))
}

fn validate_revocation(o: &Map<String, Value>) -> Vec<String> {
    let mut v = Vec::new();
    match o.get("expires").and_then(Value::as_str) {
        Some(e)
            if OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339).is_ok() => {
        }
        _ => v.push("expires: must be a date-time".to_string()),
    }
    match o.get("kid").and_then(Value::as_str) {
        Some("UNKNOWN_KID") => {}
        Some(k)
            if (11..=12).contains(&k.len())
                && base64::engine::general_purpose::STANDARD
                    .decode(k)
                    .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(k))
                    .is_ok() => {}
        _ => v.push("kid: invalid".to_string()),
    }
    match o.get("hashType").and_then(Value::as_str) {
        Some("SIGNATURE" | "UCI" | "COUNTRYCODEUCI") => {}
        _ => v.push("hashType: invalid".to_string()),
    }
    match o.get("entries").and_then(Value::as_array) {
        Some(e) if (1..=1000).contains(&e.len()) => {
            let ok = e.iter().all(|x| {
                x.get("hash")
                    .and_then(Value::as_str)
                    .and_then(|h| base64::engine::general_purpose::STANDARD.decode(h).ok())
                    .is_some_and(|b| b.len() == 16)
            });
            if !ok {
                v.push("entries: hash must be base64 of 16 bytes".to_string());
            }
        }
        _ => v.push("entries: size must be between 1 and 1000".to_string()),
    }
    v
}

async fn upload_revocation(inner: &Inner, caller: &Caller, req: &Req) -> Handled {
    require_role(caller, "REVOCATION_UPLOADER")?;
    let cms = text_cms(req).await?;
    if !upload_certificate_onboarded(inner, caller, &cms).await {
        return Err(err(
            403,
            "0x000",
            "Invalid Upload Certificate",
            &cms.signer_subject,
            "",
        )
        .into());
    }
    let o = parse_json_object(&cms.content)?;
    let country = o.get("country").and_then(Value::as_str).unwrap_or_default();
    if country != caller.country {
        return Err(err(403, "0x000", "Invalid Country sent", country, "").into());
    }
    let violations = validate_revocation(&o);
    if !violations.is_empty() {
        return Err(err(
            400,
            "0x000",
            "Uploaded data has invalid values.",
            "",
            &violations.join(", "),
        )
        .into());
    }
    let batch_id = model::random_uuid();
    inner.lock().batches.push(RevocationBatch {
        batch_id: batch_id.clone(),
        country: caller.country.clone(),
        date: OffsetDateTime::now_utc(),
        deleted: false,
        cms: String::from_utf8_lossy(&req.body).into_owned(),
        payload: Value::Object(o),
    });
    let mut r = empty(201);
    if let Ok(v) = hyper::header::HeaderValue::from_str(&batch_id) {
        r.headers_mut().insert(hyper::header::ETAG, v);
    }
    Ok(r)
}

async fn delete_revocation(inner: &Inner, caller: &Caller, req: &Req) -> Handled {
    require_role(caller, "REVOCATION_DELETER")?;
    let cms = text_cms(req).await?;
    if !upload_certificate_onboarded(inner, caller, &cms).await {
        return Err(err(
            403,
            "0x000",
            "Invalid Upload Certificate",
            &cms.signer_subject,
            "",
        )
        .into());
    }
    let o = parse_json_object(&cms.content)?;
    let Ok(Some(id)) = string_field(&o, "batchId") else {
        return Err(not_parseable().into());
    };
    let mut s = inner.lock();
    let Some(b) = s.batches.iter_mut().find(|b| b.batch_id == id) else {
        return Err(err(404, "0x000", "Batch not found", &id, "").into());
    };
    if b.country != caller.country {
        return Err(err(403, "0x000", "Invalid Country", &id, "").into());
    }
    if b.deleted {
        return Err(err(410, "0x000", "Batch already deleted", &id, "").into());
    }
    b.deleted = true;
    b.date = OffsetDateTime::now_utc();
    Ok(empty(204))
}

fn get_revocation(inner: &Inner, caller: &Caller, req: &Req) -> Handled {
    require_role(caller, "REVOCATION_LIST_READER")?;
    let id = req.path.rsplit('/').next().unwrap_or_default();
    let s = inner.lock();
    let Some(b) = s.batches.iter().find(|b| b.batch_id == id) else {
        return Err(err(404, "0x000", "Batch not found", id, "").into());
    };
    if b.deleted {
        return Err(err(410, "0x000", "Batch already deleted", id, "").into());
    }
    let mut r = Response::new(Full::new(Bytes::from(b.cms.clone())));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/cms-text"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&b.batch_id) {
        r.headers_mut().insert(hyper::header::ETAG, v);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_prefer_literal_segments() {
        assert_eq!(
            route("GET", "/trustList/references"),
            Ok("/trustList/references")
        );
        assert_eq!(route("GET", "/trustList/DSC"), Ok("/trustList/*"));
        assert_eq!(route("GET", "/trustList/DSC/XA"), Ok("/trustList/*/*"));
        assert_eq!(route("POST", "/trust/reference"), Ok("/trust/reference"));
        assert_eq!(route("PUT", "/trust/reference"), Err(405));
        assert_eq!(route("GET", "/trust/references"), Err(404));
        assert_eq!(route("GET", "/trustlist/certificate"), Err(404));
    }

    #[test]
    fn dn_split_upper_cases_keys_and_trims_values() {
        assert_eq!(
            split_dn("cn = NationXA_TNP_TLS, c=XA"),
            vec![
                ("CN".to_string(), "NationXA_TNP_TLS".to_string()),
                ("C".to_string(), "XA".to_string())
            ]
        );
    }

    #[test]
    fn hash_header_forms() {
        let hex = "d919375fc1e7b6b2fcf1b0a1fad4816fe87bb961f8bc587f58118f0cfe29db34";
        let b = b64(&hex::decode(hex).unwrap());
        assert_eq!(header_hash(hex).as_deref(), Some(hex));
        assert_eq!(header_hash(&hex.to_uppercase()).as_deref(), Some(hex));
        assert_eq!(header_hash(&b).as_deref(), Some(hex));
        let encoded = b
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        assert_eq!(header_hash(&encoded).as_deref(), Some(hex));
        assert_eq!(header_hash("abc"), None);
    }

    #[test]
    fn openssl_times() {
        assert_eq!(
            parse_openssl_time("Nov 14 22:13:20 2023 GMT"),
            Some(1_700_000_000)
        );
        assert!(parse_openssl_time("Nov  4 00:00:00 2023 GMT").is_some());
        assert_eq!(parse_openssl_time("garbage"), None);
    }
}
