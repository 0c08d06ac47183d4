//! The web client at `/`: built into the binary, so a `sightline` copied to a Pi or a Windows
//! box serves its page with nothing beside it, or read from a folder (`--web-root`) while
//! developing it, so an edit shows on reload without a rebuild.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rust_embed::RustEmbed;
use tower_http::services::ServeDir;

/// Where the page comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WebClient {
    /// No page: the API only.
    #[default]
    None,
    /// The copy of `web-client/` built into this binary.
    Embedded,
    /// A folder on disk, read on every request.
    Folder(PathBuf),
}

/// `web-client/` as it was at build time (every file: it holds only what the page loads).
#[derive(RustEmbed)]
#[folder = "../web-client"]
struct Files;

impl WebClient {
    /// Serve the page as the router's fallback. A folder without `index.html` is refused
    /// here, at start, rather than with a 404 on the first visit.
    pub(super) fn install<S: Clone + Send + Sync + 'static>(
        &self,
        app: Router<S>,
    ) -> anyhow::Result<Router<S>> {
        Ok(match self {
            WebClient::None => app,
            WebClient::Embedded => app.fallback(embedded),
            WebClient::Folder(root) => {
                if !root.join("index.html").is_file() {
                    anyhow::bail!("web root {} has no index.html", root.display());
                }
                app.fallback_service(ServeDir::new(root))
            }
        })
    }
}

/// One built-in file. Each carries an ETag (its content hash) and `no-cache`, so a browser
/// asks again after every deploy and gets a 304 when nothing changed.
async fn embedded(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.to_owned()
    };
    let Some(file) = Files::get(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let hash = file.metadata.sha256_hash();
    let etag = format!("\"{}\"", hex(&hash[..16]));
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(file.data.into_owned()))
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(file.metadata.mimetype()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(path: &str, headers: &[(header::HeaderName, &str)]) -> Response {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(k, HeaderValue::from_str(v).unwrap());
        }
        embedded(Method::GET, path.parse().unwrap(), map).await
    }

    async fn body(r: Response) -> Vec<u8> {
        axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn serves_the_built_in_page_with_its_type() {
        let index = get("/", &[]).await;
        assert_eq!(index.status(), StatusCode::OK);
        assert_eq!(index.headers()[header::CONTENT_TYPE], "text/html");
        let on_disk = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../web-client/index.html"
        ));
        assert_eq!(body(index).await, on_disk.unwrap());
        let js = get("/app.js", &[]).await;
        assert_eq!(js.status(), StatusCode::OK);
        assert!(js.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("javascript"));
    }

    #[tokio::test]
    async fn unknown_paths_and_escapes_are_not_found() {
        for path in ["/nope.js", "/../Cargo.toml", "/%2e%2e/Cargo.toml", "/api"] {
            assert_eq!(
                get(path, &[]).await.status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        let post = embedded(Method::POST, "/".parse().unwrap(), HeaderMap::new()).await;
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn a_matching_etag_gets_not_modified() {
        let first = get("/style.css", &[]).await;
        let etag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert_eq!(first.headers()[header::CACHE_CONTROL], "no-cache");
        let again = get("/style.css", &[(header::IF_NONE_MATCH, &etag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(body(again).await.is_empty());
        let stale = get("/style.css", &[(header::IF_NONE_MATCH, "\"old\"")]).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }
}
