use ddcc_cert::signer::SignError;

/// A failed call to Vault, classified by what the caller can do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VaultError {
    /// Transport failure: connection refused, DNS, TLS, timeout.
    #[error("vault unreachable: {0}")]
    Unreachable(String),
    /// Vault answered but cannot serve now (sealed, standby without forwarding,
    /// rate limited, internal error).
    #[error("vault unavailable (HTTP {status}): {message}")]
    Unavailable { status: u16, message: String },
    /// 403: the token lacks a policy for the path, or it has expired.
    #[error("vault permission denied: {0}")]
    PermissionDenied(String),
    /// Any other 4xx: missing key, wrong parameters.
    #[error("vault rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    /// A 2xx answer that does not have the shape the API documents.
    #[error("unexpected answer from vault: {0}")]
    Protocol(String),
}

impl VaultError {
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            VaultError::Unreachable(_) => true,
            // 501 is "not initialized": waiting will not help within one request.
            VaultError::Unavailable { status, .. } => *status != 501,
            _ => false,
        }
    }

    pub(crate) fn to_sign_error(&self) -> SignError {
        match self {
            VaultError::Unreachable(_) | VaultError::Unavailable { .. } => {
                SignError::Unavailable(self.to_string())
            }
            VaultError::PermissionDenied(_) | VaultError::Rejected { .. } => {
                SignError::Refused(self.to_string())
            }
            VaultError::Protocol(_) => SignError::Invalid(self.to_string()),
        }
    }
}
