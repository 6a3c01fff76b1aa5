//! Any byte stream, cut anywhere, gives frames or errors from the IPC frame decoder and
//! typed errors from the message decoder (JSON envelopes and compact frames alike), and the
//! debug view's rendering of any frame; never a panic or an unbounded allocation.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use whatnext_protocol::{
    frame::{Frame, FrameCodec},
    ipc::{Command, Event, decode_envelope, readable, request_id_of, unit_of},
};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let mut codec = FrameCodec::new(4096);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(usize::from(chunk).max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Frame::Message(body))) => {
                    let _ = decode_envelope::<Command>(&body);
                    let _ = decode_envelope::<Event>(&body);
                    let _ = readable(&body);
                    let _ = request_id_of(&body);
                    let _ = unit_of(&body);
                }
                Ok(Some(Frame::Oversized { .. })) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    let _ = codec.decode_eof(&mut buf);
});
