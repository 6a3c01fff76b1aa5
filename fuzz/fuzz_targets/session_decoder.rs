//! What a peer sends on /whatnext/handshake/1.0.0 and /whatnext/sync/2.0.0, as the
//! controller reads it: JSON into the typed messages, then the packed updates of a `push` or
//! `updates` unpacked (base64 → LZ4 with a size cap), then read as signed envelopes and
//! their signatures checked; and the guest tunnel's messages (a relay and a host read each
//! other's). Never a panic, never an allocation beyond the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whatnext_protocol::{
    session::{HandshakeRequest, HandshakeResponse, MAX_UNPACKED, SyncRequest, SyncResponse, unpack},
    signed::{Envelope, decode_envelopes},
};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<HandshakeRequest>(data);
    let _ = serde_json::from_slice::<HandshakeResponse>(data);
    let _ = serde_json::from_slice::<SyncResponse>(data);
    let packed = match serde_json::from_slice::<SyncRequest>(data) {
        Ok(SyncRequest::Push { updates, .. }) => Some(updates),
        Ok(SyncRequest::Hello { version, .. }) => Some(version),
        Ok(SyncRequest::React { emoji, .. }) => {
            // The reaction check takes any text without panicking.
            let _ = whatnext_protocol::listening::is_reaction(&emoji);
            None
        }
        // A clock question carries only numbers; answering it reads nothing else.
        Ok(SyncRequest::Clock { .. }) => None,
        Err(_) => std::str::from_utf8(data).ok().map(str::to_string),
    };
    if let Some(text) = packed
        && let Ok(bytes) = unpack(&text)
    {
        assert!(bytes.len() <= MAX_UNPACKED);
        if let Ok(envelopes) = decode_envelopes(&bytes) {
            for envelope in envelopes.iter().take(4) {
                let _ = envelope.verify("p");
                let _ = envelope.loro_peer();
            }
        }
    }
    // The guest tunnel: what a host sends a relay and back, and the guest API's bodies.
    let _ = serde_json::from_slice::<whatnext_protocol::guest::TunnelRequest>(data);
    let _ = serde_json::from_slice::<whatnext_protocol::guest::TunnelResponse>(data);
    let _ = serde_json::from_slice::<whatnext_protocol::guest::GuestJoinRequest>(data);
    let _ = serde_json::from_slice::<whatnext_protocol::guest::GuestTrackRequest>(data);
    let _ = serde_json::from_slice::<whatnext_protocol::guest::GuestVoteRequest>(data);
    let _ = serde_json::from_slice::<whatnext_protocol::guest::GuestCommentRequest>(data);
    // The store's own records of envelopes.
    if let Ok(envelope) = Envelope::decode(data) {
        let _ = envelope.verify("p");
    }
});
