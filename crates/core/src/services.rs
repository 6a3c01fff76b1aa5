//! The network services beside the main one: one `whatnext p2p` child per playlist shared
//! with `--isolated`, each with its own identity (DESIGN.md: "one utility process per
//! concurrent session, each its own libp2p node").
//!
//! Each isolated service has its own supervisor (its own restarts and crash-loop guard) and
//! its own [`AppState`], which the reducer keeps exactly as it keeps the main one; a small
//! task projects it into the main state's `services` list. Nothing of an isolated service
//! touches the main one: killing it leaves the main node's connections alone.

use std::path::{Path, PathBuf};

use multiaddr::{Multiaddr, Protocol};
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use whatnext_home::identity::Identity;
use whatnext_protocol::{
    ipc::NodeConfig,
    state::{AppState, ServiceEntry},
};

use crate::{
    state::{StateHandle, now_ms},
    supervisor::{self, RestartPolicy, ServiceClient, ServiceEvent, ServiceSpec},
};

/// One running network service: how to ask it things and what it reports.
#[derive(Clone)]
pub struct ServiceHandle {
    /// "main", or the playlist id of an isolated service.
    pub name: String,
    pub client: ServiceClient,
    /// Its own state: for the main service the controller's state, for an isolated one a
    /// state of its own (peer id, addresses, connections).
    pub state: StateHandle,
}

impl ServiceHandle {
    /// The peer id this service is known by.
    pub fn peer_id(&self) -> String {
        self.state.snapshot().peer_id
    }

    /// Whether this service holds a connection to `peer` now.
    pub fn is_connected_to(&self, peer: &str) -> bool {
        self.state
            .snapshot()
            .connections
            .iter()
            .any(|c| c.peer_id == peer)
    }
}

/// Starts isolated services: what they share with the main one, and where their keys live.
pub struct IsolatedServices {
    pub program: PathBuf,
    /// The main node's configuration; an isolated node gets its own key and ports.
    pub node: NodeConfig,
    /// The helpers as their names resolve, as for the main node.
    pub helpers: Option<tokio::sync::watch::Receiver<crate::names::HelperAddrs>>,
    pub policy: RestartPolicy,
    /// `<home>/identities`: `<playlist>.key` (0600) and `<playlist>.listen.json`.
    pub dir: PathBuf,
    pub shutdown: CancellationToken,
    pub events: mpsc::UnboundedSender<ServiceEvent>,
    /// The controller's state, whose `services` list shows every isolated service.
    pub main_state: StateHandle,
    /// Every isolated supervisor runs here, so an orderly stop can wait for them all.
    pub tasks: TaskTracker,
}

impl IsolatedServices {
    /// Starts the service of `playlist` under `identity`; it restarts on its own from then on.
    pub fn start(&self, playlist: &str, identity: &Identity) -> ServiceHandle {
        let mut node = self.node.clone();
        node.keypair = supervisor::encode_keypair(&identity.encoded());
        node.listen = node.listen.iter().map(|a| any_port(a)).collect();
        // Its own certificate: the main one's hash would link the two identities.
        node.webrtc_certificate = None;
        let main = self.main_state.snapshot();
        let state = StateHandle::new(AppState::initial(
            main.pid,
            identity.peer_id.to_string(),
            main.home,
            now_ms(),
        ));
        let spec = ServiceSpec {
            name: playlist.to_string(),
            program: self.program.clone(),
            node,
            policy: self.policy.clone(),
            listen_memory: Some(self.dir.join(format!("{playlist}.listen.json"))),
            webrtc_certificate: Some(self.dir.join(format!("{playlist}.webrtc.pem"))),
            helpers: self.helpers.clone(),
        };
        let (supervisor, client) =
            supervisor::supervisor(spec, state.clone(), self.shutdown.clone());
        self.tasks
            .spawn(supervisor.with_app_events(self.events.clone()).run());
        self.tasks.spawn(project(
            playlist.to_string(),
            state.clone(),
            self.main_state.clone(),
            self.shutdown.clone(),
        ));
        tracing::info!(
            "started the isolated network service of playlist {playlist} (peer id {})",
            identity.peer_id
        );
        ServiceHandle {
            name: playlist.to_string(),
            client,
            state,
        }
    }
}

/// `<dir>/<playlist>.key`.
fn identity_path(dir: &Path, playlist: &str) -> PathBuf {
    dir.join(format!("{playlist}.key"))
}

/// Loads (or creates, 0600, in a 0700 directory) the identity of the isolated service of
/// `playlist`. Blocking: file I/O.
pub fn load_identity(dir: &Path, playlist: &str) -> anyhow::Result<Identity> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    if let Some(note) = whatnext_home::files::make_private(dir, 0o700) {
        tracing::warn!("{note}");
    }
    let path = identity_path(dir, playlist);
    whatnext_home::identity::load_or_create_at(&path)
        .map_err(|e| anyhow::anyhow!("the identity of the isolated share {playlist}: {e}"))
}

/// `addr` with its TCP/UDP port made 0: an isolated node listens on the same interfaces
/// and transports as the main one, on ports of its own (then kept in its listen memory).
fn any_port(addr: &str) -> String {
    let Ok(parsed) = addr.parse::<Multiaddr>() else {
        return addr.to_string();
    };
    parsed
        .iter()
        .map(|p| match p {
            Protocol::Tcp(_) => Protocol::Tcp(0),
            Protocol::Udp(_) => Protocol::Udp(0),
            other => other,
        })
        .collect::<Multiaddr>()
        .to_string()
}

/// Keeps the main state's entry for the isolated service `name` up to date with `from`.
async fn project(name: String, from: StateHandle, to: StateHandle, shutdown: CancellationToken) {
    let mut changes = from.subscribe();
    loop {
        let entry = {
            let s = changes.borrow_and_update();
            ServiceEntry {
                name: name.clone(),
                pid: s.service.pid,
                peer_id: s.peer_id.clone(),
                restarts: s.service.restarts,
                node: s.node,
                listen_addrs: s.listen_addrs.clone(),
                sessions: vec![],
            }
        };
        to.update(|state| upsert(state, entry));
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            () = shutdown.cancelled() => break,
        }
    }
}

/// Puts `entry` into `state.services` (by name). Returns whether anything changed; the
/// entry's `sessions` are derived by the state itself.
fn upsert(state: &mut AppState, mut entry: ServiceEntry) -> bool {
    match state.services.iter_mut().find(|s| s.name == entry.name) {
        Some(existing) => {
            entry.sessions = existing.sessions.clone();
            let changed = *existing != entry;
            *existing = entry;
            changed
        }
        None => {
            state.services.push(entry);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_isolated_node_listens_on_the_same_transports_on_ports_of_its_own() {
        assert_eq!(any_port("/ip4/0.0.0.0/tcp/4001"), "/ip4/0.0.0.0/tcp/0");
        assert_eq!(
            any_port("/ip4/127.0.0.1/udp/4001/quic-v1"),
            "/ip4/127.0.0.1/udp/0/quic-v1"
        );
        assert_eq!(any_port("/ip6/::/tcp/9/ws"), "/ip6/::/tcp/0/ws");
        assert_eq!(any_port("not an address"), "not an address");
    }

    #[test]
    fn the_services_list_takes_an_isolated_entry_once_and_updates_it() {
        let mut state = AppState::initial(1, "main".into(), "/h".into(), 0);
        let entry = |restarts| ServiceEntry {
            name: "p1".into(),
            pid: Some(2),
            peer_id: "iso".into(),
            restarts,
            node: whatnext_protocol::state::NodeStatus::Running,
            listen_addrs: vec![],
            sessions: vec![],
        };
        assert!(upsert(&mut state, entry(0)));
        assert!(!upsert(&mut state, entry(0)));
        assert!(upsert(&mut state, entry(1)));
        assert_eq!(state.services.len(), 1);
        assert_eq!(state.services[0].restarts, 1);
    }
}
