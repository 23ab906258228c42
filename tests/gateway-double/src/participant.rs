//! The participant side of the legacy reference scenarios
//! (`legacy-gauge-specs/specs/gateway/reference.md`), behind a small trait so
//! another client (the mediator's gateway client) can play the same scenarios.

use crate::openssl;
use crate::pki::ParticipantKeys;

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Exchange {
    pub fn is_error(&self) -> bool {
        self.status >= 400
    }
}

/// What the reference scenarios need from a Trusted Party's backend. Signing and
/// sending are separate because the scenarios mix them (B sends what A signed).
/// `Err` means no HTTP answer at all (transport failure), which fails a scenario.
#[allow(async_fn_in_trait)]
pub trait Participant {
    /// Alpha-2 code in the participant's TLS and UP certificates.
    fn country(&self) -> String;
    /// A CMS over `payload` signed with this participant's upload (UP)
    /// certificate, as the single-line base64 text of contract §4.
    async fn sign(&self, payload: &[u8]) -> Result<String, String>;
    /// `POST /trust/reference` with `cms` as the body, over this participant's
    /// TLS identity.
    async fn upload_reference(&self, cms: &str) -> Result<Exchange, String>;
    /// `DELETE /trust/reference` with `cms` as the body.
    async fn delete_reference(&self, cms: &str) -> Result<Exchange, String>;
    /// `GET /trustList/references` with `query` (`a=b&c=d`, may be empty).
    async fn download_references(&self, query: &str) -> Result<Exchange, String>;
}

/// A participant made of the `openssl cms -sign` command and reqwest with the
/// participant's TLS certificate: independent of the mediator's client.
pub struct OpensslParticipant {
    country: String,
    base_url: String,
    http: reqwest::Client,
    up_cert_pem: String,
    up_key_pem: String,
}

impl OpensslParticipant {
    /// `server_ca_pem`: the gateway double's server CA.
    pub fn new(
        base_url: &str,
        server_ca_pem: &str,
        keys: &ParticipantKeys,
    ) -> Result<Self, reqwest::Error> {
        Self::with_tls(
            base_url,
            server_ca_pem,
            keys,
            Some(&keys.tls.identity_pem()),
        )
    }

    /// As [`new`](Self::new) with a chosen TLS identity (PEM cert + key), or none.
    pub fn with_tls(
        base_url: &str,
        server_ca_pem: &str,
        keys: &ParticipantKeys,
        tls_identity_pem: Option<&str>,
    ) -> Result<Self, reqwest::Error> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(server_ca_pem.as_bytes())?);
        if let Some(id) = tls_identity_pem {
            b = b.identity(reqwest::Identity::from_pem(id.as_bytes())?);
        }
        Ok(Self {
            country: keys.country.clone(),
            base_url: base_url.trim_end_matches('/').to_string(),
            http: b.build()?,
            up_cert_pem: keys.up.cert_pem(),
            up_key_pem: keys.up.key_pem(),
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `POST /signerCertificate` (§6.1).
    pub async fn upload_certificate(&self, cms: &str) -> Result<Exchange, String> {
        self.send_to(reqwest::Method::POST, "/signerCertificate", cms)
            .await
    }

    /// `DELETE /signerCertificate`, or `POST /signerCertificate/delete` when
    /// `alternate` (§6.1).
    pub async fn delete_certificate(&self, cms: &str, alternate: bool) -> Result<Exchange, String> {
        if alternate {
            self.send_to(reqwest::Method::POST, "/signerCertificate/delete", cms)
                .await
        } else {
            self.send_to(reqwest::Method::DELETE, "/signerCertificate", cms)
                .await
        }
    }

    /// `GET /trustList/certificate` (§8).
    pub async fn download_certificates(&self) -> Result<Exchange, String> {
        let r = self
            .http
            .get(format!("{}/trustList/certificate", self.base_url))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        exchange(r).await
    }

    async fn send(&self, method: reqwest::Method, cms: &str) -> Result<Exchange, String> {
        self.send_to(method, "/trust/reference", cms).await
    }

    async fn send_to(
        &self,
        method: reqwest::Method,
        path: &str,
        cms: &str,
    ) -> Result<Exchange, String> {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header("Content-Type", "application/cms")
            .header("Content-Transfer-Encoding", "base64")
            .body(cms.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        exchange(r).await
    }
}

async fn exchange(r: reqwest::Response) -> Result<Exchange, String> {
    let status = r.status().as_u16();
    let body = r.bytes().await.map_err(|e| e.to_string())?.to_vec();
    Ok(Exchange { status, body })
}

impl Participant for OpensslParticipant {
    fn country(&self) -> String {
        self.country.clone()
    }
    async fn sign(&self, payload: &[u8]) -> Result<String, String> {
        let der = openssl::sign(
            payload,
            &self.up_cert_pem,
            &self.up_key_pem,
            &Default::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(crate::model::b64(&der))
    }
    async fn upload_reference(&self, cms: &str) -> Result<Exchange, String> {
        self.send(reqwest::Method::POST, cms).await
    }
    async fn delete_reference(&self, cms: &str) -> Result<Exchange, String> {
        self.send(reqwest::Method::DELETE, cms).await
    }
    async fn download_references(&self, query: &str) -> Result<Exchange, String> {
        let url = if query.is_empty() {
            format!("{}/trustList/references", self.base_url)
        } else {
            format!("{}/trustList/references?{query}", self.base_url)
        };
        let r = self.http.get(url).send().await.map_err(|e| e.to_string())?;
        exchange(r).await
    }
}
