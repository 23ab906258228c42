//! Runs the gateway double standalone, e.g. for the behave acceptance suite
//! (contract §12.2) or manual tries with curl.
//!
//! `gateway-double <out-dir> [port]` onboards test countries XA and XB (TLS, UP,
//! SCA, domain DCC), generates XC without onboarding it, and writes
//! `<out-dir>/certificates/<alpha-3>/DCC/{TLS,UP,SCA}.{pem,key}` (the suite's
//! layout), `server-ca.pem` and `trust-anchor.pem`. Runs until Ctrl-C.

use std::path::PathBuf;

use gateway_double::{Config, GatewayDouble, ParticipantKeys};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: gateway-double <out-dir> [port]")?,
    );
    let port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(0);
    let double = GatewayDouble::start(Config {
        port,
        ..Config::default()
    })
    .await?;
    for (alpha2, alpha3, onboard) in [
        ("XA", "XXA", true),
        ("XB", "XXB", true),
        ("XC", "XXC", false),
    ] {
        let keys = ParticipantKeys::generate(alpha2)?;
        if onboard {
            double.onboard_participant(&keys).await?;
        }
        let dir = out.join("certificates").join(alpha3).join("DCC");
        std::fs::create_dir_all(&dir)?;
        for (name, c) in [("TLS", &keys.tls), ("UP", &keys.up), ("SCA", &keys.sca)] {
            std::fs::write(dir.join(format!("{name}.pem")), c.cert_pem())?;
            std::fs::write(dir.join(format!("{name}.key")), c.key_pem())?;
        }
    }
    std::fs::write(out.join("server-ca.pem"), double.server_ca_pem())?;
    std::fs::write(out.join("trust-anchor.pem"), double.trust_anchor_pem())?;
    println!("gateway double listening at {}", double.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
