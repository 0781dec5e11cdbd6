//! The host's few calls into libc that nix does not cover safely: the KVM API version
//! ioctl and the SIGPIPE handler. Every other system call goes through std or nix.

use std::os::fd::RawFd;

/// `KVM_GET_API_VERSION` on an open /dev/kvm (12 on every kernel that has KVM).
pub fn kvm_api_version(fd: RawFd) -> i32 {
    const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
    // SAFETY: KVM_GET_API_VERSION takes no argument and only returns an int; the
    // caller's fd is a valid open file for the duration of the call.
    unsafe { libc::ioctl(fd, KVM_GET_API_VERSION, 0) }
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
