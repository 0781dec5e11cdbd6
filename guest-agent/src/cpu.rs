//! What kind of CPU the agent runs on: under QEMU's TCG (software emulation) a
//! busy-polling vCPU competes for the host's cores with the QEMU thread that delivers
//! its packets, so the receive loops idle differently there.

use std::sync::OnceLock;

/// The CPUID hypervisor vendor QEMU reports under TCG.
const TCG_VENDOR: &[u8; 12] = b"TCGTCGTCGTCG";

/// The hypervisor vendor string from CPUID leaf 0x4000_0000, when the CPU says it
/// runs under a hypervisor ("KVMKVMKVM", "TCGTCGTCGTCG", "Microsoft Hv", ...).
pub fn hypervisor_vendor() -> Option<[u8; 12]> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        let features = __cpuid(1);
        // ECX bit 31: "hypervisor present" (always 0 on bare metal).
        if features.ecx & (1 << 31) == 0 {
            return None;
        }
        // With the hypervisor bit set, leaves 0x4000_0000.. are the hypervisor's.
        let leaf = __cpuid(0x4000_0000);
        let mut vendor = [0u8; 12];
        vendor[0..4].copy_from_slice(&leaf.ebx.to_le_bytes());
        vendor[4..8].copy_from_slice(&leaf.ecx.to_le_bytes());
        vendor[8..12].copy_from_slice(&leaf.edx.to_le_bytes());
        Some(vendor)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Whether the CPU is QEMU's TCG emulation (checked once).
pub fn is_tcg() -> bool {
    static TCG: OnceLock<bool> = OnceLock::new();
    *TCG.get_or_init(|| hypervisor_vendor().is_some_and(|vendor| &vendor == TCG_VENDOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_is_stable_and_tcg_follows_it() {
        let vendor = hypervisor_vendor();
        assert_eq!(vendor, hypervisor_vendor());
        assert_eq!(is_tcg(), vendor.as_ref() == Some(TCG_VENDOR));
    }
}
