//! Settings of `run`: `<home>/config.toml`, overridden by command-line flags, so that a
//! controller started indirectly (by a link) behaves like one started by hand.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{error::HomeError, files::read_file};

/// The longest display name, in bytes after trimming. The same number as
/// `whatnext_protocol::api::MAX_DISPLAY_NAME_BYTES`, the API's limit (a test checks it):
/// it is repeated here because this crate does not depend on protocol, which brings tokio.
pub const MAX_DISPLAY_NAME_BYTES: usize = 200;

/// A display name as it will be used (trimmed), or why it is refused. The one rule for
/// config.toml, `whatnext config set display-name` and `POST /api/config`: 1 to
/// [`MAX_DISPLAY_NAME_BYTES`] bytes. (It travels to every member of a shared playlist.)
pub fn check_display_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("the display name must not be empty".into());
    }
    if name.len() > MAX_DISPLAY_NAME_BYTES {
        return Err(format!(
            "the display name is {} bytes long; the limit is {MAX_DISPLAY_NAME_BYTES} bytes",
            name.len()
        ));
    }
    Ok(name.to_string())
}

/// The file's keys. Every key is optional; unknown keys are errors (they are typos).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: Option<Vec<String>>,
    pub mdns: Option<bool>,
    /// Ask the router for a port mapping (UPnP IGD).
    pub upnp: Option<bool>,
    pub browser: Option<bool>,
    pub api_port: Option<u16>,
    pub bootstrap: Option<Vec<String>>,
    pub relays: Option<Vec<String>>,
    /// Register as the OS handler for whtnxt:// links on the first start of a home.
    pub register: Option<bool>,
    /// The name shown to friends next to what you add.
    pub display_name: Option<String>,
    /// Folders whose audio files make the music library (default: the platform's music
    /// folder, e.g. ~/Music).
    pub music_dirs: Option<Vec<String>>,
    /// The largest audio file sent to or fetched from a member, in MB (default 200).
    pub max_media_mb: Option<u64>,
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<Self, HomeError> {
        let Some(bytes) = read_file(path)? else {
            return Ok(Self::default());
        };
        let text = String::from_utf8(bytes).map_err(|_| HomeError::BadConfig {
            path: path.to_path_buf(),
            detail: "not UTF-8 text".into(),
        })?;
        let file: Self = toml::from_str(&text).map_err(|err| HomeError::BadConfig {
            path: path.to_path_buf(),
            detail: err.to_string(),
        })?;
        // Refused rather than cut: a name cut at a limit is not the name the user chose.
        // (Empty means "the default", as when the key is absent.)
        if let Some(name) = &file.display_name
            && !name.trim().is_empty()
            && let Err(why) = check_display_name(name)
        {
            return Err(HomeError::BadConfig {
                path: path.to_path_buf(),
                detail: format!(
                    "display_name: {why}; shorten it there, or set it with `whatnext config set display-name NAME`"
                ),
            });
        }
        Ok(file)
    }
}

/// Flags given to `whatnext run`; `None`/empty means "not given".
#[derive(Debug, Default, Clone)]
pub struct RunFlags {
    pub listen: Vec<String>,
    pub no_mdns: bool,
    pub no_upnp: bool,
    pub no_browser: bool,
    /// `--bootstrap`: replaces config.toml's `bootstrap` when given.
    pub bootstrap: Vec<String>,
    /// `--relay`: replaces config.toml's `relays` when given.
    pub relays: Vec<String>,
    pub no_register: bool,
    pub api_port: Option<u16>,
    /// The home was chosen explicitly (`--home`/`WHATNEXT_HOME`), so the OS handler must
    /// name it.
    pub home_explicit: bool,
}

/// The settings a controller runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub listen: Vec<String>,
    pub mdns: bool,
    pub upnp: bool,
    pub browser: bool,
    pub api_port: u16,
    pub bootstrap: Vec<String>,
    pub relays: Vec<String>,
    pub register: bool,
    pub display_name: String,
    /// Whether config.toml names it (else it is the account's name, by default).
    pub display_name_chosen: bool,
    pub music_dirs: Vec<std::path::PathBuf>,
    pub max_media_mb: u64,
}

/// The largest audio file moved between members unless `max_media_mb` says otherwise.
pub const DEFAULT_MAX_MEDIA_MB: u64 = 200;

/// The platform's music folder (XDG's `MUSIC`, ~/Music on macOS), if there is a home.
pub fn default_music_dir() -> Option<std::path::PathBuf> {
    let dirs = directories::UserDirs::new()?;
    Some(
        dirs.audio_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dirs.home_dir().join("Music")),
    )
}

/// Most music folders a library reads (each is walked at every scan and watched).
pub const MAX_MUSIC_DIRS: usize = 32;

/// Music folders as they will be used, or why they are refused. The one rule for
/// `whatnext config set music-dirs` and `POST /api/config`: each an absolute path to a
/// folder that is there (a typo would leave the library quietly empty), at most
/// [`MAX_MUSIC_DIRS`], repeats dropped. None at all is allowed: no music library.
pub fn check_music_dirs(dirs: &[String]) -> Result<Vec<PathBuf>, String> {
    if dirs.len() > MAX_MUSIC_DIRS {
        return Err(format!(
            "{} music folders given; at most {MAX_MUSIC_DIRS} are read",
            dirs.len()
        ));
    }
    let mut checked: Vec<PathBuf> = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let path = PathBuf::from(dir.trim());
        if !path.is_absolute() {
            return Err(format!(
                "the music folder {dir:?} is not an absolute path; give the whole path, e.g. /home/you/Music"
            ));
        }
        if !path.is_dir() {
            return Err(format!(
                "the music folder {} is not a folder on this computer; check its spelling",
                path.display()
            ));
        }
        if !checked.contains(&path) {
            checked.push(path);
        }
    }
    Ok(checked)
}

/// Sets `music_dirs` in the config file at `path` (creating it), keeping its other
/// settings; `dirs` must have passed [`check_music_dirs`].
pub fn write_music_dirs(path: &Path, dirs: &[PathBuf]) -> Result<(), String> {
    let dirs = dirs
        .iter()
        .map(|dir| toml::Value::String(dir.display().to_string()))
        .collect();
    write_setting(path, "music_dirs", toml::Value::Array(dirs))
}

/// Sets `display_name` in the config file at `path` (creating it), keeping its other
/// settings; `name` must have passed [`check_display_name`].
pub fn write_display_name(path: &Path, name: &str) -> Result<(), String> {
    write_setting(path, "display_name", toml::Value::String(name.to_string()))
}

/// Sets `key` to `value` in the config file at `path` (creating it), keeping the rest.
fn write_setting(path: &Path, key: &str, value: toml::Value) -> Result<(), String> {
    let mut table: toml::Table = match std::fs::read_to_string(path) {
        Ok(text) => text
            .parse()
            .map_err(|e| format!("{} is not valid TOML ({e}); fix it first", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    table.insert(key.into(), value);
    let text = toml::to_string(&table).map_err(|e| e.to_string())?;
    crate::files::write_private_file(path, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The name friends see until the user picks one: the OS account's full name, else its
/// login name. Read from the account itself (not only `$USER`, which a desktop's link
/// handler or a service manager may not set).
fn default_display_name() -> String {
    #[cfg(unix)]
    let account = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|user| (user.gecos.to_string_lossy().into_owned(), user.name));
    #[cfg(not(unix))]
    let account: Option<(String, String)> = None;
    let (full, login) = account.unzip();
    let env = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok();
    pick_display_name(full.as_deref(), login.as_deref(), env.as_deref())
}

/// The first usable of: the full name (the GECOS field's first part), the login name, the
/// environment's user name; else "WhatNext user".
fn pick_display_name(full: Option<&str>, login: Option<&str>, env: Option<&str>) -> String {
    let full = full
        .and_then(|gecos| gecos.split(',').next())
        .map(str::trim);
    [full, login, env]
        .into_iter()
        .flatten()
        .find_map(|name| check_display_name(name).ok())
        .unwrap_or_else(|| "WhatNext user".to_string())
}

/// TCP and QUIC for app peers; WebSocket (js-libp2p in Node, or pages served over plain
/// http) and WebRTC-direct (browser tabs: no certificate authority needed, the address holds
/// the certificate's hash) for browser peers; on every interface.
pub const DEFAULT_LISTEN: [&str; 4] = [
    "/ip4/0.0.0.0/tcp/0",
    "/ip4/0.0.0.0/udp/0/quic-v1",
    "/ip4/0.0.0.0/tcp/0/ws",
    "/ip4/0.0.0.0/udp/0/webrtc-direct",
];

impl Settings {
    pub fn merge(flags: &RunFlags, file: ConfigFile) -> Self {
        let listen = if !flags.listen.is_empty() {
            flags.listen.clone()
        } else {
            file.listen
                .unwrap_or_else(|| DEFAULT_LISTEN.iter().map(|s| s.to_string()).collect())
        };
        Self {
            listen,
            mdns: !flags.no_mdns && file.mdns.unwrap_or(true),
            upnp: !flags.no_upnp && file.upnp.unwrap_or(true),
            browser: !flags.no_browser && file.browser.unwrap_or(true),
            api_port: flags.api_port.or(file.api_port).unwrap_or(0),
            bootstrap: if flags.bootstrap.is_empty() {
                file.bootstrap.unwrap_or_default()
            } else {
                flags.bootstrap.clone()
            },
            relays: if flags.relays.is_empty() {
                file.relays.unwrap_or_default()
            } else {
                flags.relays.clone()
            },
            register: !flags.no_register && file.register.unwrap_or(true),
            display_name_chosen: file
                .display_name
                .as_deref()
                .is_some_and(|n| check_display_name(n).is_ok()),
            display_name: file
                .display_name
                .and_then(|n| check_display_name(&n).ok())
                .unwrap_or_else(default_display_name),
            music_dirs: match file.music_dirs {
                Some(dirs) => dirs.into_iter().map(std::path::PathBuf::from).collect(),
                None => default_music_dir().into_iter().collect(),
            },
            max_media_mb: file.max_media_mb.unwrap_or(DEFAULT_MAX_MEDIA_MB),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_name_is_the_accounts_full_name_then_its_login() {
        let table = [
            (
                Some("Ana Lima,Room 4,,"),
                Some("ana"),
                Some("ana"),
                "Ana Lima",
            ),
            (Some(""), Some("ana"), None, "ana"),
            (Some(",,,"), Some("ana"), None, "ana"),
            (None, None, Some("bob"), "bob"),
            (Some("   "), Some(""), Some(""), "WhatNext user"),
            (None, None, None, "WhatNext user"),
        ];
        for (full, login, env, want) in table {
            assert_eq!(
                pick_display_name(full, login, env),
                want,
                "{full:?} {login:?} {env:?}"
            );
        }
    }

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let file: ConfigFile =
            toml::from_str("listen = [\"/ip4/127.0.0.1/tcp/0\"]\nmdns = false\napi_port = 7000\n")
                .expect("parses");
        let s = Settings::merge(&RunFlags::default(), file);
        assert_eq!(s.listen, vec!["/ip4/127.0.0.1/tcp/0"]);
        assert!(!s.mdns);
        assert!(s.browser);
        assert_eq!(s.api_port, 7000);

        let flags = RunFlags {
            listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".into()],
            no_mdns: false,
            no_browser: true,
            no_register: false,
            api_port: Some(7001),
            no_upnp: true,
            relays: vec!["/ip4/198.18.0.1/tcp/4001/p2p/12D3KooWRelay".into()],
            ..RunFlags::default()
        };
        let file: ConfigFile = toml::from_str(
            "relays = [\"/ip4/198.18.0.9/tcp/1/p2p/12D3KooWOld\"]\nbootstrap = [\"/ip4/198.18.0.2/tcp/4001/p2p/12D3KooWBoot\"]\nupnp = true\n",
        )
        .expect("parses");
        let s = Settings::merge(&flags, file);
        assert_eq!(s.listen, vec!["/ip4/127.0.0.1/udp/0/quic-v1"]);
        assert!(s.mdns);
        assert!(!s.upnp, "--no-upnp wins over the file");
        assert!(!s.browser);
        assert_eq!(s.api_port, 7001);
        assert_eq!(s.relays, flags.relays, "--relay replaces the file's relays");
        assert_eq!(
            s.bootstrap,
            vec!["/ip4/198.18.0.2/tcp/4001/p2p/12D3KooWBoot"]
        );
        let defaults = Settings::merge(&RunFlags::default(), ConfigFile::default());
        assert_eq!(
            defaults.listen.len(),
            4,
            "TCP, QUIC, WebSocket and WebRTC-direct"
        );
        assert!(defaults.upnp && defaults.mdns);
    }

    #[test]
    fn a_display_name_over_the_limit_is_refused_naming_the_file_and_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        let name = "n".repeat(MAX_DISPLAY_NAME_BYTES + 1);
        std::fs::write(&path, format!("display_name = \"{name}\"\n")).expect("write");
        let err = ConfigFile::load(&path).expect_err("refused").to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("201 bytes"), "{err}");
        assert!(err.contains("the limit is 200 bytes"), "{err}");

        let name = "n".repeat(MAX_DISPLAY_NAME_BYTES);
        std::fs::write(&path, format!("display_name = \"  {name}  \"\n")).expect("write");
        let file = ConfigFile::load(&path).expect("at the limit");
        let s = Settings::merge(&RunFlags::default(), file);
        assert_eq!(s.display_name, name, "trimmed like the API does");
    }

    #[test]
    fn the_display_name_limit_is_the_api_s() {
        assert_eq!(
            MAX_DISPLAY_NAME_BYTES,
            whatnext_protocol::api::MAX_DISPLAY_NAME_BYTES
        );
    }

    #[test]
    fn a_typo_in_the_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "mdsn = false\n").expect("write");
        let err = ConfigFile::load(&path).expect_err("refused");
        assert!(err.to_string().contains("mdsn"), "{err}");
    }
}
