//! Nothing here: the crate exists for its tests (tests/cri.rs), which drive containerd's CRI
//! plugin with sealrun as the runtime, with dependencies (tonic, tokio) the main crate does not
//! need.
