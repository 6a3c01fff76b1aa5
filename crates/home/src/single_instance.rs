//! One controller per home: an exclusive lock on `<home>/whatnext.lock`, held for the
//! process's lifetime. The OS drops it when the process dies, even by `kill -9`, so a crash
//! never leaves the home locked.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read as _, Seek as _, Write as _},
};

use crate::{error::HomeError, home::Home};

/// Holds the lock until dropped.
pub struct InstanceLock {
    _file: File,
}

pub fn acquire(home: &Home) -> Result<InstanceLock, HomeError> {
    let path = home.lock_path();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| HomeError::io("open", &path, source))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(HomeError::AlreadyRunning {
                home: home.dir().to_path_buf(),
                pid: text.trim().parse().ok(),
            });
        }
        Err(TryLockError::Error(source)) => return Err(HomeError::io("lock", &path, source)),
    }
    let pid = std::process::id().to_string();
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()));
    if let Err(source) = written {
        return Err(HomeError::io("write", &path, source));
    }
    Ok(InstanceLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_a_home_is_refused_with_the_holder_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::resolve(Some(dir.path().to_path_buf())).expect("home");
        let _held = acquire(&home).expect("first");
        let err = acquire(&home).err().expect("second refused");
        let text = err.to_string();
        assert!(text.contains("already running"), "{text}");
        assert!(text.contains(&std::process::id().to_string()), "{text}");
    }
}
