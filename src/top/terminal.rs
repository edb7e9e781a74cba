//! The terminal while `dmgr top` runs: raw mode, the alternate screen and a hidden
//! cursor, and the guarantee that they are undone however `top` ends. [`Screen`]
//! restores the terminal when dropped (a return, an error, or the loop leaving on
//! SIGTERM, SIGHUP or SIGINT, which `wake` turns into a message); a panic hook
//! restores it before the panic is reported (the release build aborts on panic, and
//! the hook still runs first).

use std::io::{self, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::Terminal;

/// Whether the terminal is set up for `top` now (raw mode, alternate screen).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The terminal, set up for drawing; restored on drop.
pub(crate) struct Screen {
    /// The ratatui terminal that draws on standard output.
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    /// Enters raw mode and the alternate screen, hides the cursor, and installs the
    /// panic hook that undoes them.
    pub(crate) fn enter() -> io::Result<Screen> {
        install_panic_hook();
        terminal::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let mut stdout = io::stdout();
        if let Err(e) = execute!(stdout, terminal::EnterAlternateScreen, cursor::Hide) {
            restore();
            return Err(e);
        }
        match Terminal::new(CrosstermBackend::new(stdout)) {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen, shows the cursor and leaves raw mode, once.
pub(crate) fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let mut stdout = io::stdout();
        let _ = execute!(stdout, terminal::LeaveAlternateScreen, cursor::Show);
        let _ = stdout.flush();
        let _ = terminal::disable_raw_mode();
    }
}

/// Restores the terminal before the previous panic hook prints the panic, so that
/// the message is readable and the shell usable.
fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
