//! Generates DPDK bindings from the installed headers, compiles the C wrappers for
//! DPDK's static inline fast-path functions plus a small hand-written shim, and links
//! a curated set of DPDK libraries statically.
//!
//! DPDK drivers, buses and mempool handlers register themselves from constructors, so
//! their archives must be linked whole: otherwise the linker drops the unreferenced
//! objects and EAL finds no ports ("failed to parse device net_ring0") or no mempool
//! handler. The `pkg-config` crate loses `--whole-archive`, so the flags are read here.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// DPDK libraries linked whole-archive. Enough for virtio-net in a guest plus the
/// virtual devices tests and benchmarks use (net_ring, net_null, net_memif,
/// net_af_packet). net_memif needs hash and rcu; net_virtio needs pci and bus_pci.
const DPDK_LIBS: &[&str] = &[
    "eal",
    "kvargs",
    "telemetry",
    "ring",
    "mempool",
    "mempool_ring",
    "mbuf",
    "net",
    "meter",
    "ethdev",
    "pci",
    "bus_pci",
    "bus_vdev",
    "hash",
    "rcu",
    "net_virtio",
    "net_ring",
    "net_null",
    "net_memif",
    "net_af_packet",
];

/// Non-DPDK libraries DPDK needs, linked statically so the agent runs on a guest
/// without them (glibc 2.36 has no strlcpy, hence libbsd, which needs libmd).
const SYSTEM_STATIC_LIBS: &[&str] = &["numa", "bsd", "md"];

fn pkg_config(args: &[&str]) -> String {
    let output = Command::new("pkg-config")
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("running pkg-config {args:?}: {err} (install pkg-config)"));
    assert!(
        output.status.success(),
        "pkg-config {args:?} failed: {} (install libdpdk-dev)",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("pkg-config output is UTF-8")
}

/// Static archive names (`librte_X.a`) that `pkg-config --static --libs libdpdk`
/// lists, so a curated library missing from this DPDK install fails the build with a
/// clear message instead of an obscure link error.
fn archives_from_pkg_config(static_libs: &str) -> Vec<String> {
    static_libs
        .split_whitespace()
        .filter_map(|flag| flag.strip_prefix("-l:lib"))
        .filter_map(|archive| archive.strip_suffix(".a"))
        .map(str::to_owned)
        .collect()
}

fn main() {
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let csrc = manifest_dir.join("csrc");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", csrc.display());
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let version = pkg_config(&["--modversion", "libdpdk"]);
    println!("cargo:rustc-env=DPDK_SYS_DPDK_VERSION={}", version.trim());
    let cflags: Vec<String> = pkg_config(&["--cflags", "libdpdk"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let lib_dir = pkg_config(&["--variable=libdir", "libdpdk"])
        .trim()
        .to_owned();
    let available = archives_from_pkg_config(&pkg_config(&["--static", "--libs", "libdpdk"]));

    generate_bindings(&csrc, &out_dir, &cflags);
    compile_c(&csrc, &out_dir, &cflags);
    link_dpdk(&lib_dir, &available);
}

fn generate_bindings(csrc: &Path, out_dir: &Path, cflags: &[String]) {
    let wrapper_header = csrc.join("wrapper.h");
    let bindings = bindgen::Builder::default()
        .header(wrapper_header.to_string_lossy())
        .clang_args(cflags)
        .clang_arg(format!("-I{}", csrc.display()))
        // Only what the safe layer uses: unrestricted, bindgen would also wrap clang's
        // SIMD intrinsics, and that C does not compile.
        .allowlist_function("rte_eal_(init|cleanup|process_type|get_runtime_dir|has_hugepages|iova_mode|hotplug_add|hotplug_remove)")
        .allowlist_function("rte_strerror|rte_version|rte_exit")
        .allowlist_function("rte_lcore_id|rte_socket_id|rte_get_main_lcore")
        .allowlist_function("rte_thread_register|rte_thread_unregister")
        .allowlist_function("rte_get_tsc_hz|rte_get_tsc_cycles|rte_rdtsc|rte_rdtsc_precise")
        .allowlist_function("rte_eth_.*")
        .allowlist_function("rte_pktmbuf_.*")
        .allowlist_function("rte_mbuf_refcnt_read|rte_mbuf_refcnt_set|rte_mbuf_raw_free")
        .allowlist_function("rte_mempool_(free|avail_count|in_use_count|lookup|full|empty)")
        .allowlist_function("rte_ring_(create|free|lookup|count)")
        .allowlist_function("rte_dev_(probe|remove|name)")
        .allowlist_function("dpdk_sys_.*")
        .allowlist_type("rte_eth_.*|rte_ether_addr|rte_mempool|rte_mbuf|rte_ring")
        .allowlist_var("RTE_ETH_.*|RTE_MBUF_.*|RTE_PKTMBUF_.*|RTE_MAX_.*|RTE_MEMPOOL_.*")
        .allowlist_var("RTE_RING_.*|SOCKET_ID_ANY|RTE_ETHER_.*|E[A-Z0-9]+")
        // rte_errno is a __thread variable: as a plain static it links and then
        // segfaults when read. dpdk_sys_rte_errno() reads it instead.
        .blocklist_item("per_lcore_.*")
        // Packed structs containing aligned ones cannot be expressed in Rust.
        .opaque_type("rte_arp_hdr|rte_arp_ipv4|rte_ether_hdr|rte_vlan_hdr")
        .wrap_static_fns(true)
        .wrap_static_fns_path(out_dir.join("static_fns"))
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen could not generate DPDK bindings (is libclang-dev installed?)");
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("writing bindings.rs");
}

fn compile_c(csrc: &Path, out_dir: &Path, cflags: &[String]) {
    let mut build = cc::Build::new();
    build
        .file(out_dir.join("static_fns.c"))
        .file(csrc.join("shim.c"))
        .include(csrc)
        .warnings(false)
        .opt_level(3);
    // pkg-config's cflags carry `-include rte_config.h` and `-march=corei7` (SSE4.2),
    // which the inline functions rely on.
    for flag in cflags {
        build.flag(flag);
    }
    build.compile("dpdk_sys_shim");
}

fn link_dpdk(lib_dir: &str, available: &[String]) {
    println!("cargo:rustc-link-search=native={lib_dir}");
    for lib in DPDK_LIBS {
        let archive = format!("rte_{lib}");
        assert!(
            available.contains(&archive)
                || Path::new(lib_dir).join(format!("lib{archive}.a")).exists(),
            "DPDK static library lib{archive}.a not found in {lib_dir}"
        );
        println!("cargo:rustc-link-lib=static:+whole-archive,-bundle={archive}");
    }
    for lib in SYSTEM_STATIC_LIBS {
        println!("cargo:rustc-link-lib=static:-bundle={lib}");
    }
    // Everything else DPDK needs is in glibc (pthread, dl, rt are part of libc 2.34+).
    for lib in ["m", "dl", "pthread"] {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
}
