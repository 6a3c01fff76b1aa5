//! The wire codec of the app protocols: JSON, size-limited.
//!
//! Unlike libp2p's stock JSON codec, a request that is too large or not JSON is not a read
//! error (which libp2p only logs, without naming the peer) but a [`AppMessage::Rejected`]
//! request: the service learns who sent it and disconnects that peer.

use std::io;

use futures::prelude::*;
use libp2p::StreamProtocol;

#[derive(Debug, Clone)]
pub enum AppMessage {
    Json(serde_json::Value),
    /// What arrived was not acceptable; the reason says why. Never sent.
    Rejected(String),
}

#[derive(Debug, Clone)]
pub struct AppCodec {
    pub max: u64,
}

async fn read_limited<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: u64,
) -> io::Result<Result<Vec<u8>, String>> {
    let mut bytes = Vec::new();
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
        AppMessage::Json(value) => {
            let bytes = serde_json::to_vec(&value)?;
            io.write_all(&bytes).await?;
            io.close().await
        }
        AppMessage::Rejected(reason) => Err(io::Error::other(format!(
            "refusing to send a rejected message: {reason}"
        ))),
    }
}

impl libp2p::request_response::Codec for AppCodec {
    type Protocol = StreamProtocol;
    type Request = AppMessage;
    type Response = AppMessage;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<AppMessage>
    where
        T: AsyncRead + Unpin + Send,
    {
        Ok(match read_limited(io, self.max).await? {
            Err(reason) => AppMessage::Rejected(reason),
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(value) => AppMessage::Json(value),
                Err(err) => AppMessage::Rejected(format!("not JSON: {err}")),
            },
        })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<AppMessage>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_limited(io, self.max)
            .await?
            .map_err(io::Error::other)?;
        Ok(AppMessage::Json(serde_json::from_slice(&bytes)?))
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
