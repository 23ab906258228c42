//! Router side of the double: §6 (channel match, client auth, authorisation,
//! the forwarded request) and §7 (mediator envelope handling, transaction
//! storage).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::model;
use crate::{lock, Shared};

pub struct RouterCtx {
    pub core: Shared,
    pub http: reqwest::Client,
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// §6.1: enabled channels, those with a priority first (ascending), then the rest;
/// the first whose unanchored pattern matches the path (no query) and whose
/// `methods` lists the method wins. Rust's `regex` stands in for JS RegExp; the
/// patterns used here need nothing JS-specific.
pub fn match_channel(
    channels: &[Value],
    path: &str,
    method: &str,
    content_type: Option<&str>,
) -> Option<Value> {
    let mut ordered: Vec<&Value> = channels
        .iter()
        .filter(|c| s(c, "status").is_none_or(|st| st == "enabled"))
        .collect();
    ordered.sort_by_key(|c| {
        c.get("priority")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX)
    });
    ordered
        .into_iter()
        .find(|c| {
            let Some(pattern) = s(c, "urlPattern") else {
                return false;
            };
            let Ok(re) = regex::Regex::new(pattern) else {
                return false;
            };
            if !re.is_match(path) {
                return false;
            }
            // Since 7.0.1 an empty or missing `methods` matches nothing.
            let methods_ok = c
                .get("methods")
                .and_then(Value::as_array)
                .is_some_and(|ms| ms.iter().any(|m| m.as_str() == Some(method)));
            if !methods_ok {
                return false;
            }
            match c.get("matchContentTypes").and_then(Value::as_array) {
                Some(types) if !types.is_empty() => content_type.is_some_and(|ct| {
                    types
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|t| ct.starts_with(t))
                }),
                _ => true,
            }
        })
        .cloned()
}

/// §6.4 path: `route.path`, else `pathTransform` (`s/from/to[/g]`), else unchanged.
pub fn route_path(route: &Value, path: &str) -> String {
    if let Some(p) = s(route, "path").filter(|p| !p.is_empty()) {
        return p.to_string();
    }
    if let Some(t) = s(route, "pathTransform") {
        let parts: Vec<&str> = t.split('/').collect();
        if parts.len() >= 3 && parts[0] == "s" {
            let global = parts.get(3) == Some(&"g");
            if let Ok(re) = regex::Regex::new(parts[1]) {
                return if global {
                    re.replace_all(path, parts[2]).into_owned()
                } else {
                    re.replace(path, parts[2]).into_owned()
                };
            }
        }
    }
    path.to_string()
}

fn object_id() -> String {
    model::random_hex(12)
}

fn headers_json(req: &HttpRequest) -> Map<String, Value> {
    req.headers()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_string(),
                Value::String(v.to_str().ok()?.to_string()),
            ))
        })
        .collect()
}

fn plain(status: u16, text: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("text/plain")
        .body(text.to_string())
}

pub async fn handle(req: HttpRequest, body: web::Bytes, ctx: web::Data<RouterCtx>) -> HttpResponse {
    let method = req.method().as_str().to_string();
    let path = req.path().to_string();
    let query = req.query_string().to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let request_ts = model::iso_now();

    let (channel, client) = {
        let core = lock(&ctx.core);
        let Some(channel) = match_channel(&core.channels, &path, &method, content_type.as_deref())
        else {
            return plain(404, "Not Found");
        };
        // §6.2 basic auth: look up by clientID, sha512(password + salt).
        let client = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|c| {
                let (id, pw) = c.split_once(':')?;
                core.clients
                    .iter()
                    .find(|cl| cl.client_id == id && cl.password_ok(pw))
                    .cloned()
            });
        (channel, client)
    };

    // §6.3 authorisation.
    let allow: Vec<&str> = channel
        .get("allow")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let whitelist_ok = channel
        .get("whitelist")
        .and_then(Value::as_array)
        .is_none_or(|w| w.is_empty() || w.iter().any(|ip| ip.as_str() == Some("127.0.0.1")));
    let public = s(&channel, "authType") == Some("public");
    let allowed = whitelist_ok
        && (public
            || client.as_ref().is_some_and(|c| {
                allow.contains(&c.client_id.as_str())
                    || c.roles.iter().any(|r| allow.contains(&r.as_str()))
            }));
    if !allowed {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Basic"))
            .finish();
    }

    let tx_id = object_id();
    let client_id = client.as_ref().map(|c| c.client_id.clone());
    let store_request_body = channel.get("requestBody") != Some(&Value::Bool(false));
    let store_response_body = channel.get("responseBody") != Some(&Value::Bool(false));
    let body_string = String::from_utf8_lossy(&body).into_owned();
    let mut tx = json!({
        "_id": tx_id,
        "clientID": client_id,
        "channelID": s(&channel, "name"),
        "request": {
            "path": path,
            "querystring": query,
            "method": method,
            "headers": headers_json(&req),
            "body": if store_request_body { Value::String(body_string.clone()) } else { Value::Null },
            "timestamp": request_ts,
        },
        "status": "Processing",
        "autoRetry": false,
    });

    let routes: Vec<Value> = channel
        .get("routes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(route) = routes
        .iter()
        .find(|r| {
            r.get("primary") == Some(&Value::Bool(true))
                && s(r, "status").is_none_or(|st| st == "enabled")
        })
        .cloned()
    else {
        tx["status"] = json!("Failed");
        lock(&ctx.core).transactions.push(tx);
        return plain(500, "An internal server error occurred");
    };

    // §6.4 the forwarded request.
    let host = s(&route, "host").unwrap_or("localhost").to_string();
    let port = match route.get("port") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(p)) => p.clone(),
        _ => "80".into(),
    };
    let scheme = if route.get("secured") == Some(&Value::Bool(true)) {
        "https"
    } else {
        "http"
    };
    let fwd_path = route_path(&route, &path);
    let url = if query.is_empty() {
        format!("{scheme}://{host}:{port}{fwd_path}")
    } else {
        format!("{scheme}://{host}:{port}{fwd_path}?{query}")
    };
    let forward_auth = route.get("forwardAuthHeader") == Some(&Value::Bool(true));
    let reqwest_method =
        reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut rb = ctx.http.request(reqwest_method, &url);
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    for (k, v) in req.headers() {
        let name = k.as_str();
        if matches!(
            name,
            "host" | "content-length" | "connection" | "transfer-encoding"
        ) || (name == "authorization" && !forward_auth)
            || name == "x-forwarded-for"
            || name == "x-forwarded-host"
        {
            continue;
        }
        rb = rb.header(name, v.as_bytes());
    }
    let xff = match req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(prev) => format!("{prev}, {peer}"),
        None => peer,
    };
    let xfh = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    rb = rb
        .header("X-OpenHIM-TransactionID", &tx_id)
        .header("X-Forwarded-For", xff)
        .header("X-Forwarded-Host", xfh);
    if let Some(id) = &client_id {
        rb = rb.header("X-OpenHIM-ClientID", id);
    }
    if let (Some(u), Some(p)) = (s(&route, "username"), s(&route, "password")) {
        rb = rb.basic_auth(u, Some(p));
    }
    // Body only for POST, PUT and PATCH.
    if matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
        rb = rb.body(body.to_vec());
    }
    let route_request_ts = model::iso_now();
    let result = rb.send().await;
    let resp = match result {
        Ok(r) => r,
        Err(_) => {
            // §6.4: timeout or connection error.
            tx["status"] = json!("Failed");
            tx["autoRetry"] = json!(true);
            lock(&ctx.core).transactions.push(tx);
            return plain(500, "An internal server error occurred");
        }
    };
    let route_status = resp.status().as_u16();
    let route_headers: Map<String, Value> = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_string(),
                Value::String(v.to_str().ok()?.to_string()),
            ))
        })
        .collect();
    let resp_ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let resp_body = resp.bytes().await.unwrap_or_default();
    let resp_body_string = String::from_utf8_lossy(&resp_body).into_owned();
    let response_ts = model::iso_now();

    // The orchestration the core adds for its own call to the primary route (§7.2.3).
    let core_orchestration = json!({
        "name": s(&route, "name").unwrap_or("primary"),
        "request": {
            "host": host, "port": port, "path": fwd_path, "querystring": query,
            "method": method, "body": if store_request_body { Value::String(body_string) } else { Value::Null },
            "timestamp": route_request_ts,
        },
        "response": {
            "status": route_status, "headers": route_headers,
            "body": if store_response_body { Value::String(resp_body_string.clone()) } else { Value::Null },
            "timestamp": response_ts,
        },
    });

    let is_async = channel.get("isAsynchronousProcess") == Some(&Value::Bool(true));
    // §7: case-sensitive substring test on the content type.
    if !resp_ct.contains("application/json+openhim") {
        // §7.4 passthrough: status, headers and body unchanged; status computed.
        let status = route_status;
        tx["response"] = json!({
            "status": status, "headers": route_headers,
            "body": if store_response_body { Value::String(resp_body_string) } else { Value::Null },
            "timestamp": response_ts,
        });
        tx["orchestrations"] = json!([core_orchestration]);
        tx["status"] = json!(computed_status(status));
        lock(&ctx.core).transactions.push(tx);
        let mut b = HttpResponse::build(client_status(status, is_async));
        for (k, v) in &route_headers {
            if is_hop_by_hop(k) {
                continue;
            }
            if let Some(v) = v.as_str() {
                b.insert_header((k.as_str(), v));
            }
        }
        b.insert_header(("X-OpenHIM-TransactionID", tx_id.as_str()));
        return b.body(resp_body.to_vec());
    }

    // §7.2.1: not JSON → 500 to the client, transaction failed.
    let Ok(env) = serde_json::from_slice::<Value>(&resp_body) else {
        tx["status"] = json!("Failed");
        lock(&ctx.core).transactions.push(tx);
        return plain(500, "An internal server error occurred");
    };
    let response = env.get("response").cloned().unwrap_or(Value::Null);
    let status = match response.get("status") {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(500) as u16,
        Some(Value::String(st)) => st.trim().parse().unwrap_or(500),
        _ => 500,
    };
    // §7.1: an object body reaches the client serialised, but is stored as `[object Object]`.
    let (client_body, stored_body) = match response.get("body") {
        Some(Value::String(b)) => (b.clone(), Value::String(b.clone())),
        Some(Value::Null) | None => (String::new(), Value::Null),
        Some(other) if other.is_object() || other.is_array() => {
            (other.to_string(), Value::String("[object Object]".into()))
        }
        Some(other) => (other.to_string(), Value::String(other.to_string())),
    };

    // §7.1: an orchestration without name, or with a request but no timestamp,
    // rejects the whole response-metadata update.
    let orchestrations = env
        .get("orchestrations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let metadata_ok = orchestrations.iter().all(|o| {
        s(o, "name").is_some()
            && o.get("request")
                .is_none_or(|r| r.get("timestamp").is_some_and(|t| !t.is_null()))
    });
    if metadata_ok {
        let mut stored_response = response.clone();
        if let Some(obj) = stored_response.as_object_mut() {
            obj.insert("status".into(), json!(status));
            obj.insert(
                "body".into(),
                if store_response_body {
                    stored_body
                } else {
                    Value::Null
                },
            );
        }
        tx["response"] = stored_response;
        let mut all = orchestrations;
        all.push(core_orchestration);
        tx["orchestrations"] = Value::Array(all);
        if let Some(p) = env.get("properties") {
            tx["properties"] = p.clone();
        }
        if let Some(e) = env.get("error") {
            tx["error"] = e.clone();
            tx["autoRetry"] = json!(true);
        }
        // §7.1: the mediator's status overrides, stored unchecked.
        tx["status"] = match env.get("status") {
            Some(st) if !st.is_null() => st.clone(),
            _ => json!(computed_status(status)),
        };
        if let Some(urn) = env.get("x-mediator-urn") {
            tx["mediatorURN"] = urn.clone();
        }
    } else {
        tx["metadataRejected"] = json!(true);
    }
    lock(&ctx.core).transactions.push(tx);

    // §7.2.2: the client response from the envelope.
    let mut b = HttpResponse::build(client_status(status, is_async));
    if let Some(headers) = response.get("headers").and_then(Value::as_object) {
        for (k, v) in headers {
            let lk = k.to_ascii_lowercase();
            if is_hop_by_hop(&lk) || lk == "set-cookie" {
                continue;
            }
            // `location` is copied like any header; only a 3xx makes it a redirect.
            if let Some(v) = v.as_str() {
                b.insert_header((lk.as_str(), v));
            }
        }
    }
    b.insert_header(("X-OpenHIM-TransactionID", tx_id.as_str()));
    b.body(client_body)
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "content-length" | "content-encoding" | "transfer-encoding" | "connection"
    )
}

/// §7.4.4: asynchronous channels turn responses below 400 into 202.
fn client_status(status: u16, is_async: bool) -> StatusCode {
    let s = if is_async && status < 400 {
        202
    } else {
        status
    };
    StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// §7.2.3 with a single (primary) route.
fn computed_status(status: u16) -> &'static str {
    match status {
        500..=599 => "Failed",
        200..=299 => "Successful",
        400..=499 => "Completed",
        _ => "Completed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_unanchored_and_methods_required() {
        let chans = vec![
            json!({"name": "a", "urlPattern": "unanch", "methods": ["GET"]}),
            json!({"name": "b", "urlPattern": "^/ddcc/.*$"}),
            json!({"name": "c", "urlPattern": "^/ddcc/.*$", "methods": ["POST"], "priority": 2}),
            json!({"name": "d", "urlPattern": "^/ddcc/.*$", "methods": ["POST"], "priority": 1, "status": "disabled"}),
        ];
        assert_eq!(
            match_channel(&chans, "/x/unanch/y", "GET", None).map(|c| c["name"].clone()),
            Some(json!("a"))
        );
        assert!(match_channel(&chans, "/x/unanch/y", "POST", None).is_none());
        assert_eq!(
            match_channel(&chans, "/ddcc/q", "POST", None).map(|c| c["name"].clone()),
            Some(json!("c"))
        );
        assert!(
            match_channel(&chans, "/ddcc/q", "GET", None).is_none(),
            "b has no methods"
        );
    }

    #[test]
    fn path_rewrites() {
        assert_eq!(route_path(&json!({"path": "/fixed"}), "/a/b"), "/fixed");
        assert_eq!(
            route_path(&json!({"pathTransform": "s/a/z/g"}), "/a/a"),
            "/z/z"
        );
        assert_eq!(
            route_path(&json!({"pathTransform": "s/a/z"}), "/a/a"),
            "/z/a"
        );
        assert_eq!(route_path(&json!({}), "/a"), "/a");
    }
}
