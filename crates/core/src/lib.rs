//! The WhatNext controller's logic, without HTTP: the one versioned [`AppState`], the
//! supervisor of the network service, the playlist library (the store's only writer), shared
//! playlists, opening links and making invites, the doctor.
//!
//! The front doors (`whatnext-api`: the loopback HTTP API, the view, the single-instance
//! socket) reach all of it through [`Core`]; the controller crate only wires the pieces.
//!
//! Invariant: this crate knows nothing of HTTP — it depends on no axum, hyper or tower — and
//! the IPC `Command`/`Event` types do not leave it: the front doors call [`Core`]'s methods.
//!
//! [`AppState`]: whatnext_protocol::state::AppState

pub mod doctor;
pub mod guests;
pub mod invite;
pub mod library;
pub mod links;
pub mod listening;
pub mod music;
pub mod names;
pub mod reducer;
pub mod secret;
pub mod services;
pub mod sessions;
pub mod state;
pub mod supervisor;
pub mod transfers;
pub mod ui;

use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use whatnext_protocol::{
    api::DoctorReport,
    link::InviteLink,
    listening::{SessionAction, SessionView},
    state::{LinkAttempt, MAIN_SERVICE},
};

use whatnext_store::StoreError;

use crate::{
    library::Library,
    links::Links,
    services::{IsolatedServices, ServiceHandle},
    sessions::{Sessions, SessionsConfig},
    state::StateHandle,
    supervisor::{Dialed, PeerError, ServiceClient, ServiceSpec},
    ui::{UiEvent, UiHooks},
};

/// What [`Core::start`] is built from. The state and the library come first: the library is
/// started (and repairs damaged playlists from their mirrors) before the controller opens its
/// front doors; the rest starts once they are open.
pub struct CoreParts {
    pub state: StateHandle,
    pub library: Arc<Library>,
    /// The ids of changed playlists, as [`Library::start`] returned them.
    pub changes: mpsc::UnboundedReceiver<String>,
    /// The network service to supervise.
    pub service: ServiceSpec,
    /// `<home>/sessions.json`: the keys of shared playlists.
    pub sessions_path: PathBuf,
    /// `<home>/config.toml`: where a display name picked in the view is kept.
    pub config_path: PathBuf,
    /// `<home>/identities`: the keys (and listen ports) of isolated shares' services.
    pub identities_dir: PathBuf,
    /// Cancelled when the controller stops (a signal, `POST /api/shutdown`, the window's
    /// Quit).
    pub shutdown: CancellationToken,
    /// The native window, when there is one (desktop build).
    pub ui: Option<UiHooks>,
    /// The music library.
    pub music: Arc<music::Music>,
}

/// The controller's core handles and the operations both front doors perform.
pub struct Core {
    state: StateHandle,
    service: ServiceClient,
    library: Arc<Library>,
    sessions: Sessions,
    links: Arc<Links>,
    shutdown: CancellationToken,
    ui: Option<UiHooks>,
    music: Arc<music::Music>,
    /// `<home>/config.toml`.
    config_path: PathBuf,
    /// The open guest pages and their guests.
    guests: Arc<guests::Guests>,
    /// Guests' requests through a relay, until the API takes them ([`Core::take_guest_tunnel`]).
    guest_tunnel: std::sync::Mutex<Option<mpsc::Receiver<guests::TunnelCall>>>,
}

/// The core's long-running tasks, for an orderly stop.
pub struct CoreTasks {
    supervisor: tokio::task::JoinHandle<()>,
    /// The isolated services' supervisors.
    isolated: TaskTracker,
    library: Arc<Library>,
}

impl CoreTasks {
    /// Once shutdown was requested: waits until the supervisor has stopped the service, then
    /// folds the store's update logs into snapshots.
    pub async fn finish(self) {
        let _ = self.supervisor.await;
        self.isolated.close();
        self.isolated.wait().await;
        let library = self.library;
        let _ = tokio::task::spawn_blocking(move || library.compact()).await;
    }
}

impl Core {
    /// The guests' requests that come through a relay: the API answers them (once; the
    /// controller hands this to the API when it starts).
    pub fn take_guest_tunnel(&self) -> Option<mpsc::Receiver<guests::TunnelCall>> {
        self.guest_tunnel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The music library.
    pub fn music(&self) -> &Arc<music::Music> {
        &self.music
    }

    /// Starts the supervisor (which spawns the network service) and the shared playlists'
    /// task, on the current runtime. Fails when `sessions.json` cannot be read.
    pub fn start(parts: CoreParts) -> anyhow::Result<(Arc<Core>, CoreTasks)> {
        let CoreParts {
            state,
            library,
            changes,
            service: spec,
            sessions_path,
            config_path,
            identities_dir,
            shutdown,
            ui,
            music,
        } = parts;
        music.watch(shutdown.clone());
        let transfers = transfers::TransferBoard::new(state.clone());
        let (app_events_tx, app_events) = mpsc::unbounded_channel();
        let isolated = IsolatedServices {
            program: spec.program.clone(),
            node: spec.node.clone(),
            helpers: spec.helpers.clone(),
            policy: spec.policy.clone(),
            dir: identities_dir,
            shutdown: shutdown.clone(),
            events: app_events_tx.clone(),
            main_state: state.clone(),
            tasks: TaskTracker::new(),
        };
        let (supervisor, service) = supervisor::supervisor(spec, state.clone(), shutdown.clone());
        let isolated_tasks = isolated.tasks.clone();
        let guests = Arc::new(guests::Guests::default());
        // Bounded: a relay flooding us with guests' requests waits, it does not grow memory.
        let (tunnel_tx, tunnel_rx) = mpsc::channel(256);
        let sessions = Sessions::start(
            SessionsConfig {
                guests: Arc::clone(&guests),
                guest_tunnel: tunnel_tx,
                path: sessions_path,
                main: ServiceHandle {
                    name: MAIN_SERVICE.to_string(),
                    client: service.clone(),
                    state: state.clone(),
                },
                isolated,
                library: Arc::clone(&library),
                ui: ui.clone(),
                music: Arc::clone(&music),
                transfers: Arc::clone(&transfers),
            },
            app_events,
            changes,
        )?;
        let supervisor = tokio::spawn(supervisor.with_app_events(app_events_tx).run());
        transfers::start_fetcher(
            Arc::clone(&library),
            Arc::clone(&music),
            sessions.clone(),
            state.clone(),
            transfers,
            shutdown.clone(),
        );
        tokio::spawn(listening::run_clock(
            Arc::clone(&library),
            state.clone(),
            shutdown.clone(),
        ));
        let links = Arc::new(Links::new(
            state.clone(),
            service.clone(),
            sessions.clone(),
            ui.clone(),
        ));
        let core = Arc::new(Core {
            state,
            service,
            library: Arc::clone(&library),
            sessions,
            links,
            shutdown,
            ui,
            music,
            config_path,
            guests,
            guest_tunnel: std::sync::Mutex::new(Some(tunnel_rx)),
        });
        Ok((
            core,
            CoreTasks {
                supervisor,
                isolated: isolated_tasks,
                library,
            },
        ))
    }

    /// The versioned state (snapshots, and long polls through `subscribe`).
    pub fn state(&self) -> &StateHandle {
        &self.state
    }

    /// The playlists: the store's only writer.
    pub fn library(&self) -> &Arc<Library> {
        &self.library
    }

    /// Shared playlists: keys, members, sync.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Cancelled when the controller stops.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Stops the controller (and its service) in order.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Tells the native window, if there is one.
    pub fn notify_ui(&self, event: UiEvent) {
        if let Some(ui) = &self.ui {
            (ui.notify)(event);
        }
    }

    /// Opens a `whtnxt://` link: records the attempt in the state and dials the peer. With
    /// `wait`, returns when the attempt is settled; otherwise at once, with it pending.
    pub async fn open_link(&self, url: &str, wait: bool, timeout: Duration) -> LinkAttempt {
        self.links.open_link(url, wait, timeout).await
    }

    /// An invite link for this node with every address a friend might dial.
    pub fn invite(&self) -> Result<InviteLink, String> {
        self.invite_to(None)
    }

    /// An invite link, to a shared playlist when `session` is `(playlist id, key)`.
    pub fn invite_to(&self, session: Option<(String, String)>) -> Result<InviteLink, String> {
        invite::invite_link(&self.state.snapshot(), session)
    }

    /// Connects to `peer_id` at `addr`.
    pub async fn connect(
        &self,
        peer_id: String,
        addr: String,
        timeout: Duration,
    ) -> Result<Dialed, PeerError> {
        // Names (`/dns4/…`) are resolved here: the sandboxed service cannot.
        let addrs = names::resolve_for_dial(vec![addr])
            .await
            .map_err(PeerError::Failed)?;
        self.service.dial(Some(peer_id), addrs, timeout).await
    }

    /// Hangs up on a peer (all its connections).
    pub async fn disconnect(&self, peer_id: String, timeout: Duration) -> Result<(), PeerError> {
        self.service.hang_up(peer_id, timeout).await
    }

    /// The last frames between the controller and the network service (newest last).
    pub fn recent_frames(&self) -> Vec<String> {
        self.service.recent_frames()
    }

    /// A connection diagnosis of the node as it is now, on this machine's interfaces.
    pub fn doctor(&self) -> DoctorReport {
        let state = self.state.snapshot();
        let interfaces = doctor::Interfaces::read();
        doctor::diagnose(&state, interfaces.as_ref())
    }

    /// The listening session of playlist `id` as this member sees it now.
    pub async fn session(&self, id: &str) -> Result<SessionView, StoreError> {
        let offsets = self.sessions.clock_offsets();
        listening::view(&self.library, &self.state, offsets, id).await
    }

    /// Does `action` in the session of playlist `id`, if its rules let this member; returns
    /// the session after it.
    pub async fn session_act(
        &self,
        id: &str,
        action: SessionAction,
    ) -> Result<SessionView, StoreError> {
        if let SessionAction::React { emoji } = &action {
            // Not part of the playlist: the sessions send it to the members online.
            self.sessions
                .react(id, emoji, None)
                .await
                .map_err(|err| StoreError::Invalid(format!("{err:#}")))?;
            return self.session(id).await;
        }
        let offsets = self.sessions.clock_offsets();
        listening::act(&self.library, &self.state, offsets, id, action).await
    }

    /// A new playlist named `name` from what played in the session of `id`; its id.
    pub async fn save_session_history(&self, id: &str, name: &str) -> Result<String, StoreError> {
        listening::save_history(&self.library, id, name).await
    }

    /// Makes `dirs` (checked: `whatnext_home::config::check_music_dirs`) the music folders,
    /// now and at the next start: the library reads them and forgets the folders let go.
    pub async fn set_music_dirs(&self, dirs: Vec<std::path::PathBuf>) -> Result<(), String> {
        whatnext_home::config::write_music_dirs(&self.config_path, &dirs)?;
        self.music.set_dirs(dirs).await.map_err(|e| e.to_string())
    }

    /// Takes `name` as ours from now on (local edits and handshakes carry it), and records it in every playlist that names us
    /// (as owner or member), so members see it on everything we did.
    pub async fn set_display_name(&self, name: String) {
        // Kept for the next start too (as `whatnext config set display-name` does).
        if let Err(err) = whatnext_home::config::write_display_name(&self.config_path, &name) {
            tracing::warn!("the new display name applies until the next start only: {err}");
        }
        self.state.update(|s| {
            let changed = s.display_name != name || !s.display_name_chosen;
            s.display_name.clone_from(&name);
            s.display_name_chosen = true;
            changed
        });
        self.library.set_display_name(name);
        let ids: Vec<String> = self
            .state
            .snapshot()
            .playlists
            .into_iter()
            .map(|p| p.id)
            .collect();
        for id in ids {
            let me = self.library.author_for(&id);
            let renamed = self
                .library
                .write(move |store, _, _| {
                    let changed = store.rename_me(&id, &me)?;
                    Ok(((), changed.then_some(id)))
                })
                .await;
            if let Err(err) = renamed {
                tracing::warn!("could not record the new display name in a playlist: {err}");
            }
        }
    }
}
