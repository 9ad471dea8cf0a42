//! Self-tests of the harness (tests/common): its leftover detection must be able to fail, and
//! its cleanup must leave nothing.

mod common;

use common::*;

#[test]
fn nothing_left_detects_a_live_container_then_passes_after_delete() {
    let t = Test::new();
    t.create_sleeper(t.id());
    let pid = t.pid_of(t.id());
    assert!(pid > 0);
    let left = t.leftovers(std::time::Duration::ZERO);
    assert!(
        left.iter().any(|l| l.starts_with("state dir")),
        "the state dir must count as left behind: {left:?}"
    );
    assert!(
        left.iter()
            .any(|l| l.starts_with(&format!("process {pid} "))),
        "the init must count as left behind: {left:?}"
    );
    t.delete_force(t.id()).ok();
    t.assert_nothing_left();
}

#[test]
fn drop_cleans_up_a_running_container() {
    let (dir, parent, root, id);
    {
        let t = Test::new();
        t.run_sleeper(t.id());
        dir = t.dir.clone();
        parent = t.cgroup_parent.clone();
        root = t.root.clone();
        id = t.id().to_string();
    }
    assert!(!dir.exists(), "temp dir removed");
    assert!(!root.join(&id).exists());
    assert!(host::cgroup_dirs(&parent).is_empty(), "cgroups removed");
}

#[test]
fn probe_reports_requests_and_exit_code() {
    let t = Test::new();
    let mut b = t.bundle();
    b.probe_args(&[
        "stat=/dev/null",
        "read=/etc/group",
        "write=/nope",
        "ls=/etc",
        "sysctl=kernel.hostname",
        "exit=7",
    ]);
    let out = t.run(&b);
    assert_eq!(out.code(), Some(7), "{out}");
    let f = out.probe_facts();
    assert_eq!(f["stat"]["/dev/null"]["type"], "char");
    assert_eq!(f["stat"]["/dev/null"]["major"], 1);
    assert_eq!(f["stat"]["/dev/null"]["minor"], 3);
    assert!(f["read"]["/etc/group"]
        .as_str()
        .unwrap()
        .contains("root:x:0:"));
    assert_eq!(
        f["write"]["/nope"]["errno"], 30,
        "EROFS on a read-only root"
    );
    assert_eq!(f["ls"]["/etc"], serde_json::json!(["group", "passwd"]));
    assert_eq!(f["sysctl"]["kernel.hostname"], "sealrun-test");
    assert_ne!(f["ns"]["net"], host_ns("net"));
    t.assert_nothing_left();
}
