//! Comparing secrets (API tokens, the view's cookie, share keys) without leaking them
//! through timings.

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
/// Empty credentials never match, not even an empty secret.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    !a.is_empty()
        && a.len() == b.len()
        && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
        assert!(
            !same_secret(b"", b""),
            "an empty credential must never match"
        );
    }
}
