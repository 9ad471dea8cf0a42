//! Which cgroups sealrun may kill in and remove: only what it created (issue 9, defect 2).
//!
//! A container whose `cgroupsPath` names an existing cgroup only joins it: a failed create,
//! `kill --all` and `delete --force` reach the container's own processes there, never the
//! others' (a bystander process the test puts there, or another container in a sub-cgroup),
//! and the directories stay. A cgroup with sub-cgroups sealrun did not create is refused.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::json;

/// The directory `rel` (an absolute cgroup path) in every hierarchy.
fn dirs(rel: &str) -> Vec<PathBuf> {
    host::cgroup_hierarchies()
        .iter()
        .map(|h| h.join(rel.trim_start_matches('/')))
        .collect()
}

/// Make the cgroup `rel` in every hierarchy, as another manager would (v1 cpuset dirs get
/// their parent's cpus and mems, or they could not take a process).
fn make_cgroup(rel: &str) {
    for h in host::cgroup_hierarchies() {
        let mut cur = h.clone();
        for part in rel.trim_start_matches('/').split('/') {
            let parent = cur.clone();
            cur.push(part);
            if !cur.is_dir() {
                fs::create_dir(&cur).unwrap_or_else(|e| panic!("{}: {e}", cur.display()));
            }
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let mine = cur.join(file);
                if mine.exists() && fs::read_to_string(&mine).unwrap().trim().is_empty() {
                    let theirs = fs::read_to_string(parent.join(file)).unwrap();
                    fs::write(&mine, theirs.trim()).unwrap();
                }
            }
        }
    }
}

/// A process of the test's own (`sleep`) moved into cgroup `rel` in every hierarchy.
fn bystander(t: &Test, rel: &str) -> Child {
    let child = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep");
    t.track_pid(child.id() as i32);
    for d in dirs(rel) {
        fs::write(d.join("cgroup.procs"), child.id().to_string())
            .unwrap_or_else(|e| panic!("move the bystander into {}: {e}", d.display()));
    }
    child
}

#[track_caller]
fn assert_alive(child: &mut Child, what: &str) {
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the test's own process died: {what}"
    );
}

#[track_caller]
fn assert_dirs(rel: &str, what: &str) {
    for d in dirs(rel) {
        assert!(d.is_dir(), "{} removed: {what}", d.display());
    }
}

fn end(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Container A runs in `<parent>/x/a`; `run` of B with `cgroupsPath <parent>/x` fails. A must
/// survive (it used to be killed: B's clean-up killed its cgroup recursively) and both
/// directories stay.
#[test]
fn a_failed_run_above_another_container_leaves_it_alone() {
    let t = Test::new();
    let x = format!("{}/x", t.cgroup_parent);
    let a = t.new_id("a");
    let mut ba = t.sleeper(&a);
    ba.set("/linux/cgroupsPath", json!(format!("{x}/a")));
    t.run_detached(&ba).ok();
    t.wait_status(&a, "running");
    let pid = t.pid_of(&a);
    let start = host::proc_stat(pid).expect("A's init").1;
    let b = t.new_id("b");
    let mut bb = t.bundle_for(&b);
    bb.set("/linux/cgroupsPath", json!(x));
    bb.args(&["/no/such/executable"]);
    t.run(&bb).failed();
    assert!(
        host::alive(pid, start),
        "container A was killed by B's failure"
    );
    assert_eq!(t.status(&a), "running");
    assert_dirs(&x, "B's failure");
    assert_dirs(&format!("{x}/a"), "B's failure");
    t.delete_force(&a).ok();
    t.assert_nothing_left();
}

/// A cgroup the test made and put a process of its own in: containers may join it (with a
/// warning), but `kill --all`, `delete --force` and a failed create reach only the container's
/// processes (its init and what runs in its pid namespace, `exec` included), and the
/// directory stays.
#[test]
fn a_joined_cgroup_keeps_the_processes_sealrun_did_not_start() {
    if !is_sealrun() {
        return skip(&sealrun_only(
            "runc's kill --all signals every process of a joined cgroup",
        ));
    }
    let t = Test::new();
    let rel = format!("{}/pre", t.cgroup_parent);
    make_cgroup(&rel);
    let mut other = bystander(&t, &rel);

    // kill --all, with a process exec'd into the container.
    let a = t.new_id("a");
    let mut b = t.sleeper(&a);
    b.set("/linux/cgroupsPath", json!(rel));
    let out = t.run_detached(&b);
    out.ok();
    t.wait_status(&a, "running");
    let warned = t.report().messages("warning").join("\n");
    assert!(
        warned.contains("linux.cgroupsPath")
            && warned.contains("already has processes")
            && warned.contains("container's cgroup is not empty"),
        "joining a busy cgroup warns: {warned}"
    );
    let pid_file = t.path("exec.pid");
    let pf = pid_file.to_str().unwrap();
    t.rt(&["exec", "--detach", "--pid-file", pf, &a, "sleep", "1001"])
        .ok();
    let exec_pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    t.track_pid(exec_pid);
    let exec_start = host::proc_stat(exec_pid).expect("exec'd process").1;
    let ps = t.rt(&["ps", "--format", "json", &a]);
    ps.ok();
    let mut listed: Vec<i64> = ps
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect();
    listed.sort();
    let mut want = vec![i64::from(t.pid_of(&a)), i64::from(exec_pid)];
    want.sort();
    assert_eq!(listed, want, "ps lists the container's processes only");
    // The freezer would stop the bystander too: refused.
    t.rt(&["pause", &a])
        .error_line(&["cgroup", "did not start"]);
    assert_eq!(t.status(&a), "running");
    t.rt(&["kill", "--all", &a, "KILL"]).ok();
    t.wait_status(&a, "stopped");
    assert!(
        host::wait_until(TIMEOUT, || !host::alive(exec_pid, exec_start)),
        "kill --all reaches the container's exec'd process"
    );
    assert_alive(&mut other, "kill --all");
    t.delete(&a).ok();
    assert_alive(&mut other, "delete");
    assert_dirs(&rel, "delete");

    // delete --force of a running container.
    let c = t.new_id("c");
    let mut b = t.sleeper(&c);
    b.set("/linux/cgroupsPath", json!(rel));
    t.run_detached(&b).ok();
    t.wait_status(&c, "running");
    t.delete_force(&c).ok();
    assert_alive(&mut other, "delete --force");
    assert_dirs(&rel, "delete --force");

    // A create that fails after the cgroup step.
    let d = t.new_id("d");
    let mut b = t.bundle_for(&d);
    b.set("/linux/cgroupsPath", json!(rel));
    b.args(&["/no/such/executable"]);
    t.create(&b).failed();
    assert_alive(&mut other, "a failed create");
    assert_dirs(&rel, "a failed create");

    end(other);
    t.assert_nothing_left();
}

/// An existing cgroup with a sub-cgroup sealrun did not create is refused with one error line
/// naming the field, and nothing is left (its directories are not removed either).
#[test]
fn a_cgroup_with_foreign_children_is_refused() {
    if !is_sealrun() {
        return skip(&sealrun_only("runc joins a cgroup whatever it contains"));
    }
    let t = Test::new();
    let y = format!("{}/y", t.cgroup_parent);
    make_cgroup(&format!("{y}/theirs"));
    let mut b = t.bundle();
    b.set("/linux/cgroupsPath", json!(y));
    let line = t
        .create(&b)
        .error_line(&["linux.cgroupsPath", "child cgroups"]);
    assert!(line.contains(&y), "{line}");
    assert_dirs(&format!("{y}/theirs"), "the refusal");
    t.assert_nothing_left();
}
