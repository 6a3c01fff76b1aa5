//! Opening `whtnxt://` links, what both front doors — the HTTP API and the single-instance
//! socket — do with a link: record a `LinkAttempt` in the state, dial in steps (direct, then
//! relay beside it, then a DHT lookup), join the shared playlist the link names, settle.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use multiaddr::Protocol;
use whatnext_protocol::{
    link::{InviteLink, MAX_LINK_ADDRS, MAX_LINK_RELAYS},
    state::{DialMethod, DialStep, LinkAttempt, LinkStatus, MAX_LINK_ATTEMPTS},
};

use crate::{
    sessions::Sessions,
    state::{MAX_STATE_TEXT, StateHandle, clip, now_ms, problem_over, report_problem},
    supervisor::ServiceClient,
    ui::{UiEvent, UiHooks},
};

/// How long the direct dial of a link runs alone before the relay circuit is tried beside
/// it: long enough for a direct connection on a LAN or the internet to win, short enough
/// that a NAT dropping packets costs the user little.
const RELAY_HEAD_START: Duration = Duration::from_millis(500);

/// How one step of opening a link ended.
struct StepOutcome {
    method: DialMethod,
    addrs: Vec<String>,
    started: Instant,
    outcome: Result<String, String>,
    dial_ms: Option<f64>,
}

/// How long a link's dial may take when the caller does not say.
pub const DEFAULT_LINK_TIMEOUT: Duration = Duration::from_secs(15);

/// Reads a caller's timeout in seconds.
pub fn link_timeout(secs: Option<f64>) -> Result<Duration, String> {
    match secs {
        None => Ok(DEFAULT_LINK_TIMEOUT),
        Some(secs) => Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("timeout must be a positive number of seconds, not {secs}")),
    }
}

/// Opens links: the attempts' numbering, and the handles a link's steps go through.
pub struct Links {
    state: StateHandle,
    service: ServiceClient,
    sessions: Sessions,
    /// The native window, when there is one (desktop build): told when a link fails.
    ui: Option<UiHooks>,
    next_link_id: AtomicU64,
}

impl Links {
    pub fn new(
        state: StateHandle,
        service: ServiceClient,
        sessions: Sessions,
        ui: Option<UiHooks>,
    ) -> Self {
        Self {
            state,
            service,
            sessions,
            ui,
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
            link: clip(&redact_key(url), MAX_STATE_TEXT),
            peer_id: None,
            session: None,
            status: LinkStatus::Pending,
            error: None,
            addr: None,
            dial_ms: None,
            needs_discovery: false,
            steps: vec![],
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
        attempt.session = link.session.as_deref().map(|s| clip(s, MAX_STATE_TEXT));
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
        let links = Arc::clone(self);
        let pending = attempt.clone();
        let dial = async move { links.dial_link(pending, link, timeout).await };
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
        let outcome = self
            .dial_in_steps(&mut attempt, &link, Instant::now() + timeout)
            .await;
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

    /// Tries the link's direct addresses, then its relay circuits (started after a short
    /// head start of the direct dial, or at once when it fails), then a DHT lookup of the peer
    /// id. A link without addresses starts with the lookup. Each step is recorded in the
    /// attempt (and the state) as it ends.
    async fn dial_in_steps(
        &self,
        attempt: &mut LinkAttempt,
        link: &InviteLink,
        deadline: Instant,
    ) -> Result<String, String> {
        let peer_id = link.peer_id.to_string();
        let direct: Vec<String> = link.addrs.iter().map(|a| a.to_string()).collect();
        let circuits: Vec<String> = link
            .relays
            .iter()
            .map(|r| r.clone().with(Protocol::P2pCircuit).to_string())
            .collect();
        let mut errors = Vec::new();
        if direct.is_empty() && circuits.is_empty() {
            match self.dht_step(attempt, &peer_id, deadline).await {
                Ok(addr) => return Ok(addr),
                Err(err) => errors.push(err),
            }
            // Whatever else the service knows: an open connection, or mDNS on the LAN.
            let known = self.dial_step(DialMethod::Known, &peer_id, vec![], deadline);
            match self.record_step(attempt, known.await) {
                Ok(addr) => return Ok(addr),
                Err(err) => errors.push(format!("known addresses: {err}")),
            }
            let mut message = errors.join("; ");
            message.push_str(
                ". The link has no addresses; ask for a new invite made with `whatnext invite`",
            );
            return Err(message);
        }

        let race_started = Instant::now();
        let (direct_addrs, circuit_addrs) = (direct.clone(), circuits.clone());
        let direct_step = self.dial_step(DialMethod::Direct, &peer_id, direct, deadline);
        if circuits.is_empty() {
            match self.record_step(attempt, direct_step.await) {
                Ok(addr) => return Ok(addr),
                Err(err) => errors.push(format!("direct: {err}")),
            }
        } else {
            // Happy eyeballs: the direct dial goes first; the relay joins if it has not
            // succeeded after RELAY_HEAD_START, and the first connection wins.
            let mut direct_step = std::pin::pin!(direct_step);
            let direct_done = tokio::select! {
                step = &mut direct_step => Some(step),
                () = tokio::time::sleep(RELAY_HEAD_START) => None,
            };
            let relay_step = self.dial_step(DialMethod::Relay, &peer_id, circuits, deadline);
            match direct_done {
                Some(step) => {
                    match self.record_step(attempt, step) {
                        Ok(addr) => return Ok(addr),
                        Err(err) => errors.push(format!("direct: {err}")),
                    }
                    match self.record_step(attempt, relay_step.await) {
                        Ok(addr) => return Ok(addr),
                        Err(err) => errors.push(format!("relay: {err}")),
                    }
                }
                None => {
                    let mut relay_step = std::pin::pin!(relay_step);
                    let (first, direct_first) = tokio::select! {
                        step = &mut direct_step => (step, true),
                        step = &mut relay_step => (step, false),
                    };
                    if first.outcome.is_ok() {
                        // The other way was still trying: say so rather than leave it out
                        // (listed first: it started first).
                        let (method, addrs, other) = if direct_first {
                            (DialMethod::Relay, circuit_addrs, "the direct connection")
                        } else {
                            (DialMethod::Direct, direct_addrs, "the relay")
                        };
                        let abandoned = StepOutcome {
                            method,
                            addrs,
                            started: race_started,
                            outcome: Err(format!(
                                "still trying when {other} connected; stopped waiting"
                            )),
                            dial_ms: None,
                        };
                        let _ = self.record_step(attempt, abandoned);
                        return self.record_step(attempt, first);
                    }
                    let first_outcome = self.record_step(attempt, first);
                    let second = if direct_first {
                        relay_step.await
                    } else {
                        direct_step.await
                    };
                    let second_outcome = self.record_step(attempt, second);
                    if second_outcome.is_ok() {
                        return second_outcome;
                    }
                    for outcome in [first_outcome, second_outcome] {
                        if let Err(err) = outcome {
                            errors.push(err);
                        }
                    }
                }
            }
        }
        match self.dht_step(attempt, &peer_id, deadline).await {
            Ok(addr) => Ok(addr),
            Err(err) => {
                errors.push(err);
                Err(errors.join("; "))
            }
        }
    }

    /// Looks the peer up in the DHT and dials what it finds.
    async fn dht_step(
        &self,
        attempt: &mut LinkAttempt,
        peer_id: &str,
        deadline: Instant,
    ) -> Result<String, String> {
        let started = Instant::now();
        let remaining = deadline.saturating_duration_since(started);
        let found = self
            .service
            .find_peer(peer_id.to_string(), remaining)
            .await
            .map_err(|err| err.to_string());
        match found {
            Ok(mut addrs) => {
                // The DHT is the network's word: no more addresses than a link may carry.
                addrs.truncate(MAX_LINK_ADDRS + MAX_LINK_RELAYS);
                let mut step = self
                    .dial_step(DialMethod::Dht, peer_id, addrs, deadline)
                    .await;
                step.started = started;
                self.record_step(attempt, step)
                    .map_err(|err| format!("DHT: {err}"))
            }
            Err(reason) => {
                let step = StepOutcome {
                    method: DialMethod::Dht,
                    addrs: vec![],
                    started,
                    outcome: Err(reason),
                    dial_ms: None,
                };
                self.record_step(attempt, step)
                    .map_err(|err| format!("DHT lookup: {err}"))
            }
        }
    }

    /// One dial through the service. Not recorded yet: steps may run side by side, and the
    /// caller records each as it ends.
    async fn dial_step(
        &self,
        method: DialMethod,
        peer_id: &str,
        addrs: Vec<String>,
        deadline: Instant,
    ) -> StepOutcome {
        let started = Instant::now();
        let wait = deadline.saturating_duration_since(started);
        let mut dial_ms = None;
        // Names (`/dns4/…`) are resolved here: the sandboxed service cannot.
        let outcome = match crate::names::resolve_for_dial(addrs.clone()).await {
            Err(why) => Err(why),
            Ok(resolved) => match self
                .service
                .dial(Some(peer_id.to_string()), resolved, wait)
                .await
            {
                Ok(dialed) => {
                    dial_ms = dialed.micros.map(|us| us as f64 / 1000.0);
                    Ok(dialed.addr)
                }
                Err(err) => Err(err.to_string()),
            },
        };
        StepOutcome {
            method,
            addrs,
            started,
            outcome,
            dial_ms,
        }
    }

    fn record_step(&self, attempt: &mut LinkAttempt, step: StepOutcome) -> Result<String, String> {
        if step.outcome.is_ok() {
            attempt.dial_ms = step.dial_ms;
        }
        attempt.steps.push(DialStep {
            method: step.method,
            addrs: step.addrs,
            ok: step.outcome.is_ok(),
            error: step.outcome.as_ref().err().map(|e| clip(e, MAX_STATE_TEXT)),
            ms: step.started.elapsed().as_secs_f64() * 1000.0,
        });
        self.record(attempt);
        step.outcome
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
                let error = clip(&error, MAX_STATE_TEXT);
                if let Some(ui) = &self.ui {
                    (ui.notify)(UiEvent::LinkFailed {
                        link: attempt.link.clone(),
                        reason: error.clone(),
                    });
                }
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
                report_problem(s, error, attempt.peer_id.as_deref());
            } else if attempt.status == LinkStatus::Connected
                && let Some(peer) = &attempt.peer_id
            {
                problem_over(s, peer);
            }
            true
        });
    }
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
    fn keys_are_redacted() {
        assert_eq!(
            redact_key("whtnxt://connect/P?session=s&key=secret&addr=/x"),
            "whtnxt://connect/P?session=s&key=…&addr=/x"
        );
        assert_eq!(redact_key("whtnxt://connect/P"), "whtnxt://connect/P");
    }
}
