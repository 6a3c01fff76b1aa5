//! The wire codec of the app protocols: JSON, size-limited, optionally followed by raw
//! bytes (audio) framed as on the pipe (`whatnext_protocol::frame::with_attachment`).
//!
//! Unlike libp2p's stock JSON codec, a request that is too large or not JSON is not a read
//! error (which libp2p only logs, without naming the peer) but a [`AppMessage::Rejected`]
//! request: the service learns who sent it and disconnects that peer.

use std::io;

use futures::prelude::*;
use libp2p::StreamProtocol;
use whatnext_protocol::frame::{attachment_header, split_attachment};

#[derive(Debug, Clone)]
pub enum AppMessage {
    /// A JSON message and the raw bytes after it (empty for most messages).
    Json(serde_json::Value, bytes::Bytes),
    /// What arrived was not acceptable; the reason says why. Never sent.
    Rejected(String),
}

#[derive(Debug, Clone)]
pub struct AppCodec {
    pub max: u64,
    /// The room a message is read into at first: what the protocol's messages usually
    /// need, so a big one (a group of audio) is not grown and copied a few times.
    pub expect: usize,
}

async fn read_limited<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: u64,
    expect: usize,
) -> io::Result<Result<Vec<u8>, String>> {
    let mut bytes = Vec::with_capacity(expect);
    io.take(max + 1).read_to_end(&mut bytes).await?;
    if bytes.len() as u64 > max {
        return Ok(Err(format!("message over the {max}-byte limit")));
    }
    Ok(Ok(bytes))
}

async fn write_json<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    message: AppMessage,
) -> io::Result<()> {
    match message {
        AppMessage::Json(value, data) => {
            let json = serde_json::to_vec(&value)?;
            if data.is_empty() {
                io.write_all(&json).await?;
            } else {
                // The parts as they are: the audio is not copied into one body.
                io.write_all(&attachment_header(&json)).await?;
                io.write_all(&json).await?;
                io.write_all(&data).await?;
            }
            io.close().await
        }
        AppMessage::Rejected(reason) => Err(io::Error::other(format!(
            "refusing to send a rejected message: {reason}"
        ))),
    }
}

/// A message read whole: its JSON, and the raw bytes after it.
fn parse(bytes: Vec<u8>) -> Result<AppMessage, String> {
    let (json, data) = split_attachment(&bytes::Bytes::from(bytes)).map_err(|e| e.to_string())?;
    let value = serde_json::from_slice(&json).map_err(|e| format!("not JSON: {e}"))?;
    Ok(AppMessage::Json(value, data))
}

impl libp2p::request_response::Codec for AppCodec {
    type Protocol = StreamProtocol;
    type Request = AppMessage;
    type Response = AppMessage;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<AppMessage>
    where
        T: AsyncRead + Unpin + Send,
    {
        // Requests are small on every protocol; only answers carry audio.
        Ok(match read_limited(io, self.max, 0).await? {
            Err(reason) => AppMessage::Rejected(reason),
            Ok(bytes) => match parse(bytes) {
                Ok(message) => message,
                Err(err) => AppMessage::Rejected(err),
            },
        })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<AppMessage>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_limited(io, self.max, self.expect)
            .await?
            .map_err(io::Error::other)?;
        parse(bytes).map_err(io::Error::other)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: AppMessage,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_json(io, req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: AppMessage,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_json(io, res).await
    }
}
