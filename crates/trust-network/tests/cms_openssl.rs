//! Our CMS upload envelope, checked by an independent implementation: the OpenSSL
//! command line (`openssl cms -verify`), as the gateway double will.

use ddcc_cert::local::LocalSigner;
use std::path::Path;
use std::process::Command;
use trust_network::cms_sign::{sign_attached, to_body};

fn openssl(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line is part of the base system")
}

/// A TNP UP key and self-signed certificate, as the participant template makes them.
fn upload_identity(dir: &Path) -> (LocalSigner, Vec<u8>) {
    for args in [
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "up.key",
        ][..],
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", "up.key", "-outform", "DER", "-out", "up.p8",
        ],
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            "up.key",
            "-subj",
            "/C=XA/CN=NationXA_TNP_UP",
            "-days",
            "365",
            "-outform",
            "DER",
            "-out",
            "up.der",
        ],
    ] {
        let out = openssl(args, dir);
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let signer = LocalSigner::from_pkcs8(&std::fs::read(dir.join("up.p8")).unwrap()).unwrap();
    (signer, std::fs::read(dir.join("up.der")).unwrap())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn openssl_verifies_our_envelope_and_returns_the_payload() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, cert) = upload_identity(dir.path());
    let payload = br#"{"url":"https://moh.example/fhir/ValueSet/a","country":"XA"}"#;
    let der = sign_attached(payload, &cert, &signer, Some(now()))
        .await
        .unwrap();
    std::fs::write(dir.path().join("msg.der"), &der).unwrap();
    let out = openssl(
        &[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "msg.der",
            "-noverify",
            "-binary",
            "-out",
            "payload.out",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dir.path().join("payload.out")).unwrap(),
        payload
    );

    // Exactly one certificate and one signer, as the gateway insists.
    let out = openssl(
        &[
            "cms", "-cmsout", "-print", "-inform", "DER", "-in", "msg.der",
        ],
        dir.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("signerInfos:").count(), 1);
    assert_eq!(text.matches("d.certificate:").count(), 1, "{text}");

    let body = to_body(&der);
    assert!(
        !body.contains('\n') && !body.contains('\r'),
        "single-line base64"
    );
    assert_eq!(body.len() % 4, 0, "padded base64");
}

#[tokio::test]
async fn openssl_rejects_a_tampered_payload() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, cert) = upload_identity(dir.path());
    let payload = b"{\"uuid\":\"0f6c4b0e-8a31-4c57-9d7c-8f6b1f2f3a4b\"}";
    let mut der = sign_attached(payload, &cert, &signer, None).await.unwrap();
    let at = der
        .windows(payload.len())
        .position(|w| w == payload)
        .unwrap();
    der[at + 3] ^= 0x01;
    std::fs::write(dir.path().join("msg.der"), &der).unwrap();
    let out = openssl(
        &[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "msg.der",
            "-noverify",
            "-binary",
            "-out",
            "payload.out",
        ],
        dir.path(),
    );
    assert!(!out.status.success(), "a tampered message must not verify");
}
