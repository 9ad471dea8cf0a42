//! Builds a busybox image as an OCI image layout tarball, locally, from Debian's busybox-static:
//! one uncompressed layer with /bin/busybox, a symlink per applet, /etc/passwd and /etc/group.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

/// The busybox binary the image is built from (package busybox-static).
pub const BUSYBOX: &str = "/bin/busybox";

/// Tag given by the layout's `org.opencontainers.image.ref.name`; `ctr images import
/// --base-name NAME` turns it into `NAME:latest`.
pub const TAG: &str = "latest";

/// Writes the layout under `dir` and returns the path of its tar archive.
pub fn build_oci_archive(dir: &Path) -> PathBuf {
    build_oci_archive_cmd(dir, &["sh"])
}

/// `build_oci_archive` with `cmd` as the image's default command (a pause image for the CRI
/// tests: `sleep` for ever).
pub fn build_oci_archive_cmd(dir: &Path, cmd: &[&str]) -> PathBuf {
    let layer_root = dir.join("layer");
    let bin = layer_root.join("bin");
    let etc = layer_root.join("etc");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(&etc).unwrap();
    for sub in ["tmp", "proc", "sys", "dev", "root"] {
        fs::create_dir_all(layer_root.join(sub)).unwrap();
    }
    fs::copy(BUSYBOX, bin.join("busybox"))
        .unwrap_or_else(|e| panic!("copy {BUSYBOX} (apt-get install busybox-static): {e}"));
    let list = Command::new(BUSYBOX).arg("--list").output().unwrap();
    assert!(list.status.success(), "{BUSYBOX} --list failed");
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if !applet.is_empty() && applet != "busybox" {
            symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    fs::write(etc.join("group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();

    let layer_tar = dir.join("layer.tar");
    tar(&layer_root, &layer_tar, &["."]);

    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let layer = fs::read(&layer_tar).unwrap();
    let layer_digest = put_blob(&blobs, &layer);
    let config = json!({
        "architecture": go_arch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd,
            "WorkingDir": "/"
        },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] }
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = put_blob(&blobs, &config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len()
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len()
        }]
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = put_blob(&blobs, &manifest);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": TAG },
            "platform": { "architecture": go_arch(), "os": "linux" }
        }]
    });
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();

    let archive = dir.join("image.tar");
    tar(&layout, &archive, &["oci-layout", "index.json", "blobs"]);
    archive
}

fn put_blob(blobs: &Path, data: &[u8]) -> String {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fs::write(blobs.join(&hex), data).unwrap();
    format!("sha256:{hex}")
}

fn tar(from: &Path, to: &Path, members: &[&str]) {
    let out = Command::new("tar")
        .args([
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--sort=name",
            "--mtime=@0",
            "-C",
        ])
        .arg(from)
        .arg("-cf")
        .arg(to)
        .args(members)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
