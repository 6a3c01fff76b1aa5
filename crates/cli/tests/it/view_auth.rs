//! The view's doors: one-time login links, the HttpOnly cookie, Host and Origin checks, CSP.

use crate::support::*;

fn login_url(node: &Node) -> String {
    let out = node.cli(&["ui", "--print"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_view_needs_a_one_time_login_and_refuses_foreign_hosts_and_origins() {
    let a = Node::start();
    let (url, _) = a.api();
    let host = url.trim_start_matches("http://").to_string();

    // No cookie: the page and the API say 401.
    let (status, body) = http(&url, "GET", "/", &[("Host", &host)], "");
    assert_eq!(status, 401);
    assert!(body.contains("whatnext ui"), "{body}");
    let (status, _) = http(&url, "GET", "/api/state", &[("Host", &host)], "");
    assert_eq!(status, 401);

    // A login link sets an HttpOnly, SameSite=Strict cookie once, then is spent.
    let login = login_url(&a);
    let path = login.trim_start_matches(&url);
    let response = http_raw(&url, "GET", path, &[("Host", &host)], "");
    assert!(response.starts_with("HTTP/1.1 303"), "{response}");
    let cookie_line = response
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a cookie");
    assert!(
        cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"),
        "{cookie_line}"
    );
    let cookie = cookie_line
        .split_once(':')
        .expect("header")
        .1
        .split(';')
        .next()
        .expect("pair")
        .trim()
        .to_string();
    let again = http_raw(&url, "GET", path, &[("Host", &host)], "");
    assert!(
        again.starts_with("HTTP/1.1 401"),
        "a login link works once: {again}"
    );

    // With the cookie: the page, its CSP, and the API.
    let page = http_raw(
        &url,
        "GET",
        "/",
        &[("Host", &host), ("Cookie", &cookie)],
        "",
    );
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.to_ascii_lowercase()
            .contains("content-security-policy: default-src 'self'; script-src 'self'"),
        "{page}"
    );
    assert!(
        page.contains("<script type=\"module\" src=\"/app.js\">"),
        "no inline script"
    );
    // The page's files travel gzipped to a browser that takes it, and plain to one that
    // does not.
    for (accept, gzipped) in [("gzip, deflate", true), ("identity", false)] {
        let (status, head, body) = http_bytes(
            &url,
            "/app.js",
            &[("Cookie", &cookie), ("Accept-Encoding", accept)],
        );
        assert_eq!(status, 200, "{head}");
        assert_eq!(
            head.to_ascii_lowercase().contains("content-encoding: gzip"),
            gzipped,
            "{head}"
        );
        let text = String::from_utf8_lossy(&body).contains("WhatNext view");
        assert_eq!(text, !gzipped, "{head}");
    }
    let (status, _) = http(
        &url,
        "GET",
        "/api/state",
        &[("Host", &host), ("Cookie", &cookie)],
        "",
    );
    assert_eq!(status, 200);

    // A wrong Host (DNS rebinding) and a cross-origin write are refused even with the cookie.
    let (status, _) = http(
        &url,
        "GET",
        "/api/state",
        &[("Host", "evil.example"), ("Cookie", &cookie)],
        "",
    );
    assert_eq!(status, 403);
    let body = r#"{"name":"x"}"#;
    let json = ("Content-Type", "application/json");
    let (status, _) = http(
        &url,
        "POST",
        "/api/playlists",
        &[
            ("Host", &host),
            ("Cookie", &cookie),
            ("Origin", "http://evil.example"),
            json,
        ],
        body,
    );
    assert_eq!(status, 403);
    let own_origin = format!("http://{host}");
    let (status, _) = http(
        &url,
        "POST",
        "/api/playlists",
        &[
            ("Host", &host),
            ("Cookie", &cookie),
            ("Origin", &own_origin),
            json,
        ],
        body,
    );
    assert_eq!(status, 200, "the page's own origin may write");
}
