//! Every CMS operation of the double goes through the `openssl` command: the
//! acceptance asks for a CMS implementation independent of the mediator's own
//! (`crates/trust-network`), and the contract (§4) names
//! `openssl cms -sign -nodetach -binary -outform DER` as the reference producer.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum OpensslError {
    #[error("could not run openssl: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("openssl {cmd} failed: {stderr}")]
    Failed { cmd: String, stderr: String },
}

async fn run(args: &[&str], dir: &Path, stdin: Option<&[u8]>) -> Result<Vec<u8>, OpensslError> {
    let mut child = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data).await?;
        drop(pipe);
    }
    let out = child.wait_with_output().await?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(OpensslError::Failed {
            cmd: args.iter().take(2).cloned().collect::<Vec<_>>().join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn tmp() -> Result<tempfile::TempDir, OpensslError> {
    Ok(tempfile::Builder::new().prefix("gwdouble").tempdir()?)
}

/// Options of [`sign`], mirroring `openssl cms -sign` switches.
#[derive(Debug, Clone, Default)]
pub struct SignOptions {
    /// Content detached (onboarding rows, §2) instead of encapsulated (uploads, §4).
    pub detached: bool,
    /// Extra certificates to put into `certificates` (tests of the
    /// "exactly one certificate" rule).
    pub extra_certs_pem: Vec<String>,
    /// Leave out the signer certificate (`-nocerts`).
    pub no_certs: bool,
    /// Omit signed attributes (`-noattr`), hence no signing-time.
    pub no_attributes: bool,
}

/// `openssl cms -sign -binary -outform DER -md sha256` over `payload`; returns DER.
pub async fn sign(
    payload: &[u8],
    cert_pem: &str,
    key_pem: &str,
    opts: &SignOptions,
) -> Result<Vec<u8>, OpensslError> {
    let dir = tmp()?;
    let p = dir.path();
    std::fs::write(p.join("signer.pem"), cert_pem)?;
    std::fs::write(p.join("signer.key"), key_pem)?;
    std::fs::write(p.join("payload.bin"), payload)?;
    let mut args = vec![
        "cms",
        "-sign",
        "-binary",
        "-outform",
        "DER",
        "-md",
        "sha256",
        "-signer",
        "signer.pem",
        "-inkey",
        "signer.key",
        "-in",
        "payload.bin",
        "-out",
        "out.der",
    ];
    if !opts.detached {
        args.push("-nodetach");
    }
    if opts.no_certs {
        args.push("-nocerts");
    }
    if opts.no_attributes {
        args.push("-noattr");
    }
    if !opts.extra_certs_pem.is_empty() {
        std::fs::write(p.join("extra.pem"), opts.extra_certs_pem.concat())?;
        args.extend(["-certfile", "extra.pem"]);
    }
    run(&args, p, None).await?;
    Ok(std::fs::read(p.join("out.der"))?)
}

/// Adds a SignerInfo (`openssl cms -resign`) without embedding the new signer's
/// certificate, for the "exactly one signer" rule.
pub async fn add_signer(
    cms_der: &[u8],
    cert_pem: &str,
    key_pem: &str,
) -> Result<Vec<u8>, OpensslError> {
    let dir = tmp()?;
    let p = dir.path();
    std::fs::write(p.join("in.der"), cms_der)?;
    std::fs::write(p.join("signer.pem"), cert_pem)?;
    std::fs::write(p.join("signer.key"), key_pem)?;
    run(
        &[
            "cms",
            "-resign",
            "-binary",
            "-inform",
            "DER",
            "-outform",
            "DER",
            "-in",
            "in.der",
            "-signer",
            "signer.pem",
            "-inkey",
            "signer.key",
            "-md",
            "sha256",
            "-nodetach",
            "-nocerts",
            "-out",
            "out.der",
        ],
        p,
        None,
    )
    .await?;
    Ok(std::fs::read(p.join("out.der"))?)
}

/// What `openssl cms -cmsout -print` tells about a message's structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Structure {
    pub signed_data: bool,
    pub content_type_data: bool,
    pub content_attached: bool,
    pub certificates: usize,
    pub signers: usize,
    /// The signing-time signed attribute as printed, e.g. `Nov 24 05:56:41 2026 GMT`.
    pub signing_time: Option<String>,
}

/// Parses a DER CMS with `openssl cms -cmsout -print`; `Err` = not parseable.
pub async fn inspect(cms_der: &[u8]) -> Result<Structure, OpensslError> {
    let dir = tmp()?;
    let p = dir.path();
    std::fs::write(p.join("in.der"), cms_der)?;
    let out = run(
        &[
            "cms", "-cmsout", "-print", "-inform", "DER", "-in", "in.der", "-noout",
        ],
        p,
        None,
    )
    .await?;
    Ok(parse_print(&String::from_utf8_lossy(&out)))
}

/// The printout nests by indentation; hex dumps of the payload start with an
/// offset (`0000 - `), so anchored whole-line matches cannot be fooled by payload
/// text.
fn parse_print(text: &str) -> Structure {
    let lines: Vec<&str> = text.lines().collect();
    let mut s = Structure {
        signed_data: false,
        content_type_data: false,
        content_attached: false,
        certificates: 0,
        signers: 0,
        signing_time: None,
    };
    let mut section = "";
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.starts_with("contentType: pkcs7-signedData") {
            s.signed_data = true;
        } else if t.starts_with("eContentType: pkcs7-data") {
            s.content_type_data = true;
        } else if t == "eContent:" {
            s.content_attached = true;
        } else if t == "certificates:" || t == "crls:" || t == "signerInfos:" {
            section = t;
        } else if section == "certificates:" && t == "d.certificate:" {
            s.certificates += 1;
        } else if section == "signerInfos:"
            && (t == "d.issuerAndSerialNumber:" || t.starts_with("d.subjectKeyIdentifier:"))
        {
            s.signers += 1;
        } else if section == "signerInfos:" && t.starts_with("object: signingTime") {
            s.signing_time = lines[i + 1..]
                .iter()
                .map(|l| l.trim())
                .find_map(|l| {
                    l.strip_prefix("UTCTIME:")
                        .or_else(|| l.strip_prefix("GENERALIZEDTIME:"))
                })
                .map(str::to_string);
        }
    }
    s
}

/// Verifies the signature of an attached CMS (no chain building, as the gateway
/// does: trust comes from the onboarding rows, not a PKI). Returns the content
/// and the embedded certificates (DER, in message order).
pub async fn verify_attached(cms_der: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>), OpensslError> {
    let dir = tmp()?;
    let p = dir.path();
    std::fs::write(p.join("in.der"), cms_der)?;
    run(
        &[
            "cms",
            "-verify",
            "-binary",
            "-noverify",
            "-inform",
            "DER",
            "-in",
            "in.der",
            "-out",
            "content.bin",
            "-certsout",
            "certs.pem",
        ],
        p,
        None,
    )
    .await?;
    let content = std::fs::read(p.join("content.bin"))?;
    let certs = pem_certificates(&std::fs::read_to_string(p.join("certs.pem"))?);
    Ok((content, certs))
}

/// Verifies a detached CMS over `content`, accepting only `signer_pem` as the
/// signer (`-nointern -certfile`), which is how an onboarding row is bound to the
/// trust anchor (§2).
pub async fn verify_detached_by(
    sig_der: &[u8],
    content: &[u8],
    signer_pem: &str,
) -> Result<(), OpensslError> {
    let dir = tmp()?;
    let p = dir.path();
    std::fs::write(p.join("sig.der"), sig_der)?;
    std::fs::write(p.join("content.bin"), content)?;
    std::fs::write(p.join("signer.pem"), signer_pem)?;
    run(
        &[
            "cms",
            "-verify",
            "-binary",
            "-noverify",
            "-nointern",
            "-certfile",
            "signer.pem",
            "-inform",
            "DER",
            "-in",
            "sig.der",
            "-content",
            "content.bin",
            "-out",
            "/dev/null",
        ],
        p,
        None,
    )
    .await?;
    Ok(())
}

/// The DER of every `CERTIFICATE` block in a PEM text.
pub fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    let mut out = Vec::new();
    let mut b64 = String::new();
    let mut inside = false;
    for line in pem.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            inside = true;
            b64.clear();
        } else if line == "-----END CERTIFICATE-----" {
            inside = false;
            if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&b64) {
                out.push(der);
            }
        } else if inside {
            b64.push_str(line);
        }
    }
    out
}

/// PEM of a DER certificate.
pub fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_parsing_ignores_payload_text() {
        let text = "CMS_ContentInfo: \n  contentType: pkcs7-signedData (1.2.840.113549.1.7.2)\n  d.signedData: \n    encapContentInfo: \n      eContentType: pkcs7-data (1.2.840.113549.1.7.1)\n      eContent: \n        0000 - 64 2e 63 65 72 74 69 66-69 63 61 74 65 3a   d.certificate:\n    certificates:\n      d.certificate: \n      d.certificate: \n    crls:\n      <ABSENT>\n    signerInfos:\n        d.issuerAndSerialNumber: \n        signedAttrs:\n            object: signingTime (1.2.840.113549.1.9.5)\n            set:\n              UTCTIME:Nov 24 05:56:41 2026 GMT\n";
        let s = parse_print(text);
        assert_eq!(
            s,
            Structure {
                signed_data: true,
                content_type_data: true,
                content_attached: true,
                certificates: 2,
                signers: 1,
                signing_time: Some("Nov 24 05:56:41 2026 GMT".into()),
            }
        );
    }
}
