//! The session's signaling connection: connecting (with a timeout, over TLS for `wss://`,
//! with the token), sending a [`ClientMessage`], and turning what arrives into a
//! [`ServerMessage`] or the reason the connection ended. Separate so the session loop reads as
//! decisions, not framing.
//!
//! A connection that fails says why in one line: a certificate problem (unknown issuer, a
//! name it is not valid for, expired), the server's refusal (`server refused: CODE: MESSAGE`,
//! from the HTTP answer to the upgrade or a signaling `error`), or the network error. The
//! caller retries them all with the same backoff. The token never appears in any of them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::SinkExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use sightline_protocol::wire::{self, ClientMessage, ServerMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, Response, Uri};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tracing::{debug, info, warn};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the WebSocket connect (TCP + TLS + upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a server's refusal message that goes to the log.
const MAX_SHOWN: usize = 200;

/// The TLS settings for `wss://` servers, built once per run: the system's root
/// certificates (the bundled Mozilla roots if none load) plus every certificate in
/// `ca_file` (a private CA, or a server's self-signed certificate). Uses the `ring` provider
/// explicitly: the process may hold more than one, so there is no default to rely on.
///
/// An unreadable `ca_file`, or one without a usable certificate, is an error naming it.
pub fn tls_client_config(ca_file: Option<&Path>) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        debug!("loading the system's root certificates: {e}");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        debug!("no usable system root certificates ({ignored} unusable): using the bundled ones");
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = ca_file {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow!("--ca-file {shown}: {e}"))?;
        if certs.is_empty() {
            bail!("--ca-file {shown}: no certificate in it (expected PEM `-----BEGIN CERTIFICATE-----` blocks)");
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                anyhow!("--ca-file {shown}: a certificate that cannot be trusted: {e}")
            })?;
        }
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS settings")?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Connect to the signaling server at `server` (`ws://` or `wss://`, verified with `tls`),
/// sending `Authorization: Bearer <token>` with the upgrade when there is a token. The
/// connection closes when the returned stream is dropped. Every error is one line for the
/// log, without the token.
pub(crate) async fn connect(
    server: &str,
    token: Option<&str>,
    tls: &Arc<ClientConfig>,
) -> anyhow::Result<Ws> {
    let mut request = server
        .into_client_request()
        .map_err(|e| anyhow!("bad server URL {server}: {e}"))?;
    if let Some(token) = token {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| anyhow!("the token has characters an HTTP header cannot carry"))?;
        value.set_sensitive(true);
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        request,
        None,
        false,
        Some(Connector::Rustls(Arc::clone(tls))),
    );
    let ws = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| anyhow!("connecting to {server}: timed out"))?
        .map_err(|e| anyhow!("{}", describe_connect_error(server, token.is_some(), &e)))?
        .0;
    info!(server = %server, "signaling connected");
    Ok(ws)
}

/// One line for a failed connect: a refusal, a certificate problem, or the network error.
fn describe_connect_error(server: &str, sent_token: bool, e: &tungstenite::Error) -> String {
    if let tungstenite::Error::Http(response) = e {
        return describe_refusal(response, sent_token);
    }
    if let Some(tls) = find_rustls_error(e) {
        let host = server
            .parse::<Uri>()
            .ok()
            .and_then(|u| u.host().map(str::to_owned))
            .unwrap_or_else(|| server.to_owned());
        return format!("connecting to {server}: {}", describe_tls_error(&host, tls));
    }
    // tungstenite's message already repeats its source.
    format!("connecting to {server}: {e}")
}

/// The rustls error behind a failed connect, wherever in the chain it is (tokio-rustls
/// wraps it in an `io::Error`, whose `source` skips it).
fn find_rustls_error(e: &tungstenite::Error) -> Option<&rustls::Error> {
    if let tungstenite::Error::Tls(tungstenite::error::TlsError::Rustls(r)) = e {
        return Some(r);
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(r) = inner.downcast_ref::<rustls::Error>() {
                return Some(r);
            }
        }
        next = err.source();
    }
    None
}

/// What a TLS failure means for someone running the publisher.
fn describe_tls_error(host: &str, e: &rustls::Error) -> String {
    let rustls::Error::InvalidCertificate(cert) = e else {
        return format!("TLS handshake with {host} failed: {e}");
    };
    match cert {
        CertificateError::UnknownIssuer => "unknown issuer: the server's certificate is not \
             signed by a trusted CA (pass --ca-file to trust a private CA)"
            .into(),
        CertificateError::NotValidForNameContext { presented, .. } => {
            let names: Vec<String> = presented.iter().map(|n| plain_name(n)).collect();
            if names.is_empty() {
                format!("certificate is not valid for {host}: it names no host")
            } else {
                format!(
                    "certificate is not valid for {host}: it names {}",
                    names.join(", ")
                )
            }
        }
        CertificateError::NotValidForName => {
            format!("certificate is not valid for {host}: it names other hosts")
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate expired: the server's certificate is past its end date (or this \
             machine's clock is wrong)"
                .into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate not valid yet: is this machine's clock right?".into()
        }
        other => format!("the server's certificate is not valid: {other}"),
    }
}

/// `DnsName("cam.example")` (how webpki lists a certificate's names) → `cam.example`.
fn plain_name(presented: &str) -> String {
    presented
        .split_once("(\"")
        .and_then(|(_, rest)| rest.strip_suffix("\")"))
        .unwrap_or(presented)
        .to_owned()
}

/// The server answered the upgrade with an HTTP status: `server refused: CODE: MESSAGE` when
/// its body is the JSON `{"code", "message"}`, the status (and body) otherwise.
fn describe_refusal(response: &Response<Option<Vec<u8>>>, sent_token: bool) -> String {
    let status = response.status();
    let body = response.body().as_deref().unwrap_or_default();
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(|v| v.as_str())
            .map(shown)
    };
    if let Some(code) = field("code") {
        let message = field("message").unwrap_or_default();
        return format!("server refused: {code}: {message} (HTTP {status})");
    }
    let text = shown(&String::from_utf8_lossy(body));
    let text = if text.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", text.trim())
    };
    match status.as_u16() {
        401 if !sent_token => {
            format!("server refused: HTTP {status}{text} (it wants a token: pass --token)")
        }
        401 | 403 | 429 => format!("server refused: HTTP {status}{text}"),
        _ => format!("server answered HTTP {status} instead of a WebSocket upgrade{text}"),
    }
}

/// Server-chosen text made safe for one log line: no control characters, not too long.
pub(crate) fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_SHOWN)
        .collect();
    if text.chars().count() > MAX_SHOWN {
        out.push('…');
    }
    out
}

pub(super) async fn send(ws: &mut Ws, msg: &ClientMessage) -> anyhow::Result<()> {
    ws.send(Message::text(msg.to_json()))
        .await
        .context("sending on the WebSocket")
}

/// One binary message (a snapshot).
pub(super) async fn send_binary(ws: &mut Ws, data: Vec<u8>) -> anyhow::Result<()> {
    ws.send(Message::binary(data))
        .await
        .context("sending on the WebSocket")
}

/// What one read from the WebSocket gave.
pub(super) enum Incoming {
    Message(ServerMessage),
    /// Nothing for the session: ping, pong, binary, or a message that does not parse.
    Nothing,
    /// The server closed the connection (the reason, for the log).
    Closed(String),
}

/// Make sense of one read (`None`: the stream ended). A transport error is an `Err`.
pub(super) fn read(msg: Option<Result<Message, tungstenite::Error>>) -> anyhow::Result<Incoming> {
    let text = match msg {
        Some(Ok(Message::Text(t))) => t,
        Some(Ok(Message::Close(frame))) => {
            // A server may say why it closes (a refusal, a shutdown): code and reason.
            let why = match &frame {
                Some(f) if !f.reason.is_empty() => {
                    format!(": {} {}", u16::from(f.code), shown(f.reason.as_str()))
                }
                Some(f) => format!(": {}", u16::from(f.code)),
                None => String::new(),
            };
            return Ok(Incoming::Closed(format!(
                "server closed the WebSocket{why}"
            )));
        }
        Some(Ok(_)) => return Ok(Incoming::Nothing), // ping/pong/binary
        Some(Err(e)) => return Err(anyhow!("WebSocket error: {e}")),
        None => return Ok(Incoming::Closed("server closed the WebSocket".into())),
    };
    match wire::parse_server_message(text.as_str()) {
        Ok(m) => Ok(Incoming::Message(m)),
        Err(e) => {
            // An `error` with a code this build does not know is still worth one clear line.
            if let Some((code, message)) = unknown_error(text.as_str()) {
                warn!("server error: {code}: {message}");
            } else {
                warn!("ignoring unparsable server message: {e}");
            }
            Ok(Incoming::Nothing)
        }
    }
}

/// `{"type": "error", "code": C, "message": M}` with a code not in [`wire::ErrorCode`].
fn unknown_error(text: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if v.get("type")?.as_str()? != "error" {
        return None;
    }
    let code = shown(v.get("code")?.as_str()?);
    let message = shown(
        v.get("message")
            .and_then(|m| m.as_str())
            .unwrap_or_default(),
    );
    Some((code, message))
}

/// The server's socket address (for picking the local interface facing it).
pub(super) async fn server_addr(url: &str) -> Option<SocketAddr> {
    let uri: Uri = url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("wss") | Some("https") => 443,
        _ => 80,
    });
    let mut addrs = tokio::net::lookup_host((host, port)).await.ok()?;
    addrs.next()
}

#[cfg(test)]
mod tls_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(status: u16, body: &str, sent_token: bool) -> String {
        let response = Response::builder()
            .status(status)
            .body(Some(body.as_bytes().to_vec()))
            .unwrap();
        describe_refusal(&response, sent_token)
    }

    #[test]
    fn refusals_name_the_code_and_message() {
        assert_eq!(
            refusal(
                401,
                r#"{"code":"unauthorized","message":"token expired"}"#,
                true
            ),
            "server refused: unauthorized: token expired (HTTP 401 Unauthorized)"
        );
        assert_eq!(
            refusal(
                429,
                r#"{"code":"rate_limited","message":"slow\ndown"}"#,
                true
            ),
            "server refused: rate_limited: slow down (HTTP 429 Too Many Requests)"
        );
        assert_eq!(
            refusal(401, "", false),
            "server refused: HTTP 401 Unauthorized (it wants a token: pass --token)"
        );
        assert_eq!(
            refusal(403, "go away", true),
            "server refused: HTTP 403 Forbidden: go away"
        );
        let long = refusal(502, &format!("<html>{}</html>", "x".repeat(1000)), true);
        assert!(
            long.starts_with(
                "server answered HTTP 502 Bad Gateway instead of a WebSocket upgrade: <html>xx"
            ),
            "{long}"
        );
        assert!(long.chars().count() < 300, "{long}");
    }

    #[test]
    fn error_messages_with_unknown_codes_still_read() {
        assert_eq!(
            unknown_error(r#"{"type":"error","code":"brand_new","message":"m"}"#),
            Some(("brand_new".into(), "m".into()))
        );
        assert_eq!(unknown_error(r#"{"type":"hello"}"#), None);
        assert_eq!(unknown_error("not json"), None);
    }

    #[test]
    fn a_close_says_why() {
        use tungstenite::protocol::frame::{coding::CloseCode, CloseFrame};
        let closed = |frame| match read(Some(Ok(Message::Close(frame)))).unwrap() {
            Incoming::Closed(why) => why,
            _ => panic!("not closed"),
        };
        assert_eq!(
            closed(Some(CloseFrame {
                code: CloseCode::Policy,
                reason: "unauthorized: token expired".into(),
            })),
            "server closed the WebSocket: 1008 unauthorized: token expired"
        );
        assert_eq!(closed(None), "server closed the WebSocket");
    }

    #[test]
    fn certificate_names_read_plainly() {
        assert_eq!(plain_name(r#"DnsName("cam.example")"#), "cam.example");
        assert_eq!(plain_name("10.0.0.1"), "10.0.0.1");
    }

    #[tokio::test]
    async fn server_addr_parses_urls() {
        assert_eq!(
            server_addr("ws://127.0.0.1:8080/ws").await,
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            server_addr("ws://[::1]/ws").await,
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(server_addr("not a url").await, None);
    }
}
