//! A terminal's traffic: containerd's stdin FIFO into the pty master, the master into the
//! stdout FIFO (without a terminal the process gets the FIFOs themselves, see the worker).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;

use sealrun::spec::WinSize;

/// Starts the copy threads for a terminal's `master`.
pub fn copy_terminal(master: Arc<File>, stdin: &str, stdout: &str) {
    if !stdout.is_empty() {
        let out = OpenOptions::new().read(true).write(true).open(stdout);
        let m = Arc::clone(&master);
        if let Ok(mut out) = out {
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                // EIO once the process and every holder of the pty's other side are gone.
                while let Ok(n) = (&*m).read(&mut buf) {
                    if n == 0 || out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    }
    if !stdin.is_empty() {
        let path = stdin.to_string();
        std::thread::spawn(move || {
            let Ok(mut input) = File::open(&path) else {
                return;
            };
            let mut buf = [0u8; 8192];
            while let Ok(n) = input.read(&mut buf) {
                if n == 0 || (&*master).write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
}

/// ResizePty.
pub fn resize(master: &File, width: u32, height: u32) -> std::io::Result<()> {
    let size = WinSize {
        rows: height as u16,
        cols: width as u16,
    };
    sealrun::worker::set_winsize(master.as_fd(), size).map_err(std::io::Error::from)
}
