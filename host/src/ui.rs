//! Terminal output: progress (indicatif), confirmation, JSON printing.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::image::Progress;

/// A spinner with stage messages and a byte counter, on stderr. Hidden under `--json`
/// or when stderr is not a terminal, where stages are printed as plain lines instead.
pub struct Spinner {
    bar: ProgressBar,
    plain: bool,
    start: Instant,
}

impl Spinner {
    /// A new spinner; `quiet` hides it entirely (JSON output).
    pub fn new(quiet: bool) -> Spinner {
        let plain = !quiet && !std::io::stderr().is_terminal();
        let bar = if quiet || plain {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
        } else {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed:>3}] {msg}").expect("template"),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        };
        Spinner {
            bar,
            plain,
            start: Instant::now(),
        }
    }

    /// Stops the spinner, leaving `message`.
    pub fn finish(&self, message: &str) {
        if self.plain {
            eprintln!("[{:>3}s] {message}", self.start.elapsed().as_secs());
        }
        self.bar.finish_with_message(message.to_owned());
    }

    /// Prints a line above the spinner.
    pub fn println(&self, line: &str) {
        if self.bar.is_hidden() {
            if self.plain {
                eprintln!("{line}");
            }
        } else {
            self.bar.println(line);
        }
    }
}

impl Progress for Spinner {
    fn stage(&self, message: &str) {
        if self.plain {
            eprintln!("[{:>3}s] {message}", self.start.elapsed().as_secs());
        }
        self.bar.set_message(message.to_owned());
    }
    fn detail(&self, line: &str) {
        let line = line.trim();
        if !line.is_empty() {
            let msg = self.bar.message();
            let stage = msg.split(" | ").next().unwrap_or("").to_owned();
            self.bar
                .set_message(format!("{stage} | {}", truncate(line, 60)));
        }
    }
    fn bytes(&self, done: u64, total: u64) {
        let msg = self.bar.message();
        let stage = msg.split(" | ").next().unwrap_or("").to_owned();
        self.bar
            .set_message(format!("{stage} | {} / {} MiB", done >> 20, total >> 20));
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n).collect::<String>() + "…"
    }
}

/// Asks "proceed? [y/N]" on stderr; false when stdin is not a terminal.
pub fn confirm(question: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        eprintln!("{question} [y/N]: stdin is not a terminal; pass -y to proceed");
        return false;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes" | "Yes")
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serializable")
    );
}

pub use crate::sys::quiet_sigpipe_on_broken_stdout;
