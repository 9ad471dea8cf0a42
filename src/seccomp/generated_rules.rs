//! The cost-curve benchmark's generated seccomp rules, shared by the benchmark
//! (benches/runtimes/curve.rs includes this file) and the generator's size tests
//! (tests_bpf.rs), so both measure the same profiles.

use serde_json::{json, Value};

/// Syscalls sealrun's default profile refuses (it names none of them): the generated rules
/// condition on these, so every runtime still runs the same programs as with the default.
const REFUSED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "delete_module",
    "finit_module",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "move_pages",
    "name_to_handle_at",
    "open_by_handle_at",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setdomainname",
    "sethostname",
    "settimeofday",
    "setns",
    "swapoff",
    "swapon",
    "sysfs",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
];

/// `n` rules to add to `default` (an OCI seccomp profile as JSON): `SCMP_ACT_ERRNO` with
/// `EACCES` when argument `i / pool % 6` equals `1000 + i`, on refused syscalls the profile
/// does not name and `known` knows.
pub fn extra_rules(default: &Value, n: usize, known: impl Fn(&str) -> bool) -> Vec<Value> {
    let named: Vec<&str> = default["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["names"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let pool: Vec<&str> = REFUSED
        .iter()
        .copied()
        .filter(|s| !named.contains(s) && known(s))
        .collect();
    (0..n)
        .map(|i| {
            json!({
                "names": [pool[i % pool.len()]],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": libc::EACCES,
                "args": [{"index": i / pool.len() % 6, "value": 1000 + i, "op": "SCMP_CMP_EQ"}],
            })
        })
        .collect()
}
