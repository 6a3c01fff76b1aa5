//! Any text either parses as a whtnxt:// link or gives an error, and a parsed link
//! formats to text that parses back to the same link.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whatnext_protocol::link::InviteLink;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(link) = text.parse::<InviteLink>() {
        let again: InviteLink = link
            .to_string()
            .parse()
            .expect("a formatted link parses");
        assert_eq!(again, link);
    }
});
