//! Drop filesystem access before the service does anything else.
//!
//! The service receives its identity key over the pipe, so it has no reason to open a file.
//! If it is ever compromised through a network bug, it cannot read the user's store or keys.

#[cfg(target_os = "linux")]
pub fn deny_filesystem() {
    use landlock::{ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetStatus};

    // Handle every filesystem right the kernel knows and grant none: all path access is denied.
    // Already-open descriptors (stdin, stdout, stderr) keep working.
    let result = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI::V5))
        .and_then(|ruleset| ruleset.create())
        .and_then(|ruleset| ruleset.restrict_self());
    match result {
        Ok(status) => match status.ruleset {
            RulesetStatus::FullyEnforced => tracing::debug!("landlock: filesystem access denied"),
            RulesetStatus::PartiallyEnforced => {
                tracing::info!("landlock: filesystem access denied (partially: older kernel ABI)")
            }
            RulesetStatus::NotEnforced => tracing::warn!(
                "landlock is not available on this kernel; the network service runs without a filesystem sandbox"
            ),
        },
        Err(err) => tracing::warn!(
            "could not apply the landlock sandbox ({err}); the network service runs without it"
        ),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn deny_filesystem() {
    tracing::warn!(
        "no filesystem sandbox on this platform yet; the network service runs without it"
    );
}
