//! `whatnext doctor`: a connection diagnosis a non-expert can act on. Pure functions of the
//! state (plus the machine's interfaces), so every finding is testable without a network.

use whatnext_protocol::{
    addr::{AddrClass, classify_str},
    api::{CheckStatus, DoctorCheck, DoctorReport},
    state::{AppState, DialErrorKind, HelperRole, LinkStatus, NatStatus, NodeStatus},
};

/// The machine's network interfaces as the doctor sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interfaces {
    /// Addresses of interfaces that are up, other than loopback.
    pub non_loopback: Vec<String>,
}

impl Interfaces {
    /// Reads the interfaces of this machine (or network namespace).
    pub fn read() -> Option<Self> {
        #[cfg(unix)]
        {
            let addrs = nix::ifaddrs::getifaddrs().ok()?;
            let mut non_loopback = Vec::new();
            for ifa in addrs {
                let up = ifa.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP);
                let loopback = ifa
                    .flags
                    .contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK);
                let Some(address) = ifa.address else { continue };
                let ip = if let Some(v4) = address.as_sockaddr_in() {
                    std::net::IpAddr::V4(v4.ip())
                } else if let Some(v6) = address.as_sockaddr_in6() {
                    std::net::IpAddr::V6(v6.ip())
                } else {
                    continue;
                };
                if up && !loopback && !ip.is_loopback() {
                    non_loopback.push(format!("{} ({})", ip, ifa.interface_name));
                }
            }
            Some(Self { non_loopback })
        }
        #[cfg(not(unix))]
        {
            None
        }
    }
}

fn check(
    id: &str,
    title: &str,
    status: CheckStatus,
    detail: impl Into<String>,
    advice: impl Into<String>,
) -> DoctorCheck {
    DoctorCheck {
        id: id.to_string(),
        title: title.to_string(),
        status,
        detail: detail.into(),
        advice: advice.into(),
    }
}

/// The report for a controller that is not running: only the machine can be checked.
pub fn not_running(interfaces: Option<&Interfaces>, why: &str) -> DoctorReport {
    let mut checks = vec![check(
        "controller",
        "WhatNext",
        CheckStatus::Fail,
        why.to_string(),
        "Start it with `whatnext run` (or open a whtnxt:// link).",
    )];
    checks.push(network_check(interfaces));
    finish(checks)
}

/// Diagnoses a running node from its state.
pub fn diagnose(state: &AppState, interfaces: Option<&Interfaces>) -> DoctorReport {
    let mut checks = Vec::new();
    checks.push(match state.node {
        NodeStatus::Running => check(
            "service",
            "Network service",
            CheckStatus::Ok,
            format!(
                "running (pid {}, {} restart{})",
                state.service.pid.map_or("?".to_string(), |p| p.to_string()),
                state.service.restarts,
                if state.service.restarts == 1 { "" } else { "s" }
            ),
            "",
        ),
        NodeStatus::Starting | NodeStatus::Restarting => check(
            "service",
            "Network service",
            CheckStatus::Warn,
            format!("{} — not connected to anyone yet", state.node.as_str()),
            "Wait a few seconds and run `whatnext doctor` again.",
        ),
        NodeStatus::Failed | NodeStatus::Stopped => check(
            "service",
            "Network service",
            CheckStatus::Fail,
            format!(
                "{}: {}",
                state.node.as_str(),
                state.last_error.as_deref().unwrap_or("no reason recorded")
            ),
            "Restart WhatNext (`whatnext run`); if it fails again, the log in <home>/logs says why.",
        ),
    });
    let network = network_check(interfaces);
    let offline = network.status == CheckStatus::Fail;
    checks.push(network);
    let mut listen = listen_check(state);
    if offline && listen.status == CheckStatus::Warn {
        // Only loopback because there is no network: the network check says what to do.
        listen.status = CheckStatus::Info;
        listen.advice = String::new();
    }
    checks.push(listen);
    checks.push(nat_check(state));
    checks.push(relay_check(state));
    checks.push(if state.mdns {
        check(
            "mdns",
            "LAN discovery (mDNS)",
            CheckStatus::Ok,
            "on: WhatNext finds friends on the same Wi-Fi or LAN by itself",
            "",
        )
    } else {
        check(
            "mdns",
            "LAN discovery (mDNS)",
            CheckStatus::Info,
            "off: friends on your LAN need an invite link",
            "Turn it on with `mdns = true` in config.toml (or drop --no-mdns).",
        )
    });
    checks.push(bootstrap_check(state));
    checks.extend(dial_checks(state));
    checks.extend(store_checks(state));
    finish(checks)
}

/// One check per problem the playlist store found: what happened and where the pieces are.
fn store_checks(state: &AppState) -> Vec<DoctorCheck> {
    if state.store_problems.is_empty() {
        return vec![check(
            "store",
            "Playlist store",
            CheckStatus::Ok,
            "no damage found",
            "",
        )];
    }
    state
        .store_problems
        .iter()
        .map(|p| {
            let restored = p.what.contains("since restored");
            let kept = p.kept_at.as_deref().map_or_else(
                || " Nothing had to be set aside.".to_string(),
                |at| format!(" The damaged or set-aside bytes are kept in {at}."),
            );
            let advice = if restored {
                "Nothing to do. Keep the set-aside files until you are sure nothing is missing; WhatNext never deletes them."
            } else if p.what.contains("could not be saved") {
                "Check free disk space and that the store's files were not moved or made read-only, then make the change again."
            } else {
                "Nothing was deleted. Keep WhatNext running so members can sync the missing history; a playlist nobody else has can be re-imported from its Markdown mirror with `whatnext playlist import FILE --as-new`."
            };
            check(
                "store",
                &format!("Playlist {}", p.playlist_id),
                if restored {
                    CheckStatus::Info
                } else {
                    CheckStatus::Warn
                },
                format!("{}.{kept}", p.what.trim_end_matches('.')),
                advice,
            )
        })
        .collect()
}

fn finish(checks: Vec<DoctorCheck>) -> DoctorReport {
    let status = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(CheckStatus::Ok);
    let summary = match checks.iter().find(|c| c.status == status) {
        Some(worst) if status >= CheckStatus::Warn => format!("{}: {}", worst.title, worst.detail),
        _ => "Everything needed to connect looks fine.".to_string(),
    };
    DoctorReport {
        status,
        summary,
        checks,
    }
}

fn network_check(interfaces: Option<&Interfaces>) -> DoctorCheck {
    match interfaces {
        None => check(
            "network",
            "Network connection",
            CheckStatus::Info,
            "could not list the network interfaces",
            "",
        ),
        Some(i) if i.non_loopback.is_empty() => check(
            "network",
            "Network connection",
            CheckStatus::Fail,
            "this computer has no network connection: no interface but loopback is up",
            "Connect to Wi-Fi or Ethernet. WhatNext picks the new addresses up by itself; only peers on this computer can connect until then.",
        ),
        Some(i) => check(
            "network",
            "Network connection",
            CheckStatus::Ok,
            format!("connected: {}", i.non_loopback.join(", ")),
            "",
        ),
    }
}

fn listen_check(state: &AppState) -> DoctorCheck {
    let reachable: Vec<&String> = state
        .listen_addrs
        .iter()
        .filter(|a| {
            classify_str(a).is_some_and(|class| {
                !matches!(
                    class,
                    AddrClass::Loopback | AddrClass::Circuit | AddrClass::Unspecified
                )
            })
        })
        .collect();
    if state.listen_addrs.is_empty() {
        check(
            "listen",
            "Listen addresses",
            CheckStatus::Fail,
            "the node listens on no address",
            "Check `listen` in config.toml (e.g. /ip4/0.0.0.0/tcp/0) and restart WhatNext.",
        )
    } else if reachable.is_empty() {
        check(
            "listen",
            "Listen addresses",
            CheckStatus::Warn,
            format!(
                "only loopback ({}): only peers on this computer can connect directly",
                state.listen_addrs.join(", ")
            ),
            "If this computer has a network, listen on all interfaces: `listen = [\"/ip4/0.0.0.0/tcp/0\", \"/ip4/0.0.0.0/udp/0/quic-v1\"]` in config.toml.",
        )
    } else {
        let mut transports: Vec<&str> = reachable
            .iter()
            .map(|a| whatnext_protocol::ipc::transport_of(a))
            .collect();
        transports.sort_unstable();
        transports.dedup();
        check(
            "listen",
            "Listen addresses",
            CheckStatus::Ok,
            format!(
                "{} address{} ({})",
                reachable.len(),
                if reachable.len() == 1 { "" } else { "es" },
                transports.join(", ")
            ),
            "",
        )
    }
}

fn nat_check(state: &AppState) -> DoctorCheck {
    let reserved = !state.relay_reservations.is_empty();
    match (state.nat, reserved) {
        (NatStatus::Public, _) => check(
            "nat",
            "Reachability (AutoNAT)",
            CheckStatus::Ok,
            "public: peers anywhere can dial you directly",
            "",
        ),
        (NatStatus::Private, true) => check(
            "nat",
            "Reachability (AutoNAT)",
            CheckStatus::Ok,
            "behind a NAT or firewall; peers reach you through your relay, then hole punching makes the connection direct",
            "",
        ),
        (NatStatus::Private, false) => check(
            "nat",
            "Reachability (AutoNAT)",
            CheckStatus::Warn,
            "behind a NAT or firewall, with no relay: peers outside your network cannot reach you",
            "Add a relay (`relays = [\"/ip4/…/tcp/4001/p2p/…\"]` in config.toml, from `whatnext relay`), or forward a port on your router.",
        ),
        _ => check(
            "nat",
            "Reachability (AutoNAT)",
            CheckStatus::Info,
            "unknown: not enough peers have tried to dial back yet",
            if state.helpers.is_empty() {
                "A bootstrap or relay node (config.toml `bootstrap`/`relays`) lets WhatNext find out."
            } else {
                ""
            },
        ),
    }
}

fn relay_check(state: &AppState) -> DoctorCheck {
    let configured: Vec<_> = state
        .helpers
        .iter()
        .filter(|h| h.role == HelperRole::Relay)
        .collect();
    if !state.relay_reservations.is_empty() {
        let relays: Vec<&str> = state
            .relay_reservations
            .iter()
            .map(|r| r.relay_peer_id.as_str())
            .collect();
        return check(
            "relay",
            "Relay reservation",
            CheckStatus::Ok,
            format!("reserved on {}; your invites carry it", relays.join(", ")),
            "",
        );
    }
    if configured.is_empty() {
        return check(
            "relay",
            "Relay reservation",
            if state.nat == NatStatus::Private {
                CheckStatus::Warn
            } else {
                CheckStatus::Info
            },
            "no relay configured",
            "Peers behind different NATs meet through a relay: run `whatnext relay` on a server and add its address to `relays` in config.toml.",
        );
    }
    let problems: Vec<String> = configured
        .iter()
        .map(|h| match &h.error {
            Some(err) => format!("{}: {}", h.addr, explain(err)),
            None if h.connected => format!("{}: connected, reservation pending", h.addr),
            None => format!("{}: not connected yet", h.addr),
        })
        .collect();
    check(
        "relay",
        "Relay reservation",
        CheckStatus::Warn,
        format!("no reservation yet — {}", problems.join("; ")),
        "Check the relay's address (it must end in /p2p/<peer id>) and that the relay is running; WhatNext retries by itself.",
    )
}

fn bootstrap_check(state: &AppState) -> DoctorCheck {
    if state.helpers.is_empty() {
        return check(
            "bootstrap",
            "Bootstrap nodes (DHT)",
            CheckStatus::Info,
            "none configured: peers can be found only through invite links and the LAN",
            "Add `bootstrap = [\"/ip4/…/tcp/4001/p2p/…\"]` (a `whatnext relay` node serves as one) to find peers by id alone.",
        );
    }
    let connected = state.helpers.iter().filter(|h| h.connected).count();
    let failures: Vec<String> = state
        .helpers
        .iter()
        .filter(|h| !h.connected)
        .map(|h| match &h.error {
            Some(err) => format!("{} ({})", h.addr, explain(err)),
            None => format!("{} (not connected yet)", h.addr),
        })
        .collect();
    if connected == 0 {
        check(
            "bootstrap",
            "Bootstrap nodes (DHT)",
            CheckStatus::Warn,
            format!("none reachable: {}", failures.join("; ")),
            "Check your internet connection and the addresses in config.toml.",
        )
    } else {
        check(
            "bootstrap",
            "Bootstrap nodes (DHT)",
            CheckStatus::Ok,
            format!(
                "{connected} of {} connected{}",
                state.helpers.len(),
                if failures.is_empty() {
                    String::new()
                } else {
                    format!("; not: {}", failures.join("; "))
                }
            ),
            "",
        )
    }
}

fn dial_checks(state: &AppState) -> Vec<DoctorCheck> {
    let failed_links: Vec<DoctorCheck> = state
        .link_attempts
        .iter()
        .rev()
        .filter(|a| a.status == LinkStatus::Failed)
        .take(3)
        .map(|a| {
            let error = a.error.as_deref().unwrap_or("no reason recorded");
            check(
                "dial",
                "A link that failed",
                CheckStatus::Warn,
                format!(
                    "{} → {}",
                    a.peer_id.as_deref().unwrap_or("?"),
                    explain(error)
                ),
                advice_for(error),
            )
        })
        .collect();
    if !failed_links.is_empty() {
        return failed_links;
    }
    state
        .dial_failures
        .iter()
        .rev()
        .take(3)
        .map(|f| {
            check(
                "dial",
                "A connection that failed",
                CheckStatus::Info,
                format!(
                    "{} → {}",
                    f.peer_id.as_deref().unwrap_or("an address"),
                    explain_kind(f.kind, &f.reason)
                ),
                advice_for_kind(f.kind),
            )
        })
        .collect()
}

/// A dial error in plain words, with the technical text kept after it (its kind read off
/// the text: helper and link errors are kept as text).
pub fn explain(error: &str) -> String {
    explain_kind(DialErrorKind::from_reason(error), error)
}

/// A dial error of a known kind in plain words, with the technical text kept after it.
pub fn explain_kind(kind: DialErrorKind, error: &str) -> String {
    let cause = match kind {
        DialErrorKind::Refused => {
            "nothing is listening there: the peer's WhatNext is not running, or its address changed"
        }
        DialErrorKind::TimedOut => "no answer: a firewall or NAT drops the connection",
        DialErrorKind::Unreachable => {
            "no route to that address: no network here, or the address belongs to another private network"
        }
        DialErrorKind::WrongPeer => {
            "a different node answered at that address: the invite is out of date"
        }
        DialErrorKind::NoAddresses => "there is no address to try",
        DialErrorKind::OwnPeerId => "that is this computer's own WhatNext",
        DialErrorKind::Relay => "the relay refused or could not be reached",
        DialErrorKind::NotFound => "the peer could not be found by its id",
        DialErrorKind::Protocol => "something answered that does not speak WhatNext's protocols",
        DialErrorKind::NotRunning => "the network service is not running",
        DialErrorKind::Other => return error.to_string(),
    };
    format!("{cause} ({error})")
}

fn advice_for(error: &str) -> String {
    advice_for_kind(DialErrorKind::from_reason(error))
}

fn advice_for_kind(kind: DialErrorKind) -> String {
    match kind {
        DialErrorKind::Refused | DialErrorKind::WrongPeer => {
            "Ask your friend for a fresh invite (`whatnext invite`) while their WhatNext runs."
        }
        DialErrorKind::TimedOut | DialErrorKind::Unreachable => {
            "You are probably on different networks: both configure the same relay (`relays` in config.toml), then make a new invite — it will carry the relay."
        }
        _ => "Run `whatnext doctor` on both computers and compare.",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatnext_protocol::state::{HelperNode, RelayReservation};

    fn running() -> AppState {
        let mut s = AppState::initial(1, "12D3KooWMe".into(), "/tmp/h".into(), 0);
        s.node = NodeStatus::Running;
        s.service.pid = Some(2);
        s.listen_addrs = vec!["/ip4/192.168.1.5/tcp/4001".into()];
        s
    }

    fn find<'a>(report: &'a DoctorReport, id: &str) -> &'a DoctorCheck {
        report
            .checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no {id} check in {report:?}"))
    }

    #[test]
    fn no_network_is_the_cause_when_only_loopback_is_up() {
        let mut state = running();
        state.listen_addrs = vec!["/ip4/127.0.0.1/tcp/4001".into()];
        let report = diagnose(&state, Some(&Interfaces::default()));
        assert_eq!(report.status, CheckStatus::Fail);
        assert_eq!(find(&report, "network").status, CheckStatus::Fail);
        assert!(
            report.summary.contains("no network connection"),
            "{}",
            report.summary
        );
        assert_eq!(
            find(&report, "listen").status,
            CheckStatus::Info,
            "a consequence, not a cause"
        );
    }

    #[test]
    fn private_without_relay_warns_and_a_reservation_fixes_it() {
        let mut state = running();
        state.nat = NatStatus::Private;
        let interfaces = Interfaces {
            non_loopback: vec!["192.168.1.5 (eth0)".into()],
        };
        let report = diagnose(&state, Some(&interfaces));
        assert_eq!(find(&report, "nat").status, CheckStatus::Warn);
        assert_eq!(find(&report, "relay").status, CheckStatus::Warn);
        state.relay_reservations.push(RelayReservation {
            relay_peer_id: "12D3KooWRelay".into(),
            addr: "/ip4/198.18.0.1/tcp/4001/p2p/12D3KooWRelay/p2p-circuit".into(),
            since_ms: 0,
        });
        let report = diagnose(&state, Some(&interfaces));
        assert_eq!(find(&report, "nat").status, CheckStatus::Ok);
        assert_eq!(find(&report, "relay").status, CheckStatus::Ok);
    }

    #[test]
    fn unreachable_bootstrap_nodes_are_named_with_their_cause() {
        let mut state = running();
        state.helpers.push(HelperNode {
            addr: "/ip4/198.18.0.1/tcp/4001/p2p/12D3KooWBoot".into(),
            role: HelperRole::Bootstrap,
            peer_id: Some("12D3KooWBoot".into()),
            connected: false,
            error: Some("Connection refused (os error 111)".into()),
        });
        let check = diagnose(&state, None);
        let boot = find(&check, "bootstrap");
        assert_eq!(boot.status, CheckStatus::Warn);
        assert!(
            boot.detail.contains("nothing is listening"),
            "{}",
            boot.detail
        );
    }

    #[test]
    fn explanations_keep_the_technical_text() {
        let text = explain(
            "Failed to negotiate transport protocol(s): [(/ip4/1.2.3.4/tcp/1: : Timeout has been reached)]",
        );
        assert!(text.starts_with("no answer"), "{text}");
        assert!(text.contains("/ip4/1.2.3.4/tcp/1"), "{text}");
        assert_eq!(explain("something new"), "something new");
    }

    #[test]
    fn store_problems_are_reported_with_where_the_pieces_are() {
        let mut state = running();
        assert_eq!(
            find(&diagnose(&state, None), "store").status,
            CheckStatus::Ok
        );
        state
            .store_problems
            .push(whatnext_protocol::state::StoreProblem {
                playlist_id: "abc".into(),
                what: "its snapshot was damaged (checksum) and was moved aside".into(),
                kept_at: Some("/h/store/abc/snapshot.loro.damaged-1".into()),
            });
        let report = diagnose(&state, None);
        let store = find(&report, "store");
        assert_eq!(store.status, CheckStatus::Warn);
        assert!(store.title.contains("abc"), "{}", store.title);
        assert!(
            store.detail.contains("moved aside")
                && store
                    .detail
                    .contains("/h/store/abc/snapshot.loro.damaged-1"),
            "{}",
            store.detail
        );
        assert!(!store.advice.is_empty());
    }

    #[test]
    fn a_stopped_controller_is_reported_with_what_to_do() {
        let report = not_running(None, "no api.json");
        assert_eq!(report.status, CheckStatus::Fail);
        assert!(report.checks[0].advice.contains("whatnext run"));
    }
}
