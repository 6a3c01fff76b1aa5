//! The WhatNext controller (`whatnext run`): wiring only.
//!
//! It takes the home directory (single-instance lock, identity, settings), opens the store,
//! starts the core (`whatnext-core`: the versioned [`AppState`], the supervisor of the
//! network service, the library, shared playlists) and opens its front doors
//! (`whatnext-api`: the loopback HTTP API and the view, the single-instance socket); then it
//! waits for SIGINT/SIGTERM, `POST /api/shutdown` or the window's Quit, and stops in order
//! within a deadline.
//!
//! Invariant: the controller is the only process that touches the home directory while it
//! runs; the network service gets what it needs over its pipe.
//!
//! [`AppState`]: whatnext_protocol::state::AppState

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use whatnext_api::{Access, Api, http_server};
use whatnext_core::{
    Core, CoreParts,
    library::Library,
    names::HelperAddrs,
    state::{StateHandle, now_ms},
    supervisor::{self, RestartPolicy, ServiceSpec},
};
use whatnext_home::{
    ApiInfo, Home,
    config::{ConfigFile, RunFlags, Settings},
    files::write_private_file,
    identity, logging, os_handler, single_instance,
};
use whatnext_protocol::{
    ipc::NodeConfig,
    state::{AppState, HelperRole},
};

/// The single-instance socket; `whatnext open` finds it with `local_socket::socket_name`.
pub use whatnext_api::local_socket;
/// The bridge to a native window (the desktop build), as `whatnext-core` defines it.
pub use whatnext_core::ui;

/// Runs the controller in the foreground until SIGINT/SIGTERM or `POST /api/shutdown`.
pub fn run(home: Home, flags: RunFlags) -> anyhow::Result<()> {
    run_with_ui(home, flags, None)
}

/// As [`run`], beside a native window: the window gets [`ui::UiEvent`]s instead of a
/// browser being opened, and stops the controller with `hooks.shutdown`.
pub fn run_with_ui(home: Home, flags: RunFlags, ui: Option<ui::UiHooks>) -> anyhow::Result<()> {
    home.create()?;
    let _lock = single_instance::acquire(&home)?;
    let _log_guard = logging::init(&home);
    let settings = Settings::merge(&flags, ConfigFile::load(&home.config_path())?);
    let identity = identity::load_or_create(&home)?;
    if identity.created && settings.register {
        register_link_handler(&home, &flags);
    }
    let program = std::env::current_exe()
        .context("cannot find the whatnext binary to start the network service")?;
    // Before anything opens files: a flood of API connections must not take the
    // descriptors the store and the service's pipes need (the API is capped below this).
    let fd_limit = http_server::raise_fd_limit();
    let runtime = runtime().context("could not start the async runtime")?;
    // Names in the relays and bootstrap nodes: resolved here in the background (see
    // `serve`), as the sandboxed service cannot; it starts with the others.
    let helpers = HelperAddrs {
        bootstrap: settings.bootstrap.clone(),
        relays: settings.relays.clone(),
    };
    let unnamed = helpers.without_names();
    let node = NodeConfig {
        keypair: supervisor::encode_keypair(&identity.encoded()),
        listen: settings.listen.clone(),
        bootstrap: unnamed.bootstrap,
        relays: unnamed.relays,
        mdns: settings.mdns,
        upnp: settings.upnp,
        agent_version: format!("whatnext/{}", env!("CARGO_PKG_VERSION")),
        ping_interval_ms: 5_000,
        webrtc_certificate: None,
    };
    let opening = std::time::Instant::now();
    let (store, report) =
        whatnext_store::Store::open_as(&home.store_dir(), now_ms(), identity.keypair.clone())
            .with_context(|| {
                format!(
                    "cannot open the playlist store in {}",
                    home.store_dir().display()
                )
            })?;
    tracing::info!(
        "opened {} playlists in {} ms",
        report.playlists,
        opening.elapsed().as_millis()
    );
    for tail in &report.torn_tails {
        tracing::warn!(
            "recovered from an interrupted write (never acknowledged, nothing lost); the incomplete record is kept in {}",
            tail.display()
        );
    }
    // Damage: reported in the state (`status`, `doctor`, the view) by the library.
    for problem in &report.problems {
        tracing::error!(
            "playlist {}: {} (kept at {})",
            problem.playlist_id,
            problem.what,
            problem.kept_at.as_deref().unwrap_or("nothing set aside")
        );
    }
    let author = whatnext_protocol::playlist::Author {
        peer_id: identity.peer_id.to_string(),
        display_name: settings.display_name.clone(),
    };
    let mut initial = AppState::initial(
        std::process::id(),
        identity.peer_id.to_string(),
        home.dir().display().to_string(),
        now_ms(),
    );
    initial.mdns = settings.mdns;
    initial.display_name = settings.display_name.clone();
    initial.display_name_chosen = settings.display_name_chosen;
    initial.helpers = helper_nodes(&settings);
    let spec = ServiceSpec {
        name: whatnext_protocol::state::MAIN_SERVICE.to_string(),
        program,
        node,
        policy: RestartPolicy::default(),
        listen_memory: Some(home.listen_memory_path()),
        webrtc_certificate: Some(home.webrtc_certificate_path()),
        helpers: None,
    };
    runtime.block_on(serve(
        home,
        settings,
        (spec, helpers),
        initial,
        (store, author),
        ui,
        fd_limit,
    ))
}

async fn serve(
    home: Home,
    settings: Settings,
    (mut spec, helpers): (ServiceSpec, HelperAddrs),
    initial: AppState,
    (store, author): (whatnext_store::Store, whatnext_protocol::playlist::Author),
    ui: Option<ui::UiHooks>,
    fd_limit: u64,
) -> anyhow::Result<()> {
    let shutdown = ui
        .as_ref()
        .map_or_else(CancellationToken::new, |ui| ui.shutdown.clone());
    tokio::spawn(stop_on_signals(shutdown.clone()));
    tokio::spawn(exit_after_shutdown_deadline(shutdown.clone(), home.clone()));
    let state = StateHandle::new(initial);
    spec.helpers = Some(whatnext_core::names::resolve_helpers(
        helpers,
        state.clone(),
        shutdown.clone(),
    ));
    let (library, changes) = Library::start(store, author, state.clone(), home.mirror_dir());

    let previous_view = home.read_view_info();
    let listener = bind_api(settings.api_port, previous_view.as_ref().map(|v| v.port))
        .await
        .with_context(|| {
            format!(
                "cannot open the API on 127.0.0.1:{}; choose another port with --api-port or api_port in {}",
                settings.api_port,
                home.config_path().display()
            )
        })?;
    let api_addr = listener.local_addr()?;
    let url = format!("http://{api_addr}");
    let token = random_token();
    // A kept secret must be a whole one: an empty or short secret in a damaged or edited
    // view.json would make the cookie guessable.
    let view_secret = previous_view
        .map(|v| v.secret)
        .filter(|secret| is_full_token(secret))
        .unwrap_or_else(random_token);
    write_private_file(
        &home.view_path(),
        &serde_json::to_vec_pretty(&whatnext_home::ViewInfo {
            port: api_addr.port(),
            secret: view_secret.clone(),
        })?,
    )?;
    let socket = local_socket::bind(&home).with_context(|| {
        format!(
            "cannot open the single-instance socket {}",
            home.socket_path().display()
        )
    })?;

    let (core, core_tasks) = Core::start(CoreParts {
        state: state.clone(),
        library,
        changes,
        service: spec,
        sessions_path: home.sessions_path(),
        config_path: home.config_path(),
        identities_dir: home.isolated_dir(),
        shutdown: shutdown.clone(),
        ui: ui.clone(),
        music: whatnext_core::music::Music::open(
            &home.library_index_path(),
            settings.music_dirs.clone(),
            home.media_dir(),
            settings.max_media_mb.saturating_mul(1_000_000),
            state.clone(),
        ),
    })?;
    let api = Arc::new(Api::new(
        core,
        Access::new(url.clone(), token.clone(), view_secret),
    ));
    tokio::spawn(local_socket::serve(Arc::clone(&api), socket));
    if let Some(tunnel) = api.core().take_guest_tunnel() {
        tokio::spawn(whatnext_api::guests::serve_tunnel(Arc::clone(&api), tunnel));
    }

    let info = ApiInfo {
        url: url.clone(),
        token,
        pid: std::process::id(),
    };
    write_private_file(&home.api_path(), &serde_json::to_vec_pretty(&info)?)?;
    let peer_id = state.snapshot().peer_id;
    println!(
        "WhatNext is running (peer id {peer_id}); API at {url}; home {}",
        home.dir().display()
    );
    println!("Stop it with Ctrl-C or `whatnext stop`. `whatnext status` shows the node.");
    let login = api.access().new_login_url();
    println!("Open the view: {login}");
    if let Some(ui) = &ui {
        (ui.notify)(ui::UiEvent::Ready { login_url: login });
    } else if settings.browser
        && let Err(err) = open::that_detached(&login)
    {
        tracing::warn!("could not open a browser ({err}); open the URL above yourself");
    }

    let router = whatnext_api::router(api);
    let limits = http_server::Limits::for_fd_limit(fd_limit);
    let served = http_server::serve(listener, router, shutdown.clone(), limits).await;
    shutdown.cancel();
    core_tasks.finish().await;
    remove_api_file(&home);
    tracing::info!("stopped");
    served.context("the API server failed")
}

/// The configured bootstrap and relay nodes, not yet connected (a name that does not
/// resolve is said later, by `names::resolve_helpers`).
fn helper_nodes(settings: &Settings) -> Vec<whatnext_protocol::state::HelperNode> {
    let roles = settings
        .bootstrap
        .iter()
        .map(|a| (a, HelperRole::Bootstrap))
        .chain(settings.relays.iter().map(|a| (a, HelperRole::Relay)));
    roles
        .map(|(addr, role)| {
            let peer_id = addr
                .parse::<multiaddr::Multiaddr>()
                .ok()
                .and_then(|m| whatnext_core::invite::peer_id_of(&m));
            whatnext_protocol::state::HelperNode {
                addr: addr.clone(),
                role,
                error: peer_id
                    .is_none()
                    .then(|| "the address does not end in /p2p/<peer id>".to_string()),
                peer_id,
                connected: false,
            }
        })
        .collect()
}

/// Binds the loopback API: the configured port, or else (port 0) the port of the last run,
/// so the view's origin — and with it an open tab's cookie — stays the same across restarts;
/// a fresh port when that one is taken.
async fn bind_api(
    configured: u16,
    previous: Option<u16>,
) -> std::io::Result<tokio::net::TcpListener> {
    if configured == 0
        && let Some(port) = previous.filter(|&p| p != 0)
    {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => return Ok(listener),
            Err(err) => {
                tracing::info!("the view's previous port {port} is taken ({err}); using a new one")
            }
        }
    }
    tokio::net::TcpListener::bind(("127.0.0.1", configured)).await
}

/// Removes `api.json` if it is still ours (a newer controller may have replaced it).
fn remove_api_file(home: &Home) {
    if let Ok(info) = home.read_api_info()
        && info.pid == std::process::id()
    {
        let _ = std::fs::remove_file(home.api_path());
    }
}

async fn stop_on_signals(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("cannot listen for SIGTERM/SIGINT; stop the controller with `kill -9`");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        shutdown.cancel();
        // A second signal means "now": nothing acknowledged is lost by not waiting.
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting at once");
        std::process::exit(1);
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
    }
}

/// How long an orderly shutdown may take before the process exits anyway. Nothing is lost
/// by cutting it short: every acknowledged write is already on disk.
const SHUTDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(4);

/// Once shutdown starts, a plain thread (not a task: it must fire even if the runtime is
/// stuck) ends the process after [`SHUTDOWN_DEADLINE`]. SIGTERM always ends the controller.
async fn exit_after_shutdown_deadline(shutdown: CancellationToken, home: Home) {
    shutdown.cancelled().await;
    let spawned = std::thread::Builder::new()
        .name("shutdown-deadline".into())
        .spawn(move || {
            std::thread::sleep(SHUTDOWN_DEADLINE);
            tracing::error!(
                "the orderly shutdown took longer than {SHUTDOWN_DEADLINE:?}; exiting now (nothing acknowledged is lost)"
            );
            remove_api_file(&home);
            // The network service sees its stdin close and exits too.
            std::process::exit(1);
        });
    if let Err(err) = spawned {
        tracing::warn!("cannot start the shutdown deadline ({err})");
    }
}

/// Makes this binary the OS handler for whtnxt:// links. Failure is not fatal: the app works
/// without it, and `whatnext register` can be run later.
fn register_link_handler(home: &Home, flags: &RunFlags) {
    let Ok(binary) = std::env::current_exe() else {
        return;
    };
    let home = flags.home_explicit.then(|| home.dir());
    match os_handler::register(&os_handler::handler_args(&binary, home)) {
        Ok(report) => {
            for line in report.lines {
                tracing::info!("link handler: {line}");
            }
        }
        Err(err) => tracing::warn!(
            "could not register as the handler for whtnxt:// links ({err}); `whatnext register` retries"
        ),
    }
}

/// Bytes of randomness in a token or secret.
const TOKEN_BYTES: usize = 32;

fn random_token() -> String {
    hex::encode(rand::random::<[u8; TOKEN_BYTES]>())
}

/// Whether `secret` looks like one [`random_token`] made: full length, hex.
fn is_full_token(secret: &str) -> bool {
    secret.len() == 2 * TOKEN_BYTES && secret.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The controller's runtime: one thread. The controller's work is small and I/O-bound, and
/// on one thread a request crosses no thread boundary on its way to the service and back
/// (each cross-thread wake-up costs tens of microseconds on a VM). Blocking work (fsync)
/// goes to `spawn_blocking`.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
