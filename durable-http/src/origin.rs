//! Who may call: this server's own pages and clients that are not browsers (curl), never
//! another web page. The `Origin`, fetch-metadata and `Host` rules.

use std::net::{IpAddr, SocketAddr};

use axum::extract::Request;
use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};

use crate::error::{ApiError, ApiResult};

/// The address a request's connection arrived on, put in each request's extensions by
/// [`serve`](crate::serve): the host rule accepts it as the request's `Host`. A server of
/// your own can insert it the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddr(pub SocketAddr);

/// The names a request's `Host` may give besides `localhost` and the server's address.
pub(crate) struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    pub(crate) fn new(names: &[String]) -> Self {
        AllowedHosts(names.iter().map(|name| host_key(name)).collect())
    }

    /// Refuses a request whose `Host` (or absolute target) is not this server: a page
    /// whose name was made to resolve here (DNS rebinding) names itself there.
    pub(crate) fn check(&self, request: &Request) -> ApiResult<()> {
        let local = request.extensions().get::<LocalAddr>().map(|l| l.0.ip());
        let from_header = request
            .headers()
            .get(header::HOST)
            .map(|value| parse_authority(value).map(|a| (a, "Host")));
        let from_target = request
            .uri()
            .authority()
            .cloned()
            .map(|a| Ok((a, "target")));
        let mut named = false;
        for authority in from_header.into_iter().chain(from_target) {
            let (authority, what) = authority?;
            named = true;
            if !self.is_this_server(authority.host(), local) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "the request's {what} `{}` is not this server: without an auth token, \
                         only requests addressed to localhost, to the address the server was \
                         reached on, or to an allowed host name are answered (a name that \
                         resolves here is how DNS rebinding reaches a local server from a \
                         web page). Allow the name (RouterOptions::allowed_host, the demo's \
                         --allowed-host) or set an auth token",
                        authority.host()
                    ),
                ));
            }
        }
        if !named {
            return Err(ApiError::bad_request(
                "the request names no host: send a `Host` header",
            ));
        }
        Ok(())
    }

    fn is_this_server(&self, host: &str, local: Option<IpAddr>) -> bool {
        let key = host_key(host);
        if key == "localhost" || self.0.contains(&key) {
            return true;
        }
        match (key.parse::<IpAddr>(), local) {
            (Ok(ip), Some(local)) => ip.to_canonical() == local.to_canonical(),
            (Ok(ip), None) => ip.to_canonical().is_loopback(),
            (Err(_), _) => false,
        }
    }
}

/// A host as compared: lower case, an IPv6 address without its brackets.
fn host_key(host: &str) -> String {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.to_ascii_lowercase()
}

fn parse_authority(value: &HeaderValue) -> ApiResult<Authority> {
    value
        .to_str()
        .ok()
        .and_then(|text| text.parse::<Authority>().ok())
        .filter(|authority| !authority.as_str().contains('@') && !authority.host().is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("invalid Host header {value:?}")))
}

/// Refuses a request another web page made: one whose `Origin` is not this server's (an
/// opaque `Origin: null` included), or that the browser marks cross-site, unless it is a
/// navigation that reads nothing (a link followed to a `GET`).
pub(crate) fn check_origin(request: &Request) -> ApiResult<()> {
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        // HTTP/2 names the server in the target's authority instead of a `Host` header.
        let server = match headers.get(header::HOST) {
            Some(host) => parse_authority(host).ok(),
            None => request.uri().authority().cloned(),
        };
        if !same_origin(origin, server.as_ref()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "cross-origin request refused: Origin {origin:?} is not this server \
                     (Host {:?}). The API answers its own pages and clients that send no \
                     Origin, such as curl",
                    headers.get(header::HOST)
                ),
            ));
        }
    }
    let site = fetch_metadata(headers, "sec-fetch-site");
    if matches!(site, Some("cross-site" | "same-site")) && !is_reading_navigation(request) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "cross-site request refused (Sec-Fetch-Site: {}): the API answers its own \
                 pages and clients such as curl",
                site.unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

fn fetch_metadata<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A link followed, or an address typed: the browser shows the answer to its user, and no
/// page can read it.
fn is_reading_navigation(request: &Request) -> bool {
    matches!(*request.method(), Method::GET | Method::HEAD)
        && fetch_metadata(request.headers(), "sec-fetch-mode") == Some("navigate")
}

/// Whether `origin` (`scheme://host[:port]`) names the server the request addresses.
/// The scheme is not compared: behind a proxy that terminates TLS, this server's own pages
/// are `https` while it is reached over `http`.
fn same_origin(origin: &HeaderValue, server: Option<&Authority>) -> bool {
    let Some((scheme, authority)) = origin.to_str().ok().and_then(|o| o.split_once("://")) else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    let Ok(origin) = authority.parse::<Authority>() else {
        return false;
    };
    let Some(host) = server else {
        return false;
    };
    if origin.as_str().contains('@') || origin.host().is_empty() {
        return false;
    }
    host_key(origin.host()) == host_key(host.host())
        && origin.port_u16().unwrap_or(default_port) == host.port_u16().unwrap_or(default_port)
}
