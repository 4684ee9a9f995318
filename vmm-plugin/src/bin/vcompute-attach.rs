//! `vcompute-attach qemu|cloud-hypervisor|libkrun --socket PATH [...]`:
//! prints how to attach the daemon to a VMM that needs no code for it.

use std::process::ExitCode;

use vmm_plugin::attach::{Attach, USAGE};

fn main() -> ExitCode {
    match Attach::parse(std::env::args().skip(1)) {
        Ok(a) => {
            print!("{}", a.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vcompute-attach: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
