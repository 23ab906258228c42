//! ICAO VDS-NC (Visible Digital Seal for non-constrained environments) verification:
//! `{"data": {"hdr", "msg"}, "sig": {"alg", "cer", "sigvl"}}`. The signature is ES256
//! (raw `r‖s`, base64url) over the RFC 8785 canonical form of `data`, made with the
//! key of the signer certificate in `sig.cer` (base64url DER); that certificate must
//! be in the trust source or be issued by a certificate that is.

use base64::Engine as _;
use serde_json::Value as Json;

use crate::trust::{kid_of, Dsc, PublicKey, TrustSource};
use crate::{CheckKind, Format, SignerInfo, Verification};

/// Seal types of the ICAO technical report: proof of vaccination and of testing.
const SEAL_TYPES: [&str; 2] = ["icao.vacc", "icao.test"];

/// Verify a VDS-NC JSON text against `trust` at `validation_time_unix`.
pub fn verify_icao<T: TrustSource + ?Sized>(
    text: &str,
    trust: &T,
    validation_time_unix: i64,
) -> Verification {
    let mut v = Verification::new(Some(Format::Icao));
    run(text, trust, validation_time_unix, &mut v);
    v.finish()
}

/// base64url without padding as the report writes it; padded and standard base64
/// are accepted too, since some issuers emit them.
fn b64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .or_else(|_| STANDARD.decode(text))
        .ok()
}

fn run<T: TrustSource + ?Sized>(text: &str, trust: &T, now: i64, v: &mut Verification) {
    let seal: Json = match serde_json::from_str(text) {
        Ok(seal) => seal,
        Err(e) => {
            v.fail(CheckKind::Json, format!("VDS-NC JSON: {e}"));
            return;
        }
    };
    let Some(data) = seal.get("data").filter(|d| d.is_object()) else {
        v.fail(CheckKind::Structure, "VDS-NC has no data object");
        return;
    };
    let Some(sig) = seal.get("sig").filter(|s| s.is_object()) else {
        v.fail(CheckKind::Structure, "VDS-NC has no sig object");
        return;
    };
    check_data(data, v);

    let field = |name: &str| sig.get(name).and_then(Json::as_str);
    let alg = field("alg");
    if alg != Some("ES256") {
        v.fail(
            CheckKind::Structure,
            format!(
                "sig.alg must be ES256, is {}",
                sig.get("alg").unwrap_or(&Json::Null)
            ),
        );
    }
    let signature = match field("sigvl").map(b64) {
        Some(Some(s)) => Some(s),
        Some(None) => {
            v.fail(CheckKind::Structure, "sig.sigvl is not base64url");
            None
        }
        None => {
            v.fail(CheckKind::Structure, "no sig.sigvl");
            None
        }
    };
    let certificate = match field("cer").map(b64) {
        Some(Some(der)) => match Dsc::from_der(&der) {
            Ok(dsc) => Some(dsc),
            Err(e) => {
                v.fail(CheckKind::Certificate, format!("sig.cer: {e}"));
                None
            }
        },
        Some(None) => {
            v.fail(CheckKind::Certificate, "sig.cer is not base64url");
            None
        }
        None => {
            v.fail(CheckKind::Certificate, "no sig.cer");
            None
        }
    };
    v.payload = Some(data.clone());
    let Some(cer) = certificate else {
        return;
    };
    v.kid = Some(kid_of(&cer.der));

    let signature_ok = match (&signature, alg) {
        (Some(signature), Some("ES256")) => check_signature(&cer, data, signature, v),
        _ => false,
    };
    let trusted = is_trusted(trust, &cer);
    if !trusted {
        v.fail(
            CheckKind::UnknownSigner,
            format!(
                "the signer certificate ({}) is neither trusted nor issued by a trusted certificate",
                cer.subject
            ),
        );
    }
    if signature_ok && trusted {
        v.signer = Some(SignerInfo {
            country: cer.country.clone(),
            subject: cer.subject.clone(),
        });
    }
    if now < cer.not_before || now > cer.not_after {
        v.fail(
            CheckKind::DscValidity,
            format!(
                "signing certificate valid from {} to {}, not at {now}",
                cer.not_before, cer.not_after
            ),
        );
    }
}

fn check_data(data: &Json, v: &mut Verification) {
    let hdr = data.get("hdr");
    let seal_type = hdr.and_then(|h| h.get("t")).and_then(Json::as_str);
    if !seal_type.is_some_and(|t| SEAL_TYPES.contains(&t)) {
        v.fail(
            CheckKind::Structure,
            format!("data.hdr.t must be one of {SEAL_TYPES:?}, is {seal_type:?}"),
        );
    }
    if !hdr.and_then(|h| h.get("v")).is_some_and(Json::is_u64) {
        v.fail(CheckKind::Structure, "data.hdr.v is not a version number");
    }
    match hdr.and_then(|h| h.get("is")).and_then(Json::as_str) {
        Some(is) => v.cwt.iss = Some(is.to_string()),
        None => v.fail(CheckKind::Structure, "no data.hdr.is (issuing country)"),
    }
    if !data.get("msg").is_some_and(Json::is_object) {
        v.fail(CheckKind::Structure, "no data.msg object");
    }
}

fn check_signature(cer: &Dsc, data: &Json, signature: &[u8], v: &mut Verification) -> bool {
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
    let PublicKey::P256(point) = &cer.key else {
        v.fail(
            CheckKind::Signature,
            "sig.alg is ES256 but the signer certificate has no P-256 key",
        );
        return false;
    };
    let Some(canonical) = crate::jcs::canonicalize(data) else {
        v.fail(
            CheckKind::Structure,
            "data has no canonical form (a non-finite number or too deep)",
        );
        return false;
    };
    let ok = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(canonical.as_bytes(), signature)
        .is_ok();
    if !ok {
        v.fail(
            CheckKind::Signature,
            "signature does not verify with the signer certificate over canonical data",
        );
    }
    ok
}

/// In the trust source itself, or issued by a certificate that is (one level: the
/// ICAO PKI is CSCA → document signer).
fn is_trusted<T: TrustSource + ?Sized>(trust: &T, cer: &Dsc) -> bool {
    trust
        .dscs_for_kid(&cer.kid)
        .iter()
        .any(|d| d.der == cer.der)
        || trust
            .certificates_with_subject(&cer.issuer_der)
            .into_iter()
            .any(|issuer| issuer.der != cer.der && issuer.signed(&cer.der))
}
