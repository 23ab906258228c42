//! HTTPS front for the double's API: a fresh core serves its API over HTTPS with
//! a self-signed certificate (contract §1), which is what `TRUST_SELF_SIGNED`
//! exists for. TLS is terminated here and the bytes relayed to the plain API.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A self-signed certificate for `localhost` and `127.0.0.1`; returns the acceptor
/// and the certificate PEM (for tests that want to trust it explicitly).
pub fn self_signed() -> std::io::Result<(TlsAcceptor, String)> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(std::io::Error::other)?;
    let pem = cert.cert.pem();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .map_err(std::io::Error::other)?;
    Ok((TlsAcceptor::from(Arc::new(config)), pem))
}

/// Accepts TLS on `listener` and relays each connection to `backend` (host:port).
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, backend: String) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let backend = backend.clone();
        actix_web::rt::spawn(async move {
            // A failed handshake (e.g. a client that rejects the certificate) just ends.
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let Ok(mut plain) = TcpStream::connect(&backend).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        });
    }
}
