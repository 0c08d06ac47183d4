//! The blocking half of publishing: a dedicated thread pulls frames from the source (which
//! paces them), encodes them and hands whole access units to the async side. Encoding never
//! runs on the async executor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use crate::encoder::{EncodedFrame, Encoder, EncoderSettings};
use crate::source::{Payload, Source};

/// An encoded frame on its way to the WebRTC track.
#[derive(Debug)]
pub struct OutFrame {
    pub encoded: EncodedFrame,
    pub index: u32,
    pub capture_us: u64,
}

/// The encode thread's name (under Linux's 15-byte limit, so it shows in `top -H` and
/// `/proc/*/task/*/comm` whole).
pub const ENCODE_THREAD_NAME: &str = "sl-encode";

/// What the encode thread hands back: its source, and how its loop ended.
type ThreadResult = (Box<dyn Source>, anyhow::Result<()>);

/// A running encode thread. Stop it with [`EncodeThread::stop`] to get the source back.
pub struct EncodeThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<ThreadResult>>,
}

impl EncodeThread {
    /// Start encoding `source` with a fresh encoder (so the stream opens with an IDR). Frames
    /// go to `out`; take [`Encoder::keyframe_request`] before calling this to ask for keyframes.
    pub fn start(
        mut source: Box<dyn Source>,
        encoder: Encoder,
        out: mpsc::Sender<OutFrame>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name(ENCODE_THREAD_NAME.into())
            .spawn(move || {
                let result = encode_loop(source.as_mut(), encoder, &out, &stop_flag);
                (source, result)
            })?;
        Ok(EncodeThread {
            stop,
            handle: Some(handle),
        })
    }

    /// True once the thread has ended by itself (source error or receiver gone).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Ask the thread to stop without waiting (it ends after its current frame).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Ask the thread to stop and wait for it (at most about one frame period plus one
    /// encode). Returns the source and how the loop ended.
    pub async fn stop(mut self) -> (Option<Box<dyn Source>>, anyhow::Result<()>) {
        self.request_stop();
        let Some(handle) = self.handle.take() else {
            return (None, Err(anyhow::anyhow!("encode thread already stopped")));
        };
        match tokio::task::spawn_blocking(move || handle.join()).await {
            Ok(Ok((source, result))) => (Some(source), result),
            Ok(Err(_)) => (None, Err(anyhow::anyhow!("encode thread panicked"))),
            Err(e) => (None, Err(anyhow::anyhow!("joining the encode thread: {e}"))),
        }
    }
}

impl Drop for EncodeThread {
    fn drop(&mut self) {
        // Dropped without `stop` (session aborted): the thread still ends by itself.
        self.request_stop();
    }
}

fn encode_loop(
    source: &mut dyn Source,
    mut encoder: Encoder,
    out: &mpsc::Sender<OutFrame>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let captured = source.next_frame()?;
        let encoded = match captured.payload {
            Payload::Raw(raw) => match encoder.encode(&raw)? {
                Some(encoded) => encoded,
                None => continue, // a skip: nothing to send
            },
            // Already browser-safe H.264: passed through untouched.
            Payload::H264(au) => EncodedFrame {
                data: au.data,
                keyframe: au.keyframe,
            },
        };
        let frame = OutFrame {
            encoded,
            index: captured.index,
            capture_us: captured.capture_us,
        };
        // Blocking: if the network side is slower than the encoder we slow down rather than
        // drop a frame, since every later P frame references it.
        if out.blocking_send(frame).is_err() {
            break; // receiver gone: the session is over
        }
    }
    Ok(())
}

/// Settings for the encoder from the source's own format and the configured rates.
pub fn encoder_settings(
    source: &dyn Source,
    bitrate: u32,
    keyframe_interval: std::time::Duration,
) -> EncoderSettings {
    let (width, height) = source.dimensions();
    EncoderSettings {
        width,
        height,
        fps: source.fps(),
        bitrate,
        keyframe_interval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::TestPattern;
    use std::time::Duration;

    #[tokio::test]
    async fn encodes_paced_frames_and_gives_the_source_back() {
        let source: Box<dyn Source> = Box::new(TestPattern::new(320, 240, 30, 7).unwrap());
        let enc = Encoder::new(encoder_settings(
            source.as_ref(),
            300_000,
            Duration::from_secs(10),
        ))
        .unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let t = EncodeThread::start(source, enc, tx).unwrap();
        let first = rx.recv().await.unwrap();
        assert!(first.encoded.keyframe);
        assert_eq!(first.index, 0);
        for i in 1..5 {
            let f = rx.recv().await.unwrap();
            assert_eq!(f.index, i);
            assert!(!f.encoded.keyframe);
        }
        drop(rx);
        let (source, result) = t.stop().await;
        result.unwrap();
        assert_eq!(source.unwrap().dimensions(), (320, 240));
    }
}
