//! A one-line progress count on stderr for operations over many nodes, shown
//! only when stderr is a terminal, so scripts and logs never see it.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Below this many items an operation is quick enough to need no progress.
const MIN_ITEMS: usize = 500;

/// Counts finished items and redraws `label done/total` at most ten times a
/// second; clears the line when dropped.
pub(crate) struct Progress {
    label: &'static str,
    /// What is counted: `nodes`, `files`.
    unit: &'static str,
    total: usize,
    done: AtomicUsize,
    /// When the line was last drawn; `None` when progress is not shown.
    last: Option<Mutex<Instant>>,
}

impl Progress {
    pub(crate) fn new(label: &'static str, total: usize) -> Progress {
        Progress::counting(label, "nodes", total)
    }

    /// [`Progress::new`], counting `unit` (`files`) rather than nodes.
    pub(crate) fn counting(label: &'static str, unit: &'static str, total: usize) -> Progress {
        // SAFETY: isatty only inspects the descriptor.
        let tty = unsafe { libc::isatty(2) } == 1;
        let show = tty && total >= MIN_ITEMS && std::env::var_os("SESTO_NO_PROGRESS").is_none();
        Progress {
            label,
            unit,
            total,
            done: AtomicUsize::new(0),
            last: show.then(|| Mutex::new(Instant::now())),
        }
    }

    /// Records one finished item.
    pub(crate) fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(last) = &self.last else { return };
        let Ok(mut last) = last.try_lock() else {
            return;
        };
        if last.elapsed() >= Duration::from_millis(100) || done == self.total {
            *last = Instant::now();
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{} {done}/{} {}", self.label, self.total, self.unit);
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.last.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}
