//! ICAO Visible Digital Seal for non-constrained environments (VDS-NC), proof of
//! vaccination (`icao.vacc`).
//!
//! Canonicalisation: the ICAO VDS-NC technical report signs the `data` object in
//! canonical form. We use RFC 8785 (JCS) — sorted keys, no whitespace, ECMAScript
//! number and string forms — over exactly the `data` value, and sign its UTF-8
//! bytes with ES256. `sig.sigvl` is the raw `r || s` signature and `sig.cer` the
//! DSC DER, both base64url without padding.
//!
//! Field limits of the report: free text is truncated (`pid.n` 39, `ve.nam` 20,
//! `vd.adm` 20, `vd.lot` 20 characters). Identifiers are never truncated, since a
//! cut identifier collides: `uvci` (max 12) is the HCID when it has at most 12
//! alphanumerics, otherwise the first 12 characters of the RFC 4648 base32 of
//! SHA-256(HCID) (60 bits; a registry can store it beside the HCID). The holder
//! identifier goes to `pid.i` (travel document number, max 11) when it fits,
//! else to `pid.ai` (max 24), else it is left out.

use crate::error::{CertError, Result};
use crate::identity::SigningIdentity;
use crate::{country, jcs, jws};
use serde_json::{json, Map, Value};

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().map(str::trim).filter(|x| !x.is_empty())
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

fn missing(what: &str) -> CertError {
    CertError::InvalidInput(format!("core data set lacks {what}"))
}

fn alpha3(code: &str) -> String {
    country::to_alpha3(code)
        .map(str::to_string)
        .unwrap_or_else(|| code.to_ascii_uppercase())
}

/// The VDS-NC `uvci` (max 12 characters) for an HCID; see the module notes.
pub fn icao_uvci(hcid: &str) -> Option<String> {
    use sha2::{Digest, Sha256};
    let alnum: String = hcid.chars().filter(char::is_ascii_alphanumeric).collect();
    if alnum.is_empty() {
        return None;
    }
    if alnum.len() <= 12 {
        return Some(alnum);
    }
    const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(hcid.as_bytes());
    // 12 base32 characters = 60 bits = the first 7.5 bytes.
    let bits = digest[..8]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    Some(
        (0..12)
            .map(|i| char::from(B32[((bits >> (59 - 5 * i)) & 31) as usize]))
            .collect(),
    )
}

/// The `data` object (header + message) for a core data set.
pub fn data_from_core_data_set(cds: &Value, issuing_country: &str) -> Result<Value> {
    let vaccinations: Vec<&Value> = match cds.get("vaccination") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => return Err(missing("vaccination")),
    };
    if vaccinations.is_empty() {
        return Err(missing("vaccination"));
    }
    let hcid =
        s(cds, &["certificate", "hcid", "value"]).ok_or_else(|| missing("certificate.hcid"))?;
    let hcid = hcid
        .get(..9)
        .filter(|p| p.eq_ignore_ascii_case("urn:hcid:"))
        .map_or(hcid, |_| &hcid[9..]);
    let uvci = icao_uvci(hcid).ok_or_else(|| missing("a usable certificate.hcid"))?;

    let mut pid = Map::new();
    pid.insert(
        "n".into(),
        json!(cut(s(cds, &["name"]).ok_or_else(|| missing("name"))?, 39)),
    );
    if let Some(dob) = s(cds, &["birthDate"]) {
        pid.insert("dob".into(), json!(cut(dob, 10)));
    }
    let sex = match s(cds, &["sex"]) {
        Some("male") => Some("M"),
        Some("female") => Some("F"),
        Some("other") => Some("X"),
        _ => None,
    };
    if let Some(sex) = sex {
        pid.insert("sex".into(), json!(sex));
    }
    match s(cds, &["identifier", "value"]) {
        Some(i) if i.chars().count() <= 11 => {
            pid.insert("i".into(), json!(i));
        }
        Some(i) if i.chars().count() <= 24 => {
            pid.insert("ai".into(), json!(i));
        }
        _ => {}
    }

    // One `ve` per vaccine product, each with its doses.
    let mut ve: Vec<Value> = Vec::new();
    for v in vaccinations {
        let des = s(v, &["vaccine", "code"]).ok_or_else(|| missing("vaccination.vaccine"))?;
        let nam = s(v, &["brand", "display"])
            .or_else(|| s(v, &["brand", "code"]))
            .unwrap_or(des);
        let dis = s(v, &["disease", "code"]).unwrap_or("RA01");
        let mut vd = Map::new();
        vd.insert(
            "dvc".into(),
            json!(cut(
                s(v, &["date"]).ok_or_else(|| missing("vaccination.date"))?,
                10
            )),
        );
        let seq = v
            .get("dose")
            .and_then(|d| {
                d.as_u64()
                    .or_else(|| d.as_str().and_then(|x| x.parse().ok()))
            })
            .ok_or_else(|| missing("vaccination.dose"))?;
        vd.insert("seq".into(), json!(seq));
        let ctr = s(v, &["country", "code"]).ok_or_else(|| missing("vaccination.country"))?;
        vd.insert("ctr".into(), json!(alpha3(ctr)));
        vd.insert(
            "adm".into(),
            json!(cut(s(v, &["centre"]).unwrap_or("-"), 20)),
        );
        vd.insert("lot".into(), json!(cut(s(v, &["lot"]).unwrap_or("-"), 20)));
        if let Some(next) = s(v, &["nextDose"]) {
            vd.insert("dvn".into(), json!(cut(next, 10)));
        }
        let pos = ve
            .iter()
            .position(|e| e["des"] == des && e["nam"] == cut(nam, 20));
        match pos {
            Some(i) => {
                if let Some(Value::Array(list)) = ve[i].get_mut("vd") {
                    list.push(Value::Object(vd));
                }
            }
            None => ve.push(json!({"des": des, "nam": cut(nam, 20), "dis": dis, "vd": [vd]})),
        }
    }
    Ok(json!({
        "hdr": {"t": "icao.vacc", "v": 1, "is": alpha3(issuing_country)},
        "msg": {"uvci": uvci, "pid": pid, "ve": ve}
    }))
}

/// Sign a VDS-NC `data` object.
pub async fn sign(data: &Value, signer: &SigningIdentity) -> Result<Value> {
    let canonical = jcs::canonicalize(data)?;
    let sig = signer.sign(canonical.as_bytes()).await?;
    Ok(json!({
        "data": data,
        "sig": {"alg": "ES256", "cer": jws::b64url(&signer.dsc_der), "sigvl": jws::b64url(&sig)}
    }))
}

/// Build and sign the VDS-NC for a core data set; the issuing country is the
/// identity's.
pub async fn issue(cds: &Value, signer: &SigningIdentity) -> Result<Value> {
    let data = data_from_core_data_set(cds, &signer.country)?;
    sign(&data, signer).await
}

/// Verify a VDS-NC with the public key in its own `cer` (the caller still has to
/// check that certificate against its trust list).
pub fn verify(vds: &Value) -> Result<()> {
    let bad = |m: &str| CertError::InvalidInput(m.to_string());
    let data = vds.get("data").ok_or_else(|| bad("VDS-NC has no data"))?;
    let cer = jws::b64url_decode(
        vds.pointer("/sig/cer")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no sig.cer"))?,
    )?;
    let sig = jws::b64url_decode(
        vds.pointer("/sig/sigvl")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no sig.sigvl"))?,
    )?;
    let key = crate::x509::p256_public_key(&cer)?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &key)
        .verify(jcs::canonicalize(data)?.as_bytes(), &sig)
        .map_err(|_| bad("VDS-NC signature does not verify"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvci_is_never_a_truncated_identifier() {
        assert_eq!(icao_uvci("1234567890").as_deref(), Some("1234567890"));
        let a = icao_uvci("bMlJkAt0V92RYhhG3fNt1").unwrap();
        let b = icao_uvci("bMlJkAt0V92RYhhG3fNt2").unwrap();
        assert_eq!((a.len(), b.len()), (12, 12));
        assert_ne!(a, b);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
        assert_eq!(icao_uvci("--"), None);
    }
}
