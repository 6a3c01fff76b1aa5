//! The network service (`whatnext p2p`) driven directly over its pipes, as the controller
//! does: handshake, commands, and hostile input that must give errors, never a crash.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use crate::support::{BIN, Service};
use serde_json::json;

#[test]
fn handshake_then_commands_with_matching_ids() {
    let mut service = Service::spawn();
    let ready = service.recv();
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["payload"]["pid"], service.child.id());
    assert_eq!(ready["payload"]["protocol_version"], 1);

    service.send(&json!({"id": 41, "type": "ping"}));
    let pong = service.reply_to(41);
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong.get("compact"), None, "a JSON client gets JSON: {pong}");

    // A dial before the node runs is refused with a reason, not ignored.
    service
        .send(&json!({"id": 42, "type": "dial", "payload": {"addrs": ["/ip4/127.0.0.1/tcp/1"]}}));
    let reply = service.reply_to(42);
    assert_eq!(reply["type"], "dial_failed");
    assert!(
        reply["payload"]["reason"]
            .as_str()
            .expect("reason")
            .contains("not running")
    );

    service.send(&json!({"id": 43, "type": "shutdown"}));
    assert_eq!(service.reply_to(43)["type"], "ok");
    assert!(service.wait_exit().success());
}

#[test]
fn a_bad_key_or_listen_address_is_a_node_error() {
    let mut service = Service::spawn();
    service.recv();
    service
        .send(&json!({"id": 1, "type": "start_node", "payload": {"keypair": "!!", "listen": []}}));
    let reply = service.reply_to(1);
    assert_eq!(reply["type"], "node_error");
    assert!(
        reply["payload"]["message"]
            .as_str()
            .expect("message")
            .contains("base64"),
        "{reply}"
    );

    // A valid key with an address no transport can listen on.
    let key = libp2p_identity::Keypair::generate_ed25519()
        .to_protobuf_encoding()
        .expect("encodes");
    let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key);
    service.send(&json!({"id": 2, "type": "start_node", "payload": {"keypair": key, "listen": ["/dns4/example.invalid/tcp/0"]}}));
    let reply = service.reply_to(2);
    assert_eq!(reply["type"], "node_error", "{reply}");
    let message = reply["payload"]["message"].as_str().expect("message");
    assert!(
        message.contains("cannot listen on /dns4/example.invalid/tcp/0"),
        "{message}"
    );
    service.send(&json!({"id": 3, "type": "ping"}));
    assert_eq!(service.reply_to(3)["type"], "pong");
}

#[test]
fn garbage_and_oversized_frames_are_answered_and_the_service_goes_on() {
    let mut service = Service::spawn();
    service.recv();

    // Not JSON: an error event, with the id when one could be read.
    service.write_raw(&[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']);
    let reply = service.recv();
    assert_eq!(reply["type"], "error");
    assert!(
        reply["payload"]["message"]
            .as_str()
            .expect("message")
            .contains("malformed")
    );

    service.send(&json!({"id": 9, "type": "format_the_disk"}));
    let reply = service.reply_to(9);
    assert_eq!(reply["type"], "error");

    // A frame over the 16 MiB limit: skipped as it streams in, then answered.
    let len: u32 = 16 * 1024 * 1024 + 1;
    service.write_raw(&len.to_be_bytes());
    let chunk = vec![b'x'; 1024 * 1024];
    let writer = {
        let mut stdin = service.stdin.take().expect("stdin");
        std::thread::spawn(move || {
            let mut left = len as usize;
            while left > 0 {
                let n = left.min(chunk.len());
                stdin.write_all(&chunk[..n]).expect("write");
                left -= n;
            }
            stdin
        })
    };
    let reply = service.recv();
    assert_eq!(reply["type"], "error");
    assert!(
        reply["payload"]["message"]
            .as_str()
            .expect("message")
            .contains("exceeds the limit")
    );
    service.stdin = Some(writer.join().expect("writer"));

    service.send(&json!({"id": 10, "type": "ping"}));
    assert_eq!(service.reply_to(10)["type"], "pong");

    // A truncated frame followed by EOF: the service exits on its own.
    service.write_raw(&[0, 0, 0, 50, b'{']);
    service.stdin = None;
    let status = service.wait_exit();
    assert!(
        status.code().is_some(),
        "exited, not killed by a signal: {status:?}"
    );
}

#[test]
fn the_service_exits_when_its_controller_goes_away() {
    let mut service = Service::spawn();
    service.recv();
    service.stdin = None; // EOF, as after `kill -9` of the controller
    assert!(service.wait_exit().success());
}

/// The controller writes compact frames (a binary id, and no JSON for a message without a
/// payload); the service reads them and answers in kind from then on, its unsolicited
/// events staying JSON.
#[test]
fn compact_frames_are_answered_in_compact_frames() {
    use whatnext_protocol::ipc::{Command, encode_compact};
    let mut service = Service::spawn();
    assert_eq!(service.recv()["type"], "ready");
    let send = |service: &mut Service, id: u64, command: Command| {
        let body = encode_compact(id, command).expect("encodes").into_body();
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        service.write_raw(&frame);
    };
    send(&mut service, 7, Command::Ping);
    let pong = service.reply_to(7);
    assert_eq!(
        (&pong["type"], &pong["compact"]),
        (&json!("pong"), &json!(true))
    );
    // A command with a payload: its answer (with one) is compact too.
    let dial = Command::Dial {
        peer_id: None,
        addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
    };
    send(&mut service, 8, dial);
    let failed = service.reply_to(8);
    assert_eq!(failed["type"], "dial_failed", "{failed}");
    assert_eq!(failed["compact"], true, "{failed}");
    assert!(
        failed["payload"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not running")),
        "{failed}"
    );
    // A compact frame naming no message is answered with an error under its id.
    let mut body = vec![whatnext_protocol::ipc::COMPACT_UNIT];
    body.extend_from_slice(&9u64.to_le_bytes());
    body.push(200);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    service.write_raw(&frame);
    let error = service.reply_to(9);
    assert_eq!(error["type"], "error", "{error}");
    send(&mut service, 10, Command::Shutdown);
    assert_eq!(service.reply_to(10)["type"], "ok");
    assert!(service.wait_exit().success());
}

#[cfg(target_os = "linux")]
#[test]
fn the_service_runs_sandboxed() {
    let mut service = Service::spawn();
    service.recv();
    let status = std::fs::read_to_string(format!("/proc/{}/status", service.child.id()))
        .expect("proc status");
    // Landlock requires no_new_privs; the crate sets it before restricting.
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    service.send(&json!({"id": 1, "type": "ping"}));
    assert_eq!(service.reply_to(1)["type"], "pong");
}

#[test]
fn run_by_hand_it_explains_what_it_is() {
    let out = Command::new(BIN)
        .arg("p2p")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("started by `whatnext run`"), "{err}");
}
