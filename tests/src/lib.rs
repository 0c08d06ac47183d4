//! Sightline end-to-end testing: a headless viewer that decodes real pixels, and a harness
//! that runs the server and publishers in-process. The tests live in `tests/`; benchmarks
//! reuse the same pieces (latency = `DecodedFrame::received_at_us - Stamp::capture_us`).

pub mod browser;
pub mod child;
pub mod control_client;
pub mod coturn;
pub mod decode;
pub mod esp32_device;
pub mod firefox;
pub mod harness;
pub mod impair;
pub mod jpeg_fixture;
pub mod loss;
pub mod mjpeg_http_server;
pub mod mse_viewer;
pub mod noisy_movie;
pub mod page;
pub mod peer;
pub mod pki;
pub mod raw_http;
pub mod route;
pub mod rtsp_server;
pub mod sequence;
pub mod signal;
pub mod stats;
pub mod synthetic;
pub mod temp;
pub mod topology;
pub mod viewer;
pub mod webkit;
pub mod whep_player;
pub mod whip_client;

pub use control_client::{ControlInbox, Received};
pub use decode::{DecodedFrame, FrameDecoder};
pub use harness::{TestPublisher, TestServer};
pub use loss::DropPattern;
pub use mse_viewer::{MseEvent, MseViewer};
pub use signal::SignalClient;
pub use stats::ViewerStats;
pub use viewer::{HeadlessViewer, ViewerConfig, ViewerEvent};
