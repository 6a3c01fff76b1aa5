//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes of JSON.
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

/// Drives the write half of a frame stream from a queue: writes what `frames` yields,
/// batching what is already waiting into one flush. Ends when the queue closes (the caller
/// is done; dropping the writer then closes the stream) or a write fails.
///
/// Both ends of the controller ↔ service pipes run their writes in a task of this, so no
/// loop that reads ever waits for the other side to read (a cycle of two full pipes).
/// It opens nothing: the writer is the caller's.
pub async fn write_queued_frames<W: tokio::io::AsyncWrite + Unpin>(
    writer: W,
    mut frames: tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<()> {
    use futures::SinkExt;
    let mut writer = tokio_util::codec::FramedWrite::new(writer, FrameCodec::default());
    while let Some(body) = frames.recv().await {
        writer.feed(body).await.map_err(std::io::Error::other)?;
        while let Ok(body) = frames.try_recv() {
            writer.feed(body).await.map_err(std::io::Error::other)?;
        }
        SinkExt::<Vec<u8>>::flush(&mut writer)
            .await
            .map_err(std::io::Error::other)?;
    }
    Ok(())
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

/// Parses a frame body into a value.
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    Ok(serde_json::from_slice(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
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
