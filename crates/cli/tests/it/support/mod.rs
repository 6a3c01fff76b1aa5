//! Test harness: real `whatnext` processes with temp homes on loopback.
//!
//! Every process a test starts is killed by pid when its guard drops, also when the test
//! panics. Waits poll for a condition with a generous deadline instead of sleeping.
#![allow(dead_code, reason = "each test module uses part of the helpers")]

use std::{
    cell::RefCell,
    collections::BTreeSet,
    io::{Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_whatnext");
/// Deadline for anything that should take well under a second.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Loopback-only, no multicast: test traffic never leaves the machine.
pub const LOOPBACK_RUN_ARGS: [&str; 9] = [
    "run",
    "--no-mdns",
    "--no-upnp",
    "--no-browser",
    "--no-register",
    "--listen",
    "/ip4/127.0.0.1/tcp/0",
    "--listen",
    "/ip4/127.0.0.1/udp/0/quic-v1",
];

pub fn whatnext(home: &Path, args: &[&str]) -> Output {
    whatnext_in(None, home, args)
}

/// `whatnext` run inside network namespace `netns` (through `ip netns exec`, which execs it:
/// same pid), or in ours.
pub fn command_in(netns: Option<&str>) -> Command {
    match netns {
        Some(ns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", ns, BIN]);
            command
        }
        None => Command::new(BIN),
    }
}

pub fn whatnext_in(netns: Option<&str>, home: &Path, args: &[&str]) -> Output {
    command_in(netns)
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("whatnext runs")
}

pub fn signal(pid: u32, signal: Signal) -> bool {
    nix::sys::signal::kill(Pid::from_raw(pid as i32), signal).is_ok()
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // Field 3, after the parenthesised command name, is the state.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One controller (`whatnext run`) in its own temp home.
pub struct Node {
    pub home: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    child: Option<Child>,
    /// Every service pid this node was seen with, to kill them all at the end.
    service_pids: RefCell<BTreeSet<u32>>,
    /// A controller this test did not spawn itself (started by `whatnext open`).
    adopted_pid: Option<u32>,
    /// The network namespace it runs in (the NAT lab), if not ours.
    pub netns: Option<String>,
}

impl Node {
    pub fn start() -> Node {
        Node::start_with_args(&LOOPBACK_RUN_ARGS)
    }

    /// A node in a temp home of its own, run with `args`.
    pub fn start_with_args(args: &[&str]) -> Node {
        let tempdir = tempfile::tempdir().expect("temp home");
        let home = tempdir.path().to_path_buf();
        // Not the user's own ~/Music: a test node has no music unless a test gives it some.
        std::fs::write(home.join("config.toml"), "music_dirs = []\n").expect("config.toml");
        let mut node = Node::start_in(&home, args);
        node._tempdir = Some(tempdir);
        node
    }

    /// A node in a temp home of its own, run with these environment variables, and waits
    /// for it to run.
    pub fn start_with_env(env: &[(&str, &str)]) -> Node {
        let tempdir = tempfile::tempdir().expect("temp home");
        let home = tempdir.path().to_path_buf();
        std::fs::write(home.join("config.toml"), "music_dirs = []\n").expect("config.toml");
        let mut command = command_in(None);
        command.envs(env.iter().copied());
        let mut node = Node::spawn_command(command, &home, &LOOPBACK_RUN_ARGS);
        node._tempdir = Some(tempdir);
        node.wait_running();
        node
    }

    /// Starts `whatnext --home HOME ARGS…` and waits for the node to run.
    pub fn start_in(home: &Path, args: &[&str]) -> Node {
        let node = Node::spawn(home, args);
        node.wait_running();
        node
    }

    /// Starts the controller with the logging a user gets (no `RUST_LOG`), and waits for
    /// the node to run.
    pub fn start_with_default_logs(home: &Path, args: &[&str]) -> Node {
        let mut command = command_in(None);
        command.env_remove("RUST_LOG");
        let node = Node::spawn_command(command, home, args);
        node.wait_running();
        node
    }

    /// Starts the controller without waiting for anything.
    pub fn spawn(home: &Path, args: &[&str]) -> Node {
        Node::spawn_in(None, home, args)
    }

    /// Starts the controller inside network namespace `netns` (or ours).
    pub fn spawn_in(netns: Option<&str>, home: &Path, args: &[&str]) -> Node {
        Node::spawn_command(command_in(netns), home, args).with_netns(netns)
    }

    /// Starts the controller under `prlimit --nofile=N:N` (which execs it: same pid), as on a
    /// desktop whose descriptor limit is low, soft and hard.
    pub fn spawn_with_fd_limit(limit: u64, home: &Path, args: &[&str]) -> Node {
        let mut command = Command::new("prlimit");
        command.arg(format!("--nofile={limit}:{limit}")).arg(BIN);
        Node::spawn_command(command, home, args)
    }

    fn with_netns(mut self, netns: Option<&str>) -> Node {
        self.netns = netns.map(str::to_string);
        self
    }

    /// Starts `command --home HOME ARGS…` (a `whatnext` or a wrapper that execs it).
    fn spawn_command(mut command: Command, home: &Path, args: &[&str]) -> Node {
        std::fs::create_dir_all(home).expect("home");
        let log = std::fs::File::create(home.join("test-run.log")).expect("log file");
        let child = command
            .arg("--home")
            .arg(home)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("whatnext run starts");
        Node {
            home: home.to_path_buf(),
            _tempdir: None,
            child: Some(child),
            service_pids: RefCell::new(BTreeSet::new()),
            adopted_pid: None,
            netns: None,
        }
    }

    /// Takes charge of a controller something else started for `home` (e.g. `whatnext
    /// open`): waits for it to run and kills it by pid at the end like the others.
    pub fn adopt(home: &Path) -> Node {
        let mut node = Node {
            home: home.to_path_buf(),
            _tempdir: None,
            child: None,
            service_pids: RefCell::new(BTreeSet::new()),
            adopted_pid: None,
            netns: None,
        };
        let state = node.wait_running();
        node.adopted_pid = state["pid"].as_u64().map(|p| p as u32);
        node
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map_or(self.adopted_pid.unwrap_or(0), Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("test-run.log")).unwrap_or_default()
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        whatnext_in(self.netns.as_deref(), &self.home, args)
    }

    /// `invite --json`'s link.
    pub fn invite(&self) -> String {
        self.wait_running();
        let out = self.cli(&["invite", "--json"]);
        assert!(
            out.status.success(),
            "invite: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reply: Value = serde_json::from_slice(&out.stdout).expect("invite JSON");
        reply["link"].as_str().expect("link").to_string()
    }

    /// `status --json`, or None when the controller does not answer.
    pub fn status(&self) -> Option<Value> {
        let out = self.cli(&["status", "--json"]);
        if !out.status.success() {
            return None;
        }
        let state: Value = serde_json::from_slice(&out.stdout).ok()?;
        // Every service's pid (main and isolated ones), to kill them when the test ends.
        let services = state["services"].as_array().into_iter().flatten();
        let pids = std::iter::once(&state["service"])
            .chain(services)
            .filter_map(|s| s["pid"].as_u64());
        self.service_pids
            .borrow_mut()
            .extend(pids.map(|pid| pid as u32));
        Some(state)
    }

    /// Polls `status --json` until `check` accepts it.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(state) = self.status() {
                if check(&state) {
                    return state;
                }
                last = Some(state);
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; last status: {}\n--- controller log ---\n{}",
                    last.map(|s| s.to_string()).unwrap_or_else(|| "none".into()),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn wait_running(&self) -> Value {
        self.wait_status("node running", PATIENCE, |s| s["node"] == "running")
    }

    pub fn peer_id(&self) -> String {
        self.wait_running()["peer_id"]
            .as_str()
            .expect("peer_id")
            .to_string()
    }

    pub fn service_pid(&self) -> u32 {
        self.wait_status("a service pid", PATIENCE, |s| s["service"]["pid"].is_u64())["service"]["pid"]
            .as_u64()
            .expect("pid") as u32
    }

    /// The node's TCP listen address with `/p2p/<peer id>`.
    pub fn tcp_multiaddr(&self) -> String {
        let state = self.wait_running();
        let addr = state["listen_addrs"]
            .as_array()
            .expect("listen_addrs")
            .iter()
            .filter_map(Value::as_str)
            .find(|a| a.contains("/tcp/"))
            .expect("a TCP listen address");
        format!("{addr}/p2p/{}", state["peer_id"].as_str().expect("peer id"))
    }

    /// The connections of this node to `peer`.
    pub fn connections_to(state: &Value, peer: &str) -> Vec<Value> {
        state["connections"]
            .as_array()
            .map(|c| c.iter().filter(|c| c["peer_id"] == peer).cloned().collect())
            .unwrap_or_default()
    }

    /// `(url, token)` from api.json.
    pub fn api(&self) -> (String, String) {
        let text = std::fs::read_to_string(self.home.join("api.json")).expect("api.json");
        let info: Value = serde_json::from_str(&text).expect("api.json is JSON");
        (
            info["url"].as_str().expect("url").to_string(),
            info["token"].as_str().expect("token").to_string(),
        )
    }

    /// Sends a signal to the controller and waits for it to exit; returns its exit status.
    pub fn stop_with(&mut self, sig: Signal) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("controller was started");
        signal(child.id(), sig);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("controller did not exit after {sig:?}\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn known_service_pids(&self) -> Vec<u32> {
        self.service_pids.borrow().iter().copied().collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pid) = self.adopted_pid {
            signal(pid, Signal::SIGKILL);
        }
        for pid in self.service_pids.borrow().iter() {
            if is_whatnext_service(*pid) {
                signal(*pid, Signal::SIGKILL);
            }
        }
    }
}

/// Guards against killing a recycled pid that is not ours.
pub fn is_whatnext_service(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
            args.iter().any(|a| a.ends_with(b"whatnext")) && args.iter().any(|a| *a == b"p2p")
        })
        .unwrap_or(false)
}

/// Writes a config.toml that keeps a controller started indirectly (by `open`) on loopback,
/// quiet on the LAN and out of the user's OS settings.
pub fn write_loopback_config(home: &Path) {
    std::fs::create_dir_all(home).expect("home");
    std::fs::write(
        home.join("config.toml"),
        "listen = [\"/ip4/127.0.0.1/tcp/0\"]\nmdns = false\nupnp = false\nbrowser = false\nregister = false\nmusic_dirs = []\n",
    )
    .expect("config.toml");
}

/// A raw HTTP/1.1 exchange: the whole response, head and body, as text.
pub fn http_raw(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    try_http_raw(url, method, path, headers, body).expect("HTTP exchange with the API")
}

/// As [`http_raw`], or the I/O error (the server is gone, say).
pub fn try_http_raw(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<String> {
    let authority = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// A GET whose answer may be binary: (status, head, body bytes).
pub fn http_bytes(url: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let authority = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head, response[split + 4..].to_vec())
}

/// Splits a raw response into (status, body).
pub fn parse_response(response: &str) -> Option<(u16, String)> {
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// A raw HTTP/1.1 request, so tests control every header. Returns (status, body).
pub fn http(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let response = http_raw(url, method, path, headers, body);
    parse_response(&response).expect("an HTTP status line")
}

/// `whatnext p2p` driven directly over its pipes, as the controller does. Its events are
/// read by a thread, so every wait is bounded.
pub struct Service {
    pub child: std::process::Child,
    pub stdin: Option<std::process::ChildStdin>,
    events: std::sync::mpsc::Receiver<Value>,
}

impl Service {
    pub fn spawn() -> Service {
        let mut child = std::process::Command::new(BIN)
            .arg("p2p")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("service starts");
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            loop {
                let mut header = [0u8; 4];
                if stdout.read_exact(&mut header).is_err() {
                    return;
                }
                let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
                if stdout.read_exact(&mut body).is_err() {
                    return;
                }
                // A compact frame is read as the JSON envelope it stands for, marked
                // `"compact": true`.
                let head = whatnext_protocol::frame::attachment_parts(&body)
                    .map_or(&body[..], |(head, _)| head);
                let Ok(mut event) =
                    serde_json::from_slice::<Value>(&whatnext_protocol::ipc::readable(head))
                else {
                    return;
                };
                if whatnext_protocol::ipc::is_compact(&body) {
                    event["compact"] = Value::Bool(true);
                }
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        Service {
            child,
            stdin,
            events,
        }
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write");
        stdin.flush().expect("flush");
    }

    pub fn send(&mut self, value: &Value) {
        self.send_with_data(value, &[]);
    }

    /// Sends `value` with the raw bytes `data` attached (as `respond` carries audio).
    pub fn send_with_data(&mut self, value: &Value, data: &[u8]) {
        let json = serde_json::to_vec(value).expect("json");
        let body = whatnext_protocol::frame::with_attachment(&json, data);
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.write_raw(&frame);
    }

    /// The next event; panics after [`PATIENCE`].
    pub fn recv(&mut self) -> Value {
        self.events
            .recv_timeout(PATIENCE)
            .expect("an event from the service in time")
    }

    /// The next event if one comes within `wait`.
    pub fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        self.events.recv_timeout(wait).ok()
    }

    /// Next event that answers request `id`, skipping unsolicited ones.
    pub fn reply_to(&mut self, id: u64) -> Value {
        for _ in 0..10_000 {
            let event = self.recv();
            if event["id"] == id {
                return event;
            }
        }
        panic!("no reply to request {id}");
    }

    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        wait_until("the service to exit", PATIENCE, || {
            self.child.try_wait().expect("wait")
        })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Starts a node on loopback with a fresh identity; returns its `node_started` payload.
    pub fn start_node(&mut self) -> Value {
        self.start_node_as(&libp2p_identity::Keypair::generate_ed25519())
    }

    /// A service with a fresh node on loopback, connected to `node` (a peer driven by hand).
    pub fn connected_to(node: &Node) -> Service {
        let mut service = Service::spawn();
        service.recv();
        service.start_node();
        service.send(&serde_json::json!({"id": 1, "type": "dial", "payload": {"addrs": [node.tcp_multiaddr()]}}));
        assert_eq!(service.reply_to(1)["type"], "dialed");
        service
    }

    /// Starts a node on loopback with the identity `key`; returns its `node_started` payload.
    pub fn start_node_as(&mut self, key: &libp2p_identity::Keypair) -> Value {
        let key = key.to_protobuf_encoding().expect("key");
        let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key);
        self.send(&serde_json::json!({"id": 900, "type": "start_node", "payload": {"keypair": key, "listen": ["/ip4/127.0.0.1/tcp/0"]}}));
        let reply = self.reply_to(900);
        assert_eq!(reply["type"], "node_started", "{reply}");
        reply["payload"].clone()
    }
}

/// Runs `whatnext ARGS --json` against `node`; fails the test (with the log) unless it
/// succeeds with JSON.
pub fn cli_json(node: &Node, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = node.cli(&all);
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// The track titles of a playlist as `playlist show --json` prints it, in order.
pub fn titles(playlist: &Value) -> Vec<String> {
    playlist["tracks"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["title"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Creates a playlist on `owner` and shares it: (playlist id, share link).
pub fn create_shared(owner: &Node, name: &str) -> (String, String) {
    let id = cli_json(owner, &["playlist", "create", name])["id"]
        .as_str()
        .expect("id")
        .to_string();
    let link = cli_json(owner, &["playlist", "share", &id])["link"]
        .as_str()
        .expect("link")
        .to_string();
    assert!(
        link.contains(&format!("session={id}")) && link.contains("key="),
        "{link}"
    );
    (id, link)
}

/// Opens a share link on `node` and waits for the connection.
pub fn join(node: &Node, link: &str) {
    let out = node.cli(&["open", "--wait", "--timeout", "20", link]);
    assert!(
        out.status.success(),
        "join failed: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
}

/// Adds one track per title (by "Someone") to playlist `id` through `node`'s API, in one
/// batch, as a paste or an import does.
pub fn add_batch(node: &Node, id: &str, titles: impl IntoIterator<Item = String>) {
    let (url, token) = node.api();
    let host = url.trim_start_matches("http://").to_string();
    let auth = format!("Bearer {token}");
    let batch: Vec<Value> = titles
        .into_iter()
        .map(|title| serde_json::json!({"title": title, "artists": ["Someone"]}))
        .collect();
    let (status, body) = http(
        &url,
        "POST",
        &format!("/api/playlists/{id}/tracks"),
        &[
            ("Host", &host),
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &serde_json::json!({ "tracks": batch }).to_string(),
    );
    assert_eq!(status, 200, "{body}");
}

/// `playlist show ID --json` on `node`, or None when it fails.
pub fn show(node: &Node, id: &str) -> Option<Value> {
    let out = node.cli(&["playlist", "show", id, "--json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// `connect` from `from` to `to`'s TCP address, waiting up to `timeout_secs`; panics
/// with the error and `from`'s log unless it connects.
pub fn connect(from: &Node, to: &Node, timeout_secs: u32) {
    let addr = to.tcp_multiaddr();
    let timeout = timeout_secs.to_string();
    let out = from.cli(&["connect", &addr, "--timeout", &timeout]);
    assert!(
        out.status.success(),
        "connect failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        from.log()
    );
}

/// Adds a track titled `title` to playlist `id` on `node`; returns its id.
pub fn add_track(node: &Node, id: &str, title: &str) -> String {
    cli_json(
        node,
        &[
            "playlist", "add", id, "--title", title, "--artist", "someone",
        ],
    )["track_id"]
        .as_str()
        .expect("track id")
        .to_string()
}

/// `session now ID --json` on `node`, or None while it fails (the playlist not synced yet).
pub fn session_now(node: &Node, id: &str) -> Option<Value> {
    let out = node.cli(&["session", "now", id, "--json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// Resident memory of process `pid`, in KiB (0 when it cannot be read).
pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A controller whose music folder is `music`, in a home of its own.
pub fn node_with_music(music: &Path) -> (tempfile::TempDir, Node) {
    let home = tempfile::tempdir().expect("home");
    std::fs::write(
        home.path().join("config.toml"),
        format!("music_dirs = [{:?}]\n", music.display().to_string()),
    )
    .expect("config");
    let node = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    (home, node)
}
