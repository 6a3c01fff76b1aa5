//! Text from elsewhere, made safe for a terminal.
//!
//! Titles, names, descriptions, peer display names, addresses and error texts reach the CLI
//! from other members of a shared playlist and from the network. Printed raw, an ESC or a C1
//! byte drives the terminal (rewrite the screen, set the window title, in some terminals
//! worse), and a bidi override (U+202E) makes text read as something else. Every human
//! (non-`--json`) output goes through [`safe`]; JSON output stays exact.

use std::borrow::Cow;

/// True for a character that must not reach a terminal raw: controls (C0, DEL, C1), bidi
/// embeddings, overrides, isolates and marks, invisible spaces, line and paragraph
/// separators, and the BOM. (Zero-width joiners U+200C/U+200D stay: scripts and emoji need
/// them.)
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
    }
}

/// `text` with every unsafe character written as an escape (`\u{1b}`, `\n`, …).
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// As [`safe`], but line breaks stay line breaks: for texts of several lines that we wrote
/// ourselves around parts from elsewhere (error chains).
pub fn safe_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| safe(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_untouched_and_not_copied() {
        let text =
            "Kind of Blue — Miles Davis · 日本語 · émoji 🎷 👨\u{200d}👩\u{200d}👧 می\u{200c}خواهم";
        assert!(matches!(safe(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn controls_and_bidi_overrides_are_escaped() {
        let cases = [
            ("a\u{1b}[2Jb", "a\\u{1b}[2Jb"),
            ("bell\u{7}", "bell\\u{7}"),
            ("nul\u{0}", "nul\\u{0}"),
            ("del\u{7f}", "del\\u{7f}"),
            ("csi\u{9b}31m", "csi\\u{9b}31m"),
            ("osc\u{9d}", "osc\\u{9d}"),
            ("rlo\u{202e}txt.exe", "rlo\\u{202e}txt.exe"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            (
                "\u{2066}\u{2067}\u{2068}\u{2069}",
                "\\u{2066}\\u{2067}\\u{2068}\\u{2069}",
            ),
            (
                "lrm\u{200e}zwsp\u{200b}bom\u{feff}",
                "lrm\\u{200e}zwsp\\u{200b}bom\\u{feff}",
            ),
            ("two\nlines\r\tx", "two\\nlines\\r\\tx"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
        ];
        for (input, expected) in cases {
            assert_eq!(safe(input), expected, "{input:?}");
            assert!(!safe(input).chars().any(is_unsafe), "{input:?}");
        }
    }

    #[test]
    fn safe_lines_keeps_line_breaks_only() {
        assert_eq!(safe_lines("a\u{1b}\nb\tc"), "a\\u{1b}\nb\\tc");
    }
}
