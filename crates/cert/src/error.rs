use crate::signer::SignError;

/// Errors of the certificate core. Input errors (`InvalidInput`) map to 4xx; signer
/// unavailability is kept distinct so the service can answer 503 and retry.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("invalid DSC certificate: {0}")]
    InvalidCertificate(String),
    #[error("encoding failed: {0}")]
    Encoding(String),
    #[error("payload does not fit in a QR code: {0}")]
    QrTooLarge(String),
    #[error("key store: {0}")]
    KeyStore(String),
}

pub type Result<T, E = CertError> = std::result::Result<T, E>;
