//! Input bounds and hostile text (issue 14, items 7–9): imports of any size the controller
//! accepts work and larger ones are refused up front, links cannot flood the state, text
//! from other members cannot drive the terminal, and the home is private.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::{Duration, Instant},
};

use crate::support::*;
use serde_json::{Value, json};
use whatnext_protocol::api::{MAX_BULK_BODY_BYTES, MAX_IMPORT_BYTES};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `whatnext --home HOME ARGS…` that is expected to exit by itself; killed (by pid) and
/// failed if it still runs after [`PATIENCE`].
fn run_to_exit(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut child = std::process::Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("whatnext starts");
    let exited = wait_until_opt(PATIENCE, || child.try_wait().ok().flatten());
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("whatnext {args:?} was expected to exit, and still ran after {PATIENCE:?}");
    }
    child.wait_with_output().expect("output")
}

fn wait_until_opt<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn create_playlist(node: &Node, name: &str) -> String {
    cli_json(node, &["playlist", "create", name])["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// `POST path` with a JSON body through raw HTTP, as the view or a script would.
fn post(node: &Node, path: &str, body: &Value) -> (u16, String) {
    let (url, token) = node.api();
    let auth = format!("Bearer {token}");
    http(
        &url,
        "POST",
        path,
        &[
            ("Host", "127.0.0.1"),
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    )
}

#[test]
fn importing_dev_zero_or_a_huge_file_is_refused_quickly_naming_the_limit() {
    let a = Node::start();
    let started = Instant::now();
    let out = a.cli(&["playlist", "import", "/dev/zero"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "accepted /dev/zero: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.contains("/dev/zero"), "{err}");
    assert!(err.contains(&MAX_IMPORT_BYTES.to_string()), "{err}");
    assert!(err.contains("64 MiB"), "{err}");
    assert!(err.len() < 1024, "{err}");

    // A regular file over the limit is refused from its size, without being read (sparse:
    // it takes no disk space).
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.md");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(MAX_IMPORT_BYTES as u64 + 1))
        .expect("sparse file");
    let out = a.cli(&["playlist", "import", big.to_str().expect("utf-8 path")]);
    let err = stderr(&out);
    assert!(!out.status.success(), "accepted {big:?}");
    assert!(
        err.contains(&format!("{} bytes", MAX_IMPORT_BYTES + 1)),
        "{err}"
    );
    assert!(err.contains("64 MiB"), "{err}");
    // Nothing was imported, and the controller is fine.
    assert_eq!(cli_json(&a, &["playlist", "list"]), json!([]));
}

#[test]
fn a_6000_track_export_of_over_10_mb_re_imports_and_a_batch_may_hold_10000_tracks() {
    let a = Node::start();
    let id = create_playlist(&a, "Big");
    // One batch of 6,000 tracks with long URIs: an 11 MB request (the default body limit
    // was 2 MB) and an export over 10 MB (which broke the pipe on import).
    let long = "x".repeat(1_700);
    let tracks: Vec<Value> = (0..6_000)
        .map(|i| json!({"title": format!("Track {i}"), "artists": ["A"], "uri": format!("https://example.com/{i}/{long}")}))
        .collect();
    let (status, body) = post(
        &a,
        &format!("/api/playlists/{id}/tracks"),
        &json!({ "tracks": tracks }),
    );
    assert_eq!(status, 200, "{body}");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("big.md");
    let file_arg = file.to_str().expect("utf-8 path");
    let out = a.cli(&["playlist", "export", &id, "--out", file_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let size = std::fs::metadata(&file).expect("exported").len();
    assert!(size > 10_000_000, "the export is only {size} bytes");

    let imported = cli_json(&a, &["playlist", "import", file_arg, "--as-new"]);
    let copy = imported["id"].as_str().expect("id").to_string();
    assert_ne!(copy, id);
    let original = cli_json(&a, &["playlist", "show", &id]);
    let shown = cli_json(&a, &["playlist", "show", &copy]);
    assert_eq!(titles(&shown).len(), 6_000);
    assert_eq!(titles(&shown), titles(&original));

    // A batch of 10,000 short tracks is one request too.
    let small = create_playlist(&a, "Many");
    let tracks: Vec<Value> = (0..10_000)
        .map(|i| json!({"title": format!("Song {i}"), "artists": ["Someone", "Else"], "album": "An album"}))
        .collect();
    let (status, body) = post(
        &a,
        &format!("/api/playlists/{small}/tracks"),
        &json!({ "tracks": tracks }),
    );
    assert_eq!(status, 200, "{}", &body[..body.len().min(500)]);
    let reply: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(reply["track_ids"].as_array().map(Vec::len), Some(10_000));
}

#[test]
fn a_body_over_the_import_limit_gets_413_naming_the_size_and_the_limit() {
    let a = Node::start();
    let (url, token) = a.api();
    // Only the head is sent: the answer comes from Content-Length, before any body is read.
    let size = MAX_BULK_BODY_BYTES as u64 + 1;
    let mut stream = TcpStream::connect(url.trim_start_matches("http://")).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        stream,
        "POST /api/playlists/import HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    )
    .expect("write head");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    let (status, body) = parse_response(&response).expect("an HTTP answer");
    assert_eq!(status, 413, "{response}");
    let reply: Value = serde_json::from_str(&body).expect("a JSON error body");
    let error = reply["error"].as_str().expect("error");
    assert!(error.contains(&size.to_string()), "{error}");
    assert!(error.contains(&MAX_BULK_BODY_BYTES.to_string()), "{error}");
    assert!(error.contains("64 MiB"), "{error}");
}

/// A link that fits in the 8 KiB limit with hundreds of short addresses.
fn link_with_many_addrs(peer: &str) -> (String, usize) {
    let mut link = format!("whtnxt://connect/{peer}?");
    let mut n = 0;
    while link.len() < 8 * 1024 - 40 {
        link.push_str(&format!(
            "addr=/ip4/127.0.{}.{}/tcp/9&",
            n / 250,
            n % 250 + 1
        ));
        n += 1;
    }
    link.pop();
    (link, n)
}

#[test]
fn a_link_with_hundreds_of_addresses_is_refused_briefly_and_cannot_grow_the_state() {
    let a = Node::start();
    let peer = "12D3KooWAo6AzonxWzEY5rKLGbuYy6fByUwM1HncEPTckHHnRSA8";
    let (link, n) = link_with_many_addrs(peer);
    assert!(n > 250, "{n}");

    // The CLI refuses it before the controller sees it…
    let out = a.cli(&["open", &link]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.len() < 1024, "{} bytes of error: {err}", err.len());
    assert!(err.contains(&format!("{n} addr= parameters")), "{err}");
    assert!(err.contains("at most 16"), "{err}");
    assert!(out.stdout.len() < 1024);

    // …and the controller refuses it too (the view and scripts post links directly), 20
    // times over, keeping the state small.
    for _ in 0..20 {
        let (status, body) = post(&a, "/api/open", &json!({ "url": link }));
        assert_eq!(status, 400, "{body}");
        assert!(body.len() < 4096, "{} bytes: {body}", body.len());
        let attempt: Value = serde_json::from_str(&body).expect("attempt");
        assert_eq!(attempt["status"], "invalid");
        assert!(
            attempt["error"].as_str().expect("error").len() < 1024,
            "{attempt}"
        );
    }
    let state = a.wait_running();
    let size = state.to_string().len();
    assert!(
        size < 100_000,
        "/api/state is {size} bytes after 20 such links"
    );
    let attempts = state["link_attempts"].as_array().expect("attempts");
    assert!(attempts.len() <= 20, "{}", attempts.len());
}

#[test]
fn control_characters_are_escaped_in_human_output_but_exact_in_json() {
    let a = Node::start();
    let name = "Evil\u{1b}]0;pwned\u{7}\u{202e}txt";
    let id = create_playlist(&a, name);
    // As a member's edit would arrive: not through a command line, which cannot carry NUL.
    let title = "Title\u{1b}[2J\u{9b}31m\u{0}x";
    let (status, body) = post(
        &a,
        &format!("/api/playlists/{id}/tracks"),
        &json!({"title": title, "artists": ["A\u{2066}B"]}),
    );
    assert_eq!(status, 200, "{body}");

    let out = a.cli(&["playlist", "show", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    for c in ['\u{1b}', '\u{7}', '\u{202e}', '\u{9b}', '\u{0}', '\u{2066}'] {
        assert!(!text.contains(c), "{c:?} printed raw: {text:?}");
    }
    assert!(
        text.contains("Evil\\u{1b}]0;pwned\\u{7}\\u{202e}txt"),
        "{text}"
    );
    assert!(text.contains("Title\\u{1b}[2J\\u{9b}31m\\u{0}x"), "{text}");
    assert!(text.contains("A\\u{2066}B"), "{text}");

    let list = a.cli(&["playlist", "list"]);
    let list = String::from_utf8(list.stdout).expect("UTF-8 output");
    assert!(!list.contains('\u{1b}'), "{list:?}");
    assert!(list.contains("Evil\\u{1b}"), "{list}");

    let shown = cli_json(&a, &["playlist", "show", &id]);
    assert_eq!(shown["name"], name);
    assert_eq!(titles(&shown), vec![title.to_string()]);
    assert_eq!(shown["tracks"][0]["artists"], json!(["A\u{2066}B"]));
}

#[cfg(unix)]
#[test]
fn run_makes_the_home_0700_and_the_key_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    // A first run creates the identity; then both are opened up, as a careless copy would.
    {
        let _first = Node::start_in(&home, &LOOPBACK_RUN_ARGS);
    }
    let key = home.join("identity.key");
    let set = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    set(&home, 0o755);
    set(&key, 0o644);

    let node = Node::start_in(&home, &LOOPBACK_RUN_ARGS);
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&key), 0o600);
    let log = node.log();
    assert!(
        log.contains("0755") && log.contains("changed it to 0700"),
        "{log}"
    );
    assert!(
        log.contains("identity.key") && log.contains("0644"),
        "{log}"
    );
}

#[test]
fn an_empty_identity_key_is_called_empty_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    write_loopback_config(home);
    std::fs::write(home.join("identity.key"), b"").expect("empty key");
    let out = run_to_exit(home, &["run", "--no-browser", "--no-register"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "started with an empty key: {err}");
    assert!(err.contains("identity.key"), "{err}");
    assert!(err.contains("is empty"), "{err}");
    assert!(err.contains("move it aside"), "{err}");
    assert!(err.contains("peer id"), "{err}");
    assert!(!err.contains("cargo feature"), "{err}");
}

#[test]
fn a_display_name_over_the_limit_in_config_toml_stops_run_naming_file_and_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    write_loopback_config(home);
    let mut config = std::fs::read_to_string(home.join("config.toml")).expect("config");
    config.push_str(&format!("display_name = \"{}\"\n", "n".repeat(1_000_000)));
    std::fs::write(home.join("config.toml"), config).expect("config");
    let out = run_to_exit(home, &["run", "--no-browser", "--no-register"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "started: {err}");
    assert!(err.contains("config.toml"), "{err}");
    assert!(err.contains("1000000 bytes"), "{err}");
    assert!(err.contains("the limit is 200 bytes"), "{err}");
    assert!(err.len() < 1024, "{err}");
}
