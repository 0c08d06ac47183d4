//! The multipart parser against what real cameras send, and against what broken ones send.

use super::*;

const MAX: usize = 64 * 1024;

/// A fake JPEG body: SOI, `n` bytes that include line breaks, dashes and `0xff` (everything
/// a real entropy-coded segment may hold), EOI. `seed` makes each one different.
fn jpeg(n: usize, seed: u8) -> Vec<u8> {
    let mut body = vec![0xff, 0xd8];
    let alphabet = [b'\r', b'\n', b'-', 0xff, 0x00, b'C', seed];
    let mut x = seed as u32 | 1;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        body.push(if x.is_multiple_of(5) {
            alphabet[(x as usize / 5) % alphabet.len()]
        } else {
            (x >> 8) as u8
        });
    }
    body.extend_from_slice(&[0xff, 0xd9]);
    body
}

/// A part as the ESP32 CameraWebServer sends it: delimiter, headers with length, body.
fn esp32_part(boundary: &str, body: &[u8]) -> Vec<u8> {
    let mut p = format!(
        "\r\n--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: 1.000001\r\n\r\n",
        body.len()
    )
    .into_bytes();
    p.extend_from_slice(body);
    p
}

/// A part without `Content-Length`, as many IP cameras send it.
fn plain_part(boundary: &str, body: &[u8]) -> Vec<u8> {
    let mut p = format!("--{boundary}\r\nContent-Type: image/jpeg\r\n\r\n").into_bytes();
    p.extend_from_slice(body);
    p.extend_from_slice(b"\r\n");
    p
}

/// Everything the parser gives out for `stream` fed in `chunk`-byte pieces.
fn parse_chunked(boundary: Option<&str>, stream: &[u8], chunk: usize, max: usize) -> Vec<Event> {
    let mut parser = MultipartParser::new(boundary, max);
    let mut events = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        parser.push(piece);
        while let Some(e) = parser.next_event() {
            events.push(e);
        }
    }
    events
}

fn parse(boundary: Option<&str>, stream: &[u8]) -> Vec<Event> {
    parse_chunked(boundary, stream, stream.len(), MAX)
}

fn bodies(events: &[Event]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Part(p) => Some(p.body.clone()),
            _ => None,
        })
        .collect()
}

fn skipped(events: &[Event], reason: SkipReason) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Skipped { reason: r, .. } if *r == reason))
        .count()
}

#[test]
fn boundary_comes_from_the_content_type() {
    for (ct, want) in [
        (
            "multipart/x-mixed-replace;boundary=123456789000000000000987654321",
            Some("123456789000000000000987654321"),
        ),
        (
            "multipart/x-mixed-replace; boundary=\"--myboundary\"",
            Some("myboundary"),
        ),
        (
            "Multipart/X-Mixed-Replace ; BOUNDARY=frame ; x=y",
            Some("frame"),
        ),
        ("multipart/x-mixed-replace; boundary=--frame", Some("frame")),
        ("multipart/x-mixed-replace", None),
        ("multipart/x-mixed-replace; boundary=", None),
        ("multipart/x-mixed-replace; boundary=\"a b\"", None),
        ("multipart/x-mixed-replace; boundary=----", None),
        ("image/jpeg", None),
    ] {
        assert_eq!(
            boundary_from_content_type(ct).as_deref(),
            want,
            "Content-Type {ct}"
        );
    }
    let long = format!("multipart/x-mixed-replace; boundary={}", "a".repeat(71));
    assert_eq!(boundary_from_content_type(&long), None);
}

#[test]
fn esp32_stream_parts_come_out_whole_however_the_bytes_arrive() {
    let b = "123456789000000000000987654321";
    let frames: Vec<Vec<u8>> = (0..5).map(|i| jpeg(300 + i * 97, i as u8)).collect();
    let stream: Vec<u8> = frames.iter().flat_map(|f| esp32_part(b, f)).collect();
    for chunk in [1, 2, 3, 7, 64, 1000, stream.len()] {
        let events = parse_chunked(Some(b), &stream, chunk, MAX);
        assert_eq!(bodies(&events), frames, "chunk {chunk}");
        assert_eq!(events.len(), frames.len(), "chunk {chunk}: {events:?}");
        let Event::Part(first) = &events[0] else {
            unreachable!()
        };
        assert_eq!(first.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(first.content_length, Some(frames[0].len()));
    }
}

#[test]
fn a_part_with_a_length_comes_out_before_the_next_boundary_arrives() {
    let body = jpeg(500, 1);
    let mut parser = MultipartParser::new(Some("frame"), MAX);
    parser.push(&esp32_part("frame", &body));
    assert_eq!(
        parser.next_event(),
        Some(Event::Part(Part {
            content_type: Some("image/jpeg".into()),
            content_length: Some(body.len()),
            body,
        }))
    );
    assert_eq!(parser.next_event(), None);
}

#[test]
fn a_part_without_a_length_that_is_no_sound_jpeg_ends_at_the_next_boundary() {
    let (a, b) = (jpeg(400, 2), jpeg(450, 3));
    let mut parser = MultipartParser::new(Some("frame"), MAX);
    parser.push(&plain_part("frame", &a));
    assert_eq!(parser.next_event(), None, "the end of `a` is not known yet");
    parser.push(&plain_part("frame", &b));
    let events: Vec<Event> = std::iter::from_fn(|| parser.next_event()).collect();
    assert_eq!(bodies(&events), vec![a]);
    for chunk in [1, 5, 100] {
        let mut stream = plain_part("frame", &jpeg(400, 2));
        stream.extend(plain_part("frame", &jpeg(450, 3)));
        stream.extend(b"--frame--\r\n");
        let events = parse_chunked(Some("frame"), &stream, chunk, MAX);
        assert_eq!(
            bodies(&events),
            vec![jpeg(400, 2), jpeg(450, 3)],
            "chunk {chunk}"
        );
    }
}

/// A JPEG whose marker structure is sound (SOI, a comment, SOS, stuffed entropy data, EOI),
/// so the parser can tell where it ends without a length or a boundary.
fn structured_jpeg(n: usize, seed: u8) -> Vec<u8> {
    let mut j = vec![0xff, 0xd8, 0xff, 0xfe, 0x00, 0x06, b't', b'e', b's', seed];
    j.extend_from_slice(&[0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00]);
    for b in jpeg(n, seed)[2..n].iter() {
        j.push(*b);
        if *b == 0xff {
            j.push(0x00); // byte stuffing: an FF in entropy data is followed by 00
        }
    }
    j.extend_from_slice(&[0xff, 0xd9]);
    j
}

#[test]
fn a_jpeg_part_without_a_length_comes_out_as_soon_as_its_end_marker_arrives() {
    let (a, b) = (structured_jpeg(600, 1), structured_jpeg(700, 2));
    for chunk in [1, 7, 10_000] {
        let mut parser = MultipartParser::new(Some("frame"), MAX);
        let mut events = Vec::new();
        for piece in plain_part("frame", &a).chunks(chunk) {
            parser.push(piece);
            events.extend(std::iter::from_fn(|| parser.next_event()));
        }
        // No boundary after it yet, and still out whole.
        assert_eq!(bodies(&events), vec![a.clone()], "chunk {chunk}");
        for piece in plain_part("frame", &b).chunks(chunk) {
            parser.push(piece);
            events.extend(std::iter::from_fn(|| parser.next_event()));
        }
        assert_eq!(bodies(&events), vec![a.clone(), b.clone()], "chunk {chunk}");
        assert_eq!(events.len(), 2, "nothing skipped: {events:?}");
    }
    // A JPEG cut short is not taken for a whole one: the boundary ends it.
    let mut stream = plain_part("frame", &a[..300]);
    stream.extend(plain_part("frame", &b));
    assert_eq!(
        bodies(&parse(Some("frame"), &stream)),
        vec![a[..300].to_vec(), b]
    );
}

#[test]
fn dashes_in_the_header_or_missing_in_the_body_do_not_matter() {
    let frames = vec![jpeg(200, 4), jpeg(210, 5)];
    let mut dashed: Vec<u8> = frames.iter().flat_map(|f| plain_part("frame", f)).collect();
    dashed.extend(b"--frame--\r\n");
    // Header `boundary=--frame`, lines `--frame`.
    assert_eq!(bodies(&parse(Some("--frame"), &dashed)), frames);
    // Header `boundary=frame`, lines `frame` with no dashes at all.
    let bare: Vec<u8> = frames
        .iter()
        .flat_map(|f| {
            let mut p = b"frame\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
            p.extend_from_slice(f);
            p.extend_from_slice(b"\r\n");
            p
        })
        .collect();
    let events = parse(Some("frame"), &bare);
    // The last part has no delimiter after it yet.
    assert_eq!(bodies(&events), frames[..1].to_vec(), "{events:?}");
}

#[test]
fn missing_line_breaks_around_boundaries_and_headers_are_tolerated() {
    let frames = vec![jpeg(300, 6), jpeg(310, 7), jpeg(320, 8)];
    // No CRLF between a body and the next delimiter, no blank line after the headers.
    let mut stream = Vec::new();
    for f in &frames {
        stream.extend(b"--frame\r\nContent-Type: image/jpeg\r\n");
        stream.extend(f);
    }
    stream.extend(b"--frame\r\n");
    let events = parse(Some("frame"), &stream);
    assert_eq!(bodies(&events), frames, "{events:?}");
    // Bare LF line breaks.
    let lf: Vec<u8> = frames
        .iter()
        .flat_map(|f| {
            let mut p = format!("--frame\nContent-Length: {}\n\n", f.len()).into_bytes();
            p.extend_from_slice(f);
            p.push(b'\n');
            p
        })
        .collect();
    assert_eq!(bodies(&parse(Some("frame"), &lf)), frames);
}

#[test]
fn parts_without_headers_are_read() {
    let frames = vec![jpeg(100, 9), jpeg(110, 10)];
    let mut stream = Vec::new();
    stream.extend(b"--frame\r\n\r\n");
    stream.extend(&frames[0]);
    stream.extend(b"\r\n--frame\r\n");
    stream.extend(&frames[1]);
    stream.extend(b"\r\n--frame\r\n");
    let events = parse(Some("frame"), &stream);
    assert_eq!(bodies(&events), frames);
    assert!(events
        .iter()
        .all(|e| matches!(e, Event::Part(p) if p.content_type.is_none())));
}

#[test]
fn a_length_that_lies_long_is_cut_at_the_boundary() {
    let frames = vec![jpeg(300, 11), jpeg(300, 12), jpeg(300, 13)];
    let mut stream = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let claimed = if i == 0 { f.len() + 200 } else { f.len() };
        stream.extend(format!("\r\n--frame\r\nContent-Length: {claimed}\r\n\r\n").as_bytes());
        stream.extend(f);
    }
    for chunk in [1, 13, stream.len()] {
        let events = parse_chunked(Some("frame"), &stream, chunk, MAX);
        assert_eq!(bodies(&events), frames, "chunk {chunk}: {events:?}");
    }
}

#[test]
fn a_length_that_lies_short_gives_a_cut_body_then_the_stream_goes_on() {
    let frames = [jpeg(300, 14), jpeg(300, 15)];
    let mut stream = Vec::new();
    stream.extend(b"--frame\r\nContent-Length: 100\r\n\r\n");
    stream.extend(&frames[0]);
    stream.extend(esp32_part("frame", &frames[1]));
    let events = parse(Some("frame"), &stream);
    let got = bodies(&events);
    // The decoder refuses the cut body; the rest of the lying part is reported as garbage and
    // the next part is whole.
    assert_eq!(got, vec![frames[0][..100].to_vec(), frames[1].clone()]);
    assert_eq!(skipped(&events, SkipReason::Garbage), 1, "{events:?}");
}

#[test]
fn a_truncated_part_does_not_swallow_the_next_one() {
    let whole = jpeg(400, 16);
    let next = jpeg(400, 17);
    // No length: the camera gave up half way through a frame and started the next one.
    let mut stream = plain_part("frame", &whole[..150]);
    stream.extend(plain_part("frame", &next));
    stream.extend(b"--frame\r\n");
    assert_eq!(
        bodies(&parse(Some("frame"), &stream)),
        vec![whole[..150].to_vec(), next]
    );
}

#[test]
fn a_wrong_boundary_is_followed_and_so_is_the_return_to_the_right_one() {
    let frames: Vec<Vec<u8>> = (0..6).map(|i| jpeg(250, 20 + i)).collect();
    let mut stream = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let b = if (2..4).contains(&i) {
            "wrongwrong"
        } else {
            "frame"
        };
        stream.extend(esp32_part(b, f));
    }
    for chunk in [1, 9, stream.len()] {
        let events = parse_chunked(Some("frame"), &stream, chunk, MAX);
        assert_eq!(bodies(&events), frames, "chunk {chunk}");
        let changes: Vec<&Event> = events
            .iter()
            .filter(|e| matches!(e, Event::BoundaryChanged { .. }))
            .collect();
        assert_eq!(
            changes,
            vec![
                &Event::BoundaryChanged {
                    from: Some("frame".into()),
                    to: "wrongwrong".into()
                },
                &Event::BoundaryChanged {
                    from: Some("wrongwrong".into()),
                    to: "frame".into()
                },
            ],
            "chunk {chunk}"
        );
    }
}

#[test]
fn a_wrong_boundary_without_lengths_is_followed_too() {
    let frames: Vec<Vec<u8>> = (0..4).map(|i| jpeg(250, 30 + i)).collect();
    let mut stream = plain_part("frame", &frames[0]);
    stream.extend(plain_part("other", &frames[1]));
    stream.extend(plain_part("other", &frames[2]));
    stream.extend(plain_part("frame", &frames[3]));
    stream.extend(b"--frame\r\n");
    assert_eq!(bodies(&parse(Some("frame"), &stream)), frames);
}

#[test]
fn no_boundary_in_the_header_is_learned_from_the_stream() {
    let frames = vec![jpeg(200, 40), jpeg(200, 41)];
    let stream: Vec<u8> = frames.iter().flat_map(|f| esp32_part("xyz", f)).collect();
    let events = parse(None, &stream);
    assert_eq!(bodies(&events), frames);
    assert_eq!(
        events[0],
        Event::BoundaryChanged {
            from: None,
            to: "xyz".into()
        }
    );
}

#[test]
fn garbage_between_parts_is_skipped_and_reported() {
    let frames = vec![jpeg(200, 50), jpeg(200, 51)];
    let mut stream = esp32_part("frame", &frames[0]);
    stream.extend(b"this is not a part\r\n\x00\x01\x02 frame framed --framework\r\n");
    stream.extend(esp32_part("frame", &frames[1]));
    let events = parse(Some("frame"), &stream);
    assert_eq!(bodies(&events), frames, "{events:?}");
    assert_eq!(skipped(&events, SkipReason::Garbage), 1, "{events:?}");
}

#[test]
fn endless_garbage_is_reported_and_does_not_fill_memory() {
    let max = 4096;
    let mut parser = MultipartParser::new(Some("frame"), max);
    let mut reports = 0;
    let noise = jpeg(1000, 60);
    for _ in 0..100 {
        parser.push(&noise);
        while let Some(e) = parser.next_event() {
            assert!(matches!(
                e,
                Event::Skipped {
                    reason: SkipReason::Garbage,
                    ..
                }
            ));
            reports += 1;
        }
        assert!(parser.buffered() < 2 * RESCAN_TAIL, "{}", parser.buffered());
    }
    // About one report per `max` non-blank bytes (a few percent of the noise is blank).
    assert!((15..=25).contains(&reports), "{reports} reports");
    // And a real part after all that still comes out.
    let f = jpeg(300, 61);
    parser.push(&esp32_part("frame", &f));
    let events: Vec<Event> = std::iter::from_fn(|| parser.next_event()).collect();
    assert_eq!(bodies(&events), vec![f]);
}

#[test]
fn an_oversize_part_is_dropped_and_the_next_one_read() {
    let max = 2048;
    let big = jpeg(5000, 70);
    let small = jpeg(500, 71);
    // Without a length.
    let mut stream = plain_part("frame", &big);
    stream.extend(plain_part("frame", &small));
    stream.extend(b"--frame\r\n");
    let mut parser = MultipartParser::new(Some("frame"), max);
    let mut events = Vec::new();
    for piece in stream.chunks(256) {
        parser.push(piece);
        events.extend(std::iter::from_fn(|| parser.next_event()));
        assert!(parser.buffered() <= max + 256 + RESCAN_TAIL);
    }
    assert_eq!(bodies(&events), vec![small.clone()], "{events:?}");
    assert_eq!(skipped(&events, SkipReason::Oversize), 1, "{events:?}");
    // With an honest but too large length, and with a huge lying one.
    for claimed in [big.len(), usize::MAX / 2] {
        let mut stream = format!("--frame\r\nContent-Length: {claimed}\r\n\r\n").into_bytes();
        stream.extend(&big);
        stream.extend(esp32_part("frame", &small));
        let events = parse_chunked(Some("frame"), &stream, 256, max);
        assert_eq!(
            bodies(&events),
            vec![small.clone()],
            "{claimed}: {events:?}"
        );
        assert_eq!(skipped(&events, SkipReason::Oversize), 1, "{events:?}");
    }
}

#[test]
fn a_header_block_that_never_ends_is_skipped() {
    let f = jpeg(300, 80);
    let mut stream = b"--frame\r\nX-Junk: ".to_vec();
    stream.extend(std::iter::repeat_n(b'a', 10_000));
    stream.extend(esp32_part("frame", &f));
    let events = parse_chunked(Some("frame"), &stream, 512, MAX);
    assert_eq!(bodies(&events), vec![f], "{events:?}");
    assert_eq!(skipped(&events, SkipReason::HeadersTooLong), 1);
}

#[test]
fn bad_header_values_are_ignored() {
    let f = jpeg(300, 81);
    let mut stream = b"--frame\r\nContent-Length: lots\r\nContent-Type:\r\n\r\n".to_vec();
    stream.extend(&f);
    stream.extend(b"\r\n--frame\r\n");
    let events = parse(Some("frame"), &stream);
    assert_eq!(
        events,
        vec![Event::Part(Part {
            content_type: Some(String::new()),
            content_length: None,
            body: f
        })]
    );
}

#[test]
fn random_bytes_never_panic_and_a_good_part_after_them_is_found() {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let pieces: [&[u8]; 8] = [
        b"--frame",
        b"\r\n",
        b"--",
        b"Content-Length: 5\r\n",
        b"\r\n\r\n",
        b"\xff\xd8",
        b"--other\r\nContent-Type: x\r\n",
        b"frame",
    ];
    for round in 0..200 {
        let mut stream = Vec::new();
        for _ in 0..(next() % 60) {
            if next() % 3 == 0 {
                stream.extend_from_slice(pieces[(next() % 8) as usize]);
            } else {
                stream.push(next() as u8);
            }
        }
        let mut parser = MultipartParser::new(Some("frame"), 1024);
        for piece in stream.chunks(1 + (next() % 17) as usize) {
            parser.push(piece);
            while parser.next_event().is_some() {}
        }
        // Whatever state the noise left, a closing line break and two good parts resync it:
        // the first may absorb a half-open part, the second comes out whole.
        let good = jpeg(200, round as u8);
        parser.push(b"\r\n");
        parser.push(&esp32_part("frame", &jpeg(100, 1)));
        parser.push(&esp32_part("frame", &good));
        let events: Vec<Event> = std::iter::from_fn(|| parser.next_event()).collect();
        assert_eq!(
            bodies(&events).last(),
            Some(&good),
            "round {round}: {events:?}"
        );
    }
}
