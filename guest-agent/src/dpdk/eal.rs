//! DPDK's Environment Abstraction Layer: initialised once per process from an
//! argument list, then shared through a cheap [`Eal`] handle.

use std::ffi::{c_char, CStr, CString};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use dpdk_sys as sys;

/// Program name passed to DPDK as `argv[0]`; callers give only the EAL options.
const PROGRAM_NAME: &str = "dpdk-agent";

/// A failed DPDK call: the value of `rte_errno` and its `rte_strerror` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RteError {
    /// `rte_errno` (or the negated return code) after the failing call.
    pub code: i32,
    /// `rte_strerror(code)`.
    pub message: String,
}

impl RteError {
    /// The error DPDK recorded in the calling thread's `rte_errno`.
    pub fn last() -> RteError {
        // SAFETY: reads the calling thread's rte_errno through the C shim.
        let code = unsafe { sys::dpdk_sys_rte_errno() };
        RteError::from_code(code)
    }

    /// The error for a negative errno-style return code (`-ENODEV` and the like).
    pub fn from_return(ret: i32) -> RteError {
        RteError::from_code(ret.saturating_abs())
    }

    fn from_code(code: i32) -> RteError {
        // SAFETY: rte_strerror accepts any value and returns a pointer to a static or
        // thread-local NUL-terminated string, copied out immediately.
        let message = unsafe { CStr::from_ptr(sys::rte_strerror(code)) }
            .to_string_lossy()
            .into_owned();
        RteError { code, message }
    }
}

impl fmt::Display for RteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (rte_errno {})", self.message, self.code)
    }
}

impl std::error::Error for RteError {}

/// Why EAL could not be initialised.
#[derive(Debug, thiserror::Error)]
pub enum EalError {
    /// An argument cannot be passed to C.
    #[error("EAL argument {0:?} contains a NUL byte")]
    ArgumentHasNul(String),
    /// `rte_eal_init` failed; DPDK's own log lines on stderr say more.
    #[error("EAL initialisation with arguments {args:?} failed")]
    Init {
        /// The EAL arguments that were tried.
        args: Vec<String>,
        /// What DPDK reported.
        #[source]
        cause: RteError,
    },
    /// EAL was already initialised (or a previous attempt failed): DPDK allows one
    /// attempt per process.
    #[error("EAL was already initialised in this process (earlier arguments: {previous:?})")]
    AlreadyInitialized {
        /// Arguments of the first attempt.
        previous: Vec<String>,
    },
}

struct EalState {
    args: Vec<String>,
    tsc_hz: u64,
}

/// Handle to the initialised EAL. Cheap to clone; EAL stays up for the whole process
/// (DPDK cannot be initialised twice, so it is never cleaned up behind a handle).
#[derive(Clone)]
pub struct Eal {
    state: Arc<EalState>,
}

impl fmt::Debug for Eal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Eal")
            .field("args", &self.state.args)
            .field("tsc_hz", &self.state.tsc_hz)
            .finish()
    }
}

/// Arguments of the first `Eal::init` call, successful or not.
static ATTEMPT: Mutex<Option<Vec<String>>> = Mutex::new(None);
/// The initialised EAL, once `rte_eal_init` has succeeded.
static INITIALISED: OnceLock<Eal> = OnceLock::new();
/// Nanoseconds per TSC cycle in 32.32 fixed point, set once EAL knows the TSC rate,
/// so a timestamp is one multiply instead of a 128-bit division.
static NS_PER_CYCLE_Q32: OnceLock<u64> = OnceLock::new();

impl Eal {
    /// Initialises EAL with `args` (EAL options only, without a program name), e.g.
    /// `["--no-huge", "--no-pci", "-l", "0", "--vdev=net_ring0"]`.
    ///
    /// Only the first call in a process can succeed; later calls return
    /// [`EalError::AlreadyInitialized`] (use [`Eal::get`] for the existing handle).
    pub fn init(args: &[String]) -> Result<Eal, EalError> {
        let mut attempt = ATTEMPT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(previous) = attempt.as_ref() {
            return Err(EalError::AlreadyInitialized {
                previous: previous.clone(),
            });
        }
        *attempt = Some(args.to_vec());

        let c_args = std::iter::once(PROGRAM_NAME)
            .chain(args.iter().map(String::as_str))
            .map(|arg| CString::new(arg).map_err(|_| EalError::ArgumentHasNul(arg.to_owned())))
            .collect::<Result<Vec<CString>, EalError>>()?;
        let mut argv: Vec<*mut c_char> = c_args.iter().map(|a| a.as_ptr().cast_mut()).collect();
        let argc = i32::try_from(argv.len()).map_err(|_| EalError::Init {
            args: args.to_vec(),
            cause: RteError::from_code(libc::E2BIG),
        })?;
        tracing::info!(?args, "initialising DPDK EAL");
        // DPDK logs to stdout by default; keep stdout for the program's own output.
        // SAFETY: sets DPDK's log stream to the process's stderr, valid for its life.
        unsafe { sys::dpdk_sys_log_to_stderr() };
        // SAFETY: argv holds pointers to NUL-terminated strings (c_args) that live
        // until the end of this function; EAL may reorder the pointer array, which we
        // own and do not read again. The ATTEMPT lock serialises calls.
        let parsed = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if parsed < 0 {
            return Err(EalError::Init {
                args: args.to_vec(),
                cause: RteError::last(),
            });
        }
        // parsed counts argv[0] too; EAL stops at the first non-option argument.
        let unparsed = usize::try_from(argc - 1 - parsed).unwrap_or(0);
        if unparsed > 0 {
            tracing::warn!(
                ignored = ?&args[args.len() - unparsed..],
                "EAL ignored trailing non-option arguments"
            );
        }
        // SAFETY: EAL is initialised, which calibrates the TSC frequency.
        let tsc_hz = unsafe { sys::rte_get_tsc_hz() }.max(1);
        let ns_per_cycle = (1_000_000_000u128 << 32) / u128::from(tsc_hz);
        let _ = NS_PER_CYCLE_Q32.set(u64::try_from(ns_per_cycle).unwrap_or(u64::MAX));
        let eal = Eal {
            state: Arc::new(EalState {
                args: args.to_vec(),
                tsc_hz,
            }),
        };
        let _ = INITIALISED.set(eal.clone());
        remove_runtime_dir_at_exit();
        Ok(eal)
    }

    /// The handle of an EAL initialised earlier in this process, if any.
    pub fn get() -> Option<Eal> {
        INITIALISED.get().cloned()
    }

    /// The DPDK version string, e.g. "DPDK 22.11.11" (works before EAL init).
    pub fn dpdk_version() -> String {
        // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
        unsafe { CStr::from_ptr(sys::rte_version()) }
            .to_string_lossy()
            .into_owned()
    }

    /// The arguments EAL was initialised with.
    pub fn args(&self) -> &[String] {
        &self.state.args
    }

    /// Ids of the ethdev ports EAL probed or that were created since.
    pub fn available_ports(&self) -> Vec<u16> {
        let max_ports = u16::try_from(sys::RTE_MAX_ETHPORTS).unwrap_or(u16::MAX);
        (0..max_ports)
            // SAFETY: EAL is initialised; any port id may be asked about.
            .filter(|&id| unsafe { sys::rte_eth_dev_is_valid_port(id) } == 1)
            .collect()
    }

    /// TSC ticks per second.
    pub fn tsc_hz(&self) -> u64 {
        self.state.tsc_hz
    }

    /// Whether EAL runs on hugepages (false with `--no-huge`).
    pub fn has_hugepages(&self) -> bool {
        // SAFETY: EAL is initialised.
        unsafe { sys::rte_eal_has_hugepages() != 0 }
    }
}

/// The runtime directory of this process's EAL, removed when the process exits.
static RUNTIME_DIR: OnceLock<std::path::PathBuf> = OnceLock::new();

/// A C string of an EAL name (bus, device, vdev arguments): they came from EAL
/// arguments that already went through C strings, so a NUL is never in them.
fn c_name(text: &str) -> CString {
    CString::new(text).unwrap_or_default()
}

/// Detaches `device` on `bus` from EAL (`rte_eal_hotplug_remove`): the kernel driver
/// keeps the NIC bound, but nothing in this process maps it. Its port must be closed.
pub fn hotplug_remove(_eal: &Eal, bus: &str, device: &str) -> Result<(), RteError> {
    let (c_bus, c_device) = (c_name(bus), c_name(device));
    // SAFETY: EAL is initialised (the `&Eal` token); both arguments are valid C
    // strings for the duration of the call.
    let ret = unsafe { sys::rte_eal_hotplug_remove(c_bus.as_ptr(), c_device.as_ptr()) };
    if ret < 0 {
        return Err(RteError::from_return(ret));
    }
    Ok(())
}

/// Attaches `device` on `bus` to EAL again with device arguments `args`
/// (`rte_eal_hotplug_add`).
pub fn hotplug_add(_eal: &Eal, bus: &str, device: &str, args: &str) -> Result<(), RteError> {
    let (c_bus, c_device, c_args) = (c_name(bus), c_name(device), c_name(args));
    // SAFETY: EAL is initialised (the `&Eal` token); the three arguments are valid C
    // strings that outlive the call (EAL copies what it keeps).
    let ret =
        unsafe { sys::rte_eal_hotplug_add(c_bus.as_ptr(), c_device.as_ptr(), c_args.as_ptr()) };
    if ret < 0 {
        return Err(RteError::from_return(ret));
    }
    Ok(())
}

/// DPDK creates a runtime directory per `--file-prefix` (`/var/run/dpdk/<prefix>`:
/// config, memory tables, the multi-process socket; about 1 MiB, in /run, which is
/// tmpfs on most systems) and leaves it behind at exit, so every agent run, test and
/// restarted service would add one. A primary process removes its own at normal exit
/// (also after SIGTERM in `serve`); a secondary leaves its primary's alone. Only a
/// killed process leaves one.
fn remove_runtime_dir_at_exit() {
    // SAFETY: EAL is initialised; both calls only read EAL's configuration, and the
    // returned string is EAL's static buffer, copied out at once.
    let dir = unsafe {
        if sys::rte_eal_process_type() != sys::RTE_PROC_PRIMARY {
            return;
        }
        let dir = sys::rte_eal_get_runtime_dir();
        if dir.is_null() {
            return;
        }
        CStr::from_ptr(dir).to_string_lossy().into_owned()
    };
    if dir.is_empty() || RUNTIME_DIR.set(dir.into()).is_err() {
        return;
    }
    extern "C" fn remove_runtime_dir() {
        if let Some(dir) = RUNTIME_DIR.get() {
            // Files EAL still has open or mapped stay valid for it after unlinking.
            if let Err(err) = std::fs::remove_dir_all(dir) {
                if err.kind() != std::io::ErrorKind::NotFound {
                    eprintln!(
                        "dpdk-agent: could not remove DPDK runtime directory {}: {err}",
                        dir.display()
                    );
                }
            }
        }
    }
    // SAFETY: registers a plain function with no arguments; it touches only a static
    // that is set before registration and never changed afterwards.
    if unsafe { libc::atexit(remove_runtime_dir) } != 0 {
        tracing::debug!("atexit refused the runtime directory clean-up");
    }
}

/// Monotonic nanoseconds from the TSC: what packets carry as their send timestamp.
/// Before EAL is initialised it returns 0.
#[inline]
pub fn now_ns() -> u64 {
    let Some(&ns_per_cycle) = NS_PER_CYCLE_Q32.get() else {
        return 0;
    };
    let cycles = tsc_cycles();
    let ns = (u128::from(cycles) * u128::from(ns_per_cycle)) >> 32;
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// The TSC: `rte_get_tsc_cycles`, which on x86-64 is one `rdtsc`, read inline there
/// because the fast paths stamp every burst.
#[inline]
fn tsc_cycles() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86-64.
        unsafe { std::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: rte_get_tsc_cycles only reads the cycle counter.
        unsafe { sys::rte_get_tsc_cycles() }
    }
}

/// Keeps the calling thread registered with EAL as an lcore (see
/// [`register_current_thread`]); unregisters it on Drop when it registered it.
#[derive(Debug)]
pub struct LcoreRegistration {
    registered_here: bool,
    /// Registration is per thread: the guard must be dropped on the thread that made it.
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Gives the calling thread an lcore id if it has none, so mempools use a per-lcore
/// cache for it: without one every mbuf alloc and free is an atomic operation on the
/// pool's shared ring, which costs several times the packet rate. EAL's own threads
/// already have an id; for them this does nothing. When every lcore id is taken, the
/// thread runs without a cache (slower, still correct).
pub fn register_current_thread() -> LcoreRegistration {
    // SAFETY: rte_lcore_id reads a thread-local; harmless on any thread.
    let has_lcore = unsafe { sys::rte_lcore_id() } != u32::MAX;
    let registered_here = !has_lcore
        && INITIALISED.get().is_some()
        && {
            // SAFETY: EAL is initialised; registration only touches this thread's state
            // and EAL's lcore table (under its own lock).
            let ret = unsafe { sys::rte_thread_register() };
            if ret != 0 {
                tracing::debug!(error = %RteError::last(), "no free lcore id; running without mempool cache");
            }
            ret == 0
        };
    LcoreRegistration {
        registered_here,
        _not_send: std::marker::PhantomData,
    }
}

impl Drop for LcoreRegistration {
    fn drop(&mut self) {
        if self.registered_here {
            // SAFETY: this thread registered itself above (the guard is !Send, so we
            // are on that thread); its lcore id is released for reuse.
            unsafe { sys::rte_thread_unregister() };
        }
    }
}
