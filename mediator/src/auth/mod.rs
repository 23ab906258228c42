//! Who is calling. One middleware ([`Authenticate`], wrapped inside the pipeline)
//! sorts each request into a [`RouteGroup`], identifies the caller — an OIDC bearer
//! token ([`jwt`]), a verified client certificate ([`mtls`]), or OpenHIM's
//! `x-openhim-clientid` when it comes from a trusted router — decides, audits the
//! decision, and hands the [`Caller`] to handlers as an extractor. No handler reads
//! credentials.
//!
//! Groups are decided from method and path, failing closed: every request that is
//! not a read and not one of the pure computations (`$validate`, `$transform`,
//! `$verify-certificate`) is at least `register`, so a write route added later is
//! protected without anyone remembering to list it.
//!
//! With no authentication method configured the service stays usable on embedded
//! defaults and logs a warning at start-up: anyone who can reach it can then issue.

pub mod issuers;
pub mod jwt;
pub mod mtls;

use std::future::{ready, Future, Ready};
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::{header, Method};
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError};
use serde::Deserialize;

use crate::error::ApiError;
use crate::pipeline::OPENHIM_CLIENT;
use crate::services::{Signing, SigningSlot};
use crate::state::AppState;

pub use issuers::IssuersFile;
pub use jwt::{OidcSettings, OidcVerifier};
pub use mtls::{PeerCertificate, TlsSettings};

/// What a request does, for deciding who may do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteGroup {
    /// `$generateHealthCertificate`, Submit Health Event.
    Issue,
    /// Every other write: `POST /fhir` (transaction), create, revoke, …
    Register,
    /// StructureMap upload.
    MappingAdmin,
    /// `/admin/**` (gateway administration and other management).
    Admin,
}

impl RouteGroup {
    pub const ALL: [RouteGroup; 4] = [
        RouteGroup::Issue,
        RouteGroup::Register,
        RouteGroup::MappingAdmin,
        RouteGroup::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteGroup::Issue => "issue",
            RouteGroup::Register => "register",
            RouteGroup::MappingAdmin => "mapping-admin",
            RouteGroup::Admin => "admin",
        }
    }
}

impl std::str::FromStr for RouteGroup {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RouteGroup::ALL
            .into_iter()
            .find(|g| g.as_str() == s.trim())
            .ok_or_else(|| {
                format!("unknown route group {s:?} (issue, register, mapping-admin, admin)")
            })
    }
}

/// The group of a request, `None` for public ones (reads and pure computations).
pub fn classify(method: &Method, path: &str) -> Option<RouteGroup> {
    if path == "/admin" || path.starts_with("/admin/") {
        return Some(RouteGroup::Admin);
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if matches!(last, "$validate" | "$transform" | "$verify-certificate") || path == "/ddcc/verify"
    {
        return None;
    }
    if last.ends_with("generateHealthCertificate") || last == "submitHealthEvent" {
        return Some(RouteGroup::Issue);
    }
    if path.trim_end_matches('/') == "/fhir/StructureMap" {
        return Some(RouteGroup::MappingAdmin);
    }
    Some(RouteGroup::Register)
}

/// Why a caller was not identified. Mapped to 401 (or 503 when the IdP cannot be
/// reached) in `error.rs`.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required")]
    Missing,
    #[error("malformed bearer token: {0}")]
    Malformed(String),
    #[error("token algorithm {0:?} is not accepted (RS256 or ES256 only)")]
    Algorithm(String),
    #[error("token signed with a key the issuer does not publish")]
    UnknownKey,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token issuer is not the configured one")]
    Issuer,
    #[error("token audience does not include this service")]
    Audience,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("bearer tokens are not accepted here (no OIDC issuer configured)")]
    NoOidc,
    #[error("identity provider unavailable: {0}")]
    IdpUnavailable(String),
}

/// How a caller was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Anonymous,
    Oidc,
    Certificate,
    OpenHim,
}

/// The caller of a request, as the handlers see it (an extractor).
#[derive(Debug, Clone)]
pub struct Caller {
    pub method: AuthMethod,
    /// Display identity: OIDC client (or subject), certificate subject, OpenHIM client.
    pub id: String,
    /// `(kind, value)` pairs matched by the issuers file's caller patterns.
    attributes: Vec<(String, String)>,
    /// `AuditEvent.agent.who.identifier.system`.
    system: String,
}

impl Caller {
    pub fn anonymous() -> Self {
        Self {
            method: AuthMethod::Anonymous,
            id: "anonymous".into(),
            attributes: Vec::new(),
            system: "urn:ddcc:caller".into(),
        }
    }

    pub fn is_authenticated(&self) -> bool {
        self.method != AuthMethod::Anonymous
    }

    pub fn system(&self) -> &str {
        &self.system
    }

    /// Whether an issuers-file pattern (`kind:value`) names this caller.
    pub fn matches(&self, pattern: &str) -> bool {
        pattern
            .split_once(':')
            .is_some_and(|(k, v)| self.attributes.iter().any(|(ak, av)| ak == k && av == v))
    }

    fn oidc(claims: &jwt::Claims, issuer: &str) -> Self {
        let mut attributes = Vec::new();
        if let Some(c) = claims.client() {
            attributes.push(("oidc-client".into(), c.to_string()));
        }
        if let Some(s) = claims.str("sub") {
            attributes.push(("oidc-sub".into(), s.to_string()));
        }
        for r in claims.roles() {
            attributes.push(("oidc-role".into(), r));
        }
        let id = claims
            .client()
            .or_else(|| claims.str("sub"))
            .unwrap_or("unknown")
            .chars()
            .take(256)
            .collect();
        Self {
            method: AuthMethod::Oidc,
            id,
            attributes,
            system: issuer.to_string(),
        }
    }

    fn certificate(p: &PeerCertificate) -> Self {
        let mut attributes = vec![("cert".to_string(), p.subject.clone())];
        if let Some(cn) = &p.common_name {
            attributes.push(("cert-cn".into(), cn.clone()));
        }
        Self {
            method: AuthMethod::Certificate,
            id: p.subject.clone(),
            attributes,
            system: "urn:ietf:rfc:4514".into(),
        }
    }

    fn openhim(client: &str) -> Self {
        Self {
            method: AuthMethod::OpenHim,
            id: client.to_string(),
            attributes: vec![("openhim".into(), client.to_string())],
            system: crate::audit::OPENHIM_CLIENT_SYSTEM.into(),
        }
    }
}

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(req
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(Caller::anonymous)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("invalid value for {name}: {message}")]
    Env { name: &'static str, message: String },
    #[error(transparent)]
    Issuers(#[from] issuers::IssuersError),
    #[error(transparent)]
    Tls(#[from] mtls::TlsError),
    #[error("cannot build the HTTP client for the identity provider: {0}")]
    Http(String),
}

/// The authentication and authorisation settings, built once at start-up.
pub struct Authenticator {
    pub oidc: Option<OidcVerifier>,
    /// Client certificates are verified (a TLS listener with a client CA).
    pub client_certificates: bool,
    /// `DDCC_OPENHIM_TRUSTED_PROXIES`: peers whose `x-openhim-clientid` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `DDCC_OPENHIM_ROUTER_CERT`: subjects (or CNs) of the OpenHIM router's client
    /// certificate; over mTLS from it, `x-openhim-clientid` is believed.
    pub router_certificates: Vec<String>,
    /// Groups refused to unauthenticated callers.
    pub required: Vec<RouteGroup>,
    pub issuers: Option<IssuersFile>,
}

impl Authenticator {
    /// From `DDCC_OIDC_*`, `DDCC_TLS_CLIENT_CA`, `DDCC_OPENHIM_TRUSTED_PROXIES`,
    /// `DDCC_OPENHIM_ROUTER_CERT`, `DDCC_AUTH_REQUIRED`, `DDCC_ISSUERS_FILE`.
    pub fn from_lookup(env: &impl Fn(&str) -> Option<String>) -> Result<Self, AuthConfigError> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let bad = |name: &'static str, message: String| AuthConfigError::Env { name, message };
        let oidc = match (get("DDCC_OIDC_ISSUER"), get("DDCC_OIDC_AUDIENCE")) {
            (None, None) => None,
            (Some(issuer), Some(audience)) => {
                let mut s = OidcSettings::new(issuer.trim(), audience.trim());
                s.jwks_url = get("DDCC_OIDC_JWKS_URL");
                if let Some(v) = get("DDCC_OIDC_LEEWAY_SECS") {
                    s.leeway_secs = v
                        .trim()
                        .parse()
                        .map_err(|e| bad("DDCC_OIDC_LEEWAY_SECS", format!("{e}")))?;
                }
                if let Some(v) = get("DDCC_OIDC_JWKS_MIN_REFRESH_SECS") {
                    let secs: u64 = v
                        .trim()
                        .parse()
                        .map_err(|e| bad("DDCC_OIDC_JWKS_MIN_REFRESH_SECS", format!("{e}")))?;
                    s.min_refresh = std::time::Duration::from_secs(secs);
                }
                let http = reqwest::Client::builder()
                    .use_rustls_tls()
                    .build()
                    .map_err(|e| AuthConfigError::Http(e.to_string()))?;
                Some(OidcVerifier::new(s, http))
            }
            _ => {
                return Err(bad(
                    "DDCC_OIDC_ISSUER",
                    "DDCC_OIDC_ISSUER and DDCC_OIDC_AUDIENCE must be set together".into(),
                ))
            }
        };
        let client_certificates =
            TlsSettings::from_lookup(env)?.is_some_and(|t| t.client_ca.is_some());
        let trusted_proxies = match get("DDCC_OPENHIM_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<ipnet::IpNet>()
                        .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| {
                            bad(
                                "DDCC_OPENHIM_TRUSTED_PROXIES",
                                format!("{s:?} is not an address or CIDR"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let router_certificates: Vec<String> = get("DDCC_OPENHIM_ROUTER_CERT")
            .map(|v| {
                v.split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if !router_certificates.is_empty() && !client_certificates {
            return Err(bad(
                "DDCC_OPENHIM_ROUTER_CERT",
                "needs the TLS listener with DDCC_TLS_CLIENT_CA".into(),
            ));
        }
        let any_method = oidc.is_some() || client_certificates || !trusted_proxies.is_empty();
        let required = match get("DDCC_AUTH_REQUIRED") {
            None if any_method => RouteGroup::ALL.to_vec(),
            None => Vec::new(),
            Some(v) if v.trim().eq_ignore_ascii_case("none") => Vec::new(),
            Some(v) if v.trim().eq_ignore_ascii_case("all") => RouteGroup::ALL.to_vec(),
            Some(v) => v
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|m| bad("DDCC_AUTH_REQUIRED", m))?,
        };
        if !required.is_empty() && !any_method {
            return Err(bad(
                "DDCC_AUTH_REQUIRED",
                "route groups require authentication but no method is configured (DDCC_OIDC_ISSUER, DDCC_TLS_CLIENT_CA, DDCC_OPENHIM_TRUSTED_PROXIES)".into(),
            ));
        }
        let issuers = match get("DDCC_ISSUERS_FILE") {
            None => None,
            Some(p) => {
                if !required.contains(&RouteGroup::Issue) {
                    return Err(bad(
                        "DDCC_ISSUERS_FILE",
                        "per-issuer keys need authenticated issuing (the issue group in DDCC_AUTH_REQUIRED and an authentication method)".into(),
                    ));
                }
                Some(IssuersFile::load(std::path::Path::new(p.trim()))?)
            }
        };
        Ok(Self {
            oidc,
            client_certificates,
            trusted_proxies,
            router_certificates,
            required,
            issuers,
        })
    }

    pub fn any_method(&self) -> bool {
        self.oidc.is_some() || self.client_certificates || !self.trusted_proxies.is_empty()
    }

    /// One line for the start-up log; warns when nothing is protected.
    pub fn log_summary(&self) {
        if self.required.is_empty() {
            tracing::warn!(
                "no caller authentication configured (DDCC_OIDC_ISSUER, DDCC_TLS_CLIENT_CA, DDCC_OPENHIM_TRUSTED_PROXIES): anyone who can reach this service can issue, register, revoke and upload maps"
            );
            return;
        }
        tracing::info!(
            oidc = self.oidc.as_ref().map(|o| o.settings.issuer.as_str()).unwrap_or("off"),
            client_certificates = self.client_certificates,
            trusted_proxies = self.trusted_proxies.len(),
            required = %self.required.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(","),
            issuers = self.issuers.as_ref().map_or(0, |f| f.issuers.len()),
            "caller authentication"
        );
    }

    fn trusted_peer(&self, req: &ServiceRequest) -> bool {
        req.peer_addr()
            .is_some_and(|a| self.trusted_proxies.iter().any(|n| n.contains(&a.ip())))
    }

    fn is_router(&self, p: &PeerCertificate) -> bool {
        self.router_certificates
            .iter()
            .any(|r| *r == p.subject || p.common_name.as_deref() == Some(r.as_str()))
    }

    /// The OpenHIM client header, when this connection may assert it.
    fn openhim_client(
        &self,
        req: &ServiceRequest,
        peer: Option<&PeerCertificate>,
    ) -> Option<String> {
        let trusted = peer.is_some_and(|p| self.is_router(p)) || self.trusted_peer(req);
        if !trusted {
            return None;
        }
        let v = req.headers().get(OPENHIM_CLIENT)?.to_str().ok()?.trim();
        (!v.is_empty() && v.len() <= 256).then(|| v.to_string())
    }

    /// Identifies the caller. `bearer` false skips tokens (public routes: a read
    /// must not cost a signature check nor fail on a stale token).
    async fn identify(
        &self,
        req: &ServiceRequest,
        bearer: bool,
    ) -> Result<Option<Caller>, AuthError> {
        if bearer {
            let auth = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if let Some(token) = auth.and_then(|a| {
                a.get(..7)
                    .filter(|s| s.eq_ignore_ascii_case("bearer "))
                    .map(|_| a[7..].trim())
            }) {
                let oidc = self.oidc.as_ref().ok_or(AuthError::NoOidc)?;
                let claims = oidc.verify(token, crate::now_unix()).await?;
                return Ok(Some(Caller::oidc(&claims, &oidc.settings.issuer)));
            }
        }
        let peer = req.conn_data::<PeerCertificate>().cloned();
        if let Some(client) = self.openhim_client(req, peer.as_ref()) {
            return Ok(Some(Caller::openhim(&client)));
        }
        Ok(peer.as_ref().map(Caller::certificate))
    }

    /// Who the caller is and whether it may use `group`.
    pub async fn decide(&self, req: &ServiceRequest, group: RouteGroup) -> Result<Caller, Denial> {
        let required = self.required.contains(&group);
        let caller = match self.identify(req, true).await {
            Ok(Some(c)) => c,
            Ok(None) if !required => return Ok(Caller::anonymous()),
            Ok(None) => return Err(Denial::new(None, ApiError::from(AuthError::Missing))),
            Err(e) => return Err(Denial::new(None, ApiError::from(e))),
        };
        if !required {
            return Ok(caller);
        }
        if let Some(file) = &self.issuers {
            if !file.allows(&caller, group) {
                return Err(Denial::new(
                    Some(caller.clone()),
                    ApiError::Forbidden(format!(
                        "caller {} may not use {} operations",
                        caller.id,
                        group.as_str()
                    )),
                ));
            }
            if group == RouteGroup::Issue {
                let n = file.issuers_of(&caller).len();
                if n != 1 {
                    return Err(Denial::new(
                        Some(caller.clone()),
                        ApiError::Forbidden(format!(
                            "caller {} maps to {n} issuers; issuing needs exactly one",
                            caller.id
                        )),
                    ));
                }
            }
        }
        Ok(caller)
    }

    /// Identification for public routes: certificate or trusted OpenHIM header only.
    async fn identify_public(&self, req: &ServiceRequest) -> Caller {
        self.identify(req, false)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(Caller::anonymous)
    }
}

/// A refused request: who (if known) and the error answered.
pub struct Denial {
    pub caller: Option<Caller>,
    pub error: ApiError,
}

impl Denial {
    fn new(caller: Option<Caller>, error: ApiError) -> Self {
        Self { caller, error }
    }
}

/// For a handler that learns from the body that a request belongs to another group
/// than its path said (a `batch` to `POST /fhir` issues): the same decision the
/// middleware makes for `group`, for the caller it identified.
pub fn require(state: &AppState, caller: &Caller, group: RouteGroup) -> Result<(), ApiError> {
    let Some(auth) = state.service::<Authenticator>() else {
        return Ok(());
    };
    if !auth.required.contains(&group) {
        return Ok(());
    }
    if !caller.is_authenticated() {
        return Err(AuthError::Missing.into());
    }
    match &auth.issuers {
        Some(file) if !file.allows(caller, group) => Err(ApiError::Forbidden(format!(
            "caller {} may not use {} operations",
            caller.id,
            group.as_str()
        ))),
        _ => Ok(()),
    }
}

/// The id of the caller's issuer when an issuers file is configured (and the caller
/// is the caller of exactly one issuer).
pub fn issuer_of(state: &AppState, caller: &Caller) -> Option<String> {
    let auth = state.service::<Authenticator>()?;
    match auth.issuers.as_ref()?.issuers_of(caller).as_slice() {
        [one] => Some(one.id.clone()),
        _ => None,
    }
}

/// The per-issuer signers (from the issuers file), by issuer id.
pub struct IssuerSlots(pub Vec<(String, Arc<SigningSlot>)>);

/// The signer for this caller: its issuer's when an issuers file is configured (the
/// caller's identity is the only input), else the service's single signer. 503 while
/// that signer is not connected.
pub fn signing_for(
    state: &AppState,
    caller: &Caller,
) -> Result<(Signing, Arc<SigningSlot>), ApiError> {
    let slot = match (
        state.service::<Authenticator>().and_then(|a| {
            let file = a.issuers.as_ref()?;
            let mine = file.issuers_of(caller);
            Some(match mine.as_slice() {
                [one] => Ok(one.id.clone()),
                _ => Err(ApiError::Forbidden(format!(
                    "caller {} is not the caller of exactly one issuer",
                    caller.id
                ))),
            })
        }),
        state.service::<IssuerSlots>(),
    ) {
        (Some(id), Some(slots)) => {
            let id = id?;
            slots
                .0
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, s)| s.clone())
                .ok_or_else(|| ApiError::internal(format!("no signer for issuer {id}")))?
        }
        _ => state.require::<SigningSlot>("signer")?,
    };
    let signing = slot.get().map_err(|message| ApiError::Unavailable {
        service: "signer".into(),
        message,
    })?;
    Ok((signing, slot))
}

/// The middleware; wrapped inside the pipeline so refusals become OperationOutcomes
/// (and OpenHIM envelopes) like any other error.
pub struct Authenticate;

impl<S, B> Transform<S, ServiceRequest> for Authenticate
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Transform = AuthenticateService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AuthenticateService {
            service: Rc::new(service),
        }))
    }
}

pub struct AuthenticateService<S> {
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for AuthenticateService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        Box::pin(async move {
            let state = req.app_data::<AppState>().cloned();
            let auth = state.as_ref().and_then(|s| s.service::<Authenticator>());
            // No method configured: the embedded-defaults behaviour, untouched (the
            // start-up warning says so).
            let (Some(state), Some(auth)) = (state, auth.filter(|a| a.any_method())) else {
                return service
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_boxed_body);
            };
            let Some(group) = classify(req.method(), req.path()) else {
                let caller = auth.identify_public(&req).await;
                req.extensions_mut().insert(caller);
                return service
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_boxed_body);
            };
            match auth.decide(&req, group).await {
                Ok(caller) => {
                    if caller.is_authenticated() || auth.required.contains(&group) {
                        crate::audit::record_authentication(
                            &state,
                            req.request(),
                            Some(&caller),
                            group.as_str(),
                            200,
                            None,
                        )
                        .await;
                    }
                    req.extensions_mut().insert(caller);
                    service
                        .call(req)
                        .await
                        .map(ServiceResponse::map_into_boxed_body)
                }
                Err(denial) => {
                    let status = denial.error.status_code().as_u16();
                    tracing::info!(
                        group = group.as_str(),
                        caller = denial.caller.as_ref().map(|c| c.id.as_str()).unwrap_or("unidentified"),
                        status,
                        reason = %denial.error,
                        "request refused"
                    );
                    let reason = denial.error.to_string();
                    crate::audit::record_authentication(
                        &state,
                        req.request(),
                        denial.caller.as_ref(),
                        group.as_str(),
                        status,
                        Some(&reason),
                    )
                    .await;
                    Ok(req.into_response(denial.error.error_response()))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_fail_closed() {
        let cases = [
            (
                "POST",
                "/fhir/QuestionnaireResponse/$generateHealthCertificate",
                Some(RouteGroup::Issue),
            ),
            (
                "POST",
                "/ddcc/generateHealthCertificate",
                Some(RouteGroup::Issue),
            ),
            ("POST", "/fhir/submitHealthEvent", Some(RouteGroup::Issue)),
            ("POST", "/fhir", Some(RouteGroup::Register)),
            ("POST", "/fhir/Bundle", Some(RouteGroup::Register)),
            (
                "POST",
                "/fhir/Bundle/$revokeHealthCertificate",
                Some(RouteGroup::Register),
            ),
            ("PUT", "/fhir/Patient/1", Some(RouteGroup::Register)),
            ("DELETE", "/fhir/Patient/1", Some(RouteGroup::Register)),
            ("POST", "/some/future/write", Some(RouteGroup::Register)),
            ("POST", "/fhir/StructureMap", Some(RouteGroup::MappingAdmin)),
            ("POST", "/fhir/StructureMap/$transform", None),
            ("POST", "/fhir/$validate", None),
            ("POST", "/fhir/Patient/$validate", None),
            ("POST", "/fhir/$verify-certificate", None),
            ("POST", "/ddcc/verify", None),
            ("GET", "/fhir/Bundle/1", None),
            ("GET", "/admin/gateway/status", Some(RouteGroup::Admin)),
            ("GET", "/admin", Some(RouteGroup::Admin)),
            ("GET", "/administrator", None),
            ("GET", "/metrics", None),
        ];
        for (m, p, want) in cases {
            let m: Method = m.parse().unwrap_or(Method::GET);
            assert_eq!(classify(&m, p), want, "{m} {p}");
        }
    }

    #[test]
    fn caller_patterns() {
        let c = Caller::oidc(
            &jwt::Claims(serde_json::json!({
                "azp": "emr-a", "sub": "u1",
                "realm_access": {"roles": ["issuer-a"]},
                "resource_access": {"ddcc": {"roles": ["admin"]}},
            })),
            "https://idp/realms/x",
        );
        assert!(c.matches("oidc-client:emr-a"));
        assert!(c.matches("oidc-sub:u1"));
        assert!(c.matches("oidc-role:issuer-a"));
        assert!(c.matches("oidc-role:ddcc:admin"));
        assert!(!c.matches("oidc-role:admin"));
        assert!(!c.matches("openhim:emr-a"));
        assert!(!c.matches("emr-a"));
        assert_eq!(c.id, "emr-a");
        assert!(Caller::openhim("emr-b").matches("openhim:emr-b"));
        assert!(!Caller::anonymous().is_authenticated());
    }

    #[test]
    fn settings_from_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let none = Authenticator::from_lookup(&env(&[])).expect("no auth");
        assert!(none.required.is_empty() && !none.any_method());
        let proxies = Authenticator::from_lookup(&env(&[(
            "DDCC_OPENHIM_TRUSTED_PROXIES",
            "10.0.0.0/8, 127.0.0.1",
        )]))
        .expect("proxies");
        assert_eq!(proxies.required, RouteGroup::ALL.to_vec());
        assert_eq!(proxies.trusted_proxies.len(), 2);
        let some = Authenticator::from_lookup(&env(&[
            ("DDCC_OPENHIM_TRUSTED_PROXIES", "10.0.0.0/8"),
            ("DDCC_AUTH_REQUIRED", "issue,admin"),
        ]))
        .expect("some");
        assert_eq!(some.required, vec![RouteGroup::Issue, RouteGroup::Admin]);
        for bad in [
            &[("DDCC_AUTH_REQUIRED", "issue")][..],
            &[("DDCC_OIDC_ISSUER", "https://idp")][..],
            &[("DDCC_OPENHIM_TRUSTED_PROXIES", "not-an-ip")][..],
            &[
                ("DDCC_OPENHIM_TRUSTED_PROXIES", "10.0.0.1"),
                ("DDCC_AUTH_REQUIRED", "everything"),
            ][..],
            &[("DDCC_ISSUERS_FILE", "/nonexistent.json")][..],
        ] {
            let pairs: Vec<(String, String)> = bad
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let lookup = move |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            assert!(Authenticator::from_lookup(&lookup).is_err(), "{bad:?}");
        }
    }
}
