//! The loopback HTTP server under the API: hyper's HTTP/1 connections, bounded.
//!
//! `axum::serve` holds a connection for as long as the client keeps it open, whether or not
//! it ever sends a request, so any local user could take every file descriptor with idle or
//! slow-header sockets and stall the owner's CLI and view. Here every listener is bounded:
//! - a connection must send its first request's headers within `header_timeout`;
//! - a connection with no request in flight is closed after `idle_timeout`;
//! - at most `max_connections` are open: a new one evicts the oldest connection that has no
//!   request in flight (so a flood evicts itself and the owner's request gets through), and
//!   is refused only when every open connection is busy.
//!
//! The accept loop owns the table of connections; each connection's task reports back only
//! its end, and keeps two counters the loop reads (requests in flight, last activity).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::sync::CancellationToken;

/// What bounds the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    /// The defaults for a descriptor limit of `fd_limit`: at most half the descriptors go to
    /// API connections (the rest: the store, the service's pipes, logs), capped at 1,024.
    pub fn for_fd_limit(fd_limit: u64) -> Limits {
        Limits {
            max_connections: (fd_limit / 2).clamp(16, 1024) as usize,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Raises the soft limit on open files to the hard limit (capped at 65,536) and returns the
/// soft limit now in force. A desktop's soft limit is often 1,024.
pub fn raise_fd_limit() -> u64 {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        match getrlimit(Resource::RLIMIT_NOFILE) {
            Ok((soft, hard)) => {
                let wanted = hard.min(65_536);
                if wanted > soft && setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).is_ok() {
                    return wanted;
                }
                soft
            }
            Err(_) => 1024,
        }
    }
    #[cfg(not(unix))]
    {
        8192
    }
}

/// One open connection, as the accept loop sees it.
struct Open {
    opened: Instant,
    activity: Arc<Activity>,
    close: CancellationToken,
}

/// Written by a connection's requests, read by the accept loop.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    /// Requests completed so far.
    served: AtomicUsize,
    /// Milliseconds since the server started at the last request's end.
    last_done_ms: AtomicU64,
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish (the
/// controller's shutdown deadline bounds that).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    limits: Limits,
) -> std::io::Result<()> {
    let started = Instant::now();
    let mut open: HashMap<u64, Open> = HashMap::new();
    let mut next_id: u64 = 0;
    let (ended_tx, mut ended) = mpsc::unbounded_channel::<u64>();
    let mut reap = tokio::time::interval(Duration::from_secs(1));
    reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refused: u64 = 0;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(id) = ended.recv() => {
                open.remove(&id);
            }
            _ = reap.tick() => {
                let now_ms = started.elapsed().as_millis() as u64;
                for conn in open.values() {
                    if conn.activity.in_flight.load(Ordering::Relaxed) > 0 {
                        continue;
                    }
                    let expired = if conn.activity.served.load(Ordering::Relaxed) == 0 {
                        conn.opened.elapsed() > limits.header_timeout
                    } else {
                        let idle = now_ms.saturating_sub(conn.activity.last_done_ms.load(Ordering::Relaxed));
                        idle > limits.idle_timeout.as_millis() as u64
                    };
                    if expired {
                        conn.close.cancel();
                    }
                }
            }
            accepted = listener.accept() => {
                let (stream, from) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of descriptors, or the peer gave up before accept: not fatal.
                        tracing::warn!("could not accept an API connection: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if open.len() >= limits.max_connections && !evict_one(&mut open) {
                    refused += 1;
                    if refused.is_power_of_two() {
                        tracing::warn!(
                            "refused {refused} API connections so far: all {} are busy",
                            limits.max_connections
                        );
                    }
                    drop(stream);
                    continue;
                }
                if let Err(err) = stream.set_nodelay(true) {
                    // Without it Nagle and delayed ACKs add 40 ms to small answers.
                    tracing::debug!("could not set TCP_NODELAY on an API connection: {err}");
                }
                next_id += 1;
                let id = next_id;
                let activity = Arc::new(Activity::default());
                let close = shutdown.child_token();
                open.insert(id, Open { opened: Instant::now(), activity: Arc::clone(&activity), close: close.clone() });
                let ended_tx = ended_tx.clone();
                // Handlers that need the client's address (the guest page's lockout) take it
                // as axum's `ConnectInfo`.
                let router = router.clone().layer(axum::Extension(axum::extract::ConnectInfo(from)));
                tokio::spawn(async move {
                    serve_connection(stream, router, activity, close, started, limits).await;
                    let _ = ended_tx.send(id);
                });
            }
        }
    }
    // Stop accepting; give open connections a moment to finish their requests.
    drop(listener);
    let deadline = tokio::time::sleep(Duration::from_secs(2));
    tokio::pin!(deadline);
    while !open.is_empty() {
        tokio::select! {
            () = &mut deadline => break,
            Some(id) = ended.recv() => { open.remove(&id); }
        }
    }
    Ok(())
}

/// Closes the oldest connection with no request in flight; false if every one is busy.
fn evict_one(open: &mut HashMap<u64, Open>) -> bool {
    let victim = open
        .iter()
        .filter(|(_, c)| c.activity.in_flight.load(Ordering::Relaxed) == 0)
        .min_by_key(|(_, c)| c.opened)
        .map(|(id, _)| *id);
    match victim.and_then(|id| open.remove(&id)) {
        Some(conn) => {
            conn.close.cancel();
            true
        }
        None => false,
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    router: Router,
    activity: Arc<Activity>,
    close: CancellationToken,
    started: Instant,
    limits: Limits,
) {
    let counted = {
        let activity = Arc::clone(&activity);
        tower::ServiceBuilder::new()
            .map_request(
                move |request: axum::extract::Request<hyper::body::Incoming>| {
                    activity.in_flight.fetch_add(1, Ordering::Relaxed);
                    request
                },
            )
            .service(router)
    };
    let done = Arc::clone(&activity);
    let service = tower::ServiceExt::map_response(counted, move |response| {
        done.in_flight.fetch_sub(1, Ordering::Relaxed);
        done.served.fetch_add(1, Ordering::Relaxed);
        done.last_done_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        response
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!("API connection ended: {err}");
            }
        }
        () = close.cancelled() => {
            // Shutdown or eviction: finish a request in flight, take no new one.
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_cap_follows_the_descriptor_limit() {
        assert_eq!(Limits::for_fd_limit(1024).max_connections, 512);
        assert_eq!(Limits::for_fd_limit(20).max_connections, 16);
        assert_eq!(Limits::for_fd_limit(1 << 20).max_connections, 1024);
    }
}
