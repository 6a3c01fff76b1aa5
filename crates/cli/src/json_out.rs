//! `--json` output of the API's answers.
//!
//! The CLI has always printed an answer as a `serde_json::Value` (this workspace builds
//! serde_json without `preserve_order`), so its keys come out sorted, not in the order the
//! API sends them. The typed answers go through a `Value` here to keep that output byte for
//! byte. (`doctor`, `playlist list` and `open` have always printed their typed answer, in
//! the types' field order, and still do.)

use serde::Serialize;

/// One line of JSON, keys sorted.
pub fn print_json(answer: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_value(answer)?);
    Ok(())
}

/// Indented JSON, keys sorted.
pub fn print_json_pretty(answer: &impl Serialize) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::to_value(answer)?)?
    );
    Ok(())
}
