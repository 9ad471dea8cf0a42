//! The native architecture: its syscall table (name → number), its `AUDIT_ARCH_*` value, and
//! the other syscall tables a process on it can reach: i386 on x86_64, which a profile naming
//! `SCMP_ARCH_X86` addresses with the same rules, and the others, which every filter refuses.

use oci_spec::runtime::Arch;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod i386;
#[cfg(target_arch = "x86_64")]
mod x86_64;

/// `AUDIT_ARCH_X86_64`.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `AUDIT_ARCH_I386` (what `int 0x80` reports on x86_64).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// `__X32_SYSCALL_BIT`: x32 calls enter the x86_64 table with this bit set in the number.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// `AUDIT_ARCH_AARCH64`.
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
/// `AUDIT_ARCH_ARM` (32-bit compat tasks on aarch64).
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;

/// What sealrun knows about the architecture it runs on.
#[derive(Debug)]
pub(crate) struct NativeArch {
    /// Name used in messages (`x86_64`).
    pub name: &'static str,
    /// The runtime-spec constant for it (`SCMP_ARCH_X86_64`).
    pub oci: Arch,
    /// `AUDIT_ARCH_*` that `seccomp_data.arch` carries for native calls.
    pub audit_arch: u32,
    /// Bit that selects another ABI inside the native table (x32), refused by every filter.
    pub abi_bit: Option<u32>,
    /// Other syscall tables this host can run without a table here (x32 on x86_64, arm on
    /// aarch64): listed in `architectures` they are accepted, but their calls are refused.
    pub compat: &'static [Arch],
    /// `AUDIT_ARCH_*` values of those other tables (what their calls carry).
    #[cfg_attr(not(test), allow(dead_code))]
    pub compat_audit: &'static [u32],
    /// The other table a profile can address when `architectures` names it (i386 on
    /// x86_64): its calls then get the profile's rules, compiled from the same names.
    pub companion: Option<&'static NativeArch>,
    table: &'static [(&'static str, u32)],
}

impl NativeArch {
    /// The syscall number of `name`, if this architecture has it.
    pub fn lookup(&self, name: &str) -> Option<u32> {
        self.table
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| self.table[i].1)
    }

    /// Every (name, number) of the table, sorted by name.
    #[cfg(test)]
    pub fn table(&self) -> &'static [(&'static str, u32)] {
        self.table
    }
}

#[cfg(target_arch = "x86_64")]
static NATIVE: NativeArch = NativeArch {
    name: "x86_64",
    oci: Arch::ScmpArchX86_64,
    audit_arch: AUDIT_ARCH_X86_64,
    abi_bit: Some(X32_SYSCALL_BIT),
    compat: &[Arch::ScmpArchX32],
    compat_audit: &[AUDIT_ARCH_I386],
    companion: Some(&I386),
    table: x86_64::TABLE,
};

/// i386 through `int 0x80` (or a 32-bit binary) on x86_64.
#[cfg(target_arch = "x86_64")]
static I386: NativeArch = NativeArch {
    name: "i386",
    oci: Arch::ScmpArchX86,
    audit_arch: AUDIT_ARCH_I386,
    abi_bit: None,
    compat: &[],
    compat_audit: &[],
    companion: None,
    table: i386::TABLE,
};

#[cfg(target_arch = "aarch64")]
static NATIVE: NativeArch = NativeArch {
    name: "aarch64",
    oci: Arch::ScmpArchAarch64,
    audit_arch: AUDIT_ARCH_AARCH64,
    abi_bit: None,
    compat: &[Arch::ScmpArchArm],
    compat_audit: &[AUDIT_ARCH_ARM],
    companion: None,
    table: aarch64::TABLE,
};

/// The native architecture, or `None` where sealrun has no syscall table .
pub(crate) fn native() -> Option<&'static NativeArch> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        Some(&NATIVE)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names strictly sorted (lookup bisects) and no number twice.
    fn assert_sorted_and_unique(arch: &NativeArch) {
        for pair in arch.table().windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} !< {}", pair[0].0, pair[1].0);
        }
        let mut numbers: Vec<u32> = arch.table().iter().map(|e| e.1).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), arch.table().len(), "duplicate numbers");
    }

    #[test]
    fn table_is_sorted_and_unique() {
        assert_sorted_and_unique(native().expect("native table"));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn i386_table_is_sorted_and_unique() {
        let arch = native().and_then(|a| a.companion).expect("i386 table");
        assert_sorted_and_unique(arch);
        assert_eq!(arch.lookup("getpid"), Some(20));
        assert_eq!(arch.lookup("socketcall"), Some(102));
        assert_eq!(arch.lookup("arch_prctl"), Some(384));
    }

    #[test]
    fn lookup_matches_libc() {
        let arch = native().expect("native table");
        let known = [
            ("read", libc::SYS_read),
            ("write", libc::SYS_write),
            ("openat", libc::SYS_openat),
            ("clone", libc::SYS_clone),
            ("clone3", libc::SYS_clone3),
            ("seccomp", libc::SYS_seccomp),
            ("personality", libc::SYS_personality),
            ("socket", libc::SYS_socket),
            ("ioctl", libc::SYS_ioctl),
            ("getppid", libc::SYS_getppid),
            ("pipe2", libc::SYS_pipe2),
            ("fchmodat2", libc::SYS_fchmodat2),
            ("mseal", libc::SYS_mseal),
            ("exit_group", libc::SYS_exit_group),
        ];
        for (name, nr) in known {
            assert_eq!(arch.lookup(name), Some(nr as u32), "{name}");
        }
        assert_eq!(arch.lookup("no_such_syscall"), None);
        assert_eq!(arch.lookup(""), None);
    }
}
