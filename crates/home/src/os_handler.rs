//! Registration of `whatnext open %u` as the operating system's handler for `whtnxt://`.
//!
//! * Linux (freedesktop): `$XDG_DATA_HOME/applications/whatnext.desktop` with
//!   `MimeType=x-scheme-handler/whtnxt;`, made the default with `xdg-mime default` (or, when
//!   xdg-utils is missing, directly in `$XDG_CONFIG_HOME/mimeapps.list`).
//! * Windows: `HKCU\Software\Classes\whtnxt` with `URL Protocol` and `shell\open\command`.
//! * macOS: the scheme is declared by the app bundle (`CFBundleURLTypes` in Info.plist);
//!   registering asks LaunchServices (`lsregister -f`) to re-read the bundle we run from.

use std::path::{Path, PathBuf};

pub const SCHEME_MIME: &str = "x-scheme-handler/whtnxt";
pub const DESKTOP_FILE: &str = "whatnext.desktop";

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no home directory found for this user, so there is nowhere to register the link handler"
    )]
    NoUserDirs,
    #[error("{0}")]
    Unsupported(String),
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
}

/// What `register` did, to show the user.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
}

/// The command line the OS runs for a link; `home` is included when it is not the default.
pub fn handler_args(binary: &Path, home: Option<&Path>) -> Vec<String> {
    let mut args = vec![binary.display().to_string()];
    if let Some(home) = home {
        args.push("--home".into());
        args.push(home.display().to_string());
    }
    args.push("open".into());
    args
}

#[cfg(target_os = "linux")]
mod imp {
    use std::process::Command;

    use super::*;

    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HandlerError {
        let path = path.to_path_buf();
        move |source| HandlerError::Io {
            action,
            path,
            source,
        }
    }

    fn dirs() -> Result<directories::BaseDirs, HandlerError> {
        directories::BaseDirs::new().ok_or(HandlerError::NoUserDirs)
    }

    pub fn applications_dir() -> Result<PathBuf, HandlerError> {
        Ok(dirs()?.data_dir().join("applications"))
    }

    fn mimeapps_path() -> Result<PathBuf, HandlerError> {
        Ok(dirs()?.config_dir().join("mimeapps.list"))
    }

    /// Quotes an argument for a desktop entry's `Exec` key (freedesktop spec: reserved
    /// characters inside double quotes, with `"`, `` ` ``, `$` and `\` escaped).
    pub fn quote_exec_arg(arg: &str) -> String {
        let reserved = |c: char| " \t\n\"'\\><~|&;$*?#()`=%".contains(c);
        if !arg.is_empty() && !arg.chars().any(reserved) {
            return arg.to_string();
        }
        let mut out = String::from("\"");
        for c in arg.chars() {
            if matches!(c, '"' | '`' | '$' | '\\') {
                out.push('\\');
            }
            if c == '%' {
                out.push('%'); // a literal percent is %% in Exec
            }
            out.push(c);
        }
        out.push('"');
        out
    }

    pub fn desktop_entry(args: &[String]) -> String {
        let exec: Vec<String> = args.iter().map(|a| quote_exec_arg(a)).collect();
        format!(
            "[Desktop Entry]\nType=Application\nName=WhatNext\nComment=Collaborative playlists, peer to peer\nExec={} %u\nTerminal=false\nNoDisplay=true\nMimeType={SCHEME_MIME};\nCategories=AudioVideo;Audio;Network;\n",
            exec.join(" ")
        )
    }

    fn have(tool: &str) -> bool {
        Command::new(tool)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok()
    }

    pub fn register(args: &[String]) -> Result<Report, HandlerError> {
        let mut report = Report::default();
        let apps = applications_dir()?;
        std::fs::create_dir_all(&apps).map_err(io("create", &apps))?;
        let desktop = apps.join(DESKTOP_FILE);
        std::fs::write(&desktop, desktop_entry(args)).map_err(io("write", &desktop))?;
        report.lines.push(format!("wrote {}", desktop.display()));
        if have("update-desktop-database") {
            let _ = Command::new("update-desktop-database").arg(&apps).status();
        }
        if have("xdg-mime") {
            let out = Command::new("xdg-mime")
                .args(["default", DESKTOP_FILE, SCHEME_MIME])
                .output()
                .map_err(|e| HandlerError::Command {
                    command: "xdg-mime default".into(),
                    detail: e.to_string(),
                })?;
            if !out.status.success() {
                return Err(HandlerError::Command {
                    command: format!("xdg-mime default {DESKTOP_FILE} {SCHEME_MIME}"),
                    detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                });
            }
            report
                .lines
                .push(format!("made it the default for {SCHEME_MIME} (xdg-mime)"));
        } else {
            let path = mimeapps_path()?;
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let text = set_default(&text, SCHEME_MIME, DESKTOP_FILE);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io("create", dir))?;
            }
            std::fs::write(&path, text).map_err(io("write", &path))?;
            report.lines.push(format!(
                "made it the default for {SCHEME_MIME} in {} (install xdg-utils for desktop-specific registration)",
                path.display()
            ));
        }
        Ok(report)
    }

    pub fn unregister() -> Result<Report, HandlerError> {
        let mut report = Report::default();
        let apps = applications_dir()?;
        let desktop = apps.join(DESKTOP_FILE);
        match std::fs::remove_file(&desktop) {
            Ok(()) => report.lines.push(format!("removed {}", desktop.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => report
                .lines
                .push(format!("{} was not there", desktop.display())),
            Err(e) => return Err(io("remove", &desktop)(e)),
        }
        let path = mimeapps_path()?;
        if let Ok(text) = std::fs::read_to_string(&path) {
            let cleaned = remove_default(&text, SCHEME_MIME, DESKTOP_FILE);
            if cleaned != text {
                std::fs::write(&path, cleaned).map_err(io("write", &path))?;
                report.lines.push(format!(
                    "removed the {SCHEME_MIME} association from {}",
                    path.display()
                ));
            }
        }
        if have("update-desktop-database") {
            let _ = Command::new("update-desktop-database").arg(&apps).status();
        }
        Ok(report)
    }

    pub fn is_registered() -> bool {
        applications_dir().is_ok_and(|apps| apps.join(DESKTOP_FILE).exists())
    }
}

#[cfg(windows)]
mod imp {
    use std::process::Command;

    use super::*;

    const KEY: &str = r"HKCU\Software\Classes\whtnxt";

    fn reg(args: &[&str]) -> Result<(), HandlerError> {
        let out = Command::new("reg")
            .args(args)
            .output()
            .map_err(|e| HandlerError::Command {
                command: format!("reg {}", args.join(" ")),
                detail: e.to_string(),
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(HandlerError::Command {
                command: format!("reg {}", args.join(" ")),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    pub fn register(args: &[String]) -> Result<Report, HandlerError> {
        let command: Vec<String> = args.iter().map(|a| format!("\"{a}\"")).collect();
        let command = format!("{} \"%1\"", command.join(" "));
        reg(&["add", KEY, "/ve", "/d", "URL:WhatNext link", "/f"])?;
        reg(&["add", KEY, "/v", "URL Protocol", "/d", "", "/f"])?;
        reg(&[
            "add",
            &format!(r"{KEY}\shell\open\command"),
            "/ve",
            "/d",
            &command,
            "/f",
        ])?;
        Ok(Report {
            lines: vec![format!("registered {KEY}")],
        })
    }

    pub fn unregister() -> Result<Report, HandlerError> {
        reg(&["delete", KEY, "/f"])?;
        Ok(Report {
            lines: vec![format!("removed {KEY}")],
        })
    }

    pub fn is_registered() -> bool {
        reg(&["query", KEY]).is_ok()
    }
}

#[cfg(target_os = "macos")]
mod imp {
    use super::*;

    const LSREGISTER: &str = "/System/Library/Frameworks/CoreServices.framework/Frameworks/LaunchServices.framework/Support/lsregister";

    fn bundle(binary: &Path) -> Option<PathBuf> {
        binary
            .ancestors()
            .find(|p| p.extension().is_some_and(|e| e == "app"))
            .map(Path::to_path_buf)
    }

    pub fn register(args: &[String]) -> Result<Report, HandlerError> {
        let binary = PathBuf::from(&args[0]);
        let Some(bundle) = bundle(&binary) else {
            return Err(HandlerError::Unsupported(
                "on macOS, whtnxt:// links are declared by WhatNext.app (CFBundleURLTypes in its Info.plist); install the app bundle and run `whatnext register` from inside it".into(),
            ));
        };
        let status = std::process::Command::new(LSREGISTER)
            .arg("-f")
            .arg(&bundle)
            .status();
        match status {
            Ok(s) if s.success() => Ok(Report {
                lines: vec![format!(
                    "registered {} with LaunchServices",
                    bundle.display()
                )],
            }),
            Ok(s) => Err(HandlerError::Command {
                command: format!("lsregister -f {}", bundle.display()),
                detail: s.to_string(),
            }),
            Err(e) => Err(HandlerError::Command {
                command: "lsregister".into(),
                detail: e.to_string(),
            }),
        }
    }

    pub fn unregister() -> Result<Report, HandlerError> {
        Err(HandlerError::Unsupported(
            "on macOS, remove WhatNext.app to stop it handling whtnxt:// links".into(),
        ))
    }

    pub fn is_registered() -> bool {
        true
    }
}

#[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
mod imp {
    use super::*;

    pub fn register(_args: &[String]) -> Result<Report, HandlerError> {
        Err(HandlerError::Unsupported(
            "registering a link handler is not supported on this platform".into(),
        ))
    }
    pub fn unregister() -> Result<Report, HandlerError> {
        register(&[])
    }
    pub fn is_registered() -> bool {
        false
    }
}

#[cfg(target_os = "linux")]
pub use imp::{desktop_entry, quote_exec_arg};
pub use imp::{is_registered, register, unregister};

/// Sets `key=value` in the `[Default Applications]` section of a mimeapps.list text.
pub fn set_default(text: &str, key: &str, value: &str) -> String {
    let cleaned = remove_default(text, key, value);
    let mut lines: Vec<String> = cleaned.lines().map(str::to_string).collect();
    let entry = format!("{key}={value}");
    match lines
        .iter()
        .position(|l| l.trim() == "[Default Applications]")
    {
        Some(at) => lines.insert(at + 1, entry),
        None => {
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push("[Default Applications]".into());
            lines.push(entry);
        }
    }
    lines.join("\n") + "\n"
}

/// Removes `key=` lines naming `value` (or only it) from a mimeapps.list text.
pub fn remove_default(text: &str, key: &str, value: &str) -> String {
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            let Some((k, v)) = line.split_once('=') else {
                return true;
            };
            !(k.trim() == key && v.split(';').any(|item| item.trim() == value))
        })
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        kept.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mimeapps_defaults_are_set_and_removed_without_touching_the_rest() {
        let before = "[Default Applications]\ntext/html=firefox.desktop\n";
        let set = set_default(before, SCHEME_MIME, DESKTOP_FILE);
        assert!(set.contains("x-scheme-handler/whtnxt=whatnext.desktop"));
        assert!(set.contains("text/html=firefox.desktop"));
        assert_eq!(
            set_default(&set, SCHEME_MIME, DESKTOP_FILE),
            set,
            "idempotent"
        );
        assert_eq!(remove_default(&set, SCHEME_MIME, DESKTOP_FILE), before);
        let fresh = set_default("", SCHEME_MIME, DESKTOP_FILE);
        assert_eq!(
            fresh,
            "[Default Applications]\nx-scheme-handler/whtnxt=whatnext.desktop\n"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn exec_lines_quote_what_needs_quoting() {
        assert_eq!(quote_exec_arg("/usr/bin/whatnext"), "/usr/bin/whatnext");
        assert_eq!(
            quote_exec_arg("/home/a b/whatnext"),
            "\"/home/a b/whatnext\""
        );
        assert_eq!(quote_exec_arg("/x/$HOME\"q"), "\"/x/\\$HOME\\\"q\"");
        let entry = desktop_entry(&handler_args(
            Path::new("/opt/w n/whatnext"),
            Some(Path::new("/h")),
        ));
        assert!(
            entry.contains("Exec=\"/opt/w n/whatnext\" --home /h open %u\n"),
            "{entry}"
        );
        assert!(entry.contains("MimeType=x-scheme-handler/whtnxt;\n"));
    }
}
