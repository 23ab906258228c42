//! A test double of the OpenHIM core: the REST API side (auth, mediators,
//! heartbeat, channels, fault injection) and the HTTP router side (channel
//! matching, client auth, forwarding, mediator-envelope handling, transaction
//! storage). Every rule comes from `shared/contracts/openhim.md` (sections cited
//! in comments), not from the mediator's code: it exists to test the mediator.
//!
//! Both sides listen on random loopback ports over plain HTTP. Start it inside an
//! actix/tokio runtime (`#[actix_web::test]`).

pub mod api;
pub mod model;
pub mod router;
pub mod tls;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use serde_json::Value;

pub use model::{Client, Fault, Mediator, RecordedRequest, User};

/// Default root user of a fresh core (§2.5).
pub const ROOT_EMAIL: &str = "root@openhim.org";
pub const ROOT_PASSWORD: &str = "openhim-password";

#[derive(Debug, Clone)]
pub struct Options {
    /// `api.authWindowSeconds` (§2.3): default 10.
    pub auth_window_secs: u64,
    /// `router.timeout` (§1): default 60 s.
    pub router_timeout: Duration,
    /// `"basic"` in `api.authenticationTypes` (§2.1): on by default since 7.1;
    /// off models a 5.1–7.0 core left on its `["token"]` default.
    pub basic_auth: bool,
    /// Serve the API over HTTPS with a self-signed certificate, as a core does
    /// by default (§1). Plain HTTP otherwise.
    pub api_tls: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            auth_window_secs: 10,
            router_timeout: Duration::from_secs(60),
            api_tls: false,
            basic_auth: true,
        }
    }
}

#[derive(Debug, Default)]
pub struct Core {
    pub users: Vec<User>,
    pub clients: Vec<Client>,
    pub mediators: BTreeMap<String, Mediator>,
    pub channels: Vec<Value>,
    pub transactions: Vec<Value>,
    pub requests: Vec<RecordedRequest>,
    pub faults: Vec<Fault>,
    pub started_ms: u64,
}

pub type Shared = Arc<Mutex<Core>>;

pub fn lock(shared: &Shared) -> MutexGuard<'_, Core> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct OpenHimDouble {
    core: Shared,
    api_url: String,
    router_url: String,
    handles: Vec<actix_web::dev::ServerHandle>,
    tls_task: Option<actix_web::rt::task::JoinHandle<()>>,
    api_cert_pem: Option<String>,
}

fn listener() -> std::io::Result<(TcpListener, String)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", l.local_addr()?);
    Ok((l, url))
}

impl OpenHimDouble {
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> std::io::Result<Self> {
        let core: Shared = Arc::new(Mutex::new(Core {
            started_ms: model::now_ms(),
            ..Core::default()
        }));
        let double = Self {
            core: core.clone(),
            api_url: String::new(),
            router_url: String::new(),
            handles: Vec::new(),
            tls_task: None,
            api_cert_pem: None,
        };
        // The root user has both passports, like a fresh 8.x core (§2.3).
        double.add_user(ROOT_EMAIL, ROOT_PASSWORD, &["admin"], true);

        let (api_l, api_url) = listener()?;
        let (router_l, router_url) = listener()?;
        let api_ctx = web::Data::new(api::ApiCtx {
            core: core.clone(),
            opts: opts.clone(),
        });
        let api = HttpServer::new(move || {
            App::new()
                .app_data(api_ctx.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .default_service(web::to(api::handle))
        })
        .workers(1)
        .disable_signals()
        .listen(api_l)?
        .run();
        let http = reqwest::Client::builder()
            .timeout(opts.router_timeout)
            .build()
            .map_err(std::io::Error::other)?;
        let router_ctx = web::Data::new(router::RouterCtx {
            core: core.clone(),
            http,
        });
        let router = HttpServer::new(move || {
            App::new()
                .app_data(router_ctx.clone())
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .default_service(web::to(router::handle))
        })
        .workers(1)
        .disable_signals()
        .listen(router_l)?
        .run();
        let handles = vec![api.handle(), router.handle()];
        actix_web::rt::spawn(api);
        actix_web::rt::spawn(router);
        let (api_url, tls_task, api_cert_pem) = if opts.api_tls {
            let (acceptor, pem) = tls::self_signed()?;
            let front = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let port = front.local_addr()?.port();
            let backend = api_url.trim_start_matches("http://").to_string();
            let task = actix_web::rt::spawn(tls::serve(front, acceptor, backend));
            (format!("https://localhost:{port}"), Some(task), Some(pem))
        } else {
            (api_url, None, None)
        };
        Ok(Self {
            api_url,
            router_url,
            handles,
            tls_task,
            api_cert_pem,
            ..double
        })
    }

    pub fn api_url(&self) -> &str {
        &self.api_url
    }
    /// The self-signed API certificate (PEM) when `api_tls` is on.
    pub fn api_cert_pem(&self) -> Option<&str> {
        self.api_cert_pem.as_deref()
    }
    pub fn router_url(&self) -> &str {
        &self.router_url
    }
    pub fn core(&self) -> Shared {
        self.core.clone()
    }

    /// `token_passport: false` models an 8.x user created with only a local
    /// password: `GET /authenticate/<email>` then answers 404 (§2.3).
    pub fn add_user(&self, email: &str, password: &str, groups: &[&str], token_passport: bool) {
        let salt = model::random_hex(16);
        let user = User {
            email: email.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            local_password: Some(password.into()),
            token_hash: token_passport.then(|| model::sha512_hex(&[&salt, password])),
            token_salt: token_passport.then_some(salt),
        };
        let mut core = lock(&self.core);
        core.users.retain(|u| u.email != email);
        core.users.push(user);
    }

    pub fn add_client(&self, client_id: &str, password: &str, roles: &[&str]) {
        let mut core = lock(&self.core);
        core.clients.retain(|c| c.client_id != client_id);
        core.clients.push(Client::new(client_id, password, roles));
    }

    /// The next `n` API requests whose path contains `path_contains` get
    /// `status` with an empty body, before authentication.
    pub fn fail_next(&self, n: usize, status: u16, path_contains: &str) {
        lock(&self.core).faults.push(Fault {
            remaining: n,
            status,
            path_contains: path_contains.into(),
        });
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.core).requests.clone()
    }

    /// Requests whose method and path match, in arrival order.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }

    /// The stored document, unmasked, with the core-only fields.
    pub fn mediator(&self, urn: &str) -> Option<Value> {
        lock(&self.core)
            .mediators
            .get(urn)
            .map(|m| m.to_json(false))
    }

    /// Same rules as `PUT /mediators/:urn/config` (§4).
    pub fn set_mediator_config(&self, urn: &str, config: Value) -> Result<(), String> {
        let mut core = lock(&self.core);
        let m = core
            .mediators
            .get_mut(urn)
            .ok_or_else(|| "No mediator found for this urn.".to_string())?;
        model::put_config(m, config)
    }

    /// Same as `DELETE /mediators/:urn` (§4): channels stay.
    pub fn delete_mediator(&self, urn: &str) -> bool {
        lock(&self.core).mediators.remove(urn).is_some()
    }

    /// Same as `POST /mediators/:urn/channels` (§4).
    pub fn install_channels(&self, urn: &str, names: &[&str]) -> Result<usize, String> {
        let body = Value::Array(names.iter().map(|n| Value::String(n.to_string())).collect());
        api::install_channels(&mut lock(&self.core), urn, &body).map_err(|(_, m)| m)
    }

    /// Adds a channel object directly (as the channel API or a metadata import would).
    pub fn add_channel(&self, channel: Value) {
        lock(&self.core).channels.push(channel);
    }

    pub fn channels(&self) -> Vec<Value> {
        lock(&self.core).channels.clone()
    }

    pub fn transactions(&self) -> Vec<Value> {
        lock(&self.core).transactions.clone()
    }

    pub async fn stop(self) {
        if let Some(t) = self.tls_task {
            t.abort();
        }
        for h in self.handles {
            h.stop(false).await;
        }
    }
}
