//! Checks the hand-written C shim and the generated static-inline wrappers against
//! the real DPDK calls, on a real EAL (no hugepages, a net_ring loopback port).
//!
//! EAL can be initialised once per process, so this file has a single test.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::path::PathBuf;
use std::ptr;

use dpdk_sys as sys;

fn eal_args() -> Vec<CString> {
    let prefix = format!("dpdk-sys-shims-{}", std::process::id());
    [
        "dpdk-sys-test",
        "--no-huge",
        "--no-pci",
        "-l",
        "0",
        "-m",
        "128",
        "--vdev=net_ring0",
        "--log-level=lib.eal:error",
    ]
    .iter()
    .map(|arg| CString::new(*arg).expect("no NUL"))
    .chain([CString::new(format!("--file-prefix={prefix}")).expect("no NUL")])
    .collect()
}

fn init_eal() -> i32 {
    let args = eal_args();
    let mut argv: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    let argc = i32::try_from(argv.len()).expect("few args");
    // SAFETY: argv points at NUL-terminated strings that outlive the call; EAL may
    // permute the pointer array, which we own and do not reuse.
    unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) }
}

/// EAL leaves its runtime directory (/var/run/dpdk/<prefix>) behind; the test removes
/// the one it made, also when an assertion fails.
struct RemovedOnDrop(PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn shims_match_real_dpdk_calls() {
    // SAFETY: sets DPDK's log stream to stderr; allowed before rte_eal_init.
    assert_eq!(unsafe { sys::dpdk_sys_log_to_stderr() }, 0);
    assert!(init_eal() >= 0, "rte_eal_init failed");
    // SAFETY: EAL is initialised; the result is EAL's static string, copied at once.
    let runtime_dir = unsafe { CStr::from_ptr(sys::rte_eal_get_runtime_dir()) };
    let _runtime_dir = RemovedOnDrop(PathBuf::from(runtime_dir.to_string_lossy().as_ref()));

    // rte_errno: a second rte_eal_init fails and sets the thread's rte_errno to
    // EALREADY; the shim must read that value, not some unrelated static.
    // SAFETY: plain setter/getter of the calling thread's rte_errno.
    unsafe { sys::dpdk_sys_set_rte_errno(0) };
    assert_eq!(init_eal(), -1, "second rte_eal_init must fail");
    // SAFETY: reads the calling thread's rte_errno.
    let errno = unsafe { sys::dpdk_sys_rte_errno() };
    assert_eq!(errno, i32::try_from(sys::EALREADY).expect("small"));
    // SAFETY: rte_strerror returns a pointer to a static or thread-local string.
    let text = unsafe { CStr::from_ptr(sys::rte_strerror(errno)) };
    assert!(!text.to_bytes().is_empty());
    // SAFETY: see above.
    unsafe { sys::dpdk_sys_set_rte_errno(12345) };
    // SAFETY: see above.
    assert_eq!(unsafe { sys::dpdk_sys_rte_errno() }, 12345);

    // Macro shims against the values bindgen evaluated from the same headers.
    // SAFETY: the shims return compile-time constants.
    unsafe {
        assert_eq!(
            u32::from(sys::dpdk_sys_mbuf_default_buf_size()),
            sys::RTE_MBUF_DEFAULT_BUF_SIZE
        );
        assert_eq!(
            u32::from(sys::dpdk_sys_pktmbuf_headroom()),
            sys::RTE_PKTMBUF_HEADROOM
        );
        assert_eq!(
            u32::from(sys::dpdk_sys_max_ethports()),
            sys::RTE_MAX_ETHPORTS
        );
        assert_eq!(
            u32::from(sys::dpdk_sys_eth_name_max_len()),
            sys::RTE_ETH_NAME_MAX_LEN
        );
    }

    // TSC wrappers: the inline rte_get_tsc_cycles advances, rte_get_tsc_hz is known.
    // SAFETY: EAL is initialised; both only read the TSC / calibrated frequency.
    let (hz, t0) = unsafe { (sys::rte_get_tsc_hz(), sys::rte_get_tsc_cycles()) };
    std::thread::sleep(std::time::Duration::from_millis(10));
    // SAFETY: as above.
    let t1 = unsafe { sys::rte_get_tsc_cycles() };
    assert!(hz > 0);
    let elapsed_ms = (t1 - t0) * 1000 / hz;
    assert!(
        (5..1000).contains(&elapsed_ms),
        "10 ms measured as {elapsed_ms} ms"
    );

    // Mbuf wrappers and mtod/len shims.
    let pool_name = CString::new("shim_pool").expect("no NUL");
    // SAFETY: EAL is initialised; the name is a valid C string.
    let pool = unsafe {
        sys::rte_pktmbuf_pool_create(
            pool_name.as_ptr(),
            1023,
            0,
            0,
            u16::try_from(sys::RTE_MBUF_DEFAULT_BUF_SIZE).expect("fits"),
            sys::SOCKET_ID_ANY,
        )
    };
    assert!(!pool.is_null(), "rte_pktmbuf_pool_create failed");
    // SAFETY: pool is a valid mbuf pool.
    let mbuf = unsafe { sys::rte_pktmbuf_alloc(pool) };
    assert!(!mbuf.is_null());
    // SAFETY: mbuf is a freshly allocated, valid mbuf we own.
    unsafe {
        let data = sys::rte_pktmbuf_append(mbuf, 100);
        assert!(!data.is_null());
        let expected = (*mbuf)
            .buf_addr
            .cast::<u8>()
            .add(usize::from((*mbuf).data_off));
        assert_eq!(sys::dpdk_sys_pktmbuf_mtod(mbuf).cast::<u8>(), expected);
        assert_eq!(data.cast::<u8>(), expected);
        assert_eq!(sys::dpdk_sys_pktmbuf_pkt_len(mbuf), 100);
        assert_eq!((*mbuf).pkt_len, 100);
        assert_eq!(sys::dpdk_sys_pktmbuf_data_len(mbuf), 100);
        assert_eq!((*mbuf).data_len, 100);
        ptr::write_bytes(data.cast::<u8>(), 0xab, 100);
    }

    // dpdk_sys_pktmbuf_alloc_bulk_sized: every mbuf of the pool, dirtied and freed
    // first, comes back as a clean packet of the asked length; asking for more than
    // the pool has takes nothing.
    // SAFETY: pool is a valid mbuf pool; every mbuf taken is owned here and freed
    // once; the slices hold `free` valid pointers after a successful bulk call.
    unsafe {
        let free = sys::rte_mempool_avail_count(pool);
        let mut mbufs = vec![ptr::null_mut::<sys::rte_mbuf>(); free as usize];
        assert_eq!(
            sys::rte_pktmbuf_alloc_bulk(pool, mbufs.as_mut_ptr(), free),
            0
        );
        for &m in &mbufs {
            (*m).data_off = 0;
            (*m).ol_flags = sys::RTE_MBUF_F_TX_IP_CKSUM;
            (*m).data_len = 7;
            (*m).pkt_len = 7;
        }
        sys::rte_pktmbuf_free_bulk(mbufs.as_mut_ptr(), free);
        assert!(sys::dpdk_sys_pktmbuf_alloc_bulk_sized(pool, mbufs.as_mut_ptr(), free + 1, 64) < 0);
        assert_eq!(sys::rte_mempool_avail_count(pool), free, "nothing taken");
        assert_eq!(
            sys::dpdk_sys_pktmbuf_alloc_bulk_sized(pool, mbufs.as_mut_ptr(), free, 64),
            0
        );
        for &m in &mbufs {
            assert_eq!(u32::from((*m).data_off), sys::RTE_PKTMBUF_HEADROOM);
            assert_eq!((*m).ol_flags, 0);
            assert_eq!((*m).data_len, 64);
            assert_eq!((*m).pkt_len, 64);
            assert_eq!((*m).nb_segs, 1);
            assert!((*m).next.is_null());
        }
        sys::rte_pktmbuf_free_bulk(mbufs.as_mut_ptr(), free);

        // dpdk_sys_pktmbuf_free_burst: plain mbufs go straight back; a shared one only
        // loses a reference, and a chain goes back whole.
        let mut burst = [ptr::null_mut::<sys::rte_mbuf>(); 4];
        assert_eq!(
            sys::dpdk_sys_pktmbuf_alloc_bulk_sized(pool, burst.as_mut_ptr(), 4, 64),
            0
        );
        sys::dpdk_sys_pktmbuf_free_burst(burst.as_mut_ptr(), 4);
        assert_eq!(sys::rte_mempool_avail_count(pool), free);
        assert_eq!(
            sys::dpdk_sys_pktmbuf_alloc_bulk_sized(pool, burst.as_mut_ptr(), 4, 64),
            0
        );
        let shared = burst[2];
        sys::rte_mbuf_refcnt_set(shared, 2);
        sys::dpdk_sys_pktmbuf_free_burst(burst.as_mut_ptr(), 4);
        assert_eq!(sys::rte_mempool_avail_count(pool), free - 1);
        assert_eq!(sys::rte_mbuf_refcnt_read(shared), 1);
        sys::rte_pktmbuf_free(shared);
        assert_eq!(sys::rte_mempool_avail_count(pool), free);
        assert_eq!(
            sys::dpdk_sys_pktmbuf_alloc_bulk_sized(pool, burst.as_mut_ptr(), 2, 64),
            0
        );
        assert_eq!(sys::rte_pktmbuf_chain(burst[0], burst[1]), 0);
        sys::dpdk_sys_pktmbuf_free_burst(burst.as_mut_ptr(), 1);
        assert_eq!(sys::rte_mempool_avail_count(pool), free);
    }

    // rx/tx burst wrappers on net_ring0, which loops tx back to rx.
    // SAFETY: port 0 exists (net_ring0); the config structs are plain data.
    unsafe {
        assert_eq!(sys::rte_eth_dev_count_avail(), 1);
        let conf: sys::rte_eth_conf = std::mem::zeroed();
        assert_eq!(sys::rte_eth_dev_configure(0, 1, 1, &conf), 0);
        assert_eq!(
            sys::rte_eth_rx_queue_setup(0, 0, 64, 0, ptr::null(), pool),
            0
        );
        assert_eq!(sys::rte_eth_tx_queue_setup(0, 0, 64, 0, ptr::null()), 0);
        assert_eq!(sys::rte_eth_dev_start(0), 0);
        let mut tx = [mbuf];
        assert_eq!(sys::rte_eth_tx_burst(0, 0, tx.as_mut_ptr(), 1), 1);
        let mut rx = [ptr::null_mut::<sys::rte_mbuf>(); 4];
        assert_eq!(sys::rte_eth_rx_burst(0, 0, rx.as_mut_ptr(), 4), 1);
        assert_eq!(sys::dpdk_sys_pktmbuf_pkt_len(rx[0]), 100);
        assert_eq!(*sys::dpdk_sys_pktmbuf_mtod(rx[0]).cast::<u8>(), 0xab);
        sys::rte_pktmbuf_free(rx[0]);
        assert_eq!(sys::rte_eth_dev_stop(0), 0);
        assert_eq!(sys::rte_eth_dev_close(0), 0);
        // Every mbuf is back in the pool.
        assert_eq!(sys::rte_mempool_avail_count(pool), 1023);
        sys::rte_mempool_free(pool);
        assert_eq!(sys::rte_eal_cleanup(), 0);
    }
}
