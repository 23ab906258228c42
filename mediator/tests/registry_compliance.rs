//! The DDCC compliance framework's 17 scenarios against the built binary
//! (`ddcc-mediator serve` on a free port, embedded store in a temp dir; PostgreSQL too
//! when `DDCC_TEST_DATABASE_URL` is set), run by the harness in
//! `tests/compliance/run_compliance.py`. Needs `../shared` (skips without it) and python
//! with `jsonschema` (`tests/tools/setup-python.sh`; an oracle: skips unless
//! `DDCC_REQUIRE_ORACLES` is set).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn shared() -> Option<PathBuf> {
    let p = std::env::var_os("DDCC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"));
    if p.is_dir() {
        Some(p)
    } else {
        println!("SKIP: {} is absent", p.display());
        None
    }
}

/// The venv `tests/tools/setup-python.sh` makes, else the system python3.
fn python() -> PathBuf {
    let venv = root().join("tests/.venv/bin/python");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

fn python_with_jsonschema() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import jsonschema"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = "python3 with the jsonschema package is needed for the compliance harness \
                   (tests/tools/setup-python.sh)";
        assert!(
            std::env::var_os("DDCC_REQUIRE_ORACLES").is_none(),
            "{msg}, and DDCC_REQUIRE_ORACLES is set"
        );
        println!("SKIP: {msg}");
    }
    ok
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Kills the server however the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary in a fresh data dir with `env` on a free port; returns it and
/// the port once it listens.
fn spawn_binary(env: &[(&str, String)]) -> (Server, u16) {
    let port = free_port();
    let data = std::env::temp_dir().join(format!(
        "ddcc-compliance-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&data).expect("data dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ddcc-mediator"));
    cmd.arg("serve")
        .current_dir(&data)
        .env_clear()
        .env("SERVER_PORT", port.to_string())
        .env("DDCC_ADMIN_ADDR", "127.0.0.1:0")
        .env("DDCC_DATA_DIR", &data)
        .env("DDCC_PROFILES_DIR", root().join("fhir-profiles"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Server(cmd.spawn().expect("binary starts"));
    let addr = format!("127.0.0.1:{port}");
    let up = (0..500).any(|_| {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(40));
        false
    });
    assert!(up, "the service never listened on {addr}");
    (server, port)
}

/// Starts the binary (with `DATABASE_URL` when given) and returns the harness output.
fn run_against_binary(shared: &std::path::Path, database_url: Option<&str>) -> String {
    let env: Vec<(&str, String)> = database_url
        .map(|u| ("DATABASE_URL", u.to_string()))
        .into_iter()
        .collect();
    let (_server, port) = spawn_binary(&env);
    harness(shared, port)
}

fn harness(shared: &std::path::Path, port: u16) -> String {
    let out = Command::new(python())
        .arg(root().join("tests/compliance/run_compliance.py"))
        .arg("--framework")
        .arg(shared.join("conformance/compliance-testing-framework"))
        .arg("--base")
        .arg(format!("http://127.0.0.1:{port}/fhir"))
        .output()
        .expect("python runs");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn compliance_framework_passes_against_the_binary() {
    let Some(shared) = shared() else {
        return;
    };
    if !python_with_jsonschema() {
        return;
    }
    let stdout = run_against_binary(&shared, None);
    println!("{stdout}");
    assert_eq!(
        stdout.lines().last().unwrap_or(""),
        "17 passed, 0 failed",
        "{stdout}"
    );
}

/// The same against PostgreSQL: `export DDCC_TEST_DATABASE_URL=$(tests/tools/postgres.sh start)`.
#[test]
fn compliance_framework_passes_with_postgres() {
    let Some(shared) = shared() else {
        return;
    };
    let Some(url) = std::env::var("DDCC_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        let msg = "DDCC_TEST_DATABASE_URL is not set (tests/tools/postgres.sh start)";
        assert!(
            std::env::var_os("DDCC_REQUIRE_ORACLES").is_none(),
            "{msg}, and DDCC_REQUIRE_ORACLES is set"
        );
        println!("SKIP: {msg}");
        return;
    };
    if !python_with_jsonschema() {
        return;
    }
    let stdout = run_against_binary(&shared, Some(&url));
    println!("{stdout}");
    assert_eq!(
        stdout.lines().last().unwrap_or(""),
        "17 passed, 0 failed",
        "{stdout}"
    );
}

/// The same against an instance whose registry lives on a second instance in store
/// mode (`FHIR_SERVER`): clients see the same answers.
#[test]
fn compliance_framework_passes_through_a_fhir_server() {
    let Some(shared) = shared() else {
        return;
    };
    if !python_with_jsonschema() {
        return;
    }
    let (_store, store_port) = spawn_binary(&[("DDCC_MODE", "store".to_string())]);
    let (_front, port) =
        spawn_binary(&[("FHIR_SERVER", format!("http://127.0.0.1:{store_port}/fhir"))]);
    let stdout = harness(&shared, port);
    println!("{stdout}");
    assert_eq!(
        stdout.lines().last().unwrap_or(""),
        "17 passed, 0 failed",
        "{stdout}"
    );
}
