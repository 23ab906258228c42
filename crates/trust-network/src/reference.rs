//! Trusted references (contract §5): the records that announce a served artefact's
//! URL with the SHA-256 of exactly the bytes served there, and the plan that brings
//! the gateway's list in line with what we serve.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One record as the gateway stores it (`POST /trust/reference`, `GET /trustList/references`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustedReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    pub url: String,
    pub country: String,
    #[serde(rename = "type")]
    pub reference_type: String,
    pub service: String,
    pub thumbprint: String,
    pub name: String,
    pub ssl_public_key: String,
    pub content_type: String,
    pub signature_type: String,
    pub reference_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// An artefact as served: the exact bytes behind its public URL.
#[derive(Debug, Clone)]
pub struct ServedArtefact {
    /// FHIR resource type: `ValueSet`, `PlanDefinition`, `Library`.
    pub resource_type: String,
    pub url: String,
    pub name: String,
    pub version: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("{url}: the gateway stores URLs of at most 100 characters ({len})")]
    UrlTooLong { url: String, len: usize },
    #[error("country must be ISO 3166-1 alpha-2, got '{0}'")]
    Country(String),
    #[error("{field} of {url} is empty; the gateway requires it")]
    Empty { field: &'static str, url: String },
}

/// Lowercase hex SHA-256, the gateway's thumbprint form.
pub fn thumbprint(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Who publishes: our country, our domain, the TLS certificate of the endpoint
/// serving the URLs.
#[derive(Debug, Clone)]
pub struct Publisher {
    pub country: String,
    pub domain: String,
    /// base64 DER of the serving endpoint's TLS certificate.
    pub ssl_public_key: String,
}

pub fn reference_for(
    a: &ServedArtefact,
    p: &Publisher,
) -> Result<TrustedReference, ReferenceError> {
    if a.url.chars().count() > 100 {
        return Err(ReferenceError::UrlTooLong {
            url: a.url.clone(),
            len: a.url.chars().count(),
        });
    }
    if p.country.len() != 2 || !p.country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Country(p.country.clone()));
    }
    for (field, v) in [
        ("name", &a.name),
        ("version", &a.version),
        ("sslPublicKey", &p.ssl_public_key),
    ] {
        if v.trim().is_empty() {
            return Err(ReferenceError::Empty {
                field,
                url: a.url.clone(),
            });
        }
    }
    Ok(TrustedReference {
        uuid: None,
        url: a.url.clone(),
        country: p.country.clone(),
        reference_type: "FHIR".into(),
        service: a.resource_type.clone(),
        thumbprint: thumbprint(&a.bytes),
        name: a.name.clone(),
        ssl_public_key: p.ssl_public_key.clone(),
        content_type: "application/fhir+json".into(),
        signature_type: "NONE".into(),
        reference_version: a.version.clone(),
        domain: Some(p.domain.clone()),
    })
}

/// What to send so the gateway lists exactly `desired` among the references we own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishPlan {
    pub create: Vec<TrustedReference>,
    /// Changed records, carrying the uuid of the record they replace.
    pub update: Vec<TrustedReference>,
    /// uuids of records we own whose artefact we no longer serve.
    pub delete: Vec<String>,
    pub unchanged: usize,
}

impl PublishPlan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Compare what we serve with what the gateway lists. `published` is the whole
/// unfiltered list: the gateway swaps its `country` and `domain` filters (contract
/// §5.4), so filtering happens here. Only records of our country and domain under
/// `owned_url_prefix` are ours to update or delete; other tools of the same country
/// may publish elsewhere.
pub fn plan(
    desired: &[TrustedReference],
    published: &[TrustedReference],
    publisher: &Publisher,
    owned_url_prefix: &str,
) -> PublishPlan {
    let ours: Vec<&TrustedReference> = published
        .iter()
        .filter(|r| {
            r.country == publisher.country
                && r.domain.as_deref().unwrap_or("DDCC") == publisher.domain
                && r.url.starts_with(owned_url_prefix)
                && r.uuid.is_some()
        })
        .collect();
    let mut out = PublishPlan::default();
    for want in desired {
        // Several records with our URL (a crash between upload and listing, or another
        // instance): keep the first, delete the rest.
        let mut same_url = ours.iter().filter(|r| r.url == want.url);
        match same_url.next() {
            None => out.create.push(want.clone()),
            Some(have) => {
                let mut candidate = want.clone();
                candidate.uuid = have.uuid.clone();
                if &&candidate == have {
                    out.unchanged += 1;
                } else {
                    out.update.push(candidate);
                }
                out.delete.extend(same_url.filter_map(|r| r.uuid.clone()));
            }
        }
    }
    for have in &ours {
        if !desired.iter().any(|w| w.url == have.url) {
            out.delete.extend(have.uuid.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher() -> Publisher {
        Publisher {
            country: "XA".into(),
            domain: "DDCC".into(),
            ssl_public_key: "MIIB".into(),
        }
    }

    fn artefact(id: &str, body: &str) -> ServedArtefact {
        ServedArtefact {
            resource_type: "ValueSet".into(),
            url: format!("https://moh.example/fhir/ValueSet/{id}"),
            name: id.into(),
            version: "1.0.0".into(),
            bytes: body.as_bytes().to_vec(),
        }
    }

    fn published(r: &TrustedReference, uuid: &str) -> TrustedReference {
        TrustedReference {
            uuid: Some(uuid.into()),
            ..r.clone()
        }
    }

    #[test]
    fn thumbprint_is_lowercase_hex_sha256() {
        assert_eq!(
            thumbprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn record_shape_matches_the_gateway() {
        let r = reference_for(&artefact("vaccines", "{}"), &publisher()).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["type"], "FHIR");
        assert_eq!(v["sslPublicKey"], "MIIB");
        assert_eq!(v["referenceVersion"], "1.0.0");
        assert!(
            v.get("uuid").is_none(),
            "a new record must not carry a uuid"
        );
    }

    #[test]
    fn refuses_what_the_gateway_would_refuse() {
        let mut a = artefact("vaccines", "{}");
        a.url = format!("https://moh.example/{}", "x".repeat(100));
        assert!(matches!(
            reference_for(&a, &publisher()),
            Err(ReferenceError::UrlTooLong { .. })
        ));
        let mut p = publisher();
        p.country = "XXA".into();
        assert!(matches!(
            reference_for(&artefact("v", "{}"), &p),
            Err(ReferenceError::Country(_))
        ));
    }

    #[test]
    fn publish_republish_change_delete() {
        let p = publisher();
        let a = reference_for(&artefact("a", "{1}"), &p).unwrap();
        let b = reference_for(&artefact("b", "{2}"), &p).unwrap();
        let prefix = "https://moh.example/fhir/";

        let first = plan(&[a.clone(), b.clone()], &[], &p, prefix);
        assert_eq!(
            (first.create.len(), first.update.len(), first.delete.len()),
            (2, 0, 0)
        );

        let listed = vec![published(&a, "u-a"), published(&b, "u-b")];
        let again = plan(&[a.clone(), b.clone()], &listed, &p, prefix);
        assert!(again.is_empty());
        assert_eq!(again.unchanged, 2);

        let a2 = reference_for(&artefact("a", "{1, changed}"), &p).unwrap();
        let changed = plan(&[a2.clone(), b.clone()], &listed, &p, prefix);
        assert_eq!(changed.update.len(), 1);
        assert_eq!(changed.update[0].uuid.as_deref(), Some("u-a"));
        assert_eq!(changed.update[0].thumbprint, a2.thumbprint);

        let removed = plan(std::slice::from_ref(&a), &listed, &p, prefix);
        assert_eq!(removed.delete, vec!["u-b".to_string()]);
    }

    #[test]
    fn others_records_are_never_touched() {
        let p = publisher();
        let a = reference_for(&artefact("a", "{1}"), &p).unwrap();
        let mut foreign_country = published(&a, "u-1");
        foreign_country.country = "XB".into();
        let mut foreign_domain = published(&a, "u-2");
        foreign_domain.domain = Some("DCC".into());
        let mut elsewhere = published(&a, "u-3");
        elsewhere.url = "https://other.example/ValueSet/a".into();
        let plan = plan(
            &[],
            &[foreign_country, foreign_domain, elsewhere],
            &p,
            "https://moh.example/fhir/",
        );
        assert!(plan.is_empty(), "{plan:?}");
    }

    #[test]
    fn duplicates_of_our_url_are_cleaned_up() {
        let p = publisher();
        let a = reference_for(&artefact("a", "{1}"), &p).unwrap();
        let listed = vec![published(&a, "u-1"), published(&a, "u-2")];
        let plan = plan(&[a], &listed, &p, "https://moh.example/fhir/");
        assert_eq!(plan.unchanged, 1);
        assert_eq!(plan.delete, vec!["u-2".to_string()]);
    }
}
