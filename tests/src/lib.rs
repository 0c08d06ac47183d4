//! Sightline end-to-end testing: a headless viewer that decodes real pixels, and a harness
//! that runs the server and publishers in-process. The tests live in `tests/`; benchmarks
//! reuse the same pieces (latency = `DecodedFrame::received_at_us - Stamp::capture_us`).

pub mod browser;
pub mod decode;
pub mod harness;
pub mod loss;
pub mod peer;
pub mod route;
pub mod sequence;
pub mod signal;
pub mod stats;
pub mod synthetic;
pub mod viewer;

pub use decode::{DecodedFrame, FrameDecoder};
pub use harness::{TestPublisher, TestServer};
pub use loss::DropPattern;
pub use signal::SignalClient;
pub use stats::ViewerStats;
pub use viewer::{HeadlessViewer, ViewerConfig, ViewerEvent};
