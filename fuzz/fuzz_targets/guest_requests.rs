//! What a guest's phone sends the host's guest page (on the LAN, or through a relay's
//! tunnel): the link signature header, then the JSON bodies of join, add, vote and comment,
//! and what the owner's view sends to open or close the page. Never a panic; what is
//! signed is rebuilt from whatever parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whatnext_protocol::guest::{
    GuestCommentRequest, GuestJoinRequest, GuestTrackRequest, GuestVoteRequest, GuestsRequest,
    parse_signature, signed_message,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // A header value: what parses keeps its nonce and a MAC of any length.
        if let Some(signature) = parse_signature(text) {
            assert_eq!(signature.nonce.len(), 16);
            let message = signed_message(
                "code",
                "",
                signature.at_ms,
                signature.nonce_hex,
                "POST",
                text,
                "",
            );
            assert!(message.contains(signature.nonce_hex));
        }
    }
    let _ = serde_json::from_slice::<GuestJoinRequest>(data);
    let _ = serde_json::from_slice::<GuestTrackRequest>(data);
    let _ = serde_json::from_slice::<GuestVoteRequest>(data);
    let _ = serde_json::from_slice::<GuestCommentRequest>(data);
    let _ = serde_json::from_slice::<GuestsRequest>(data);
});
