//! File helpers of the home: atomic owner-only writes, owner-only permissions, reads that
//! tell a missing file from an unreadable one.

use std::{
    fs::{self, File, OpenOptions},
    io::{Read as _, Write as _},
    path::Path,
};

use crate::error::HomeError;

/// Writes `contents` to `path` atomically with owner-only permissions: temp file, fsync,
/// rename, so a crash leaves either the old file or the new one, never half of one.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), HomeError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is durable once the directory entry is.
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    result.map_err(|source| HomeError::io("write", path, source))
}

/// Takes every permission of group and others off `path` (a directory gets `private_mode`,
/// 0700; a file 0600). Returns what was done, or why it could not be, for the log; `None` when
/// it was private already (or on systems without Unix modes).
pub fn make_private(path: &Path, private_mode: u32) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(path).ok()?.permissions().mode() & 0o7777;
        if mode & 0o077 == 0 {
            return None;
        }
        Some(
            match fs::set_permissions(path, fs::Permissions::from_mode(private_mode)) {
                Ok(()) => format!(
                    "{} was accessible to other users (mode {mode:04o}); changed it to {private_mode:04o}",
                    path.display()
                ),
                Err(err) => format!(
                    "{} is accessible to other users (mode {mode:04o}) and could not be changed ({err}); run `chmod {private_mode:o} {}`",
                    path.display(),
                    path.display()
                ),
            },
        )
    }
    #[cfg(not(unix))]
    {
        let _ = (path, private_mode);
        None
    }
}

/// The contents of `path`, or `None` when it does not exist.
pub fn read_file(path: &Path) -> Result<Option<Vec<u8>>, HomeError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => {
            file.read_to_end(&mut bytes)
                .map_err(|source| HomeError::io("read", path, source))?;
            Ok(Some(bytes))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HomeError::io("read", path, source)),
    }
}
