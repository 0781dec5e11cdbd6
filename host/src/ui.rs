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

/// SIGPIPE ends the process quietly, as with any Unix tool, when stdout or stderr is a
/// pipe whose reader went away (`dpdkhost outputs | head`), and only then: a write to
/// any other broken pipe or socket — libvirtd's, when the daemon died or restarted —
/// returns EPIPE, so the command reports the lost connection instead of dying silently
/// with status 141. Call first thing in `main`, before any thread exists.
pub fn quiet_sigpipe_on_broken_stdout() {
    extern "C" fn on_sigpipe(_: libc::c_int) {
        let mut fds = [
            libc::pollfd {
                fd: 1,
                events: 0,
                revents: 0,
            },
            libc::pollfd {
                fd: 2,
                events: 0,
                revents: 0,
            },
        ];
        // SAFETY: poll, signal and raise are async-signal-safe; `fds` lives on this
        // stack frame for the duration of the call.
        unsafe {
            if libc::poll(fds.as_mut_ptr(), 2, 0) > 0
                && fds.iter().any(|f| f.revents & libc::POLLERR != 0)
            {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
        }
    }
    // SAFETY: a zeroed sigaction with an empty mask is valid; the handler only makes
    // async-signal-safe calls.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigpipe as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGPIPE, &action, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod sigpipe_tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_broken_socket_gives_epipe_not_death() {
        super::quiet_sigpipe_on_broken_stdout();
        let (mut a, b) = UnixStream::pair().unwrap();
        drop(b);
        // std sends with MSG_NOSIGNAL; write(2), as libvirt's RPC client does, raises
        // SIGPIPE.
        use std::os::fd::AsRawFd;
        // SAFETY: a valid socket descriptor and a one-byte buffer.
        let n = unsafe { libc::write(a.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        let err = std::io::Error::last_os_error();
        assert_eq!(n, -1);
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
        assert!(a.write_all(b"y").is_err());
    }
}
