//! The operations behind `ddcc-mediator gateway …` and `/admin/gateway/…`, so the
//! command line and the admin API do exactly the same thing.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{Gateway, GatewayError, GatewaySettings};
use crate::artefacts::Artefacts;
use crate::config::Config;

/// The client for `config` and the process environment, opening the same store the
/// service uses. `Ok(None)` when `DDCC_GATEWAY_URL` is unset.
pub async fn client_from_env(
    config: &Config,
) -> Result<Option<(Arc<Gateway>, GatewaySettings)>, GatewayError> {
    let env = |k: &str| std::env::var(k).ok();
    let Some(settings) = GatewaySettings::from_env(env)? else {
        return Ok(None);
    };
    let registry = crate::services::open_store(config, &env)
        .await
        .map_err(|e| GatewayError::Config(e.to_string()))?;
    let g = Gateway::from_settings(
        &settings,
        registry.store.clone(),
        &config.ddcc.issuer_country,
    )?;
    Ok(Some((Arc::new(g), settings)))
}

/// Our publisher identity: `DDCC_ISSUER_COUNTRY`, domain `DDCC`, the TLS certificate
/// of the serving endpoint (`DDCC_TLS_CERT`).
pub fn publisher(config: &Config) -> Result<trust_network::reference::Publisher, GatewayError> {
    crate::artefacts::publisher_from_env(config, |k| std::env::var(k).ok())
        .map_err(|e| GatewayError::Config(e.to_string()))
}

/// Publish: queue the plan, then deliver what is due once.
pub async fn publish(
    g: &Gateway,
    publisher: &trust_network::reference::Publisher,
    artefacts: &Artefacts,
) -> Result<Value, GatewayError> {
    let prefix = format!("{}/", artefacts.public_base().trim_end_matches('/'));
    let summary = g
        .publish(&artefacts.published(), publisher, &prefix)
        .await?;
    let delivery = g.deliver_due().await?;
    Ok(json!({ "plan": summary, "delivery": delivery }))
}

/// Queue our DSC and deliver what is due once.
pub async fn upload_dsc(g: &Gateway, dsc_der: &[u8]) -> Result<Value, GatewayError> {
    let id = g.queue_dsc(dsc_der).await?;
    let delivery = g.deliver_due().await?;
    Ok(json!({ "outboxId": id, "delivery": delivery }))
}

/// Sync the trust list (`delta`: DSCs only).
pub async fn sync(g: &Gateway, delta: bool) -> Result<Value, GatewayError> {
    let report = if delta {
        g.sync_delta().await?
    } else {
        g.sync_full().await?
    };
    Ok(serde_json::to_value(report).unwrap_or(Value::Null))
}
