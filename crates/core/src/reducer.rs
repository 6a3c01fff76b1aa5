//! The state reducer: how each event of the network service changes `AppState`.
//!
//! Pure: no I/O, no clock (the caller passes `now_ms`), no channels — so every event kind
//! is covered by a table test below. The supervisor applies it through
//! [`StateHandle::update`](crate::state::StateHandle::update), which bumps the version
//! when [`reduce`] reports a change.

use whatnext_protocol::{
    ipc::Event,
    state::{
        AppState, Connection, DialFailure, MAX_DIAL_FAILURES, NatStatus, NodeStatus,
        PROBLEM_SERVICE, RelayReservation,
    },
};

use crate::state::{MAX_STATE_TEXT, clip, problem_over, report_problem};

/// Folds `event` into `state`; returns whether anything visible changed.
pub fn reduce(state: &mut AppState, event: &Event, now_ms: u64) -> bool {
    let s = state;
    match event {
        Event::NodeStarted {
            peer_id,
            listen_addrs,
            ..
        } => {
            s.node = NodeStatus::Running;
            s.peer_id = peer_id.clone();
            problem_over(s, PROBLEM_SERVICE);
            for addr in listen_addrs {
                push_new(&mut s.listen_addrs, addr);
            }
            true
        }
        Event::ListenAddrAdded { addr } => push_new(&mut s.listen_addrs, addr),
        Event::ListenAddrRemoved { addr } => remove_all(&mut s.listen_addrs, addr),
        Event::ExternalAddrConfirmed { addr } => push_new(&mut s.external_addrs, addr),
        Event::ConnectionEstablished(info) => {
            for helper in &mut s.helpers {
                if helper.peer_id.as_deref() == Some(info.peer_id.as_str()) {
                    helper.connected = true;
                    helper.error = None;
                }
            }
            // Another connection to the same peer already knows its clock.
            let clock = s
                .connections
                .iter()
                .find(|c| c.peer_id == info.peer_id)
                .and_then(|c| c.clock);
            // A failed dial to this peer is over.
            problem_over(s, &info.peer_id);
            s.connections.push(Connection {
                clock,
                peer_id: info.peer_id.clone(),
                addr: info.addr.clone(),
                transport: info.transport.clone(),
                rtt_ms: None,
                direction: info.direction,
                relayed: info.relayed,
                since_ms: now_ms,
                connection_id: info.connection_id,
            });
            true
        }
        Event::ConnectionClosed { connection_id, .. } => {
            let before = s.connections.len();
            s.connections.retain(|c| c.connection_id != *connection_id);
            mark_helpers_connected(s);
            before != s.connections.len()
        }
        Event::NatStatus { status, .. } => {
            let changed = s.nat != *status;
            s.nat = *status;
            changed
        }
        Event::RelayReserved {
            relay_peer_id,
            addr,
        } => {
            s.relay_reservations
                .retain(|r| r.relay_peer_id != *relay_peer_id);
            s.relay_reservations.push(RelayReservation {
                relay_peer_id: relay_peer_id.clone(),
                addr: addr.clone(),
                since_ms: now_ms,
            });
            true
        }
        Event::RelayReservationFailed { relay_addr, reason } => {
            s.relay_reservations
                .retain(|r| !relay_addr.ends_with(&format!("/p2p/{}", r.relay_peer_id)));
            for helper in &mut s.helpers {
                // The service names the relay by the address it dialed, which is the
                // resolved one when the configuration names it by a DNS name.
                let same_peer = helper
                    .peer_id
                    .as_ref()
                    .is_some_and(|p| relay_addr.ends_with(&format!("/p2p/{p}")));
                if helper.addr == *relay_addr || same_peer {
                    helper.error = Some(clip(&format!("reservation: {reason}"), MAX_STATE_TEXT));
                }
            }
            true
        }
        Event::HolePunch { ok, .. } => {
            if *ok {
                s.hole_punches.succeeded += 1;
            } else {
                s.hole_punches.failed += 1;
            }
            true
        }
        Event::Rtt {
            connection_id,
            micros,
            ..
        } => {
            let Some(conn) = s
                .connections
                .iter_mut()
                .find(|c| c.connection_id == *connection_id)
            else {
                return false;
            };
            conn.rtt_ms = Some(*micros as f64 / 1000.0);
            true
        }
        Event::PeerDiscovered { peer_id, .. } => push_new(&mut s.discovered, peer_id),
        Event::PeerExpired { peer_id } => remove_all(&mut s.discovered, peer_id),
        Event::NodeError { message } => {
            report_problem(s, message, None);
            true
        }
        Event::DialFailed {
            peer_id,
            reason,
            kind,
        } => {
            let who = peer_id.as_deref().unwrap_or("an address");
            let reason = clip(reason, MAX_STATE_TEXT);
            report_problem(
                s,
                &format!("dial to {who} failed: {reason}"),
                peer_id.as_deref(),
            );
            for helper in &mut s.helpers {
                if peer_id.is_some() && helper.peer_id == *peer_id {
                    helper.error = Some(reason.clone());
                }
            }
            s.dial_failures.push(DialFailure {
                peer_id: peer_id.clone(),
                reason,
                kind: *kind,
                at_ms: now_ms,
            });
            let excess = s.dial_failures.len().saturating_sub(MAX_DIAL_FAILURES);
            s.dial_failures.drain(..excess);
            true
        }
        // Answers to commands, app traffic and lifecycle frames: they change no state here
        // (the supervisor and the sessions act on them).
        Event::Ready { .. }
        | Event::NodeStopped
        | Event::PeerIdentified { .. }
        | Event::Dialed { .. }
        | Event::RequestReceived { .. }
        | Event::Response { .. }
        | Event::RequestFailed { .. }
        | Event::PeerFound { .. }
        | Event::PeerNotFound { .. }
        | Event::Pong
        | Event::Stats(_)
        | Event::Ok
        | Event::Error { .. } => false,
    }
}

/// Whether `event` can change the state at all: the answers to commands, app traffic and
/// lifecycle frames never do (the arm of [`reduce`] that returns `false` for them), so the
/// supervisor takes neither the state's lock nor the time for them — most frames under
/// load are such answers. Anything not named here is reduced.
pub fn may_change(event: &Event) -> bool {
    !matches!(
        event,
        Event::Ready { .. }
            | Event::NodeStopped
            | Event::PeerIdentified { .. }
            | Event::Dialed { .. }
            | Event::RequestReceived { .. }
            | Event::Response { .. }
            | Event::RequestFailed { .. }
            | Event::PeerFound { .. }
            | Event::PeerNotFound { .. }
            | Event::Pong
            | Event::Stats(_)
            | Event::Ok
            | Event::Error { .. }
    )
}

/// Clears what lived in a network service that ended: its connections, reservations and
/// what AutoNAT had concluded (a new service finds out again). Returns whether anything
/// was there.
pub fn forget_service(s: &mut AppState) -> bool {
    let had = !s.connections.is_empty()
        || !s.relay_reservations.is_empty()
        || !s.listen_addrs.is_empty()
        || s.nat != NatStatus::Unknown;
    s.connections.clear();
    s.relay_reservations.clear();
    s.nat = NatStatus::Unknown;
    mark_helpers_connected(s);
    had
}

/// Recomputes which helper nodes have a connection.
fn mark_helpers_connected(s: &mut AppState) {
    for helper in &mut s.helpers {
        helper.connected = helper
            .peer_id
            .as_ref()
            .is_some_and(|p| s.connections.iter().any(|c| c.peer_id == *p));
    }
}

fn push_new(list: &mut Vec<String>, item: &str) -> bool {
    let new = !list.iter().any(|i| i == item);
    if new {
        list.push(item.to_string());
    }
    new
}

fn remove_all(list: &mut Vec<String>, item: &str) -> bool {
    let before = list.len();
    list.retain(|i| i != item);
    before != list.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatnext_protocol::{
        ipc::{AppProtocol, ConnectionInfo, Stats},
        state::{DialErrorKind, Direction, HelperNode, HelperRole},
    };

    const NOW: u64 = 1_000;
    const PEER: &str = "12D3KooWPeer";
    const RELAY: &str = "12D3KooWRelay";

    fn state() -> AppState {
        let mut s = AppState::initial(1, String::new(), "/home".into(), 0);
        s.helpers = vec![HelperNode {
            addr: format!("/ip4/198.18.0.1/tcp/4001/p2p/{RELAY}"),
            role: HelperRole::Relay,
            peer_id: Some(RELAY.into()),
            connected: false,
            error: None,
        }];
        s
    }

    fn connection(peer: &str, id: u64) -> Event {
        Event::ConnectionEstablished(ConnectionInfo {
            peer_id: peer.into(),
            connection_id: id,
            addr: "/ip4/127.0.0.1/tcp/4001".into(),
            transport: "tcp".into(),
            direction: Direction::Dialer,
            relayed: false,
        })
    }

    /// Applies `events` to a fresh state; returns it and whether the last one changed it.
    fn after(events: &[Event]) -> (AppState, bool) {
        let mut s = state();
        let mut changed = false;
        for event in events {
            changed = reduce(&mut s, event, NOW);
            // The supervisor reduces only what may change the state.
            assert!(!changed || may_change(event), "{event:?} changed the state");
        }
        (s, changed)
    }

    #[test]
    fn node_and_address_events() {
        let started = Event::NodeStarted {
            peer_id: PEER.into(),
            listen_addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
            new_webrtc_certificate: None,
        };
        let (s, changed) = after(std::slice::from_ref(&started));
        assert!(changed);
        assert_eq!((s.node, s.peer_id.as_str()), (NodeStatus::Running, PEER));
        assert_eq!(s.listen_addrs, vec!["/ip4/127.0.0.1/tcp/1"]);

        let add = Event::ListenAddrAdded {
            addr: "/ip4/127.0.0.1/udp/2/quic-v1".into(),
        };
        let (s, changed) = after(&[started.clone(), add.clone()]);
        assert!(changed);
        assert_eq!(s.listen_addrs.len(), 2);
        let (_, changed) = after(&[started.clone(), add.clone(), add.clone()]);
        assert!(!changed, "a known address is no change");

        let remove = Event::ListenAddrRemoved {
            addr: "/ip4/127.0.0.1/tcp/1".into(),
        };
        let (s, changed) = after(&[started.clone(), remove.clone()]);
        assert!(changed && s.listen_addrs.is_empty());
        let (_, changed) = after(&[remove]);
        assert!(!changed, "removing an unknown address is no change");

        let external = Event::ExternalAddrConfirmed {
            addr: "/ip4/198.18.0.7/tcp/1".into(),
        };
        let (s, changed) = after(std::slice::from_ref(&external));
        assert!(changed && s.external_addrs.len() == 1);
        let (_, changed) = after(&[external.clone(), external]);
        assert!(!changed);
    }

    #[test]
    fn connections_rtt_and_helpers() {
        let (s, changed) = after(&[connection(RELAY, 7)]);
        assert!(changed);
        assert_eq!(s.connections.len(), 1);
        assert_eq!(s.connections[0].since_ms, NOW);
        assert!(s.helpers[0].connected, "a connection to a helper marks it");

        let rtt = Event::Rtt {
            peer_id: RELAY.into(),
            connection_id: 7,
            micros: 1_500,
        };
        let (s, changed) = after(&[connection(RELAY, 7), rtt]);
        assert!(changed);
        assert_eq!(s.connections[0].rtt_ms, Some(1.5));
        let unknown_rtt = Event::Rtt {
            peer_id: RELAY.into(),
            connection_id: 8,
            micros: 1,
        };
        assert!(!after(&[unknown_rtt]).1);

        let closed = |id| Event::ConnectionClosed {
            peer_id: RELAY.into(),
            connection_id: id,
            cause: None,
        };
        let (s, changed) = after(&[connection(RELAY, 7), connection(RELAY, 8), closed(7)]);
        assert!(changed);
        assert!(s.helpers[0].connected, "another connection is still up");
        let (s, _) = after(&[connection(RELAY, 7), closed(7)]);
        assert!(s.connections.is_empty() && !s.helpers[0].connected);
        assert!(
            !after(&[closed(9)]).1,
            "closing an unknown connection is no change"
        );
    }

    #[test]
    fn nat_relay_and_hole_punch_events() {
        let nat = Event::NatStatus {
            status: NatStatus::Private,
            public_addr: None,
        };
        let (s, changed) = after(std::slice::from_ref(&nat));
        assert!(changed && s.nat == NatStatus::Private);
        assert!(
            !after(&[nat.clone(), nat]).1,
            "the same status again is no change"
        );

        let reserved = Event::RelayReserved {
            relay_peer_id: RELAY.into(),
            addr: format!("/ip4/198.18.0.1/tcp/4001/p2p/{RELAY}/p2p-circuit"),
        };
        let (s, _) = after(&[reserved.clone(), reserved.clone()]);
        assert_eq!(s.relay_reservations.len(), 1, "one reservation per relay");
        let failed = Event::RelayReservationFailed {
            relay_addr: format!("/ip4/198.18.0.1/tcp/4001/p2p/{RELAY}"),
            reason: "no slots".into(),
        };
        let (s, changed) = after(&[reserved, failed]);
        assert!(changed && s.relay_reservations.is_empty());
        assert_eq!(s.helpers[0].error.as_deref(), Some("reservation: no slots"));

        let punch = |ok| Event::HolePunch {
            peer_id: PEER.into(),
            ok,
            error: None,
        };
        let (s, _) = after(&[punch(true), punch(false), punch(true)]);
        assert_eq!((s.hole_punches.succeeded, s.hole_punches.failed), (2, 1));
    }

    #[test]
    fn discovery_errors_and_dial_failures() {
        let found = Event::PeerDiscovered {
            peer_id: PEER.into(),
            addrs: vec![],
        };
        let (s, changed) = after(std::slice::from_ref(&found));
        assert!(changed && s.discovered == vec![PEER.to_string()]);
        assert!(!after(&[found.clone(), found.clone()]).1);
        let expired = Event::PeerExpired {
            peer_id: PEER.into(),
        };
        let (s, changed) = after(&[found, expired]);
        assert!(changed && s.discovered.is_empty());

        let error = Event::NodeError {
            message: "x".repeat(10 * MAX_STATE_TEXT),
        };
        let (s, _) = after(&[error]);
        let kept = s.last_error.expect("last error");
        assert!(
            kept.len() <= MAX_STATE_TEXT + '…'.len_utf8(),
            "{}",
            kept.len()
        );

        let failed = Event::DialFailed {
            peer_id: Some(RELAY.into()),
            reason: "connection refused".into(),
            kind: DialErrorKind::Refused,
        };
        let many: Vec<Event> = (0..MAX_DIAL_FAILURES + 5).map(|_| failed.clone()).collect();
        let (s, changed) = after(&many);
        assert!(changed);
        assert_eq!(s.dial_failures.len(), MAX_DIAL_FAILURES, "bounded");
        assert_eq!(s.helpers[0].error.as_deref(), Some("connection refused"));
        assert_eq!(s.dial_failures[0].kind, DialErrorKind::Refused);
        assert!(s.last_error.is_some_and(|e| e.contains(RELAY)));
    }

    #[test]
    fn a_problem_clears_when_it_is_over_and_not_before() {
        let failed = Event::DialFailed {
            peer_id: Some(RELAY.into()),
            reason: "connection refused".into(),
            kind: DialErrorKind::Refused,
        };
        let (s, _) = after(&[failed.clone(), connection("12D3KooWother", 1)]);
        assert!(
            s.last_error.is_some(),
            "another peer's connection ends nothing"
        );
        let (s, _) = after(&[failed.clone(), connection(RELAY, 1)]);
        assert_eq!((s.last_error, s.last_error_about), (None, None));

        // An event with no end stays until the next problem.
        let error = Event::NodeError {
            message: "listen failed".into(),
        };
        let (s, _) = after(&[error, connection(RELAY, 1)]);
        assert_eq!(s.last_error.as_deref(), Some("listen failed"));

        // The service's own trouble ends when it runs again.
        let mut s = state();
        crate::state::report_problem(&mut s, "it crashed", Some(PROBLEM_SERVICE));
        reduce(
            &mut s,
            &Event::NodeStarted {
                peer_id: RELAY.into(),
                listen_addrs: vec![],
                new_webrtc_certificate: None,
            },
            1,
        );
        assert_eq!(s.last_error, None);
    }

    #[test]
    fn answers_and_app_traffic_change_nothing() {
        let quiet = [
            Event::Ready {
                protocol_version: 1,
                pid: 2,
            },
            Event::NodeStopped,
            Event::PeerIdentified {
                peer_id: PEER.into(),
                listen_addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
                agent_version: "x".into(),
            },
            Event::Dialed {
                peer_id: PEER.into(),
                addr: "/ip4/127.0.0.1/tcp/1".into(),
                micros: None,
            },
            Event::RequestReceived {
                request_id: 1,
                peer_id: PEER.into(),
                protocol: AppProtocol::Sync,
                body: serde_json::Value::Null,
            },
            Event::Response {
                body: serde_json::Value::Null,
                data: bytes::Bytes::new(),
            },
            Event::RequestFailed { reason: "x".into() },
            Event::PeerFound {
                peer_id: PEER.into(),
                addrs: vec![],
            },
            Event::PeerNotFound {
                peer_id: PEER.into(),
                reason: "x".into(),
            },
            Event::Pong,
            Event::Stats(Stats::default()),
            Event::Ok,
            Event::Error {
                message: "x".into(),
            },
        ];
        for event in quiet {
            assert!(!may_change(&event), "{event:?} is said to change the state");
            let mut s = state();
            let before = s.clone();
            assert!(!reduce(&mut s, &event, NOW), "{event:?} reported a change");
            assert_eq!(s, before, "{event:?} changed the state");
        }
    }

    #[test]
    fn forgetting_a_service_clears_what_lived_in_it() {
        let (mut s, _) = after(&[
            connection(RELAY, 1),
            Event::NatStatus {
                status: NatStatus::Public,
                public_addr: None,
            },
        ]);
        assert!(forget_service(&mut s));
        assert!(s.connections.is_empty() && s.nat == NatStatus::Unknown && !s.helpers[0].connected);
        assert!(!forget_service(&mut state()), "nothing to forget");
    }
}
