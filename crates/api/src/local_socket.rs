//! The single-instance socket: how `whatnext open URL` (what the OS runs for a link) and a
//! second `whatnext run` hand over to the controller that already owns the home.
//!
//! On Unix it is `<home>/whatnext.sock`, mode 0600 inside the 0700 home, so only the user
//! can connect. Elsewhere it is a named pipe whose name is derived from the home.
//! One JSON line in ([`LocalRequest`]), one JSON line out ([`LocalResponse`]).

use std::{io, sync::Arc, time::Duration};

use interprocess::local_socket::{
    ListenerOptions, Name,
    tokio::{Stream, prelude::*},
};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use whatnext_home::Home;
use whatnext_protocol::{
    local::{LocalRequest, LocalResponse, MAX_LINE},
    state::LinkStatus,
};

use whatnext_core::{
    links::{link_timeout, redact_key},
    ui::UiEvent,
};

use crate::context::Api;

/// The socket's name for a home.
pub fn socket_name(home: &Home) -> io::Result<Name<'static>> {
    #[cfg(unix)]
    {
        use interprocess::local_socket::GenericFilePath;
        let path = home.socket_path();
        // sockaddr_un holds about 108 bytes of path.
        if path.as_os_str().len() > 100 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the home path {} is too long for a local socket; use a shorter --home",
                    home.dir().display()
                ),
            ));
        }
        path.to_fs_name::<GenericFilePath>().map(|n| n.into_owned())
    }
    #[cfg(not(unix))]
    {
        use interprocess::local_socket::GenericNamespaced;
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        home.dir().hash(&mut hasher);
        format!("whatnext-{:016x}", hasher.finish())
            .to_ns_name::<GenericNamespaced>()
            .map(|n| n.into_owned())
    }
}

/// Binds the socket. Called with the single-instance lock held, so a socket file left by a
/// crashed controller is ours to replace.
pub fn bind(home: &Home) -> io::Result<interprocess::local_socket::tokio::Listener> {
    let options = ListenerOptions::new()
        .name(socket_name(home)?)
        .try_overwrite(true);
    #[cfg(unix)]
    let options = interprocess::os::unix::local_socket::ListenerOptionsExt::mode(options, 0o600);
    options.create_tokio()
}

pub async fn serve(api: Arc<Api>, listener: interprocess::local_socket::tokio::Listener) {
    loop {
        tokio::select! {
            () = api.core().shutdown_token().cancelled() => break,
            conn = listener.accept() => match conn {
                Ok(conn) => {
                    tokio::spawn(handle(Arc::clone(&api), conn));
                }
                Err(err) => {
                    tracing::warn!("single-instance socket: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn handle(api: Arc<Api>, conn: Stream) {
    let mut line = String::new();
    let mut reader = BufReader::new(&conn).take(MAX_LINE as u64);
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await;
    let response = match read {
        Err(_) => reply_error(&api, "no request within 10 s".into()),
        Ok(Err(err)) => reply_error(&api, format!("unreadable request: {err}")),
        Ok(Ok(_)) => match serde_json::from_str::<LocalRequest>(line.trim_end()) {
            Ok(request) => answer(&api, request).await,
            Err(err) => {
                tracing::warn!("single-instance socket: refused a malformed request: {err}");
                reply_error(&api, format!("not a WhatNext request ({err})"))
            }
        },
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    if let Err(err) = (&conn).write_all(&out).await {
        tracing::debug!("single-instance socket: the client left before the answer: {err}");
    }
}

async fn answer(api: &Api, request: LocalRequest) -> LocalResponse {
    match request {
        LocalRequest::Open {
            url,
            wait,
            timeout_secs,
        } => {
            let timeout = match link_timeout(timeout_secs) {
                Ok(timeout) => timeout,
                Err(message) => return reply_error(api, message),
            };
            // A link clicked while we run: bring the window forward to show the attempt.
            api.core().notify_ui(UiEvent::LinkOpened {
                link: redact_key(&url),
            });
            let attempt = api.core().open_link(&url, wait, timeout).await;
            let ok = matches!(attempt.status, LinkStatus::Pending | LinkStatus::Connected);
            LocalResponse {
                ok,
                error: attempt.error.clone(),
                attempt: Some(attempt),
                pid: std::process::id(),
                url: api.access().url().to_string(),
            }
        }
        LocalRequest::Show => {
            api.core().notify_ui(UiEvent::Show);
            tracing::info!(
                "another launch of WhatNext asked for this one; the view is at {}",
                api.access().url()
            );
            LocalResponse {
                ok: true,
                error: None,
                attempt: None,
                pid: std::process::id(),
                url: api.access().url().to_string(),
            }
        }
    }
}

fn reply_error(api: &Api, error: String) -> LocalResponse {
    LocalResponse {
        ok: false,
        error: Some(error),
        attempt: None,
        pid: std::process::id(),
        url: api.access().url().to_string(),
    }
}
