//! API side of the double (contract §2 auth, §3 registration, §4 endpoints,
//! §5 heartbeat), dispatched by hand so urns with colons stay raw in paths.

use std::time::{Duration, Instant, SystemTime};

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::model::{self, HeartbeatReply, RecordedRequest, Registration};
use crate::{lock, Core, Options, Shared};

pub struct ApiCtx {
    pub core: Shared,
    pub opts: Options,
}

/// What a handler produced; `body: None` means "the handler set no body".
struct Reply {
    status: u16,
    body: Option<(String, &'static str)>,
}

impl Reply {
    fn empty(status: u16) -> Self {
        Self { status, body: None }
    }
    fn text(status: u16, text: impl Into<String>) -> Self {
        Self {
            status,
            body: Some((text.into(), "text/plain")),
        }
    }
    fn json(status: u16, v: &Value) -> Self {
        Self {
            status,
            body: Some((v.to_string(), "application/json")),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum AuthKind {
    None,
    Basic,
    Token,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            if let Some(Ok(b)) = s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// §2.2/§2.3: returns the authenticated user's email or a 401.
fn authenticate(
    core: &Core,
    req: &HttpRequest,
    opts: &Options,
) -> Result<(String, AuthKind), Reply> {
    let has_token_headers = req
        .headers()
        .keys()
        .any(|k| k.as_str().starts_with("auth-"));
    if has_token_headers {
        // §2.3: any auth-* header makes it a token request, even with Basic present.
        let (Some(user), Some(ts), Some(salt), Some(token)) = (
            header(req, "auth-username"),
            header(req, "auth-ts"),
            header(req, "auth-salt"),
            header(req, "auth-token"),
        ) else {
            return Err(Reply::empty(401));
        };
        let Some(u) = core.users.iter().find(|u| u.email == user) else {
            return Err(Reply::empty(401));
        };
        let Some(hash) = &u.token_hash else {
            return Err(Reply::empty(401));
        };
        let Ok(t) = humantime::parse_rfc3339(ts) else {
            return Err(Reply::empty(401));
        };
        let now = SystemTime::now();
        let skew = now
            .duration_since(t)
            .or_else(|_| t.duration_since(now))
            .unwrap_or(Duration::MAX);
        if skew > Duration::from_secs(opts.auth_window_secs) {
            return Err(Reply::empty(401));
        }
        if model::sha512_hex(&[hash, salt, ts]) != token {
            return Err(Reply::empty(401));
        }
        return Ok((u.email.clone(), AuthKind::Token));
    }
    if !opts.basic_auth {
        return Err(Reply::empty(401));
    }
    let Some(creds) = header(req, "authorization")
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return Err(Reply::empty(401));
    };
    let Some((email, password)) = creds.split_once(':') else {
        return Err(Reply::empty(401));
    };
    // 8.x: exact email match (§2.2).
    match core.users.iter().find(|u| u.email == email) {
        Some(u) if u.password_ok(password) => Ok((u.email.clone(), AuthKind::Basic)),
        _ => Err(Reply::empty(401)),
    }
}

pub async fn handle(req: HttpRequest, body: web::Bytes, ctx: web::Data<ApiCtx>) -> HttpResponse {
    let method = req.method().as_str().to_string();
    let path = req.path().to_string();
    let mut core = lock(&ctx.core);

    // Fault injection comes first, like a core that is down or misconfigured.
    let fault = core
        .faults
        .iter_mut()
        .find(|f| f.remaining > 0 && path.contains(&f.path_contains));
    let (reply, auth) = if let Some(f) = fault {
        f.remaining -= 1;
        (Reply::empty(f.status), AuthKind::None)
    } else {
        route(&mut core, &req, &method, &path, &body, &ctx.opts)
    };
    core.requests.push(RecordedRequest {
        method,
        path,
        at: Instant::now(),
        status: reply.status,
        auth: match auth {
            AuthKind::None => "none",
            AuthKind::Basic => "basic",
            AuthKind::Token => "token",
        },
    });
    drop(core);

    let status = actix_web::http::StatusCode::from_u16(reply.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = HttpResponse::build(status);
    match reply.body {
        Some((text, ct)) => b.content_type(ct).body(text),
        // §2.2 [observed]: on 8.x a basic-auth request whose handler sets no body
        // comes back with this text, whatever the status (except 401).
        None if auth == AuthKind::Basic => b
            .content_type("text/plain")
            .body("User Authenticated Successfully"),
        None => b.finish(),
    }
}

fn route(
    core: &mut Core,
    req: &HttpRequest,
    method: &str,
    path: &str,
    body: &[u8],
    opts: &Options,
) -> (Reply, AuthKind) {
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();

    // Public paths (§1).
    match (method, segs.as_slice()) {
        ("GET", ["heartbeat"]) => {
            let now = model::now_ms();
            let mediators: serde_json::Map<String, Value> = core
                .mediators
                .iter()
                .map(|(urn, m)| {
                    // Up only if the last heartbeat is ≤ 60 s old (§4).
                    let up = m
                        .last_heartbeat_us
                        .filter(|t| now.saturating_sub(*t / 1000) <= 60_000)
                        .and(m.uptime);
                    (urn.clone(), up.map_or(Value::Null, |u| json!(u)))
                })
                .collect();
            let body = json!({
                "master": (now.saturating_sub(core.started_ms)) / 1000,
                "mediators": mediators,
                "now": now,
            });
            return (Reply::json(200, &body), AuthKind::None);
        }
        ("GET", ["authenticate", email]) => {
            // §2.3 step 1: 404 when unknown or without a token passport.
            let reply = match core.users.iter().find(|u| &u.email == email) {
                Some(u) if u.token_salt.is_some() => {
                    Reply::json(200, &json!({"salt": u.token_salt, "ts": model::iso_now()}))
                }
                _ => Reply::empty(404),
            };
            return (reply, AuthKind::None);
        }
        _ => {}
    }

    let (email, kind) = match authenticate(core, req, opts) {
        Ok(x) => x,
        Err(r) => return (r, AuthKind::None),
    };
    // §2.5: every /mediators* endpoint needs group admin.
    let admin = core.users.iter().any(|u| u.email == email && u.is_admin());
    if !admin {
        return (Reply::empty(403), kind);
    }
    let json_body = || serde_json::from_slice::<Value>(body).ok();

    let reply = match (method, segs.as_slice()) {
        ("POST", ["mediators"]) => {
            let Some(doc) = json_body() else {
                return (
                    Reply::text(400, "Could not add Mediator via the API: invalid JSON"),
                    kind,
                );
            };
            match model::register(&mut core.mediators, &doc) {
                Ok(Registration::Created | Registration::Updated | Registration::Unchanged) => {
                    Reply::empty(201)
                }
                Err(msg) => Reply::text(400, msg),
            }
        }
        ("GET", ["mediators"]) => {
            let list: Vec<Value> = core.mediators.values().map(|m| m.to_json(false)).collect();
            Reply::json(200, &Value::Array(list))
        }
        ("GET", ["mediators", urn]) => match core.mediators.get(*urn) {
            Some(m) => Reply::json(200, &m.to_json(true)),
            None => Reply::empty(404),
        },
        ("DELETE", ["mediators", urn]) => {
            if core.mediators.remove(*urn).is_some() {
                Reply::empty(200)
            } else {
                Reply::empty(404)
            }
        }
        ("PUT", ["mediators", urn, "config"]) => match core.mediators.get_mut(*urn) {
            None => Reply::text(404, "No mediator found for this urn."),
            Some(m) => match json_body() {
                None => Reply::text(400, "config must be JSON"),
                Some(cfg) => match model::put_config(m, cfg) {
                    Ok(()) => Reply::empty(200),
                    Err(e) => Reply::text(400, e),
                },
            },
        },
        ("POST", ["mediators", urn, "channels"]) => {
            let names = json_body().unwrap_or(Value::Array(vec![]));
            match install_channels(core, urn, &names) {
                Ok(_) => Reply::empty(201),
                Err((status, msg)) => Reply::text(status, msg),
            }
        }
        ("POST", ["mediators", urn, "heartbeat"]) => {
            let hb = json_body().unwrap_or(Value::Null);
            match core.mediators.get_mut(*urn) {
                None => Reply::empty(404),
                Some(m) => match hb.get("uptime").and_then(Value::as_f64) {
                    None => Reply::empty(400),
                    Some(uptime) => {
                        // Only the literal `true` asks for config (§5).
                        let want = hb.get("config") == Some(&Value::Bool(true));
                        match model::heartbeat(m, uptime, want, model::now_us()) {
                            HeartbeatReply::Config(cfg) => Reply::json(200, &cfg),
                            HeartbeatReply::Ok => Reply::text(200, "OK"),
                            HeartbeatReply::Empty => Reply::text(200, ""),
                        }
                    }
                },
            }
        }
        _ => Reply::empty(404),
    };
    (reply, kind)
}

/// §4 `POST /mediators/:urn/channels`: `[]` installs all default channels,
/// names install those; saved as given (no primary-route check).
pub fn install_channels(core: &mut Core, urn: &str, names: &Value) -> Result<usize, (u16, String)> {
    let Some(m) = core.mediators.get(urn) else {
        return Err((404, "No mediator found for this urn.".into()));
    };
    let defaults: Vec<Value> = m
        .doc
        .get("defaultChannelConfig")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let wanted: Vec<&str> = names
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let selected: Vec<Value> = if wanted.is_empty() {
        defaults
    } else {
        let mut out = Vec::new();
        for name in wanted {
            match defaults
                .iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
            {
                Some(c) => out.push(c.clone()),
                None => return Err((400, format!("Could not find default channel {name}"))),
            }
        }
        out
    };
    for c in &selected {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        // Unique index on channel name: a clash fails with 500 (§4).
        if core
            .channels
            .iter()
            .any(|x| x.get("name").and_then(Value::as_str) == Some(name))
        {
            return Err((500, format!("duplicate key: channel {name}")));
        }
    }
    let n = selected.len();
    core.channels.extend(selected);
    Ok(n)
}
