//! The machine description printed with every result: kernel, CPU, cores, memory, cgroup
//! layout, runtime versions and binary sizes.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::Subject;

fn first_line_of(cmd: &Path, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .and_then(|t| t.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once([':', '=']))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

/// Whether an ELF file has no program interpreter (statically linked).
pub fn is_static(path: &Path) -> bool {
    elf_interp(path) == Some(false)
}

/// Some(true) when the ELF file asks for a dynamic loader (PT_INTERP), Some(false) when not.
fn elf_interp(path: &Path) -> Option<bool> {
    let data = std::fs::read(path).ok()?;
    if data.get(..4)? != b"\x7fELF" || data.get(4) != Some(&2) {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(data.get(o..o + 2)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(data.get(o..o + 8)?.try_into().ok()?));
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    let mut interp = false;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        if data.get(at..at + 4)? == 3u32.to_le_bytes() {
            interp = true;
        }
    }
    Some(interp)
}

/// Size of the binary and of the shared libraries it loads (as `ldd` lists them).
fn sizes(bin: &Path) -> Value {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut libs = Vec::new();
    if elf_interp(bin) == Some(true) {
        if let Ok(o) = Command::new("ldd").arg(bin).output() {
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                let path = match line.split_once("=>") {
                    Some((_, rest)) => rest.split_whitespace().next(),
                    None => line
                        .split_whitespace()
                        .next()
                        .filter(|p| p.starts_with('/')),
                };
                if let Some(p) = path.filter(|p| p.starts_with('/')) {
                    libs.push(json!({"path": p, "bytes": size(Path::new(p))}));
                }
            }
        }
    }
    let lib_bytes: u64 = libs.iter().filter_map(|l| l["bytes"].as_u64()).sum();
    json!({
        "path": bin,
        "bytes": size(bin),
        "static": elf_interp(bin) == Some(false),
        "with_libs_bytes": size(bin) + lib_bytes,
        "libs": libs,
    })
}

fn cgroup_layout() -> String {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v1 = Vec::new();
    let mut v2 = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let point = pre.split_whitespace().nth(4).unwrap_or_default();
        let mut post = post.split_whitespace();
        match post.next() {
            Some("cgroup2") => v2.push(point.to_string()),
            Some("cgroup") => v1.push(point.rsplit('/').next().unwrap_or_default().to_string()),
            _ => {}
        }
    }
    match (v1.is_empty(), v2.is_empty()) {
        (true, false) => format!("cgroup v2 only ({})", v2.join(", ")),
        (false, true) => format!("cgroup v1 only ({})", v1.join(", ")),
        (false, false) => format!(
            "hybrid: v1 {} + cgroup2 at {} (a tmpfs hides the cgroup2 mount inside the wrapper)",
            v1.join(","),
            v2.join(", ")
        ),
        (true, true) => "no cgroup mounts".into(),
    }
}

/// The 1-, 5- and 15-minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Everything about the machine and the runtimes.
pub fn describe(subjects: &[Subject]) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let mem_kb: u64 = field(&meminfo, "MemTotal")
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let mut runtimes = serde_json::Map::new();
    for s in subjects.iter().filter(|s| s.peer) {
        let version = first_line_of(&s.bin, &["--version"]);
        let commit = Command::new(&s.bin)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| field(&String::from_utf8_lossy(&o.stdout), "commit"))
            .unwrap_or_default();
        let mut v = sizes(&s.bin);
        v["version"] = json!(version);
        v["commit"] = json!(commit);
        runtimes.insert(s.name.clone(), v);
    }
    json!({
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "os": field(&os, "PRETTY_NAME").unwrap_or_default(),
        "cpu": field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": (mem_kb as f64 / 1048576.0 * 10.0).round() / 10.0,
        "cgroups": cgroup_layout(),
        "runtimes": runtimes,
    })
}

/// One paragraph for the terminal and the report.
pub fn summary(m: &Value) -> String {
    let mut s = format!(
        "{} · kernel {} · {} · {} cores · {} GiB · {}",
        m["os"].as_str().unwrap_or_default(),
        m["kernel"].as_str().unwrap_or_default(),
        m["cpu"].as_str().unwrap_or_default(),
        m["cores"],
        m["memory_gib"],
        m["cgroups"].as_str().unwrap_or_default(),
    );
    if let Some(rts) = m["runtimes"].as_object() {
        for (name, v) in rts {
            let commit = v["commit"].as_str().unwrap_or_default();
            s.push_str(&format!(
                "\n{name}: {}{}",
                v["version"].as_str().unwrap_or_default(),
                if commit.is_empty() {
                    String::new()
                } else {
                    format!(" (commit {commit})")
                }
            ));
        }
    }
    s
}
