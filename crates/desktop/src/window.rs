//! The window, the tray and the notifications (feature `gui`).

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tao::{
    dpi::{PhysicalPosition, PhysicalSize},
    event::{Event, WindowEvent},
    event_loop::{ControlFlow, EventLoopBuilder, EventLoopProxy},
    window::{Window, WindowBuilder},
};
use tray_icon::{
    TrayIcon, TrayIconBuilder,
    menu::{Menu, MenuEvent, MenuId, MenuItem},
};
use whatnext_controller::ui::{CancellationToken, UiEvent, UiHooks};
use whatnext_home::{Home, config::RunFlags};
use wry::{WebView, WebViewBuilder};

enum UserEvent {
    Ui(UiEvent),
    Tray(MenuEvent),
    ControllerExited(Result<(), String>),
}

/// Size and position of the window, kept in `<home>/window.json`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Geometry {
    width: u32,
    height: u32,
    x: Option<i32>,
    y: Option<i32>,
}

impl Default for Geometry {
    fn default() -> Self {
        Self {
            width: 1100,
            height: 820,
            x: None,
            y: None,
        }
    }
}

fn geometry_path(home: &Home) -> PathBuf {
    home.dir().join("window.json")
}

fn load_geometry(home: &Home) -> Geometry {
    std::fs::read(geometry_path(home))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Geometry>(&bytes).ok())
        // A damaged or absurd file must not hide the window.
        .filter(|g| (300..=10_000).contains(&g.width) && (300..=10_000).contains(&g.height))
        .unwrap_or_default()
}

fn save_geometry(home: &Home, window: &Window) {
    let size = window.inner_size();
    let position = window.outer_position().ok();
    let geometry = Geometry {
        width: size.width,
        height: size.height,
        x: position.map(|p| p.x),
        y: position.map(|p| p.y),
    };
    let written = serde_json::to_vec_pretty(&geometry)
        .map_err(|e| e.to_string())
        .and_then(|bytes| std::fs::write(geometry_path(home), bytes).map_err(|e| e.to_string()));
    if let Err(err) = written {
        tracing::warn!("could not remember the window's size and position: {err}");
    }
}

const STARTING: &str = "<!doctype html><meta charset=utf-8><title>WhatNext</title><body style=\"font-family:system-ui,sans-serif;display:grid;place-items:center;height:90vh;color:#555\"><p>Starting WhatNext…</p>";

struct Tray {
    _icon: TrayIcon,
    open: MenuId,
    copy_invite: MenuId,
    quit: MenuId,
}

/// A tray icon with its menu, where the desktop has a tray (an error elsewhere: the window
/// then works without one).
fn tray() -> anyhow::Result<Tray> {
    let open = MenuItem::new("Open WhatNext", true, None);
    let copy_invite = MenuItem::new("Copy invite link", true, None);
    let quit = MenuItem::new("Quit", true, None);
    let menu = Menu::new();
    menu.append_items(&[&open, &copy_invite, &quit])?;
    // A 16×16 disc in the view's accent colour.
    let mut rgba = Vec::with_capacity(16 * 16 * 4);
    for y in 0..16i32 {
        for x in 0..16i32 {
            let inside = (x - 8) * (x - 8) + (y - 8) * (y - 8) <= 49;
            rgba.extend_from_slice(if inside {
                &[0x3b, 0x5b, 0xdb, 0xff]
            } else {
                &[0, 0, 0, 0]
            });
        }
    }
    let icon = tray_icon::Icon::from_rgba(rgba, 16, 16)?;
    let tray = TrayIconBuilder::new()
        .with_tooltip("WhatNext")
        .with_icon(icon)
        .with_menu(Box::new(menu))
        .build()?;
    Ok(Tray {
        _icon: tray,
        open: open.id().clone(),
        copy_invite: copy_invite.id().clone(),
        quit: quit.id().clone(),
    })
}

fn notify(body: String) {
    // notify-rust talks D-Bus synchronously: keep it off the UI thread.
    std::thread::spawn(move || {
        if let Err(err) = notify_rust::Notification::new()
            .appname("WhatNext")
            .summary("WhatNext")
            .body(&body)
            .timeout(notify_rust::Timeout::Milliseconds(6000))
            .show()
        {
            tracing::info!("could not show a notification ({err}): {body}");
        }
    });
}

/// The invite link of the running controller, through its API.
fn invite(home: &Home) -> anyhow::Result<String> {
    let info = home.read_api_info()?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let reply: serde_json::Value = agent
        .get(&format!("{}/api/invite", info.url))
        .header("Authorization", &format!("Bearer {}", info.token))
        .call()?
        .body_mut()
        .read_json()?;
    reply["link"]
        .as_str()
        .map(str::to_string)
        .context("the controller has no invite yet")
}

fn copy_invite(home: Home) {
    std::thread::spawn(move || {
        let result = invite(&home).and_then(|link| {
            arboard::Clipboard::new()?.set_text(link)?;
            Ok(())
        });
        match result {
            Ok(()) => notify("Invite link copied: send it to a friend.".into()),
            Err(err) => notify(format!("Could not copy the invite link: {err:#}")),
        }
    });
}

fn show(window: &Window) {
    window.set_visible(true);
    window.set_minimized(false);
    window.set_focus();
}

fn build_webview(window: &Window) -> anyhow::Result<WebView> {
    let builder = WebViewBuilder::new().with_html(STARTING);
    #[cfg(target_os = "linux")]
    let webview = {
        use tao::platform::unix::WindowExtUnix as _;
        use wry::WebViewBuilderExtUnix as _;
        let vbox = window
            .default_vbox()
            .context("the window has no GTK container for the web view")?;
        builder.build_gtk(vbox)?
    };
    #[cfg(not(target_os = "linux"))]
    let webview = builder.build(window)?;
    Ok(webview)
}

pub fn run(home: Home, flags: RunFlags) -> anyhow::Result<()> {
    let event_loop = EventLoopBuilder::<UserEvent>::with_user_event().build();
    let proxy: EventLoopProxy<UserEvent> = event_loop.create_proxy();
    let shutdown = CancellationToken::new();
    let hooks = UiHooks {
        notify: Arc::new({
            let proxy = proxy.clone();
            move |event| {
                let _ = proxy.send_event(UserEvent::Ui(event));
            }
        }),
        shutdown: shutdown.clone(),
    };
    std::thread::Builder::new()
        .name("controller".into())
        .spawn({
            let (home, proxy) = (home.clone(), proxy.clone());
            move || {
                let result = whatnext_controller::run_with_ui(home, flags, Some(hooks))
                    .map_err(|err| format!("{err:#}"));
                let _ = proxy.send_event(UserEvent::ControllerExited(result));
            }
        })
        .context("could not start the controller thread")?;

    let geometry = load_geometry(&home);
    let mut builder = WindowBuilder::new()
        .with_title("WhatNext")
        .with_inner_size(PhysicalSize::new(geometry.width, geometry.height))
        .with_min_inner_size(PhysicalSize::new(360, 480));
    if let (Some(x), Some(y)) = (geometry.x, geometry.y) {
        builder = builder.with_position(PhysicalPosition::new(x, y));
    }
    let window = builder
        .build(&event_loop)
        .context("could not open the window (is there a display?)")?;
    let webview = build_webview(&window)?;
    let tray = match tray() {
        Ok(tray) => {
            let proxy = proxy.clone();
            MenuEvent::set_event_handler(Some(move |event| {
                let _ = proxy.send_event(UserEvent::Tray(event));
            }));
            Some(tray)
        }
        Err(err) => {
            tracing::info!(
                "no tray icon on this desktop ({err}); closing the window keeps WhatNext running, `whatnext ui` or a link brings it back"
            );
            None
        }
    };

    event_loop.run(move |event, _, control_flow| {
        *control_flow = ControlFlow::Wait;
        match event {
            Event::WindowEvent {
                event: WindowEvent::CloseRequested,
                ..
            } => {
                // Closing hides: the node stays up for friends; Quit (tray) or a signal stops it.
                save_geometry(&home, &window);
                window.set_visible(false);
            }
            Event::UserEvent(UserEvent::Ui(event)) => match event {
                UiEvent::Ready { login_url } => {
                    if let Err(err) = webview.load_url(&login_url) {
                        tracing::warn!("the window could not load the view: {err}");
                    }
                }
                UiEvent::Show | UiEvent::LinkOpened { .. } => show(&window),
                UiEvent::LinkFailed { link, reason } => {
                    notify(format!("Could not connect with {link}: {reason}"));
                }
                UiEvent::PeerJoined { name, playlist } => {
                    notify(format!("{name} joined your playlist “{playlist}”."));
                }
            },
            Event::UserEvent(UserEvent::Tray(event)) => {
                if let Some(tray) = &tray {
                    if event.id == tray.open {
                        show(&window);
                    } else if event.id == tray.copy_invite {
                        copy_invite(home.clone());
                    } else if event.id == tray.quit {
                        save_geometry(&home, &window);
                        shutdown.cancel();
                    }
                }
            }
            Event::UserEvent(UserEvent::ControllerExited(result)) => {
                save_geometry(&home, &window);
                match result {
                    Ok(()) => std::process::exit(0),
                    Err(err) => {
                        eprintln!("error: {err}");
                        std::process::exit(1);
                    }
                }
            }
            _ => {}
        }
    })
}
