//! Guests from a phone, through the guest page's HTTP API on its own port: joining with the
//! PIN, edits that reach the members attributed to the guests, the lockout, the separate
//! origin, closing the page, and a hundred guests following one session.

use std::{
    sync::{Arc, Barrier},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::support::*;

/// A guest page: its base (`http://127.0.0.1:PORT`), its path (`/g/<code>`) and the PIN.
pub struct Page {
    pub base: String,
    pub path: String,
    pub pin: String,
    /// The link's key (`k=` in the fragment).
    pub key: String,
    /// Sign every request with it, as the guest page does when it has the whole link
    /// (needed through a relay).
    pub signed: bool,
    /// Who the page signs as: the last guest it joined as (when signing).
    pub me: std::sync::Mutex<String>,
}

fn open_page(host: &Node, id: &str) -> Page {
    Page::opened(&cli_json(host, &["session", "guests", id, "on"]))
}

impl Page {
    /// The page `session guests … on --json` answered with.
    pub fn opened(reply: &Value) -> Page {
        let url = reply["url"].as_str().expect("url");
        let pin = reply["pin"].as_str().expect("pin").to_string();
        let (page, fragment) = url.split_once('#').expect("the PIN in the fragment");
        let key = fragment
            .strip_prefix(&format!("pin={pin}&k="))
            .unwrap_or_else(|| panic!("the PIN and the link's key in the fragment: {url}"))
            .to_string();
        assert_eq!(key.len(), 32, "{url}");
        assert!(
            !page.contains(&pin) && !page.contains(&key),
            "secrets in the path: {url}"
        );
        let (base, code) = page.split_once("/g/").expect("/g/<code>");
        Page {
            base: base.to_string(),
            path: format!("/g/{code}"),
            pin,
            key,
            signed: false,
            me: std::sync::Mutex::new(String::new()),
        }
    }

    /// The `x-wn-sig` header of a request, as the guest page makes it.
    pub fn signature(&self, method: &str, path: &str, body: &str) -> String {
        let who = self.me.lock().expect("me").clone();
        self.signature_as(&who, method, path, body)
    }

    /// [`Page::signature`] as guest `who` (a peer id; empty before joining).
    pub fn signature_as(&self, who: &str, method: &str, path: &str, body: &str) -> String {
        use hmac::Mac as _;
        use sha2::Digest as _;
        let code = self.path.trim_start_matches("/g/");
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis();
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let body_hash = hex::encode(sha2::Sha256::digest(body.as_bytes()));
        let message = format!("{code}\n{who}\n{at}\n{nonce}\n{method}\n{path}\n{body_hash}");
        let key = hex::decode(&self.key).expect("hex key");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
        mac.update(message.as_bytes());
        format!("{at}.{nonce}.{}", hex::encode(mac.finalize().into_bytes()))
    }

    fn origin(&self) -> String {
        self.base.clone()
    }

    /// POST `what` as JSON, with the guest's cookie if any: (status, body, head).
    pub fn post(&self, what: &str, cookie: Option<&str>, body: &Value) -> (u16, String, String) {
        let host = self.base.trim_start_matches("http://").to_string();
        let origin = self.origin();
        let path = format!("{}/{what}", self.path);
        let body = body.to_string();
        let signature = self.signature("POST", &path, &body);
        let mut headers = vec![
            ("Host", host.as_str()),
            ("Origin", origin.as_str()),
            ("Content-Type", "application/json"),
        ];
        if let Some(cookie) = cookie {
            headers.push(("Cookie", cookie));
        }
        if self.signed {
            headers.push(("x-wn-sig", signature.as_str()));
        }
        let raw = http_raw(&self.base, "POST", &path, &headers, &body);
        let (status, body) = parse_response(&raw).expect("status");
        let head = raw.split("\r\n\r\n").next().unwrap_or("").to_string();
        (status, body, head)
    }

    pub fn get(&self, what: &str, cookie: Option<&str>) -> (u16, String) {
        let host = self.base.trim_start_matches("http://").to_string();
        let mut headers = vec![("Host", host.as_str())];
        if let Some(cookie) = cookie {
            headers.push(("Cookie", cookie));
        }
        let path = if what.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{what}", self.path)
        };
        let signature = self.signature("GET", &path, "");
        if self.signed {
            headers.push(("x-wn-sig", signature.as_str()));
        }
        http(&self.base, "GET", &path, &headers, "")
    }

    /// Joins as `name`; the cookie to send back (`wn_guest=…`) and the guest's peer id.
    pub fn join(&self, name: &str) -> (String, String) {
        // Signed with the link's key, a join needs no PIN (and the relay never sees it); it
        // is signed by nobody yet.
        let pin = if self.signed { "" } else { self.pin.as_str() };
        self.me.lock().expect("me").clear();
        let (status, body, head) = self.post("join", None, &json!({"pin": pin, "name": name}));
        assert_eq!(status, 200, "{head}\n{body}");
        let cookie = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("set-cookie:")
                    .then(|| l.split_once(':').map(|(_, v)| v.trim().to_string()))
                    .flatten()
            })
            .expect("a cookie");
        for flag in [
            "HttpOnly",
            "SameSite=Strict",
            &format!("Path={}", self.path),
        ] {
            assert!(cookie.contains(flag), "{cookie} lacks {flag}");
        }
        let pair = cookie.split(';').next().expect("pair").to_string();
        let reply: Value = serde_json::from_str(&body).expect("json");
        *self.me.lock().expect("me") = reply["peer_id"].as_str().unwrap_or("").to_string();
        (
            pair,
            reply["peer_id"].as_str().expect("peer id").to_string(),
        )
    }

    pub fn state(&self, cookie: &str) -> Value {
        let (status, body) = self.get("state", Some(cookie));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("state json")
    }
}

#[test]
fn guests_join_with_the_pin_and_their_edits_reach_every_member_as_theirs() {
    let a = Node::start();
    let b = Node::start();
    let (id, link) = create_shared(&a, "Party");
    join(&b, &link);
    let page = open_page(&a, &id);
    // The page itself loads without a cookie (it asks for the name, and the PIN if the
    // link lost it).
    let (status, html) = page.get("", None);
    assert_eq!(status, 200);
    assert!(html.contains("guest.js"), "{html}");

    let (status, body, _) = page.post("join", None, &json!({"pin": "000000x", "name": "Mal"}));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("wrong PIN"), "{body}");

    let guests: Vec<(String, String, &str)> = ["Dee", "Eli", "Fay"]
        .into_iter()
        .map(|name| {
            let (cookie, peer) = page.join(name);
            (cookie, peer, name)
        })
        .collect();
    cli_json(&a, &["session", "mode", &id, "vote"]);
    for (cookie, _, name) in &guests {
        let (status, body, _) = page.post(
            "tracks",
            Some(cookie),
            &json!({"title": format!("{name}'s song"), "artists": ["Band"]}),
        );
        assert_eq!(status, 200, "{body}");
    }
    // Dee votes for Eli's song, Fay reacts and comments.
    let (dee, eli, fay) = (&guests[0], &guests[1], &guests[2]);
    let elis = wait_until("Eli's song in up next", PATIENCE, || {
        page.state(&dee.0)["up_next"]
            .as_array()?
            .iter()
            .find(|u| u["title"] == "Eli's song")
            .map(|u| u["track_id"].as_str().map(str::to_string))?
    });
    let (status, body, _) = page.post(
        "vote",
        Some(&dee.0),
        &json!({"track_id": elis, "vote": "up"}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = page.post("react", Some(&fay.0), &json!({"emoji": "🎉"}));
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = page.post("comments", Some(&fay.0), &json!({"text": "great party"}));
    assert_eq!(status, 200, "{body}");

    // B's app sees each guest's song added by that guest, the guests marked as guests, the
    // vote counted and Fay's reaction and comment.
    wait_until("B to see the guests' edits", PATIENCE, || {
        let playlist = show(&b, &id)?;
        let tracks = playlist["tracks"].as_array()?;
        let by_guest = guests.iter().all(|(_, peer, name)| {
            tracks.iter().any(|t| {
                t["title"] == format!("{name}'s song")
                    && t["added_by"]["peer_id"] == peer.as_str()
                    && t["added_by"]["display_name"] == *name
            })
        });
        let marked = playlist["members"]
            .as_array()?
            .iter()
            .filter(|m| m["guest"] == true)
            .count()
            == 3;
        let session = cli_json(&b, &["session", "now", &id]);
        let voted =
            session["up_next"][0]["title"] == "Eli's song" && session["up_next"][0]["score"] == 1;
        let role = session["roles"][eli.1.as_str()] == "guest";
        let commented = session["comments"]
            .as_array()?
            .iter()
            .any(|c| c["peer_id"] == fay.1.as_str() && c["text"] == "great party");
        (by_guest && marked && voted && role && commented).then_some(())
    });
    wait_until("Fay's reaction on B, as Fay's", PATIENCE, || {
        let state = b.status()?;
        state["sessions"]
            .as_array()?
            .iter()
            .any(|s| {
                s["reactions"].as_array().is_some_and(|r| {
                    r.iter()
                        .any(|r| r["peer_id"] == fay.1.as_str() && r["emoji"] == "🎉")
                })
            })
            .then_some(())
    });
    // The host's list names them.
    let listed = cli_json(&a, &["session", "guests", &id]);
    let names: Vec<&str> = listed["guests"]
        .as_array()
        .expect("guests")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(names, ["Dee", "Eli", "Fay"]);

    // A guest changes no mode and takes no playback: there is no such request for it, and
    // its cookie is nothing to the owner's API (another origin, another auth).
    for what in ["mode", "take", "session"] {
        let (status, _, _) = page.post(
            what,
            Some(&dee.0),
            &json!({"action": "mode", "mode": "turn_taking"}),
        );
        assert_eq!(status, 404, "{what}");
    }
    let (status, body, _) = page.post("vote", Some(&dee.0), &json!({"action": "take"}));
    assert_eq!(status, 422, "{body}");
    let (owner_url, _) = a.api();
    let owner_host = owner_url.trim_start_matches("http://").to_string();
    let (status, _) = http(
        &owner_url,
        "GET",
        "/api/state",
        &[("Host", owner_host.as_str()), ("Cookie", dee.0.as_str())],
        "",
    );
    assert_eq!(
        status, 401,
        "a guest's cookie cannot read the owner's state"
    );
    let session = cli_json(&a, &["session", "now", &id]);
    assert_eq!(session["mode"], "vote");
    assert_eq!(session["playback_owner"], a.peer_id().as_str());
    // Hostile text: a name that would show reversed (bidi override) or clear a terminal
    // reaches the others without what hides or reorders it; a track naming a crowd of
    // artists is refused whole.
    let (sly, sly_peer) = page.join("\u{202e}nnA\u{1b}[2J");
    let (status, body, _) = page.post(
        "tracks",
        Some(&sly),
        &json!({"title": "Crowd", "artists": vec!["x"; 1000]}),
    );
    assert_eq!(status, 400, "{body}");
    let members = show(&a, &id).expect("show")["members"].clone();
    let shown = members
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["peer_id"] == sly_peer.as_str())
        .map(|m| m["display_name"].clone());
    assert_eq!(shown, Some(json!("nnA [2J")), "{members}");
    // A write from a page of another origin is refused, cookie or not.
    let raw = http_raw(
        &page.base,
        "POST",
        &format!("{}/tracks", page.path),
        &[
            ("Origin", "http://evil.example"),
            ("Cookie", dee.0.as_str()),
            ("Content-Type", "application/json"),
        ],
        r#"{"title":"spam"}"#,
    );
    assert_eq!(parse_response(&raw).map(|r| r.0), Some(403), "{raw}");
}

#[test]
fn ten_wrong_pins_lock_the_page_and_closing_it_ends_every_guests_access_at_once() {
    let a = Node::start();
    let (id, _) = create_shared(&a, "Locked");
    let page = open_page(&a, &id);
    let (dee, _) = page.join("Dee");
    let (eli, _) = page.join("Eli");
    let wrong = if page.pin == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..10 {
        let (status, _, _) = page.post("join", None, &json!({"pin": wrong, "name": "Mal"}));
        assert_eq!(status, 401);
    }
    let (status, body, head) = page.post("join", None, &json!({"pin": page.pin, "name": "Gus"}));
    assert_eq!(status, 429, "locked even with the right PIN: {body}");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    // Guests already in stay in.
    page.state(&dee);

    // The host takes Eli out: Eli's cookie is void, Dee's is not.
    let out = a.cli(&["session", "guests", &id, "remove", "Eli"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(page.get("state", Some(&eli)).0, 401);
    let version = page.state(&dee)["version"].as_u64().expect("version");

    // Dee is waiting for a change when the host closes the page: the wait ends at once.
    let waiting = {
        let (base, path, dee) = (page.base.clone(), page.path.clone(), dee.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let (status, _) = http(
                &base,
                "GET",
                &format!("{path}/state?since={version}"),
                &[("Cookie", dee.as_str())],
                "",
            );
            (status, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    cli_json(&a, &["session", "guests", &id, "off"]);
    let (status, waited) = waiting.join().expect("the waiting guest");
    assert!(matches!(status, 401 | 404), "{status}");
    assert!(
        waited < Duration::from_secs(10),
        "the wait went on for {waited:?}"
    );
    // The port is closed, or answers nothing of the page.
    let gone = try_http_raw(
        &page.base,
        "GET",
        &format!("{}/state", page.path),
        &[("Cookie", dee.as_str())],
        "",
    );
    assert!(
        gone.map_or(true, |raw| !raw.starts_with("HTTP/1.1 200")),
        "the closed page still answers"
    );
}

/// A guest searches the host's music by its tags (never its paths) and adds a hit: the
/// track carries the file's content, so members can play it.
#[test]
fn a_guest_adds_a_song_from_the_hosts_music() {
    let music = tempfile::tempdir().expect("music");
    let secret = music.path().join("private-diary");
    std::fs::create_dir_all(&secret).expect("dir");
    whatnext_media::tone::write_tagged_tone(
        &secret.join("a.wav"),
        700,
        "Long Tone",
        "Test Tones",
        "Tones",
    )
    .expect("tone");
    let (_home, a) = node_with_music(music.path());
    cli_json(&a, &["library", "scan"]);
    let (id, _) = create_shared(&a, "Music");
    let page = open_page(&a, &id);
    let (dee, _) = page.join("Dee");
    let (status, body) = page.get("library?q=long%20tone", Some(&dee));
    assert_eq!(status, 200, "{body}");
    let hits: Value = serde_json::from_str(&body).expect("json");
    let hit = &hits["hits"][0];
    assert_eq!(hit["title"], "Long Tone", "{hits}");
    assert!(
        !body.contains("private-diary"),
        "a path reached a guest: {body}"
    );
    // A word of the path only finds nothing.
    let (_, body) = page.get("library?q=diary", Some(&dee));
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["hits"],
        json!([])
    );
    let (status, body, _) = page.post(
        "tracks",
        Some(&dee),
        &json!({"from_library": hit["blake3"]}),
    );
    assert_eq!(status, 200, "{body}");
    let playlist = show(&a, &id).expect("show");
    let track = &playlist["tracks"][0];
    assert_eq!(track["title"], "Long Tone");
    assert_eq!(track["added_by"]["display_name"], "Dee");
    assert_eq!(track["content"]["blake3"], hit["blake3"]);
    // Without the cookie, nothing.
    assert_eq!(page.get("library?q=long", None).0, 401);
}

/// A hundred guests long-poll one session: an edit reaches them all, and the host's
/// memory per guest stays small.
#[test]
fn a_hundred_guests_follow_one_session_and_an_edit_reaches_them_all() {
    const GUESTS: usize = 100;
    let a = Node::start();
    let (id, _) = create_shared(&a, "Crowd");
    let page = Arc::new(open_page(&a, &id));
    let before = rss_kb(a.pid());
    let cookies: Vec<String> = (0..GUESTS)
        .map(|i| page.join(&format!("Guest {i}")).0)
        .collect();
    let version = page.state(&cookies[0])["version"]
        .as_u64()
        .expect("version");
    let ready = Arc::new(Barrier::new(GUESTS + 1));
    let pollers: Vec<_> = cookies
        .iter()
        .cloned()
        .map(|cookie| {
            let (page, ready) = (Arc::clone(&page), Arc::clone(&ready));
            std::thread::spawn(move || {
                ready.wait();
                // Waits until the version passes; answers that do not hold the edit yet
                // (another change came first) are asked again, a few times at most.
                let mut since = version;
                for _ in 0..20 {
                    let (status, body) = page.get(&format!("state?since={since}"), Some(&cookie));
                    assert_eq!(status, 200, "{body}");
                    let state: Value = serde_json::from_str(&body).expect("json");
                    if state["up_next"]
                        .as_array()
                        .is_some_and(|u| u.iter().any(|t| t["title"] == "for everyone"))
                    {
                        return Instant::now();
                    }
                    since = state["version"].as_u64().expect("version");
                }
                panic!("the edit never reached this guest");
            })
        })
        .collect();
    ready.wait();
    std::thread::sleep(Duration::from_millis(500)); // all waiting
    let with_guests = rss_kb(a.pid());
    let edited = Instant::now();
    add_track(&a, &id, "for everyone");
    let mut delays: Vec<Duration> = pollers
        .into_iter()
        .map(|p| p.join().expect("a guest").saturating_duration_since(edited))
        .collect();
    delays.sort();
    let per_guest = with_guests.saturating_sub(before) * 1024 / GUESTS as u64;
    println!(
        "{GUESTS} guests long-polling: an edit reached them all in {:?} (p50 {:?}); controller RSS {} → {} KiB, {per_guest} bytes a guest",
        delays[GUESTS - 1],
        delays[GUESTS / 2],
        before,
        with_guests
    );
    assert!(
        per_guest < 512 * 1024,
        "{per_guest} bytes of memory per guest"
    );
}

/// `whatnext relay` with `--guest-http`, ended when dropped.
struct GuestRelay {
    child: std::process::Child,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl GuestRelay {
    fn start() -> GuestRelay {
        let dir = tempfile::tempdir().expect("relay dir");
        let out = dir.path().join("relay.out");
        let child = command_in(None)
            .arg("--home")
            .arg(dir.path().join("home"))
            .args([
                "relay",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--allow-private",
                "--guest-http",
                "0",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).expect("relay.out"))
            .stderr(std::fs::File::create(dir.path().join("relay.err")).expect("relay.err"))
            .spawn()
            .expect("whatnext relay starts");
        GuestRelay {
            child,
            out,
            _dir: dir,
        }
    }

    /// The first printed line that starts with `prefix`.
    fn line(&self, prefix: &str) -> String {
        wait_until("the relay's addresses", PATIENCE, || {
            std::fs::read_to_string(&self.out)
                .ok()?
                .lines()
                .find(|l| l.starts_with(prefix))
                .map(str::to_string)
        })
    }
}

impl Drop for GuestRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Off the LAN: the host (here on loopback, as a host behind NAT would) has its relay
/// forward the guest page; a guest joins and adds through the relay's address, and the
/// page closes on the relay when the host goes.
#[test]
fn a_guest_joins_through_the_relay_and_the_tunnel_closes_when_the_host_goes() {
    let relay = GuestRelay::start();
    let relay_addr = relay.line("/ip4/127.0.0.1/tcp/");
    let guest_base = relay.line("Guest pages at ");
    let home = tempfile::tempdir().expect("home");
    let mut args = LOOPBACK_RUN_ARGS.to_vec();
    args.extend(["--relay", relay_addr.as_str()]);
    let mut a = Node::start_in(home.path(), &args);
    wait_until("the host connected to its relay", PATIENCE, || {
        a.status()?["helpers"]
            .as_array()?
            .iter()
            .any(|h| h["connected"] == true)
            .then_some(())
    });
    let (id, _) = create_shared(&a, "Far away");
    let mut page = Page::opened(&cli_json(&a, &["session", "guests", &id, "on", "--relay"]));
    let base = guest_base
        .trim_start_matches("Guest pages at ")
        .trim_end_matches("/g/…");
    assert_eq!(page.base, base, "the URL is the relay's");
    let (status, html) = page.get("", None);
    assert_eq!(status, 200, "{html}");
    // Through the relay, only what is signed with the link's key gets in: the relay (which
    // never sees the fragment) can neither join with what it carries nor replay it.
    let (status, body, _) = page.post("join", None, &json!({"pin": page.pin, "name": "Relay"}));
    assert_eq!(status, 401, "an unsigned join through the relay: {body}");
    page.signed = true;
    let (dee, _) = page.join("Dee");
    let path = format!("{}/state", page.path);
    let signature = page.signature("GET", &path, "");
    let replay = |cookie: &str| {
        http(
            &page.base,
            "GET",
            &path,
            &[("Cookie", cookie), ("x-wn-sig", signature.as_str())],
            "",
        )
        .0
    };
    assert_eq!(replay(&dee), 200);
    assert_eq!(replay(&dee), 401, "a replayed request");
    let mut forged = page.signature("GET", &path, "");
    // Another last byte of the MAC (one in 256 already ends in 00: "00" alone would then
    // forge nothing, and the test would fail by chance).
    let other = if forged.ends_with("00") { "ff" } else { "00" };
    forged.replace_range(forged.len() - 2.., other);
    let (status, _) = http(
        &page.base,
        "GET",
        &path,
        &[("Cookie", dee.as_str()), ("x-wn-sig", forged.as_str())],
        "",
    );
    assert_eq!(status, 401, "a forged signature");
    // Nor can a guest's signed request be passed off with another guest's cookie.
    let dee_peer = page.me.lock().expect("me").clone();
    let (eli, _) = page.join("Eli");
    let as_dee = page.signature_as(&dee_peer, "GET", &path, "");
    let (status, _) = http(
        &page.base,
        "GET",
        &path,
        &[("Cookie", eli.as_str()), ("x-wn-sig", as_dee.as_str())],
        "",
    );
    assert_eq!(status, 401, "Dee's signature on Eli's cookie");
    *page.me.lock().expect("me") = dee_peer;
    let (status, body, _) = page.post(
        "tracks",
        Some(&dee),
        &json!({"title": "From afar", "artists": []}),
    );
    assert_eq!(status, 200, "{body}");
    let shown = show(&a, &id).expect("show");
    assert_eq!(shown["tracks"][0]["added_by"]["display_name"], "Dee");
    // A long poll through the tunnel gets the next change.
    let version = page.state(&dee)["version"].as_u64().expect("version");
    let waiting = {
        let (base, dee) = (page.base.clone(), dee.clone());
        let path = format!("{}/state?since={version}", page.path);
        let signature = page.signature("GET", &path, "");
        std::thread::spawn(move || {
            http(
                &base,
                "GET",
                &path,
                &[("Cookie", dee.as_str()), ("x-wn-sig", signature.as_str())],
                "",
            )
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    add_track(&a, &id, "Next one");
    let (status, body) = waiting.join().expect("long poll");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Next one"), "{body}");
    // An edit on the host → a guest waiting through the tunnel, 20 times (printed).
    let page = Arc::new(page);
    let mut delays = Vec::new();
    for i in 0..20 {
        let title = format!("edit {i}");
        let (waiting_page, cookie, wanted) = (Arc::clone(&page), dee.clone(), title.clone());
        let since = page.state(&dee)["version"].as_u64().expect("version");
        let waiter = std::thread::spawn(move || {
            // Another change (a ping's round trip) may answer first: ask again, a few times.
            let mut since = since;
            for _ in 0..10 {
                let (status, body) =
                    waiting_page.get(&format!("state?since={since}"), Some(&cookie));
                assert_eq!(status, 200, "{body}");
                if body.contains(&wanted) {
                    return Instant::now();
                }
                let state: Value = serde_json::from_str(&body).expect("json");
                since = state["version"].as_u64().expect("version");
            }
            panic!("{wanted} never reached the guest");
        });
        std::thread::sleep(Duration::from_millis(50));
        let edited = Instant::now();
        add_track(&a, &id, &title);
        delays.push(
            waiter
                .join()
                .expect("waiter")
                .saturating_duration_since(edited),
        );
    }
    delays.sort();
    println!(
        "edit on the host → a guest's long poll through the relay: p50 {:?}, p99 {:?} (incl. the CLI's start)",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );

    // A long playlist: the guest's state lists the first hundred of up next and says how
    // many there are, so it still fits through the tunnel (listed whole, 2,000 tracks made
    // an answer past its limit: a 502).
    add_batch(&a, &id, (0..2000).map(|i| format!("Long list {i}")));
    let state = page.state(&dee);
    let listed = state["up_next"].as_array().map(Vec::len);
    assert_eq!(
        listed,
        Some(whatnext_protocol::guest::GUEST_UP_NEXT),
        "up next as a guest sees it"
    );
    let total = state["up_next_total"].as_u64().unwrap_or(0);
    assert!(total >= 2000, "up next holds {total} tracks");

    // The host's network service dies: the controller restarts it, it reconnects to the
    // relay and registers the page again; the same link works.
    let service = a.service_pid();
    assert!(signal(service, nix::sys::signal::Signal::SIGKILL));
    wait_until("the page back on the relay", PATIENCE, || {
        let restarted = a.status()?["service"]["pid"].as_u64()? as u32 != service;
        (restarted && page.get("state", Some(&dee)).0 == 200).then_some(())
    });

    // The host goes: the relay forgets its page.
    a.stop_with(nix::sys::signal::Signal::SIGTERM);
    wait_until("the relay to close the page", PATIENCE, || {
        (page.get("info", None).0 == 404).then_some(())
    });
}
