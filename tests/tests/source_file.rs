//! `file:` sources end to end: an MJPEG file of JPEGs carrying a frame-number barcode, in the
//! seed's `movie.Mjpeg` layout (5-digit length before each frame) or as plain concatenated
//! JPEGs, is played in a loop by the publisher; a headless viewer behind the SFU reads the
//! numbers back in order. Bad frames inside the file are skipped; a file with no frame at
//! all fails to open, and viewers are told the source is lost and why.

use std::path::PathBuf;
use std::time::Duration;

use sightline_protocol::SourceState;
use sightline_publisher::barcode::tag_for;
use sightline_publisher::source::{self, SourceSpec, SourceUrl};
use sightline_tests::esp32_device::bad;
use sightline_tests::harness::{publisher_config, wait_until, TEST_HEIGHT, TEST_WIDTH};
use sightline_tests::jpeg_fixture::barcode_jpeg;
use sightline_tests::{HeadlessViewer, TestPublisher, TestServer, ViewerConfig};

/// Playback rate: a 30-frame file loops every two seconds.
const FPS: u32 = 15;

/// Layouts of a movie file.
#[derive(Clone, Copy)]
enum Layout {
    LengthPrefixed,
    Concatenated,
}

/// One entry of a movie file: a good barcode frame, or bytes as they are.
enum Entry {
    Frame(u32),
    Raw(Vec<u8>),
}

fn jpeg(camera: &str, n: u32) -> Vec<u8> {
    barcode_jpeg(TEST_WIDTH, TEST_HEIGHT, n, tag_for(camera))
}

/// A movie file's bytes. In the length-prefixed layout `Raw` entries get a length field too
/// (they are frames that fail to decode), unless they are meant as broken framing.
fn movie(camera: &str, layout: Layout, entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let bytes = match e {
            Entry::Frame(n) => jpeg(camera, *n),
            Entry::Raw(b) => b.clone(),
        };
        if let (Layout::LengthPrefixed, Entry::Frame(_)) = (layout, e) {
            assert!(bytes.len() < 100_000, "a frame too big for 5 digits");
            out.extend(format!("{:05}", bytes.len()).bytes());
        }
        out.extend(bytes);
    }
    out
}

/// A temporary file that removes itself.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, data: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("sightline-{}-{name}", std::process::id()));
        std::fs::write(&path, data).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Publish `file` as `camera`; a viewer of it.
async fn play(
    server: &TestServer,
    camera: &str,
    file: &TempFile,
) -> (HeadlessViewer, TestPublisher) {
    let mut c = publisher_config(&server.ws_url(), camera);
    c.source = SourceUrl::File {
        path: file.0.clone(),
    };
    c.fps = FPS;
    let publisher = server.start_publisher(c).await.unwrap();
    let viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))
        .await
        .unwrap();
    (viewer, publisher)
}

/// Read `n` frames after the first readable one; each must carry `next(previous)`.
async fn follows(
    viewer: &mut HeadlessViewer,
    camera: &str,
    n: usize,
    next: impl Fn(u32) -> u32,
) -> Vec<u32> {
    let mut seen = Vec::new();
    while seen.len() <= n {
        let f = viewer.next_frame(Duration::from_secs(20)).await.unwrap();
        let Some(stamp) = f.stamp else {
            assert!(seen.is_empty(), "frame without a barcode after {seen:?}");
            continue;
        };
        assert_eq!(stamp.tag, tag_for(camera));
        assert_eq!((f.width, f.height), (TEST_WIDTH, TEST_HEIGHT));
        if let Some(&prev) = seen.last() {
            assert_eq!(stamp.frame, next(prev), "after {seen:?}");
        }
        seen.push(stamp.frame);
    }
    seen
}

async fn plays_in_a_loop(layout: Layout, camera: &str) {
    const N: u32 = 30;
    let server = TestServer::start().await.unwrap();
    let entries: Vec<_> = (0..N).map(Entry::Frame).collect();
    let file = TempFile::new(camera, &movie(camera, layout, &entries));
    let (mut viewer, _publisher) = play(&server, camera, &file).await;

    // A lap and a half: the wrap from the last frame back to 0 must be seamless.
    let seen = follows(&mut viewer, camera, 45, |p| (p + 1) % N).await;
    assert!(seen.windows(2).any(|w| w == [N - 1, 0]), "{seen:?}");
    let stats = viewer.stats();
    assert_eq!(stats.camera_offline_events, 0, "{stats:?}");
    viewer.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_movie_mjpeg_file_with_length_prefixes_plays_in_a_loop() {
    plays_in_a_loop(Layout::LengthPrefixed, "file-prefixed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_concatenated_jpegs_plays_in_a_loop() {
    plays_in_a_loop(Layout::Concatenated, "file-plain").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_inside_a_file_are_skipped() {
    const N: u32 = 24;
    let server = TestServer::start().await.unwrap();
    let (cam_a, cam_b) = ("file-bad-plain", "file-bad-prefixed");

    // Concatenated: frame 10 truncated, frame 11 corrupt, garbage before frame 12.
    let mut plain: Vec<Entry> = (0..10).map(Entry::Frame).collect();
    plain.push(Entry::Raw(bad::truncated(&jpeg(cam_a, 10))));
    plain.push(Entry::Raw(bad::corrupt(&jpeg(cam_a, 11))));
    plain.push(Entry::Raw(bad::garbage(300)));
    plain.extend((12..N).map(Entry::Frame));
    let plain_file = TempFile::new(cam_a, &movie(cam_a, Layout::Concatenated, &plain));

    // Length-prefixed: frame 10 corrupt (well framed), frame 11 behind a broken length field.
    let corrupt = bad::corrupt(&jpeg(cam_b, 10));
    let mut prefixed: Vec<Entry> = (0..10).map(Entry::Frame).collect();
    prefixed.push(Entry::Raw(format!("{:05}", corrupt.len()).into_bytes()));
    prefixed.push(Entry::Raw(corrupt));
    prefixed.push(Entry::Raw(b"12x45".to_vec()));
    prefixed.push(Entry::Raw(jpeg(cam_b, 11)));
    prefixed.extend((12..N).map(Entry::Frame));
    let prefixed_file = TempFile::new(cam_b, &movie(cam_b, Layout::LengthPrefixed, &prefixed));

    let (mut a, _pa) = play(&server, cam_a, &plain_file).await;
    let (mut b, _pb) = play(&server, cam_b, &prefixed_file).await;
    let skip_10_11 = |p: u32| if p == 9 { 12 } else { (p + 1) % N };
    let seen = follows(&mut a, cam_a, 40, skip_10_11).await;
    assert!(seen.windows(2).any(|w| w == [9, 12]), "{seen:?}");
    let seen = follows(&mut b, cam_b, 40, skip_10_11).await;
    assert!(seen.windows(2).any(|w| w == [9, 12]), "{seen:?}");
    for v in [a, b] {
        assert_eq!(v.stats().camera_offline_events, 0, "{:?}", v.stats());
        v.close().await;
    }
    server.shutdown().await;
}

#[test]
fn a_file_without_a_single_frame_is_refused_at_open() {
    for (name, data, why) in [
        ("empty", Vec::new(), "no JPEG frame"),
        ("text", b"not a movie\n".to_vec(), "no JPEG frame"),
        (
            "broken",
            bad::corrupt(&jpeg("x", 0)),
            "none of its 1 frames decodes",
        ),
    ] {
        let file = TempFile::new(&format!("refused-{name}"), &data);
        let spec = SourceSpec::new(
            SourceUrl::File {
                path: file.0.clone(),
            },
            "file-refused",
        );
        let err = source::open(&spec).err().expect("no frame: an error");
        let msg = format!("{err:#}");
        assert!(msg.contains(why), "{name}: {msg}");
        assert!(msg.contains(&file.0.display().to_string()), "{name}: {msg}");
    }
}

/// The publisher keeps running with such a file (it may be written later) and tells viewers
/// why there is no video: the source is lost, with the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_see_why_a_bad_file_gives_no_video() {
    let camera = "file-lost";
    let server = TestServer::start().await.unwrap();
    let file = TempFile::new(camera, b"not a movie\n");
    let mut c = publisher_config(&server.ws_url(), camera);
    c.source = SourceUrl::File {
        path: file.0.clone(),
    };
    let _publisher = TestPublisher::start(c);
    let status = wait_until(
        Duration::from_secs(20),
        "the source reported lost",
        async || {
            let cams = server.cameras().await.ok()?;
            let cam = cams.into_iter().find(|c| c.id == camera)?;
            cam.source_state.filter(|s| s.state == SourceState::Lost)
        },
    )
    .await
    .unwrap();
    let error = status.error.clone().unwrap_or_default();
    assert!(error.contains("no JPEG frame"), "{error}");
    assert!(
        status.source.contains(&file.0.display().to_string()),
        "{status:?}"
    );
    server.shutdown().await;
}
