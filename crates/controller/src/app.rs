//! The controller's shared handles, and the operations that both front doors — the HTTP API
//! and the single-instance socket — perform: opening links and making invites.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use multiaddr::{Multiaddr, Protocol};
use tokio_util::sync::CancellationToken;
use whatnext_protocol::{
    ipc::{Command, Event},
    link::InviteLink,
    state::{LinkAttempt, LinkStatus, MAX_LINK_ATTEMPTS},
};

use crate::{
    library::Library,
    sessions::Sessions,
    state::{StateHandle, now_ms},
    supervisor::ServiceClient,
};

pub struct App {
    pub state: StateHandle,
    pub service: ServiceClient,
    /// Bearer token of the HTTP API.
    pub token: String,
    /// Base URL of the HTTP API and view.
    pub url: String,
    pub shutdown: CancellationToken,
    pub library: Arc<Library>,
    pub sessions: Arc<Sessions>,
    /// Value of the view's HttpOnly session cookie (kept across restarts in view.json).
    pub view_secret: String,
    /// One-time login tokens for the view, with their expiry.
    pub login_tokens: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    next_link_id: AtomicU64,
}

/// How long a link's dial may take when the caller does not say.
pub const DEFAULT_LINK_TIMEOUT: Duration = Duration::from_secs(15);

/// How clients reach and prove themselves to this controller's API.
pub struct ApiAccess {
    pub url: String,
    pub token: String,
    pub view_secret: String,
}

impl App {
    pub fn new(
        state: StateHandle,
        service: ServiceClient,
        ApiAccess {
            url,
            token,
            view_secret,
        }: ApiAccess,
        shutdown: CancellationToken,
        library: Arc<Library>,
        sessions: Arc<Sessions>,
    ) -> Self {
        Self {
            state,
            service,
            token,
            url,
            shutdown,
            library,
            sessions,
            view_secret,
            login_tokens: std::sync::Mutex::new(std::collections::HashMap::new()),
            next_link_id: AtomicU64::new(1),
        }
    }

    /// Opens a `whtnxt://` link: records the attempt in the state and dials the peer. With
    /// `wait`, returns when the attempt is settled; otherwise at once, with it pending.
    pub async fn open_link(
        self: &Arc<Self>,
        url: &str,
        wait: bool,
        timeout: Duration,
    ) -> LinkAttempt {
        let mut attempt = LinkAttempt {
            id: self.next_link_id.fetch_add(1, Ordering::Relaxed),
            link: redact_key(url),
            peer_id: None,
            session: None,
            status: LinkStatus::Pending,
            error: None,
            addr: None,
            dial_ms: None,
            needs_discovery: false,
            started_at_ms: now_ms(),
            finished_at_ms: None,
        };
        let link = match url.parse::<InviteLink>() {
            Ok(link) => link,
            Err(err) => {
                self.settle(
                    &mut attempt,
                    LinkStatus::Invalid,
                    Err(format!("invalid link: {err}")),
                );
                return attempt;
            }
        };
        attempt.peer_id = Some(link.peer_id.to_string());
        attempt.session = link.session.clone();
        attempt.needs_discovery = link.needs_discovery();
        if link.peer_id.to_string() == self.state.snapshot().peer_id {
            let error = "this is your own invite link; send it to a friend to connect".to_string();
            self.settle(&mut attempt, LinkStatus::Invalid, Err(error));
            return attempt;
        }
        self.record(&attempt);
        tracing::info!(
            "opening link to {} ({} addresses)",
            link.peer_id,
            link.dial_addrs().len()
        );
        let app = Arc::clone(self);
        let pending = attempt.clone();
        let dial = async move { app.dial_link(pending, link, timeout).await };
        if wait {
            dial.await
        } else {
            tokio::spawn(dial);
            attempt
        }
    }

    async fn dial_link(
        &self,
        mut attempt: LinkAttempt,
        link: InviteLink,
        timeout: Duration,
    ) -> LinkAttempt {
        let command = Command::Dial {
            peer_id: Some(link.peer_id.to_string()),
            addrs: link.dial_addrs().iter().map(|a| a.to_string()).collect(),
        };
        let outcome = match self.service.request(command, timeout).await {
            Ok(Event::Dialed { addr, micros, .. }) => {
                attempt.dial_ms = micros.map(|us| us as f64 / 1000.0);
                Ok(addr)
            }
            Ok(Event::DialFailed { reason, .. }) if link.needs_discovery() => Err(format!(
                "{reason}. The link has no addresses (an old-style link); ask for a new invite made with `whatnext invite`"
            )),
            Ok(Event::DialFailed { reason, .. }) => Err(reason),
            Ok(other) => Err(format!(
                "unexpected answer from the network service: {other:?}"
            )),
            Err(err) => Err(err.to_string()),
        };
        // A link to a shared playlist: prove the key, then receive the playlist.
        let outcome = match (outcome, &link.session) {
            (Ok(addr), Some(session)) => match &link.key {
                None => Err(format!(
                    "the link names playlist {session} but carries no key; ask for a new link made with `whatnext playlist share`"
                )),
                Some(key) => self
                    .sessions
                    .join(&link.peer_id.to_string(), session, key)
                    .await
                    .map(|()| addr),
            },
            (outcome, _) => outcome,
        };
        let status = if outcome.is_ok() {
            LinkStatus::Connected
        } else {
            LinkStatus::Failed
        };
        self.settle(&mut attempt, status, outcome);
        attempt
    }

    fn settle(
        &self,
        attempt: &mut LinkAttempt,
        status: LinkStatus,
        outcome: Result<String, String>,
    ) {
        attempt.status = status;
        attempt.finished_at_ms = Some(now_ms());
        match outcome {
            Ok(addr) => attempt.addr = Some(addr),
            Err(error) => {
                tracing::warn!("link {}: {error}", attempt.id);
                attempt.error = Some(error);
            }
        }
        self.record(attempt);
    }

    /// Inserts or replaces the attempt in the state, keeping the newest few.
    fn record(&self, attempt: &LinkAttempt) {
        self.state.update(|s| {
            match s.link_attempts.iter_mut().find(|a| a.id == attempt.id) {
                Some(slot) => *slot = attempt.clone(),
                None => s.link_attempts.push(attempt.clone()),
            }
            let excess = s.link_attempts.len().saturating_sub(MAX_LINK_ATTEMPTS);
            s.link_attempts.drain(..excess);
            if let Some(error) = &attempt.error {
                s.last_error = Some(error.clone());
            }
            true
        });
    }

    /// An invite link for this node with every address a friend might dial.
    pub fn invite(&self) -> Result<InviteLink, String> {
        self.invite_to(None)
    }

    /// An invite link, to a shared playlist when `session` is `(playlist id, key)`.
    pub fn invite_to(&self, session: Option<(String, String)>) -> Result<InviteLink, String> {
        let state = self.state.snapshot();
        let peer_id = state
            .peer_id
            .parse()
            .map_err(|err| format!("this node's peer id is unreadable: {err}"))?;
        let mut link = InviteLink::new(peer_id);
        link.addrs = invite_addrs(&state.external_addrs, &state.listen_addrs);
        if link.addrs.is_empty() {
            return Err("the node has no listen address yet; wait until it is running".into());
        }
        if let Some((session, key)) = session {
            link.session = Some(session);
            link.key = Some(key);
        }
        Ok(link)
    }
}

/// Orders addresses for an invite: confirmed external ones first, then other reachable
/// ones, loopback last (useful only on the same machine). Unspecified and circuit
/// addresses are left out, as are duplicates.
pub fn invite_addrs(external: &[String], listen: &[String]) -> Vec<Multiaddr> {
    fn rank(addr: &Multiaddr, external: bool) -> Option<u8> {
        let mut loopback = false;
        for protocol in addr.iter() {
            match protocol {
                Protocol::Ip4(ip) if ip.is_unspecified() => return None,
                Protocol::Ip6(ip) if ip.is_unspecified() => return None,
                Protocol::Ip4(ip) => loopback |= ip.is_loopback(),
                Protocol::Ip6(ip) => loopback |= ip.is_loopback(),
                Protocol::P2pCircuit => return None,
                _ => {}
            }
        }
        Some(match (external, loopback) {
            (_, true) => 2,
            (true, false) => 0,
            (false, false) => 1,
        })
    }
    let mut ranked: Vec<(u8, Multiaddr)> = Vec::new();
    let candidates = external
        .iter()
        .map(|a| (a, true))
        .chain(listen.iter().map(|a| (a, false)));
    for (text, is_external) in candidates {
        let Ok(mut addr) = text.parse::<Multiaddr>() else {
            continue;
        };
        if let Some(Protocol::P2p(_)) = addr.iter().last() {
            addr.pop();
        }
        if let Some(rank) = rank(&addr, is_external)
            && !ranked.iter().any(|(_, a)| *a == addr)
        {
            ranked.push((rank, addr));
        }
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, addr)| addr).collect()
}

/// The link with its `key=` secret hidden, for the state and the logs.
pub fn redact_key(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let query: Vec<&str> = query
        .split('&')
        .map(|pair| {
            if pair.starts_with("key=") {
                "key=…"
            } else {
                pair
            }
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_addresses_are_ordered_external_first_loopback_last() {
        let external = vec!["/ip4/198.51.100.7/tcp/4001".to_string()];
        let listen = vec![
            "/ip4/127.0.0.1/tcp/4001".to_string(),
            "/ip4/0.0.0.0/tcp/4001".to_string(),
            "/ip4/192.168.1.20/tcp/4001".to_string(),
            "/ip4/192.168.1.20/udp/4001/quic-v1".to_string(),
            "/ip4/198.51.100.7/tcp/4001".to_string(),
        ];
        let got: Vec<String> = invite_addrs(&external, &listen)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            got,
            vec![
                "/ip4/198.51.100.7/tcp/4001",
                "/ip4/192.168.1.20/tcp/4001",
                "/ip4/192.168.1.20/udp/4001/quic-v1",
                "/ip4/127.0.0.1/tcp/4001",
            ]
        );
    }

    #[test]
    fn keys_are_redacted() {
        assert_eq!(
            redact_key("whtnxt://connect/P?session=s&key=secret&addr=/x"),
            "whtnxt://connect/P?session=s&key=…&addr=/x"
        );
        assert_eq!(redact_key("whtnxt://connect/P"), "whtnxt://connect/P");
    }
}
