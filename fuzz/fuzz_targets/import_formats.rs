//! A playlist file a user imports (or a Markdown mirror read back): the format is read off
//! the content, then M3U/M3U8, XSPF, CSV or our Markdown parsed; what parses is checked as
//! an import is, and written back out in every format and read again. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whatnext_store::{
    doc::validate_import,
    formats::{self, Format},
    markdown,
};
use whatnext_protocol::playlist::Author;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let importer = Author {
        peer_id: "12D3KooWFuzzFuzzFuzzFuzzFuzzFuzzFuzzFuzzFuzzFuzz".into(),
        display_name: "Fuzz".into(),
    };
    let _ = markdown::from_markdown(text);
    let Ok((_, playlist)) = formats::parse(text, Some("fuzz"), &importer, 1) else {
        return;
    };
    if validate_import(&playlist).is_err() {
        return;
    }
    for format in [Format::Markdown, Format::M3u, Format::Xspf, Format::Csv] {
        if let Ok(written) = formats::export(&playlist, format) {
            let _ = formats::parse(&written, Some("again"), &importer, 2);
        }
    }
    let _ = markdown::file_name(&playlist);
});
