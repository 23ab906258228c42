//! The TLS listener and client certificates. rustls verifies the client chain
//! against `DDCC_TLS_CLIENT_CA` during the handshake (a certificate from another CA
//! never gets a connection); `on_connect` puts the verified leaf's subject into the
//! connection's extensions, where the authentication middleware reads it. Clients
//! without a certificate still connect (they may hold a bearer token).

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::dev::Extensions;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {message}")]
    File {
        what: &'static str,
        path: String,
        message: String,
    },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// `DDCC_TLS_CERT`, `DDCC_TLS_KEY` (PEM), `DDCC_TLS_CLIENT_CA` (PEM bundle; unset:
/// no client certificates are asked for).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsSettings {
    pub fn from_lookup(env: &impl Fn(&str) -> Option<String>) -> Result<Option<Self>, TlsError> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        match (get("DDCC_TLS_CERT"), get("DDCC_TLS_KEY")) {
            (None, None) => {
                if get("DDCC_TLS_CLIENT_CA").is_some() {
                    return Err(TlsError::Config(
                        "DDCC_TLS_CLIENT_CA needs DDCC_TLS_CERT and DDCC_TLS_KEY".into(),
                    ));
                }
                Ok(None)
            }
            (Some(cert), Some(key)) => Ok(Some(Self {
                cert: cert.into(),
                key: key.into(),
                client_ca: get("DDCC_TLS_CLIENT_CA").map(PathBuf::from),
            })),
            _ => Err(TlsError::Config(
                "DDCC_TLS_CERT and DDCC_TLS_KEY must be set together".into(),
            )),
        }
    }
}

fn read(what: &'static str, path: &PathBuf) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        what,
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn certs(what: &'static str, path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::File {
            what,
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::File {
            what,
            path: path.display().to_string(),
            message: "no CERTIFICATE in the file".into(),
        });
    }
    Ok(certs)
}

/// The rustls server configuration for [`TlsSettings`] (ring provider).
pub fn server_config(s: &TlsSettings) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs("server certificate", &s.cert)?;
    let key_pem = read("server key", &s.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::File {
        what: "server key",
        path: s.key.display().to_string(),
        message: e.to_string(),
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &s.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs("client CA", ca)? {
                roots
                    .add(c)
                    .map_err(|e| TlsError::Config(format!("client CA: {e}")))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("server certificate and key: {e}")))
}

/// The verified client certificate of a connection.
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    /// The subject DN as x509-parser renders it (RFC 4514 order, e.g. `CN=emr-a, O=A`).
    pub subject: String,
    pub common_name: Option<String>,
}

impl PeerCertificate {
    pub fn from_der(der: &[u8]) -> Option<Self> {
        use x509_parser::prelude::FromDer;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
        let subject = cert.subject();
        let common_name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        Some(Self {
            subject: subject.to_string(),
            common_name,
        })
    }
}

/// For `HttpServer::on_connect`: records the verified client certificate, if any,
/// in the connection's extensions.
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    let Some(tls) = conn.downcast_ref::<Tls>() else {
        return;
    };
    let (_, session) = tls.get_ref();
    if let Some(leaf) = session.peer_certificates().and_then(|c| c.first()) {
        match PeerCertificate::from_der(leaf.as_ref()) {
            Some(p) => {
                ext.insert(p);
            }
            None => tracing::warn!("verified client certificate cannot be parsed; ignored"),
        }
    }
}
