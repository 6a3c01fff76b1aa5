//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes of JSON.
//!
//! A body may carry raw bytes after its JSON (audio, which base64 in JSON would cost a
//! third more bytes and an encode and a decode at every hop): such a body starts with a
//! zero byte, which no JSON text does, then the JSON's length (4 bytes, big-endian), the
//! JSON, and the raw bytes to the end ([`with_attachment`], [`split_attachment`]).
//!
//! The decoder never trusts the length it reads. A frame longer than the limit is not
//! buffered: its bytes are skipped as they arrive and the caller gets
//! [`Frame::Oversized`], so one bad frame costs one error reply instead of the channel (or
//! the process's memory). Malformed JSON is the caller's concern: frames carry raw bytes and
//! [`decode_json`] turns them into values with a typed error.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Serialize, de::DeserializeOwned};
use tokio_util::codec::{Decoder, Encoder};

/// Size of the length prefix in bytes.
pub const HEADER_LEN: usize = 4;
/// Default largest frame body accepted: 16 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// One unit read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete frame body within the limit.
    Message(Bytes),
    /// A frame whose declared length exceeded the limit; its body was skipped.
    Oversized { len: usize, max: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversized { len: usize, max: usize },
    #[error("stream ended in the middle of a frame ({have} of {need} bytes received)")]
    Truncated { have: usize, need: usize },
    #[error("frame is not valid JSON for this message type: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("I/O error on the frame stream: {0}")]
    Io(#[from] std::io::Error),
}

/// One frame to write: its body is `head` then `data`, kept apart so that raw bytes (audio)
/// go from where they are to the pipe without being copied into one buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutFrame {
    /// The JSON (after the attachment header when `data` is not empty).
    pub head: Vec<u8>,
    pub data: Bytes,
}

impl From<Vec<u8>> for OutFrame {
    fn from(head: Vec<u8>) -> Self {
        OutFrame {
            head,
            data: Bytes::new(),
        }
    }
}

impl OutFrame {
    /// A frame of `json` with the raw bytes `data` attached ([`with_attachment`]).
    pub fn attached(json: Vec<u8>, data: Bytes) -> Self {
        if data.is_empty() {
            return json.into();
        }
        let mut head = Vec::with_capacity(1 + HEADER_LEN + json.len());
        head.extend_from_slice(&attachment_header(&json));
        head.extend_from_slice(&json);
        OutFrame { head, data }
    }

    /// The length of the body.
    pub fn len(&self) -> usize {
        self.head.len() + self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body in one buffer, as a reader of the frame gets it.
    pub fn into_body(self) -> Vec<u8> {
        let mut body = self.head;
        body.extend_from_slice(&self.data);
        body
    }
}

/// Drives the write half of a frame stream from a queue: writes what `frames` yields,
/// batching what is already waiting into one flush. Ends when the queue closes (the caller
/// is done; dropping the writer then closes the stream) or a write fails (a frame over
/// [`DEFAULT_MAX_FRAME_LEN`] is one).
///
/// Both ends of the controller ↔ service pipes run their writes in a task of this, so no
/// loop that reads ever waits for the other side to read (a cycle of two full pipes).
/// It opens nothing: the writer is the caller's.
pub async fn write_queued_frames<W: tokio::io::AsyncWrite + Unpin>(
    writer: W,
    mut frames: tokio::sync::mpsc::Receiver<OutFrame>,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    // Small frames gather in the buffer; a big one goes past it, straight to the stream.
    let mut writer = tokio::io::BufWriter::with_capacity(64 * 1024, writer);
    while let Some(frame) = frames.recv().await {
        write_frame(&mut writer, &frame).await?;
        while let Ok(frame) = frames.try_recv() {
            write_frame(&mut writer, &frame).await?;
        }
        writer.flush().await?;
    }
    Ok(())
}

async fn write_frame<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &OutFrame,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let len = frame.len();
    if len > DEFAULT_MAX_FRAME_LEN {
        return Err(std::io::Error::other(FrameError::Oversized {
            len,
            max: DEFAULT_MAX_FRAME_LEN,
        }));
    }
    writer.write_all(&(len as u32).to_be_bytes()).await?;
    writer.write_all(&frame.head).await?;
    writer.write_all(&frame.data).await
}

/// When a loop working through a batch of frames read in one go should let the other
/// process start on its answers: after `every` frames in a row with more still buffered.
/// Without it, under load each end of a pipe handles a whole batch while the other waits
/// for all of it.
#[derive(Debug, Clone)]
pub struct Waves {
    every: usize,
    in_a_row: usize,
}

impl Waves {
    pub const fn new(every: usize) -> Self {
        Self { every, in_a_row: 0 }
    }

    /// Counts one handled frame; true when the loop should yield now. `more_buffered`:
    /// whether more of the batch is buffered (none ends the batch).
    pub fn handled(&mut self, more_buffered: bool) -> bool {
        if !more_buffered {
            self.in_a_row = 0;
            return false;
        }
        self.in_a_row += 1;
        if self.in_a_row < self.every {
            return false;
        }
        self.in_a_row = 0;
        true
    }
}

/// tokio-util codec for [`Frame`]s. Encodes any byte slice; see [`encode_json`] for values.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_len: usize,
    /// Bytes of an oversized frame still to be discarded.
    skipping: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl FrameCodec {
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len,
            skipping: 0,
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if self.skipping > 0 {
            let n = self.skipping.min(src.len());
            src.advance(n);
            self.skipping -= n;
            if self.skipping > 0 {
                return Ok(None);
            }
        }
        if src.len() < HEADER_LEN {
            src.reserve(HEADER_LEN - src.len());
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max_len {
            src.advance(HEADER_LEN);
            let n = len.min(src.len());
            src.advance(n);
            self.skipping = len - n;
            return Ok(Some(Frame::Oversized {
                len,
                max: self.max_len,
            }));
        }
        if src.len() < HEADER_LEN + len {
            src.reserve(HEADER_LEN + len - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        Ok(Some(Frame::Message(src.split_to(len).freeze())))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() && self.skipping == 0 => Ok(None),
            None => {
                let need = if src.len() >= HEADER_LEN {
                    HEADER_LEN + u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize
                } else {
                    HEADER_LEN
                };
                let have = src.len();
                src.clear();
                self.skipping = 0;
                Err(FrameError::Truncated { have, need })
            }
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, body: T, dst: &mut BytesMut) -> Result<(), FrameError> {
        let body = body.as_ref();
        if body.len() > self.max_len {
            return Err(FrameError::Oversized {
                len: body.len(),
                max: self.max_len,
            });
        }
        dst.reserve(HEADER_LEN + body.len());
        dst.put_u32(body.len() as u32);
        dst.put_slice(body);
        Ok(())
    }
}

/// Serializes `value` as one complete frame (header included), for blocking writers.
pub fn encode_json<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(value)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    let len = u32::try_from(body.len()).map_err(|_| FrameError::Oversized {
        len: body.len(),
        max: u32::MAX as usize,
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Marks a body whose JSON is followed by raw bytes.
const ATTACHED: u8 = 0;

/// What comes before `json` in a body with an attachment (for writers that send the
/// parts as they are, without assembling the body).
pub fn attachment_header(json: &[u8]) -> [u8; 1 + HEADER_LEN] {
    let [a, b, c, d] = (json.len() as u32).to_be_bytes();
    [ATTACHED, a, b, c, d]
}

/// A body of `json` followed by the raw bytes `data`, or `json` alone when `data` is empty
/// ([`OutFrame::attached`], assembled).
pub fn with_attachment(json: &[u8], data: &[u8]) -> Vec<u8> {
    OutFrame::attached(json.to_vec(), Bytes::copy_from_slice(data)).into_body()
}

/// A body's JSON and its raw bytes (empty when it carries none).
pub fn attachment_parts(body: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    if body.first() != Some(&ATTACHED) {
        return Ok((body, &[]));
    }
    let start = 1 + HEADER_LEN;
    let declared = body
        .get(1..start)
        .map(|len| u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize);
    match declared {
        Some(len) if body.len() >= start + len => {
            Ok((&body[start..start + len], &body[start + len..]))
        }
        _ => Err(FrameError::Truncated {
            have: body.len(),
            need: start + declared.unwrap_or(0),
        }),
    }
}

/// [`attachment_parts`] of a shared body, without copying either part.
pub fn split_attachment(body: &Bytes) -> Result<(Bytes, Bytes), FrameError> {
    let (json, data) = attachment_parts(body)?;
    let slice = |part: &[u8]| {
        if part.is_empty() {
            Bytes::new()
        } else {
            body.slice_ref(part)
        }
    };
    Ok((slice(json), slice(data)))
}

/// Parses a frame body into a value.
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    Ok(serde_json::from_slice(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn waves_break_long_batches_only() {
        let mut waves = Waves::new(3);
        let yields: Vec<bool> = [true, true, true, true, true, true, false, true, true, false]
            .into_iter()
            .map(|more| waves.handled(more))
            .collect();
        assert_eq!(
            yields,
            [
                false, false, true, false, false, true, false, false, false, false
            ]
        );
    }

    fn decode_all(codec: &mut FrameCodec, bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(frame) = codec.decode(&mut buf)? {
            out.push(frame);
        }
        if let Some(frame) = codec.decode_eof(&mut buf)? {
            out.push(frame);
        }
        Ok(out)
    }

    fn encode(codec: &mut FrameCodec, bodies: &[Vec<u8>]) -> BytesMut {
        let mut buf = BytesMut::new();
        for body in bodies {
            codec.encode(body, &mut buf).expect("within limit");
        }
        buf
    }

    #[test]
    fn truncated_frame_is_an_error_not_a_panic() {
        let mut codec = FrameCodec::default();
        let mut bytes = encode(&mut codec, &[b"{\"type\":\"ping\"}".to_vec()]).to_vec();
        bytes.truncate(bytes.len() - 3);
        let err = decode_all(&mut codec, &bytes).expect_err("truncated");
        assert!(matches!(err, FrameError::Truncated { .. }), "{err}");
        // A header cut short is truncated too.
        let err = decode_all(&mut FrameCodec::default(), &[0, 0]).expect_err("short header");
        assert!(
            matches!(err, FrameError::Truncated { have: 2, need: 4 }),
            "{err}"
        );
    }

    #[test]
    fn oversized_frame_is_skipped_and_the_stream_goes_on() {
        let mut codec = FrameCodec::new(8);
        let mut bytes = vec![0, 0, 0, 20];
        bytes.extend_from_slice(&[b'x'; 20]);
        bytes.extend_from_slice(&[0, 0, 0, 2, b'{', b'}']);
        let frames = decode_all(&mut codec, &bytes).expect("decodes");
        assert_eq!(
            frames,
            vec![
                Frame::Oversized { len: 20, max: 8 },
                Frame::Message(Bytes::from_static(b"{}"))
            ]
        );
    }

    #[test]
    fn oversized_body_is_refused_by_the_encoder() {
        let mut codec = FrameCodec::new(2);
        let err = codec
            .encode(b"abc", &mut BytesMut::new())
            .expect_err("too big");
        assert!(matches!(err, FrameError::Oversized { len: 3, max: 2 }));
    }

    #[test]
    fn garbage_json_is_a_typed_error() {
        let err = decode_json::<crate::ipc::CommandEnvelope>(b"\xff not json").expect_err("bad");
        assert!(matches!(err, FrameError::Malformed(_)));
    }

    #[tokio::test]
    async fn queued_frames_read_back_whole_and_in_order() {
        use futures::StreamExt as _;
        let (client, server) = tokio::io::duplex(1 << 10);
        let (queue, frames) = tokio::sync::mpsc::channel(4);
        let writer = tokio::spawn(write_queued_frames(client, frames));
        let big = Bytes::from(vec![7u8; 200_000]);
        let sent = vec![
            OutFrame::from(b"{}".to_vec()),
            OutFrame::attached(b"{\"a\":1}".to_vec(), big.clone()),
            OutFrame::attached(b"[]".to_vec(), Bytes::new()),
        ];
        let reader = tokio::spawn(async move {
            let mut read = tokio_util::codec::FramedRead::new(server, FrameCodec::default());
            let mut got = Vec::new();
            while let Some(frame) = read.next().await {
                got.push(frame.expect("whole frames"));
            }
            got
        });
        for frame in &sent {
            queue.send(frame.clone()).await.expect("queued");
        }
        drop(queue);
        writer.await.expect("joined").expect("written");
        let got = reader.await.expect("joined");
        let want: Vec<Frame> = sent
            .iter()
            .map(|f| Frame::Message(Bytes::from(f.clone().into_body())))
            .collect();
        assert_eq!(got, want);
        let Frame::Message(body) = &got[1] else {
            panic!("a message")
        };
        let (json, data) = split_attachment(body).expect("attached");
        assert_eq!((&json[..], data), (&b"{\"a\":1}"[..], big));
    }

    #[test]
    fn a_body_without_attachment_is_its_json() {
        let body = Bytes::from(with_attachment(b"{}", b""));
        assert_eq!(
            split_attachment(&body).expect("plain"),
            (Bytes::from_static(b"{}"), Bytes::new())
        );
    }

    #[test]
    fn a_cut_attachment_header_is_an_error() {
        for body in [&[0u8][..], &[0, 0, 0], &[0, 0, 0, 0, 9, b'{', b'}']] {
            let err = split_attachment(&Bytes::copy_from_slice(body)).expect_err("short");
            assert!(matches!(err, FrameError::Truncated { .. }), "{err}");
        }
    }

    proptest! {
        #[test]
        fn attachments_round_trip(
            json in proptest::collection::vec(any::<u8>(), 0..64),
            data in proptest::collection::vec(any::<u8>(), 1..300),
        ) {
            let body = Bytes::from(with_attachment(&json, &data));
            let (got_json, got_data) = split_attachment(&body).expect("whole");
            prop_assert_eq!(&got_json[..], &json[..]);
            prop_assert_eq!(&got_data[..], &data[..]);
        }

        #[test]
        fn frames_round_trip_in_any_chunking(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            chunk in 1usize..64,
        ) {
            let mut codec = FrameCodec::new(1024);
            let wire = encode(&mut codec, &bodies);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(frame) = codec.decode(&mut buf).expect("valid stream") {
                    got.push(frame);
                }
            }
            prop_assert!(codec.decode_eof(&mut buf).expect("clean end").is_none());
            let want: Vec<Frame> = bodies.into_iter().map(|b| Frame::Message(Bytes::from(b))).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), max in 0usize..512) {
            let mut codec = FrameCodec::new(max);
            let _ = decode_all(&mut codec, &bytes);
        }
    }
}
