//! DDCC certificate encodings.
//!
//! Pure core: every module builds bytes and asks a [`Signer`] (through a
//! [`SigningIdentity`]) for signatures. Nothing here touches the network or the file
//! system, except [`local::LocalSigner`], whose key store is a directory.

pub mod bundle_sig;
pub mod cbor;
pub mod country;
pub mod error;
pub mod eudcc;
pub mod hc1;
pub mod icao;
pub mod icao9303;
pub mod identity;
pub mod jcs;
pub mod jws;
pub mod local;
pub mod pdf;
pub mod qr;
pub mod shc;

pub mod signer;
pub mod x509;

pub use error::CertError;
pub use identity::{kid_for_dsc, SigningIdentity};
pub use signer::{Algorithm, SignError, Signer};

/// Format Unix seconds as an RFC 3339 UTC instant (`2021-04-05T10:00:00Z`).
///
/// Hand-rolled (Howard Hinnant's civil-from-days) so the pure core needs no clock
/// or time-zone crate; callers pass the instant.
pub fn rfc3339_utc(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    /// The mediator awaits these inside a multi-threaded runtime: their futures
    /// must be `Send`. Constructing (not polling) them is enough for the check.
    #[test]
    fn issuing_futures_are_send() {
        fn is_send<T: Send>(_: &T) {}
        let dir = tempfile::tempdir().unwrap();
        let id = crate::local::LocalSigner::load_or_create(dir.path(), "NL").unwrap();
        let v = serde_json::json!({});
        let claims = crate::hc1::CwtClaims {
            iss: "NL".into(),
            iat: 0,
            exp: 1,
        };
        let p = crate::hc1::HcertPayload::Who(v.clone());
        is_send(&crate::hc1::issue(&p, &claims, &id));
        is_send(&crate::shc::issue(&v, "https://x", 0, &id));
        is_send(&crate::bundle_sig::sign(&v, &id, "Organization/x", 0));
        is_send(&crate::icao::issue(&v, &id));
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(super::rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339_utc(1_617_580_800), "2021-04-05T00:00:00Z");
        assert_eq!(super::rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339_utc(-1), "1969-12-31T23:59:59Z");
    }
}
