//! The client against a scripted HTTP server on loopback: what it sends, and how it reads
//! answers and errors.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpListener,
    thread::JoinHandle,
};

use whatnext_protocol::state::LinkStatus;

use super::*;

/// One request as the server saw it: the request line, the headers (lower-cased names),
/// the body.
#[derive(Debug)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves one canned answer (status, body) per connection, in order; returns what it saw.
fn serve(answers: Vec<(u16, &'static str)>) -> (String, JoinHandle<Vec<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for (status, body) in answers {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            reader.read_line(&mut line).expect("request line");
            let mut headers = Vec::new();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).expect("header");
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
                }
            }
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut request_body = vec![0; length];
            reader.read_exact(&mut request_body).expect("body");
            seen.push(Seen {
                line: line.trim_end().to_string(),
                headers,
                body: String::from_utf8(request_body).expect("utf-8"),
            });
            let mut stream = stream;
            let answer = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).expect("answer");
        }
        seen
    });
    (url, handle)
}

fn home_with_api(url: &str) -> (tempfile::TempDir, Home) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::resolve(Some(dir.path().to_path_buf())).expect("home");
    let info = serde_json::json!({"url": url, "token": "secret", "pid": 7});
    std::fs::write(home.api_path(), info.to_string()).expect("api.json");
    (dir, home)
}

#[test]
fn no_api_json_is_not_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::resolve(Some(dir.path().to_path_buf())).expect("home");
    let err = Client::for_home(&home).expect_err("no controller");
    assert!(
        matches!(err, ClientError::Home(HomeError::NotRunning { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("start it with `whatnext run`"),
        "{err}"
    );
}

#[test]
fn a_stale_api_json_is_not_running() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let (_dir, home) = home_with_api(&format!("http://127.0.0.1:{port}"));
    let client = Client::for_home(&home).expect("api.json reads");
    assert_eq!(client.pid(), 7);
    let err = client.invite().expect_err("nothing listens");
    assert!(
        matches!(err, ClientError::Home(HomeError::NotRunning { .. })),
        "{err:?}"
    );
}

#[test]
fn answers_are_typed_and_requests_carry_the_token() {
    let (url, server) = serve(vec![
        (200, r#"{"link":"whtnxt://connect/x"}"#),
        (200, r#"{"ok":true}"#),
        (200, r#"{"track_id":"t1"}"#),
    ]);
    let (_dir, home) = home_with_api(&url);
    let client = Client::for_home(&home).expect("client");
    assert_eq!(client.invite().expect("invite").link, "whtnxt://connect/x");
    let moved = client
        .move_track(
            "a/b c",
            &MoveRequest {
                track_id: "t".into(),
                to: 2,
            },
        )
        .expect("move");
    assert_eq!(moved, OkReply::OK);
    let added = client
        .add_track(
            "p",
            &NewTrack {
                title: "So What".into(),
                ..NewTrack::default()
            },
        )
        .expect("add");
    assert_eq!(added.track_id.as_deref(), Some("t1"));
    let seen = server.join().expect("server");
    assert_eq!(seen[0].line, "GET /api/invite HTTP/1.1");
    assert_eq!(seen[0].header("authorization"), Some("Bearer secret"));
    assert_eq!(seen[1].line, "POST /api/playlists/a%2Fb%20c/move HTTP/1.1");
    assert_eq!(seen[1].header("content-type"), Some("application/json"));
    assert_eq!(seen[1].body, r#"{"track_id":"t","to":2}"#);
    assert_eq!(seen[2].line, "POST /api/playlists/p/tracks HTTP/1.1");
    let body: NewTrack = serde_json::from_str(&seen[2].body).expect("a track");
    assert_eq!(body.title, "So What");
}

#[test]
fn error_answers_keep_the_controllers_text_and_status() {
    let (url, server) = serve(vec![
        (
            404,
            r#"{"error":"no playlist x; see `whatnext playlist list`"}"#,
        ),
        (500, "<html>oops</html>"),
        (200, "not json"),
    ]);
    let (_dir, home) = home_with_api(&url);
    let client = Client::for_home(&home).expect("client");
    let err = client.playlist("x").expect_err("404");
    assert!(
        matches!(&err, ClientError::Api { status: 404, route, .. } if route == "/api/playlists/x"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "no playlist x; see `whatnext playlist list`"
    );
    let err = client.doctor().expect_err("500");
    assert_eq!(
        err.to_string(),
        "/api/doctor: HTTP 500 Internal Server Error <html>oops</html>"
    );
    assert_eq!(err.status(), Some(500));
    let err = client.state().expect_err("not json");
    assert!(matches!(err, ClientError::BadAnswer { .. }), "{err:?}");
    assert_eq!(err.to_string(), "unreadable answer from /api/state");
    server.join().expect("server");
}

#[test]
fn open_answers_the_attempt_even_when_it_failed() {
    let attempt = r#"{"id":3,"link":"whtnxt://connect/x","peer_id":"x","session":null,"status":"failed","error":"no route","addr":null,"dial_ms":null,"needs_discovery":false,"steps":[],"started_at_ms":1,"finished_at_ms":2}"#;
    let (url, server) = serve(vec![(502, attempt), (400, r#"{"error":"bad timeout"}"#)]);
    let (_dir, home) = home_with_api(&url);
    let client = Client::for_home(&home).expect("client");
    let request = OpenRequest {
        url: "whtnxt://connect/x".into(),
        wait: true,
        timeout_secs: Some(1.0),
    };
    let attempt = client.open(&request).expect("an attempt");
    assert_eq!(attempt.status, LinkStatus::Failed);
    assert_eq!(attempt.error.as_deref(), Some("no route"));
    let err = client.open(&request).expect_err("an error answer");
    assert_eq!(err.to_string(), "bad timeout");
    server.join().expect("server");
}

#[test]
fn a_dial_waits_a_little_longer_than_the_dial() {
    assert_eq!(dial_wait(Some(10.0)), Duration::from_secs(15));
    assert_eq!(dial_wait(None), Duration::from_secs(20));
    assert_eq!(dial_wait(Some(-1.0)), DIAL_MARGIN);
    assert_eq!(dial_wait(Some(f64::NAN)), DIAL_MARGIN);
    assert_eq!(dial_wait(Some(f64::INFINITY)), TIMEOUT);
}

#[test]
fn session_routes_send_the_action_and_read_the_view_or_the_refusal() {
    use whatnext_protocol::listening::{MemberRole, SessionMode, SkipVotes};
    let view = SessionView {
        clock_offset_ms: None,
        playlist_id: "p".into(),
        mode: SessionMode::TurnTaking,
        per_turn: 1,
        now_playing: None,
        up_next: vec![],
        turn: None,
        turn_order: vec!["a".into()],
        playback_owner: Some("a".into()),
        roles: [("a".to_string(), MemberRole::Owner)].into(),
        skip: SkipVotes::default(),
        history: vec![],
        reactions: vec![],
        fallback: None,
        me: "a".into(),
        my_role: MemberRole::Owner,
        comments: vec![],
    };
    let json: &'static str = Box::leak(serde_json::to_string(&view).expect("json").into());
    let (url, server) = serve(vec![
        (200, json),
        (200, json),
        (
            403,
            r#"{"error":"A holds playback; only they can do that"}"#,
        ),
        (200, r#"{"id":"new"}"#),
    ]);
    let (_dir, home) = home_with_api(&url);
    let client = Client::for_home(&home).expect("client");
    assert_eq!(client.session("p").expect("view"), view);
    let after = client
        .session_act(
            "p",
            &SessionAction::Mode {
                mode: SessionMode::TurnTaking,
                per_turn: Some(1),
            },
        )
        .expect("mode");
    assert_eq!(after.mode, SessionMode::TurnTaking);
    let err = client
        .session_act("p", &SessionAction::Pause)
        .expect_err("refused");
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.to_string(), "A holds playback; only they can do that");
    let saved = client
        .save_session(
            "p",
            &SaveHistoryRequest {
                name: "Tonight".into(),
            },
        )
        .expect("save");
    assert_eq!(saved.id, "new");
    let seen = server.join().expect("server");
    assert_eq!(seen[0].line, "GET /api/playlists/p/session HTTP/1.1");
    assert_eq!(seen[1].line, "POST /api/playlists/p/session HTTP/1.1");
    assert_eq!(
        seen[1].body,
        r#"{"action":"mode","mode":"turn_taking","per_turn":1}"#
    );
    assert_eq!(seen[2].body, r#"{"action":"pause"}"#);
    assert_eq!(seen[3].line, "POST /api/playlists/p/session/save HTTP/1.1");
    assert_eq!(seen[3].body, r#"{"name":"Tonight"}"#);
}
