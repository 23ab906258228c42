//! The TLS listener. The reference deployment runs the gateway with
//! `client-auth: need` and a trust store of onboarded TLS certificates (§1, §3);
//! the double instead completes the handshake for *any* client certificate (and
//! for none) and decides at HTTP level, because the acceptance suite and our
//! client must see a 401 with the contract's body, not a handshake alert (§12.2).
//! Possession of the key is still proven: the CertificateVerify signature is
//! checked with rustls' own routines.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::Inner;

#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

pub fn acceptor(leaf_der: Vec<u8>, leaf_key_pkcs8: Vec<u8>) -> Result<TlsAcceptor, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(AnyClientCert { provider }))
        .with_single_cert(
            vec![CertificateDer::from(leaf_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key_pkcs8)),
        )?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts until the task is aborted; dropping the `JoinSet` with it closes every
/// open connection, so an aborted server looks like a gateway that went away.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, inner: Arc<Inner>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, peer_addr)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let inner = inner.clone();
                conns.spawn(connection(tcp, peer_addr, acceptor, inner));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    _peer_addr: SocketAddr,
    acceptor: TlsAcceptor,
    inner: Arc<Inner>,
) {
    // A failed handshake (a client rejecting our certificate, a bad
    // CertificateVerify) just ends the connection.
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let peer: Option<Arc<Vec<u8>>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| Arc::new(c.to_vec()));
    let service = service_fn(move |req| {
        let inner = inner.clone();
        let peer = peer.clone();
        async move {
            Ok::<hyper::Response<Full<Bytes>>, Infallible>(
                crate::handlers::handle(inner, peer.as_deref().map(|v| v.as_slice()), req).await,
            )
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}
