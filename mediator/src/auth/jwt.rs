//! OIDC bearer tokens: JWS signature (RS256 or ES256 only) against the issuer's
//! JWKS, then `iss`, `aud`, `exp`, `nbf`. Verified with `ring` (already our local
//! signer's crypto) rather than a JWT crate: the accepted algorithms are a closed
//! list here, so `alg: none`, HS* (a public key used as an HMAC secret) and any
//! algorithm the key was not published for are refused before any crypto runs.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde_json::Value;

use super::AuthError;

/// base64url, with or without padding (some IdPs pad JWKS values).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Longest token accepted: Keycloak tokens with many roles reach a few KiB.
const MAX_TOKEN_LEN: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// `DDCC_OIDC_ISSUER`: the exact `iss` of accepted tokens (Keycloak:
    /// `https://<host>/realms/<realm>`).
    pub issuer: String,
    /// `DDCC_OIDC_AUDIENCE`: must be in `aud` (Keycloak: add an audience mapper).
    pub audience: String,
    /// `DDCC_OIDC_JWKS_URL`; unset: `jwks_uri` from `<issuer>/.well-known/openid-configuration`.
    pub jwks_url: Option<String>,
    /// `DDCC_OIDC_LEEWAY_SECS`: clock skew tolerated on `exp`/`nbf`.
    pub leeway_secs: i64,
    /// `DDCC_OIDC_JWKS_MIN_REFRESH_SECS`: an unknown `kid` refetches the JWKS at most
    /// this often, so a flood of forged kids cannot turn us against the IdP.
    pub min_refresh: Duration,
    /// Keys older than this are refetched at the next token (rotation without kid reuse).
    pub max_age: Duration,
}

impl OidcSettings {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            leeway_secs: 30,
            min_refresh: Duration::from_secs(30),
            max_age: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Rs256,
    Es256,
}

#[derive(Debug, Clone)]
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed P-256 point.
    Ec(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Jwk {
    kid: Option<String>,
    /// The `alg` the key was published for, if the JWKS says.
    alg: Option<String>,
    material: KeyMaterial,
}

impl Jwk {
    fn fits(&self, alg: Alg) -> bool {
        let kind = matches!(
            (&self.material, alg),
            (KeyMaterial::Rsa { .. }, Alg::Rs256) | (KeyMaterial::Ec(_), Alg::Es256)
        );
        let named = match (&self.alg, alg) {
            (None, _) => true,
            (Some(a), Alg::Rs256) => a == "RS256",
            (Some(a), Alg::Es256) => a == "ES256",
        };
        kind && named
    }

    fn verify(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        use ring::signature as rs;
        match (&self.material, alg) {
            (KeyMaterial::Rsa { n, e }, Alg::Rs256) => rs::RsaPublicKeyComponents { n, e }
                .verify(&rs::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
            (KeyMaterial::Ec(point), Alg::Es256) => {
                rs::UnparsedPublicKey::new(&rs::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            _ => false,
        }
    }
}

/// Parses a JWKS document; keys we cannot use (other types, encryption keys,
/// other curves) are skipped, not errors: IdPs publish those too.
fn parse_jwks(doc: &Value) -> Vec<Jwk> {
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return Vec::new();
    };
    let field =
        |k: &Value, name: &str| -> Option<Vec<u8>> { B64URL.decode(k.get(name)?.as_str()?).ok() };
    keys.iter()
        .filter(|k| {
            k.get("use")
                .and_then(Value::as_str)
                .is_none_or(|u| u == "sig")
        })
        .filter_map(|k| {
            let material = match k.get("kty").and_then(Value::as_str)? {
                "RSA" => KeyMaterial::Rsa {
                    n: field(k, "n")?,
                    e: field(k, "e")?,
                },
                "EC" if k.get("crv").and_then(Value::as_str) == Some("P-256") => {
                    let (x, y) = (field(k, "x")?, field(k, "y")?);
                    if x.len() != 32 || y.len() != 32 {
                        return None;
                    }
                    let mut p = Vec::with_capacity(65);
                    p.push(4);
                    p.extend_from_slice(&x);
                    p.extend_from_slice(&y);
                    KeyMaterial::Ec(p)
                }
                _ => return None,
            };
            Some(Jwk {
                kid: k.get("kid").and_then(Value::as_str).map(str::to_string),
                alg: k.get("alg").and_then(Value::as_str).map(str::to_string),
                material,
            })
        })
        .collect()
}

#[derive(Default)]
struct Cache {
    keys: Vec<Jwk>,
    fetched: Option<Instant>,
    jwks_uri: Option<String>,
}

/// The verifier: settings plus the cached JWKS.
pub struct OidcVerifier {
    pub settings: OidcSettings,
    http: reqwest::Client,
    cache: RwLock<Cache>,
    /// One fetch at a time; concurrent misses wait for it and reuse its result.
    fetching: tokio::sync::Mutex<()>,
}

/// The verified claims of a token.
#[derive(Debug, Clone)]
pub struct Claims(pub Value);

impl Claims {
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    /// Keycloak's roles: realm roles by name, client roles as `<client>:<role>`.
    pub fn roles(&self) -> Vec<String> {
        let mut out = Vec::new();
        let names = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        out.extend(names(self.0.pointer("/realm_access/roles")));
        if let Some(clients) = self.0.get("resource_access").and_then(Value::as_object) {
            for (client, access) in clients {
                for role in names(access.get("roles")) {
                    out.push(format!("{client}:{role}"));
                }
            }
        }
        out
    }

    /// The OAuth client the token was issued to: `azp` (Keycloak, OIDC) or
    /// `client_id` (RFC 9068).
    pub fn client(&self) -> Option<&str> {
        self.str("azp").or_else(|| self.str("client_id"))
    }
}

fn decode_json(part: &str, what: &str) -> Result<Value, AuthError> {
    let bytes = B64URL
        .decode(part)
        .map_err(|_| AuthError::Malformed(format!("{what} is not base64url")))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed(format!("{what} is not JSON")))?;
    if !v.is_object() {
        return Err(AuthError::Malformed(format!("{what} is not a JSON object")));
    }
    Ok(v)
}

fn num(claims: &Value, name: &str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| AuthError::Malformed(format!("claim {name} is not a number"))),
    }
}

impl OidcVerifier {
    pub fn new(settings: OidcSettings, http: reqwest::Client) -> Self {
        Self {
            settings,
            http,
            cache: RwLock::new(Cache::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self, kid: Option<&str>, alg: Alg) -> (Option<Jwk>, bool, Option<Instant>) {
        let c = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let candidates: Vec<&Jwk> = c
            .keys
            .iter()
            .filter(|k| k.fits(alg))
            .filter(|k| match kid {
                Some(kid) => k.kid.as_deref() == Some(kid),
                None => true,
            })
            .collect();
        // Without a kid, only an unambiguous key may be used.
        let key = match (kid, candidates.as_slice()) {
            (Some(_), [k, ..]) | (None, [k]) => Some((*k).clone()),
            _ => None,
        };
        let stale = c
            .fetched
            .is_none_or(|t| t.elapsed() >= self.settings.max_age);
        (key, stale, c.fetched)
    }

    async fn get_json(&self, url: &str) -> Result<Value, AuthError> {
        let resp = self
            .http
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| AuthError::IdpUnavailable(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(AuthError::IdpUnavailable(format!(
                "{url} answered HTTP {}",
                resp.status().as_u16()
            )));
        }
        resp.json()
            .await
            .map_err(|e| AuthError::IdpUnavailable(format!("{url}: {e}")))
    }

    async fn jwks_uri(&self) -> Result<String, AuthError> {
        if let Some(u) = &self.settings.jwks_url {
            return Ok(u.clone());
        }
        if let Some(u) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .jwks_uri
            .clone()
        {
            return Ok(u);
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let doc = self.get_json(&url).await?;
        if doc.get("issuer").and_then(Value::as_str) != Some(self.settings.issuer.as_str()) {
            return Err(AuthError::IdpUnavailable(
                "the discovery document names another issuer".into(),
            ));
        }
        let uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::IdpUnavailable("discovery has no jwks_uri".into()))?
            .to_string();
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .jwks_uri = Some(uri.clone());
        Ok(uri)
    }

    /// Fetches the JWKS unless another task did since `seen`, or the last fetch is
    /// more recent than the refresh floor.
    async fn refresh(&self, seen: Option<Instant>) -> Result<(), AuthError> {
        let _g = self.fetching.lock().await;
        let last = self.cache.read().unwrap_or_else(|p| p.into_inner()).fetched;
        if last != seen {
            return Ok(());
        }
        if last.is_some_and(|t| t.elapsed() < self.settings.min_refresh) {
            return Ok(());
        }
        let uri = self.jwks_uri().await?;
        let doc = self.get_json(&uri).await?;
        let keys = parse_jwks(&doc);
        tracing::info!(keys = keys.len(), "OIDC JWKS fetched");
        let mut c = self.cache.write().unwrap_or_else(|p| p.into_inner());
        c.keys = keys;
        c.fetched = Some(Instant::now());
        Ok(())
    }

    /// Verifies `token` at Unix time `now`; the claims when it is valid.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Claims, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed("token too long".into()));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed(
                "not a JWS compact serialisation".into(),
            ));
        };
        let header = decode_json(h, "token header")?;
        let alg = match header.get("alg").and_then(Value::as_str) {
            Some("RS256") => Alg::Rs256,
            Some("ES256") => Alg::Es256,
            other => {
                return Err(AuthError::Algorithm(
                    other.unwrap_or("(missing)").chars().take(16).collect(),
                ))
            }
        };
        if header.get("crit").is_some() {
            return Err(AuthError::Malformed(
                "critical header extensions are not supported".into(),
            ));
        }
        let kid = header.get("kid").and_then(Value::as_str);
        let sig = B64URL
            .decode(s)
            .map_err(|_| AuthError::Malformed("signature is not base64url".into()))?;

        let (mut key, stale, fetched) = self.cached(kid, alg);
        if key.is_none() || stale {
            match self.refresh(fetched).await {
                Ok(()) => key = self.cached(kid, alg).0,
                // Keep using cached keys while the IdP is briefly unreachable.
                Err(e) if key.is_some() => {
                    tracing::warn!(error = %e, "OIDC JWKS refresh failed; using cached keys")
                }
                Err(e) => return Err(e),
            }
        }
        let key = key.ok_or(AuthError::UnknownKey)?;
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        if !key.verify(alg, signed, &sig) {
            return Err(AuthError::BadSignature);
        }

        let claims = decode_json(p, "token payload")?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.settings.issuer.as_str()) {
            return Err(AuthError::Issuer);
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.settings.audience,
            Some(Value::Array(a)) => a
                .iter()
                .any(|v| v.as_str() == Some(self.settings.audience.as_str())),
            _ => false,
        };
        if !aud_ok {
            return Err(AuthError::Audience);
        }
        let leeway = self.settings.leeway_secs;
        let exp =
            num(&claims, "exp")?.ok_or_else(|| AuthError::Malformed("token has no exp".into()))?;
        if now > exp.saturating_add(leeway) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = num(&claims, "nbf")? {
            if now.saturating_add(leeway) < nbf {
                return Err(AuthError::NotYetValid);
            }
        }
        Ok(Claims(claims))
    }
}

/// Test/ops helper: the JWKS cache holds `n` usable keys.
impl OidcVerifier {
    pub fn cached_keys(&self) -> usize {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys
            .len()
    }
}

/// The kids of a JWKS document, for diagnostics.
pub fn jwks_kids(doc: &Value) -> std::collections::HashMap<String, String> {
    parse_jwks(doc)
        .into_iter()
        .filter_map(|k| {
            let kind = match k.material {
                KeyMaterial::Rsa { .. } => "RSA",
                KeyMaterial::Ec(_) => "EC",
            };
            Some((k.kid?, kind.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jwks_parsing_keeps_only_usable_signature_keys() {
        let doc = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "e1", "x": B64URL.encode([1u8; 32]), "y": B64URL.encode([2u8; 32])},
            {"kty": "EC", "crv": "P-384", "kid": "e2", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "r1", "n": "AQAB", "e": "AQAB", "alg": "RS256"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
        ]});
        let kids = jwks_kids(&doc);
        assert_eq!(kids.len(), 2, "{kids:?}");
        assert_eq!(kids["e1"], "EC");
        assert_eq!(kids["r1"], "RSA");
        let keys = parse_jwks(&doc);
        assert!(keys[0].fits(Alg::Es256) && !keys[0].fits(Alg::Rs256));
        assert!(keys[1].fits(Alg::Rs256) && !keys[1].fits(Alg::Es256));
    }

    #[test]
    fn keycloak_roles_and_client() {
        let c = Claims(json!({
            "azp": "emr-a",
            "realm_access": {"roles": ["issuer-a", "offline_access"]},
            "resource_access": {"ddcc": {"roles": ["admin"]}},
        }));
        assert_eq!(c.client(), Some("emr-a"));
        assert_eq!(c.roles(), vec!["issuer-a", "offline_access", "ddcc:admin"]);
        assert_eq!(Claims(json!({"client_id": "x"})).client(), Some("x"));
    }
}
