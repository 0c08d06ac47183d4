//! Run the real pieces in-process for tests and benchmarks: the server (signaling + SFU) on
//! loopback, test-pattern publishers as tokio tasks, and small helpers to poll the REST API.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Once;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use sightline_protocol::{CameraInfo, CameraState};
use sightline_publisher::PublisherConfig;
use sightline_sfu::{SfuConfig, SfuHandle};
use sightline_signaling::auth::{AuthMode, Role, Scope, TokenKeys};
use sightline_signaling::server::{self, RunningServer, ServerConfig, WebClient};
use tokio::task::JoinHandle;

pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Test defaults: small frames keep two cores free enough for a dozen decoders.
pub const TEST_WIDTH: u32 = 320;
pub const TEST_HEIGHT: u32 = 240;
pub const TEST_FPS: u32 = 30;

/// How long a new publisher may take to encode, connect and register (slow CI, 2 cores).
pub const CAMERA_ONLINE_TIMEOUT: Duration = Duration::from_secs(20);

/// Log to the test output once per process, filtered by `RUST_LOG` (default: warnings).
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// A server config on loopback with free ports.
pub fn loopback_server_config() -> ServerConfig {
    ServerConfig {
        // The page as the binary ships it.
        web_client: WebClient::Embedded,
        ..ServerConfig::open(
            SocketAddr::new(LOOPBACK, 0),
            SfuConfig {
                udp_port: 0,
                bind_ips: vec![LOOPBACK],
                ..SfuConfig::default()
            },
        )
    }
}

/// The secret of test servers with tokens ([`with_tokens`]).
pub fn test_token_keys() -> TokenKeys {
    TokenKeys::new(b"sightline test secret, 32 bytes.").expect("a long enough secret")
}

/// `config` with tokens on (signed with [`test_token_keys`]).
pub fn with_tokens(mut config: ServerConfig) -> ServerConfig {
    config.auth = AuthMode::Tokens(Box::new(test_token_keys()));
    config
}

/// A server running in this process. `restart` brings it back on the same ports, as a
/// restarted daemon would, so clients can find it again.
pub struct TestServer {
    running: Option<RunningServer>,
    config: ServerConfig,
}

impl TestServer {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(loopback_server_config()).await
    }

    pub async fn start_with(config: ServerConfig) -> anyhow::Result<Self> {
        init_tracing();
        let running = server::start(config.clone()).await?;
        Ok(TestServer {
            running: Some(running),
            config,
        })
    }

    /// A token for `role` on `camera` (`*` for all), named after the role, when the server
    /// has tokens; `None` when it has none (and needs none).
    pub fn token(&self, role: Role, camera: &str) -> Option<String> {
        let AuthMode::Tokens(keys) = &self.config.auth else {
            return None;
        };
        let scope = Scope::from_ids(&[camera.to_owned()]).expect("a valid camera id");
        Some(keys.issue_for(
            role,
            scope,
            Duration::from_secs(3600),
            Some(format!("test-{role}")),
        ))
    }

    /// What the harness itself presents to the API: a `control` token for every camera.
    fn api_token(&self) -> Option<String> {
        self.token(Role::Control, "*")
    }

    fn running(&self) -> &RunningServer {
        self.running.as_ref().expect("server is running")
    }

    pub fn ws_url(&self) -> String {
        self.running().ws_url()
    }

    pub fn http_url(&self) -> String {
        self.running().http_url()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.running().http_addr
    }

    pub fn sfu(&self) -> &SfuHandle {
        &self.running().sfu
    }

    /// The SFU's media port.
    pub fn udp_port(&self) -> u16 {
        self.sfu()
            .local_addrs()
            .first()
            .map(|a| a.port())
            .unwrap_or(0)
    }

    /// Stop the server and start it again on the same HTTP and UDP ports. Binding is
    /// retried for a while: the old sockets may take a moment to go.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let mut config = self.config.clone();
        config.http_addr = self.http_addr();
        config.sfu.udp_port = self.udp_port();
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match server::start(config.clone()).await {
                Ok(running) => {
                    self.running = Some(running);
                    self.config = config;
                    return Ok(());
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::info!("restart: bind failed, retrying: {e:#}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.context("restarting the server on the same ports")),
            }
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    /// `GET /api/cameras`.
    pub async fn cameras(&self) -> anyhow::Result<Vec<CameraInfo>> {
        // The plain loopback door when the server has TLS: no private CA to trust here.
        let url = format!("{}/api/cameras", self.running().local_http_url());
        let v = get_json_with(url, self.api_token()).await?;
        serde_json::from_value(v).context("parsing /api/cameras")
    }

    /// `method path` with a JSON `body` (empty: none) on the server's HTTP address, with
    /// `Authorization: Bearer token` when there is one; the response as sent.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> anyhow::Result<crate::raw_http::RawResponse> {
        let stream = tokio::net::TcpStream::connect(self.http_addr()).await?;
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        crate::raw_http::request(stream, method, path, &headers, body).await
    }

    /// `GET /api/stats`.
    pub async fn stats(&self) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/api/stats", self.running().local_http_url());
        get_json_with(url, self.api_token()).await
    }

    /// Start a publisher with `config` and wait until the server lists its camera online.
    pub async fn start_publisher(&self, config: PublisherConfig) -> anyhow::Result<TestPublisher> {
        let camera = config.camera_id.clone();
        let publisher = TestPublisher::start(config);
        self.wait_camera_online(&camera, CAMERA_ONLINE_TIMEOUT)
            .await?;
        Ok(publisher)
    }

    /// [`Self::start_publisher`] with the test defaults ([`publisher_config`]).
    pub async fn start_camera(&self, camera_id: &str) -> anyhow::Result<TestPublisher> {
        self.start_publisher(self.publisher_config(camera_id)).await
    }

    /// [`publisher_config`] for this server, with a `publish` token when it has tokens.
    pub fn publisher_config(&self, camera_id: &str) -> PublisherConfig {
        let mut config = publisher_config(&self.ws_url(), camera_id);
        config.token = self.token(Role::Publish, camera_id);
        config
    }

    /// Wait until `/api/cameras` lists `camera_id` as online.
    pub async fn wait_camera_online(
        &self,
        camera_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<CameraInfo> {
        self.wait_camera_state(camera_id, CameraState::Online, timeout)
            .await
    }

    /// Wait until `/api/cameras` lists `camera_id` as offline (its publisher gone).
    pub async fn wait_camera_offline(
        &self,
        camera_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<CameraInfo> {
        self.wait_camera_state(camera_id, CameraState::Offline, timeout)
            .await
    }

    async fn wait_camera_state(
        &self,
        camera_id: &str,
        state: CameraState,
        timeout: Duration,
    ) -> anyhow::Result<CameraInfo> {
        wait_until(
            timeout,
            &format!("camera {camera_id} {state:?}"),
            async || {
                let cams = self.cameras().await.ok()?;
                cams.into_iter()
                    .find(|c| c.id == camera_id && c.state == state)
            },
        )
        .await
    }
}

/// Publisher settings for tests: small, 30 fps, periodic IDR rare enough that tests see the
/// keyframe-request path at work.
pub fn publisher_config(ws_url: &str, camera_id: &str) -> PublisherConfig {
    let mut c = PublisherConfig::new(ws_url, camera_id);
    c.width = TEST_WIDTH;
    c.height = TEST_HEIGHT;
    c.fps = TEST_FPS;
    c.bitrate = 400_000;
    c.keyframe_interval = Duration::from_secs(10);
    c
}

/// A publisher running as a task in this process. Aborting the task is a publisher crash
/// or restart: its signaling socket and peer go away with it.
pub struct TestPublisher {
    config: PublisherConfig,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestPublisher {
    pub fn start(config: PublisherConfig) -> Self {
        init_tracing();
        let task = tokio::spawn(sightline_publisher::run(config.clone()));
        TestPublisher { config, task }
    }

    pub fn config(&self) -> &PublisherConfig {
        &self.config
    }

    /// True while the task runs (`run` returns on a configuration error, or when the server
    /// removed the camera).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Abort the task and wait until it is gone.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// Stop, then start again with the same configuration (frame numbers restart at 0).
    pub async fn restart(self) -> Self {
        let config = self.config.clone();
        self.stop().await;
        Self::start(config)
    }
}

impl Drop for TestPublisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `GET url` and parse JSON. ureq is blocking, so it runs on the blocking pool.
pub async fn get_json(url: impl Into<String>) -> anyhow::Result<serde_json::Value> {
    get_json_with(url, None).await
}

/// `GET url` with `Authorization: Bearer token` when there is one.
pub async fn get_json_with(
    url: impl Into<String>,
    token: Option<String>,
) -> anyhow::Result<serde_json::Value> {
    let url = url.into();
    tokio::task::spawn_blocking(move || -> anyhow::Result<serde_json::Value> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let mut request = agent.get(&url);
        if let Some(token) = &token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut resp = request.call().with_context(|| format!("GET {url}"))?;
        let body = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading {url}"))?;
        serde_json::from_str(&body).with_context(|| format!("{url} returned no JSON: {body}"))
    })
    .await
    .map_err(|e| anyhow!("GET task failed: {e}"))?
}

/// Poll `check` every 50 ms until it returns `Some`, or fail after `timeout` naming `what`.
pub async fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(t) = check().await {
            return Ok(t);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
