//! A runner for the Gauge specs of trusted references
//! (`gateway-api-tests/legacy-gauge-specs/specs/gateway/reference.md`): it parses
//! the markdown as written upstream and plays each scenario's steps with
//! pluggable [`Participant`]s, so the same scenarios hold for the openssl
//! participant here and for the mediator's client.
//!
//! Step meanings follow contract §12.1 (the legacy reference payload, uuids
//! learned from the downloaded list by the random thumbprint).

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::participant::{Exchange, OpensslParticipant, Participant};
use crate::pki::ParticipantKeys;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreatesReference(String),
    ModifyReference(String, String),
    CreatesCms(String),
    UploadsCms(String),
    DownloadsList(String),
    DeletesReference(String),
    ResponseOk,
    ResponseError,
    InList,
    NotInList,
    /// Teardown: the creator deletes what was uploaded.
    DeleteUploaded,
    SetFilter(String, String),
    /// `select gateway "2"`: later actor names resolve to `<actor>@<gateway>`
    /// first (federation specs).
    SelectGateway(String),
    /// `check that no entry with "field" = "value" is in the response`
    NoEntryWith(String, String),
    /// `check that at least one entry with "field" = "value" is in the response`
    SomeEntryWith(String, String),
    /// `wait for "n" seconds`: federation in the double happens when a test
    /// copies records between doubles, so there is nothing to wait for.
    Wait,
    Skip,
    /// `"X" creates a certificate` (a DSC issued by X's SCA); `wrong_csca`: by
    /// an SCA that is not onboarded.
    CreatesCertificate {
        actor: String,
        wrong_csca: bool,
    },
    CreatesCertificateCms(String),
    UploadsCertificateCms(String),
    DownloadsCertificateList(String),
    CertificateInList,
    CertificateNotInList,
    /// `alternate`: `POST /signerCertificate/delete` instead of `DELETE`.
    DeletesCertificate {
        actor: String,
        alternate: bool,
    },
    /// Teardown of the certificate spec.
    DeleteUploadedCertificate,
    /// `Reference "TXR-…"`: a requirement id, nothing to do.
    Note,
    /// A step this runner does not know: the scenario fails on it.
    Unknown(String),
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub scenarios: Vec<Scenario>,
    /// Steps after the `___` line, run after every scenario.
    pub teardown: Vec<Step>,
}

fn quoted(s: &str) -> Vec<String> {
    s.split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, v)| v.to_string())
        .collect()
}

pub fn parse_step(line: &str) -> Step {
    let q = quoted(line);
    let first = q.first().cloned().unwrap_or_default();
    let t = line.trim();
    if t.ends_with("creates a reference") {
        Step::CreatesReference(first)
    } else if t.starts_with("modify reference set") && q.len() == 2 {
        Step::ModifyReference(q[0].clone(), q[1].clone())
    } else if t.ends_with("creates CMS message with trusted reference") {
        Step::CreatesCms(first)
    } else if t.ends_with("uploads CMS reference") {
        Step::UploadsCms(first)
    } else if t.ends_with("downloads the reference trustlist") {
        Step::DownloadsList(first)
    } else if t == "delete uploaded reference" {
        Step::DeleteUploaded
    } else if t.ends_with("deletes uploaded reference") {
        Step::DeletesReference(first)
    } else if t == "check that the response had no error" {
        Step::ResponseOk
    } else if t == "check that the response had an error" {
        Step::ResponseError
    } else if t == "check that the reference is in the trustlist" {
        Step::InList
    } else if t == "check that the reference is NOT in the trustlist" {
        Step::NotInList
    } else if t.starts_with("set filter for") && q.len() == 2 {
        Step::SetFilter(q[0].clone(), q[1].clone())
    } else if t.starts_with("select gateway") {
        Step::SelectGateway(first)
    } else if t.starts_with("check that no entry with") && q.len() == 2 {
        Step::NoEntryWith(q[0].clone(), q[1].clone())
    } else if t.starts_with("check that at least one entry with") && q.len() == 2 {
        Step::SomeEntryWith(q[0].clone(), q[1].clone())
    } else if t.starts_with("wait for") {
        Step::Wait
    } else if t.contains("creates a certificate") {
        Step::CreatesCertificate {
            actor: first,
            wrong_csca: t.ends_with("with wrong CSCA"),
        }
    } else if t.ends_with("creates CMS message with certificate") {
        Step::CreatesCertificateCms(first)
    } else if t.ends_with("uploads CMS with certificate") {
        Step::UploadsCertificateCms(first)
    } else if t.ends_with("downloads the certificate trustlist") {
        Step::DownloadsCertificateList(first)
    } else if t == "check that the certificate is in the trustlist" {
        Step::CertificateInList
    } else if t == "check that the certificate is NOT in the trustlist" {
        Step::CertificateNotInList
    } else if t == "delete uploaded certificate" {
        Step::DeleteUploadedCertificate
    } else if t.contains("deletes uploaded certificate") {
        Step::DeletesCertificate {
            actor: first,
            alternate: t.ends_with("with alternate endpoint"),
        }
    } else if t.starts_with("Reference ") {
        Step::Note
    } else if t.starts_with("skip") {
        Step::Skip
    } else {
        Step::Unknown(t.to_string())
    }
}

/// Parses a Gauge markdown spec: `## name` starts a scenario, `* step` lines are
/// steps, a `___` line starts the teardown.
pub fn parse(markdown: &str) -> Spec {
    let mut spec = Spec {
        scenarios: Vec::new(),
        teardown: Vec::new(),
    };
    let mut in_teardown = false;
    for line in markdown.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("## ") {
            spec.scenarios.push(Scenario {
                name: name.trim().to_string(),
                steps: Vec::new(),
            });
        } else if t.starts_with("___") {
            in_teardown = true;
        } else if let Some(step) = t.strip_prefix("* ") {
            let step = parse_step(step);
            if in_teardown {
                spec.teardown.push(step);
            } else if let Some(s) = spec.scenarios.last_mut() {
                s.steps.push(step);
            }
        }
    }
    spec
}

/// Outcome of one scenario: every failed check, empty when it held.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: String,
    pub skipped: bool,
    pub failures: Vec<String>,
}

struct Uploaded {
    creator: String,
    thumbprint: String,
}

/// Plays scenarios with `actors` (spec names such as `CountryA`,
/// `OtherGateway`). `ssl_public_key` goes into every created reference.
pub struct Runner<'a, P: Participant> {
    pub actors: &'a HashMap<String, P>,
    pub ssl_public_key: String,
}

impl<P: Participant> Runner<'_, P> {
    fn actor_on(&self, gateway: Option<&str>, name: &str) -> Result<&P, String> {
        gateway
            .and_then(|g| self.actors.get(&format!("{name}@{g}")))
            .or_else(|| self.actors.get(name))
            .ok_or_else(|| format!("no participant plays {name:?}"))
    }

    fn actor(&self, name: &str) -> Result<&P, String> {
        self.actor_on(None, name)
    }

    pub async fn run(&self, spec: &Spec) -> Vec<Outcome> {
        let mut out = Vec::new();
        for sc in &spec.scenarios {
            out.push(self.run_scenario(sc, &spec.teardown).await);
        }
        out
    }

    async fn run_scenario(&self, sc: &Scenario, teardown: &[Step]) -> Outcome {
        let mut o = Outcome {
            scenario: sc.name.clone(),
            skipped: false,
            failures: Vec::new(),
        };
        let mut uploaded: Vec<Uploaded> = Vec::new();
        let mut uuids: HashMap<String, String> = HashMap::new();
        if sc.steps.first() == Some(&Step::Skip) {
            o.skipped = true;
            return o;
        }
        let mut st = State::default();
        for (i, step) in sc.steps.iter().enumerate() {
            if let Err(e) = self.step(step, &mut st, &mut uploaded, &mut uuids).await {
                o.failures.push(format!("step {} {:?}: {e}", i + 1, step));
                break;
            }
        }
        for step in teardown {
            if *step == Step::DeleteUploaded {
                for u in &uploaded {
                    if let (Some(uuid), Ok(p)) = (uuids.get(&u.thumbprint), self.actor(&u.creator))
                    {
                        let body = json!({ "uuid": uuid }).to_string();
                        if let Ok(cms) = p.sign(body.as_bytes()).await {
                            let _ = p.delete_reference(&cms).await;
                        }
                    }
                }
            }
        }
        o
    }

    async fn step(
        &self,
        step: &Step,
        st: &mut State,
        uploaded: &mut Vec<Uploaded>,
        uuids: &mut HashMap<String, String>,
    ) -> Result<(), String> {
        match step {
            Step::CreatesReference(actor) => {
                let country = self.actor_on(st.gateway.as_deref(), actor)?.country();
                let thumbprint =
                    hex::encode((0..32).map(|_| fastrand::u8(..)).collect::<Vec<u8>>());
                st.creator = match &st.gateway {
                    Some(g) if self.actors.contains_key(&format!("{actor}@{g}")) => {
                        format!("{actor}@{g}")
                    }
                    _ => actor.clone(),
                };
                st.reference = json!({
                    "version": 1,
                    "url": "https://testing.only.this/does/not/exist",
                    "country": country,
                    "domain": "DCC",
                    "type": "DCC",
                    "service": "ValueSet",
                    "thumbprint": thumbprint,
                    "name": "TestReference",
                    "sslPublicKey": self.ssl_public_key,
                    "contentType": "application/json",
                    "signatureType": "CMS",
                    "referenceVersion": "1.3.0",
                });
            }
            Step::ModifyReference(field, value) => {
                if let Some(o) = st.reference.as_object_mut() {
                    o.insert(field.clone(), Value::String(value.clone()));
                }
            }
            Step::CreatesCms(actor) => {
                let body = serde_json::to_vec(&st.reference).map_err(|e| e.to_string())?;
                st.cms = self
                    .actor_on(st.gateway.as_deref(), actor)?
                    .sign(&body)
                    .await?;
            }
            Step::UploadsCms(actor) => {
                let ex = self
                    .actor_on(st.gateway.as_deref(), actor)?
                    .upload_reference(&st.cms)
                    .await?;
                if !ex.is_error() {
                    uploaded.push(Uploaded {
                        creator: st.creator.clone(),
                        thumbprint: st.thumbprint(),
                    });
                }
                st.last = Some(ex);
            }
            Step::DownloadsList(actor) => {
                let query: Vec<String> =
                    st.filters.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let ex = self
                    .actor_on(st.gateway.as_deref(), actor)?
                    .download_references(&query.join("&"))
                    .await?;
                st.list = if ex.is_error() {
                    None
                } else {
                    let v: Value = serde_json::from_slice(&ex.body)
                        .map_err(|e| format!("list is not JSON: {e}"))?;
                    let items = v.as_array().cloned().ok_or("list is not a JSON array")?;
                    for item in &items {
                        if let (Some(t), Some(u)) = (
                            item.get("thumbprint").and_then(Value::as_str),
                            item.get("uuid").and_then(Value::as_str),
                        ) {
                            uuids.insert(t.to_string(), u.to_string());
                        }
                    }
                    Some(items)
                };
                st.last = Some(ex);
            }
            Step::DeletesReference(actor) => {
                let uuid = uuids
                    .get(&st.thumbprint())
                    .ok_or("the reference's uuid was never seen in a download")?;
                let p = self.actor_on(st.gateway.as_deref(), actor)?;
                let cms = p
                    .sign(json!({ "uuid": uuid }).to_string().as_bytes())
                    .await?;
                st.last = Some(p.delete_reference(&cms).await?);
            }
            Step::ResponseOk | Step::ResponseError => {
                let ex = st.last.as_ref().ok_or("no response yet")?;
                let want_error = *step == Step::ResponseError;
                if ex.is_error() != want_error {
                    return Err(format!(
                        "expected {}, got {} {}",
                        if want_error { "an error" } else { "no error" },
                        ex.status,
                        String::from_utf8_lossy(&ex.body)
                    ));
                }
            }
            Step::InList | Step::NotInList => {
                let list = st.list.as_ref().ok_or("no list downloaded")?;
                let t = st.thumbprint();
                let found = list
                    .iter()
                    .any(|i| i.get("thumbprint").and_then(Value::as_str) == Some(t.as_str()));
                if found != (*step == Step::InList) {
                    return Err(format!(
                        "reference {t} {} in a list of {}",
                        if found { "found" } else { "not found" },
                        list.len()
                    ));
                }
            }
            Step::SetFilter(k, v) => st.filters.push((k.clone(), v.clone())),
            Step::SelectGateway(g) => st.gateway = Some(g.clone()),
            Step::NoEntryWith(k, v) | Step::SomeEntryWith(k, v) => {
                let list = st.list.as_ref().ok_or("no list downloaded")?;
                let n = list
                    .iter()
                    .filter(|i| i.get(k).and_then(Value::as_str) == Some(v.as_str()))
                    .count();
                let want_some = matches!(step, Step::SomeEntryWith(..));
                if (n > 0) != want_some {
                    return Err(format!(
                        "{n} entries with {k} = {v} in a list of {}",
                        list.len()
                    ));
                }
            }
            Step::DeleteUploaded | Step::Skip | Step::Wait | Step::Note => {}
            other => return Err(format!("not a reference step: {other:?}")),
        }
        Ok(())
    }
}

#[derive(Default)]
struct State {
    creator: String,
    reference: Value,
    cms: String,
    last: Option<Exchange>,
    list: Option<Vec<Value>>,
    filters: Vec<(String, String)>,
    gateway: Option<String>,
}

impl State {
    fn thumbprint(&self) -> String {
        self.reference
            .get("thumbprint")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps_and_teardown() {
        let md = "# T\n\n## one\n\ntext\n* \"CountryA\" creates a reference\n* modify reference set \"domain\" to \"DCC\"\n* check that the response had no error\n\n___\n\n* delete uploaded reference\n";
        let spec = parse(md);
        assert_eq!(spec.scenarios.len(), 1);
        assert_eq!(
            spec.scenarios[0].steps,
            vec![
                Step::CreatesReference("CountryA".into()),
                Step::ModifyReference("domain".into(), "DCC".into()),
                Step::ResponseOk
            ]
        );
        assert_eq!(spec.teardown, vec![Step::DeleteUploaded]);
    }
}

/// An actor of the certificate spec (`specs/gateway/certificates.md`): the
/// openssl participant and the keys whose SCA issues the DSCs it "creates".
pub struct CertActor<'a> {
    pub participant: &'a OpensslParticipant,
    pub keys: &'a ParticipantKeys,
}

#[derive(Default)]
struct CertState {
    creator: String,
    dsc: Vec<u8>,
    cms: String,
    last: Option<Exchange>,
    list: Option<Vec<Value>>,
    /// (creator, DER) of every accepted upload, for the teardown.
    uploaded: Vec<(String, Vec<u8>)>,
}

/// Plays the certificate spec with `/signerCertificate` uploads and deletes and
/// `/trustList/certificate` downloads (contract §6.1, §8).
pub async fn run_certificates(
    spec: &Spec,
    actors: &HashMap<String, CertActor<'_>>,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for sc in &spec.scenarios {
        let mut o = Outcome {
            scenario: sc.name.clone(),
            skipped: sc.steps.first() == Some(&Step::Skip),
            failures: Vec::new(),
        };
        if o.skipped {
            out.push(o);
            continue;
        }
        let mut st = CertState::default();
        for (i, step) in sc.steps.iter().enumerate() {
            if let Err(e) = cert_step(step, &mut st, actors).await {
                o.failures.push(format!("step {} {:?}: {e}", i + 1, step));
                break;
            }
        }
        if spec.teardown.contains(&Step::DeleteUploadedCertificate) {
            for (creator, der) in &st.uploaded {
                if let Some(a) = actors.get(creator) {
                    if let Ok(cms) = a.participant.sign(der).await {
                        let _ = a.participant.delete_certificate(&cms, false).await;
                    }
                }
            }
        }
        out.push(o);
    }
    out
}

async fn cert_step(
    step: &Step,
    st: &mut CertState,
    actors: &HashMap<String, CertActor<'_>>,
) -> Result<(), String> {
    let get = |name: &str| {
        actors
            .get(name)
            .ok_or_else(|| format!("no participant plays {name:?}"))
    };
    match step {
        Step::CreatesCertificate { actor, wrong_csca } => {
            let a = get(actor)?;
            let rogue;
            let sca = if *wrong_csca {
                rogue = crate::pki::generate(crate::pki::Profile::Sca, &a.keys.country)
                    .map_err(|e| e.to_string())?;
                &rogue
            } else {
                &a.keys.sca
            };
            let cn = format!("DSC {} {}", a.keys.country, crate::model::random_uuid());
            st.dsc = crate::pki::dsc(sca, &a.keys.country, &cn)
                .map_err(|e| e.to_string())?
                .cert_der();
            st.creator = actor.clone();
        }
        Step::CreatesCertificateCms(actor) => {
            st.cms = get(actor)?.participant.sign(&st.dsc).await?;
        }
        Step::UploadsCertificateCms(actor) => {
            let ex = get(actor)?.participant.upload_certificate(&st.cms).await?;
            if !ex.is_error() {
                st.uploaded.push((st.creator.clone(), st.dsc.clone()));
            }
            st.last = Some(ex);
        }
        Step::DownloadsCertificateList(actor) => {
            let ex = get(actor)?.participant.download_certificates().await?;
            st.list = if ex.is_error() {
                None
            } else {
                let v: Value = serde_json::from_slice(&ex.body)
                    .map_err(|e| format!("list is not JSON: {e}"))?;
                Some(v.as_array().cloned().ok_or("list is not a JSON array")?)
            };
            st.last = Some(ex);
        }
        Step::DeletesCertificate { actor, alternate } => {
            let p = get(actor)?.participant;
            let cms = p.sign(&st.dsc).await?;
            st.last = Some(p.delete_certificate(&cms, *alternate).await?);
        }
        Step::ResponseOk | Step::ResponseError => {
            let ex = st.last.as_ref().ok_or("no response yet")?;
            let want_error = *step == Step::ResponseError;
            if ex.is_error() != want_error {
                return Err(format!(
                    "expected {}, got {} {}",
                    if want_error { "an error" } else { "no error" },
                    ex.status,
                    String::from_utf8_lossy(&ex.body)
                ));
            }
        }
        Step::CertificateInList | Step::CertificateNotInList => {
            let list = st.list.as_ref().ok_or("no list downloaded")?;
            let b64 = crate::model::b64(&st.dsc);
            let found = list
                .iter()
                .any(|i| i.get("certificate").and_then(Value::as_str) == Some(b64.as_str()));
            if found != (*step == Step::CertificateInList) {
                return Err(format!(
                    "certificate {} in a list of {}",
                    if found { "found" } else { "not found" },
                    list.len()
                ));
            }
        }
        Step::Note | Step::Skip => {}
        other => return Err(format!("not a certificate step: {other:?}")),
    }
    Ok(())
}
