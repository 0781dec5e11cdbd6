//! Serial console logs (in the pool directory) and QEMU logs: tails for failure reports
//! and `logs N`.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The last `lines` lines of `path` (reads at most the last 256 KiB), with terminal
/// control sequences removed.
pub fn tail(path: &Path, lines: usize) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(256 * 1024);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let text = clean(&String::from_utf8_lossy(&buf));
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    Ok(all[from..].join("\n"))
}

/// Removes ANSI escape sequences and carriage returns (systemd and the kernel emit them).
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // CSI: parameters until a final byte in @..~
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_returns_the_last_lines_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("console.log");
        let mut text = String::new();
        for i in 0..100 {
            text.push_str(&format!("line {i}\r\n"));
        }
        text.push_str("\u{1b}[0;32m  OK  \u{1b}[0m] Started dpdk-agent\r\n");
        std::fs::write(&p, text).unwrap();
        let t = tail(&p, 3).unwrap();
        assert_eq!(t, "line 98\nline 99\n  OK  ] Started dpdk-agent");
        assert!(tail(&dir.path().join("missing"), 3).is_err());
    }
}
