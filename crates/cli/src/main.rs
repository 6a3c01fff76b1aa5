//! `whatnext`: one binary for every role. `run` is the controller, `p2p` the network service
//! it spawns, and the other commands are clients of the running controller's API.

// The doc comments of the clap types are the CLI's help text, which names placeholders
// the way help texts do (`<home>`, `<peer id>`); they are not HTML.
#![allow(rustdoc::invalid_html_tags)]

mod forward;
mod json_out;
mod library;
mod offline;
mod playlist;
mod relay;
mod resolve;
mod session;
mod status;
mod text;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use whatnext_client::Client;
use whatnext_home::{Home, HomeError, config::RunFlags, os_handler};
use whatnext_protocol::{
    api::{ConfigChange, ConnectRequest},
    link::InviteLink,
    local::{LocalRequest, LocalResponse},
    state::LinkStatus,
};

use crate::{
    forward::{Forwarded, send},
    json_out::{print_json, print_json_pretty},
    text::{safe, safe_lines},
};

#[derive(Parser)]
#[command(
    name = "whatnext",
    version,
    about = "Collaborative playlists, peer to peer."
)]
struct Cli {
    /// The WhatNext home directory (identity, store, logs). Default: the platform data dir.
    #[arg(long, global = true, env = "WHATNEXT_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the controller (and its network service) in the foreground.
    Run(RunArgs),
    /// Diagnose connectivity: network, listen addresses, NAT, relay, LAN discovery, bootstrap
    /// nodes and recent failed dials, each with what to do. Exits 1 when something fails.
    Doctor {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the running node: peer id, addresses, service, connections.
    Status {
        /// Print the full state as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Connect to a peer by multiaddr (ending in /p2p/<peer id>) and wait until connected.
    Connect {
        /// e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW…
        addr: String,
        /// Seconds to wait for the connection.
        #[arg(long, default_value_t = 10.0, value_name = "SECS", value_parser = seconds)]
        timeout: f64,
        /// Print the connection (peer id, address, dial time) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print an invite link (whtnxt://…) that a friend can open to connect to you.
    Invite {
        /// Print the link as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Open a whtnxt:// link in the running WhatNext (starting it if needed). This is what
    /// the OS runs when a link is clicked.
    Open {
        /// The whtnxt://connect/… link a friend sent you.
        url: String,
        /// Wait until the connection is up; exit non-zero with the reason if it fails.
        #[arg(long)]
        wait: bool,
        /// Seconds to wait for the connection.
        #[arg(long, default_value_t = 15.0, value_name = "SECS", value_parser = seconds)]
        timeout: f64,
        /// Print the link attempt (status, steps, error) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop the running WhatNext: the controller and its network service (what a clicked
    /// link started in the background, too). Friends cannot reach you until it runs again.
    Stop {
        /// Seconds to wait for it to finish.
        #[arg(long, default_value_t = 15.0, value_name = "SECS", value_parser = seconds)]
        timeout: f64,
    },
    /// Open the view in the browser with a fresh one-time login link.
    Ui {
        /// Only print the link.
        #[arg(long)]
        print: bool,
    },
    /// Create, edit, export and import playlists.
    #[command(subcommand)]
    Playlist(playlist::PlaylistCommand),
    /// The listening session of a shared playlist: play, turns, votes, skips, comments.
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// The music library: the audio files in your music folders (`config set music-dirs`).
    #[command(subcommand)]
    Library(library::LibraryCommand),
    /// Change a setting in <home>/config.toml (and in the running controller).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Make this binary the OS handler for whtnxt:// links.
    Register,
    /// Remove the OS handler for whtnxt:// links.
    Unregister,
    /// Run a public helper node on a server: a relay for peers behind NATs, a DHT bootstrap
    /// node and an AutoNAT server. Prints its addresses for other nodes' config.
    Relay(relay::RelayArgs),
    // Internal: the network service started by `run`; speaks frames on stdin/stdout.
    // (A plain comment: a doc comment here would become the help of the variant above.)
    #[command(hide = true)]
    P2p,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Set KEY to VALUE. Keys: display-name (the name friends see next to what you add),
    /// music-dirs (the folders of your music, separated by ':' — ';' on Windows; "" for none).
    Set {
        /// The setting: display-name or music-dirs.
        key: String,
        /// Its new value.
        value: String,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Multiaddr to listen on (repeatable). Default: TCP, QUIC and WebSocket on all
    /// interfaces, each on a port chosen at the first start and kept (listen.json).
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// Do not open the view in a browser.
    #[arg(long)]
    no_browser: bool,
    /// Turn off mDNS discovery on the local network.
    #[arg(long)]
    no_mdns: bool,
    /// Do not ask the router for a port mapping (UPnP).
    #[arg(long)]
    no_upnp: bool,
    /// Do not open the native window (builds with the `desktop` feature open one; others
    /// never do).
    #[arg(long)]
    no_window: bool,
    /// A DHT bootstrap node, /…/p2p/<peer id> (repeatable; replaces `bootstrap` in config.toml).
    #[arg(long, value_name = "MULTIADDR")]
    bootstrap: Vec<String>,
    /// A relay to reserve a slot on when behind NAT, /…/p2p/<peer id> (repeatable; replaces
    /// `relays` in config.toml).
    #[arg(long = "relay", value_name = "MULTIADDR")]
    relays: Vec<String>,
    /// Do not register as the OS handler for whtnxt:// links on the first start.
    #[arg(long)]
    no_register: bool,
    /// Port of the loopback API and view (default: any free port).
    #[arg(long, value_name = "PORT")]
    api_port: Option<u16>,
}

/// The longest wait a `--timeout` takes: a day.
const MAX_TIMEOUT_SECS: f64 = 86_400.0;

/// A `--timeout`: seconds, more than 0 and at most a day (a `Duration` cannot hold every
/// number a user can type).
fn seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= MAX_TIMEOUT_SECS => Ok(secs),
        _ => Err(format!(
            "expected a number of seconds above 0 and at most {MAX_TIMEOUT_SECS} (a day), e.g. 15 or 2.5"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // Errors quote the controller, files and the network: escaped like all output.
            eprintln!("error: {}", safe_lines(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Commands::P2p = cli.command {
        whatnext_p2p::run()?;
        return Ok(ExitCode::SUCCESS);
    }
    let home_explicit = cli.home.is_some();
    let home = Home::resolve(cli.home)?;
    match cli.command {
        Commands::P2p => unreachable!("handled above"),
        Commands::Relay(args) => relay::run(&home, args)?,
        Commands::Run(args) => {
            let flags = RunFlags {
                listen: args.listen,
                no_mdns: args.no_mdns,
                no_upnp: args.no_upnp,
                bootstrap: args.bootstrap,
                relays: args.relays,
                no_browser: args.no_browser,
                no_register: args.no_register,
                api_port: args.api_port,
                home_explicit,
            };
            if cfg!(feature = "desktop") && !args.no_window {
                if has_display() {
                    return run_windowed(&home, flags);
                }
                // A desktop build over SSH or in a service: no window to open, but the node
                // and the view in the browser work as in any build.
                eprintln!(
                    "no display (DISPLAY and WAYLAND_DISPLAY are unset): running without the window"
                );
            }
            if let Err(err) = whatnext_controller::run(home.clone(), flags) {
                return match err.downcast_ref::<HomeError>() {
                    Some(HomeError::AlreadyRunning { .. }) => hand_over_to_running(&home, err),
                    _ => Err(err),
                };
            }
        }
        Commands::Invite { json } => {
            let reply = Client::for_home(&home)?.invite()?;
            if json {
                print_json(&reply)?;
            } else {
                println!("{}", safe(&reply.link));
            }
        }
        Commands::Open {
            url,
            wait,
            timeout,
            json,
        } => return open(&home, &url, wait, timeout, json),
        Commands::Playlist(command) => {
            let live = Client::for_home(&home)
                .map_err(anyhow::Error::from)
                .and_then(|client| {
                    let mut command = command.clone();
                    resolve::playlist_ids(&client, command.playlist_mut().into_iter().collect())?;
                    playlist::run(&client, command)
                });
            match live {
                // Reading needs no controller: the Markdown copies have every field.
                Err(err) if offline::not_running(&err) => {
                    offline::run(&home, command).unwrap_or(Err(err))?
                }
                other => other?,
            }
        }
        Commands::Session(mut command) => {
            let client = Client::for_home(&home)?;
            resolve::playlist_ids(&client, command.playlists_mut())?;
            session::run(&client, command)?
        }
        Commands::Library(command) => library::run(&Client::for_home(&home)?, command)?,
        Commands::Ui { print } => {
            let reply = Client::for_home(&home)?.login_link()?;
            let url = reply.url.as_str();
            if !print && let Err(err) = open::that_detached(url) {
                eprintln!("could not open a browser ({err}); open this link yourself:");
            }
            println!("{}", safe(url));
        }
        Commands::Config(ConfigCommand::Set { key, value }) => config_set(&home, &key, &value)?,
        Commands::Register => {
            let binary = std::env::current_exe()?;
            let home_arg = home_explicit.then(|| home.dir());
            let args = os_handler::handler_args(&binary, home_arg);
            let report = os_handler::register(&args)?;
            for line in report.lines {
                println!("{line}");
            }
            println!("whtnxt:// links now open in WhatNext.");
        }
        Commands::Unregister => {
            let report = os_handler::unregister()?;
            for line in report.lines {
                println!("{line}");
            }
        }
        Commands::Doctor { json } => return doctor(&home, json),
        Commands::Stop { timeout } => stop(&home, timeout)?,
        Commands::Status { json } => {
            let state = Client::for_home(&home)?.state()?;
            if json {
                print_json_pretty(&state)?;
            } else {
                print!("{}", status::render(&state));
            }
        }
        Commands::Connect {
            addr,
            timeout,
            json,
        } => {
            let request = ConnectRequest {
                addr,
                timeout_secs: Some(timeout),
            };
            let reply = Client::for_home(&home)?.connect(&request)?;
            if json {
                print_json(&reply)?;
            } else {
                let peer = safe(&reply.peer_id);
                let via = safe(&reply.addr);
                println!("connected to {peer} via {via}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `whatnext stop`: asks the running controller to stop, and waits until it has (its
/// `api.json` goes once the service is stopped and the store is on disk).
fn stop(home: &Home, timeout: f64) -> anyhow::Result<()> {
    let client = match Client::for_home(home) {
        Ok(client) => client,
        Err(whatnext_client::ClientError::Home(HomeError::NotRunning { .. })) => {
            println!("WhatNext is not running (home {})", home.dir().display());
            return Ok(());
        }
        Err(err) => return Err(err.into()),
    };
    let pid = client.pid();
    let gone = || match home.read_api_info() {
        Ok(info) => info.pid != pid,
        Err(HomeError::NotRunning { .. }) => true,
        Err(_) => false,
    };
    if let Err(err) = client.shutdown() {
        if gone() {
            println!("WhatNext is not running (home {})", home.dir().display());
            return Ok(());
        }
        return Err(anyhow::Error::from(err).context(format!(
            "could not ask WhatNext (pid {pid}) to stop; if it no longer answers, `kill {pid}` ends it (nothing acknowledged is lost)"
        )));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(timeout);
    while !gone() {
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "WhatNext (pid {pid}) was asked to stop but had not finished after {timeout} s; `whatnext status` says whether it still runs, and `kill {pid}` ends it (nothing acknowledged is lost)"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("stopped WhatNext (pid {pid})");
    Ok(())
}

/// `whatnext doctor`: the running controller's diagnosis, or, when none runs, what can be
/// checked without it.
fn doctor(home: &Home, json: bool) -> anyhow::Result<ExitCode> {
    use whatnext_core::doctor::{Interfaces, not_running};
    use whatnext_protocol::api::{CheckStatus, DoctorReport};
    let report: DoctorReport = match Client::for_home(home).and_then(|client| client.doctor()) {
        Ok(report) => report,
        Err(err) => not_running(
            Interfaces::read().as_ref(),
            &format!("{:#}", anyhow::Error::from(err)),
        ),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        // Details quote dial errors from the network: escaped.
        println!("{}\n", safe(&report.summary));
        for check in &report.checks {
            let mark = match check.status {
                CheckStatus::Ok => "ok  ",
                CheckStatus::Info => "info",
                CheckStatus::Warn => "WARN",
                CheckStatus::Fail => "FAIL",
            };
            println!("[{mark}] {}: {}", safe(&check.title), safe(&check.detail));
            if !check.advice.is_empty() {
                println!("       → {}", safe(&check.advice));
            }
        }
    }
    Ok(if report.status == CheckStatus::Fail {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A second `run` on a home that has a controller: tell that one, and succeed.
fn hand_over_to_running(home: &Home, err: anyhow::Error) -> anyhow::Result<ExitCode> {
    match send(home, &LocalRequest::Show, Duration::from_secs(10)) {
        Ok(Forwarded::Answered(response)) => {
            println!(
                "WhatNext is already running for home {} (pid {}); handed over to it.",
                home.dir().display(),
                response.pid,
            );
            // A login link, fresh: the bare address would only ask for one.
            match Client::for_home(home).and_then(|client| client.login_link()) {
                Ok(reply) => println!("Open the view: {}", safe(&reply.url)),
                Err(_) => println!(
                    "Its view: {} (`whatnext ui` opens it logged in)",
                    safe(&response.url)
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(Forwarded::NotRunning) => Err(err),
        Err(forward_err) => {
            Err(err.context(format!("and it could not be reached: {forward_err:#}")))
        }
    }
}

/// `whatnext run` with the native window. A controller already running for the home is
/// asked to show its window instead (the window lives in the controller's process).
/// Whether a window can be shown: on Linux, only with an X11 or Wayland display.
fn has_display() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    !cfg!(target_os = "linux") || set("DISPLAY") || set("WAYLAND_DISPLAY")
}

#[cfg(feature = "desktop")]
fn run_windowed(home: &Home, flags: RunFlags) -> anyhow::Result<ExitCode> {
    if let Ok(Forwarded::Answered(response)) =
        send(home, &LocalRequest::Show, Duration::from_secs(10))
    {
        println!(
            "WhatNext is already running for home {} (pid {}); brought its window forward.",
            home.dir().display(),
            response.pid
        );
        return Ok(ExitCode::SUCCESS);
    }
    whatnext_desktop::run(home.clone(), flags)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "desktop"))]
fn run_windowed(_home: &Home, _flags: RunFlags) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this whatnext was built without a desktop window; run with --no-window")
}

/// `whatnext open URL`: what the OS runs for a link.
fn open(home: &Home, url: &str, wait: bool, timeout: f64, json: bool) -> anyhow::Result<ExitCode> {
    // Checked here too, so a bad link never starts a controller just to be refused.
    // The link is quoted only in part: it may be kilobytes long.
    let link: InviteLink = url.parse().with_context(|| {
        format!(
            "cannot open {:?}",
            whatnext_core::state::clip(&whatnext_core::links::redact_key(url), 100)
        )
    })?;
    // (`--timeout` is checked when parsed: above 0, at most a day.)
    let timeout_secs = timeout;
    let request = LocalRequest::Open {
        url: url.to_string(),
        wait,
        timeout_secs: Some(timeout_secs),
    };
    let answer_within = Duration::from_secs_f64(timeout_secs + 10.0);
    let response = match send(home, &request, answer_within)? {
        Forwarded::Answered(response) => response,
        Forwarded::NotRunning => {
            eprintln!("Starting WhatNext for home {} …", home.dir().display());
            forward::start_controller(home)?;
            match send(home, &request, answer_within)? {
                Forwarded::Answered(response) => response,
                Forwarded::NotRunning => {
                    anyhow::bail!("the controller started but its socket went away")
                }
            }
        }
    };
    report_open(&link, &response, json)
}

fn report_open(
    link: &InviteLink,
    response: &LocalResponse,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string(&response.attempt)?);
    }
    let Some(attempt) = &response.attempt else {
        anyhow::bail!(
            "{}",
            response
                .error
                .as_deref()
                .unwrap_or("the controller refused the link")
        );
    };
    match attempt.status {
        LinkStatus::Connected => {
            if !json {
                let via = safe(attempt.addr.as_deref().unwrap_or("?"));
                println!("connected to {} via {via}", link.peer_id);
            }
            Ok(ExitCode::SUCCESS)
        }
        LinkStatus::Pending => {
            if !json {
                println!(
                    "WhatNext (pid {}) is connecting to {}; `whatnext status` shows the outcome",
                    response.pid, link.peer_id
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        LinkStatus::Failed | LinkStatus::Invalid => {
            let error = safe(attempt.error.as_deref().unwrap_or("unknown error"));
            eprintln!("error: could not connect to {}: {error}", link.peer_id);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `config set`: edits config.toml, then tells a running controller.
fn config_set(home: &Home, key: &str, value: &str) -> anyhow::Result<()> {
    use whatnext_home::config;
    let (change, shown, music_dirs) = match key {
        "display-name" | "display_name" => {
            let name = config::check_display_name(value).map_err(anyhow::Error::msg)?;
            let shown = format!("\"{}\"", safe(&name));
            let change = ConfigChange {
                display_name: Some(name),
                ..ConfigChange::default()
            };
            (change, shown, None)
        }
        "music-dirs" | "music_dirs" => {
            let dirs = music_dirs_given(value)?;
            let checked = config::check_music_dirs(&dirs).map_err(anyhow::Error::msg)?;
            let shown = checked
                .iter()
                .map(|dir| format!("\"{}\"", safe(&dir.display().to_string())))
                .collect::<Vec<_>>()
                .join(", ");
            let change = ConfigChange {
                music_dirs: Some(dirs),
                ..ConfigChange::default()
            };
            (change, format!("[{shown}]"), Some(checked))
        }
        _ => anyhow::bail!("unknown setting {key:?}; settable: display-name, music-dirs"),
    };
    home.create()?;
    for note in home.take_notes() {
        eprintln!("note: {note}");
    }
    let path = home.config_path();
    if let Some(name) = &change.display_name {
        config::write_display_name(&path, name).map_err(anyhow::Error::msg)?;
    }
    if let Some(dirs) = &music_dirs {
        config::write_music_dirs(&path, dirs).map_err(anyhow::Error::msg)?;
    }
    println!("{key} = {shown} (in {})", path.display());
    if let Ok(client) = Client::for_home(home) {
        match client.set_config(&change) {
            Ok(_) => println!("the running WhatNext uses it from now on"),
            Err(err) => eprintln!(
                "note: the running WhatNext did not take it ({:#}); it applies at the next start",
                anyhow::Error::from(err)
            ),
        }
    }
    Ok(())
}

/// The folders of `config set music-dirs VALUE`: separated as in PATH, each made absolute
/// (from `~/` or the current folder), as the running controller cannot know either.
fn music_dirs_given(value: &str) -> anyhow::Result<Vec<String>> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let home_dir = directories::BaseDirs::new().map(|dirs| dirs.home_dir().to_path_buf());
    std::env::split_paths(value.trim())
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| {
            let dir = match (dir.strip_prefix("~"), &home_dir) {
                (Ok(rest), Some(home_dir)) => home_dir.join(rest),
                _ => cwd.join(dir),
            };
            dir.into_os_string().into_string().map_err(|dir| {
                anyhow::anyhow!("the music folder {dir:?} is not valid UTF-8; rename it or link it")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every command a user can see, and every argument of it, has a help line.
    #[test]
    fn every_subcommand_and_argument_has_help() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} <{id}>"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.is_hide_set() || sub.get_name() == "help" {
                    continue;
                }
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(sub_path.clone());
                }
                check(sub, &sub_path, missing);
            }
        }
        let mut missing = Vec::new();
        check(&super::Cli::command(), "whatnext", &mut missing);
        assert!(missing.is_empty(), "no help line for: {missing:#?}");
    }

    /// `relay --help` is about the relay only (a misplaced doc comment once glued the
    /// hidden `p2p` command's text to it), and `run --help` names the real listen set.
    #[test]
    fn relay_and_run_help_say_what_they_do() {
        let cli = super::Cli::command();
        let relay = cli.find_subcommand("relay").expect("relay");
        let about = relay.get_about().map(|a| a.to_string()).unwrap_or_default();
        assert!(about.starts_with("Run a public helper node"), "{about}");
        assert!(!about.contains("Internal"), "{about}");
        let run = cli.find_subcommand("run").expect("run");
        let listen = run
            .get_arguments()
            .find(|a| a.get_id() == "listen")
            .and_then(|a| a.get_help().map(|h| h.to_string()))
            .unwrap_or_default();
        assert!(listen.contains("TCP, QUIC and WebSocket"), "{listen}");
    }
}
