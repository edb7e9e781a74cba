//! Link settings for the `dmgr` executable, which every keeper runs: hundreds of copies
//! may be resident, and every `dmgr` command and keeper pays its start-up.
//!
//! - Non-PIE. A position-independent executable has its `.data.rel.ro` (vtables,
//!   string tables) patched by the dynamic loader at every start, which makes those
//!   pages private to each process; every keeper would carry its own copy. Linked at
//!   a fixed address they stay clean and shared between all keepers. Only the
//!   binaries are affected: tests and the library link as usual.
//! - The unwinder from libgcc_eh.a instead of libgcc_s.so. Loading libgcc_s costs
//!   each exec about 0.3 ms on a virtual machine (its constructor probes the CPU
//!   with CPUID, which traps to the hypervisor) and each keeper 8 KB of private
//!   relocated data. std names `-lgcc_s` itself; the archive, listed first, defines
//!   the unwinder's symbols, so with lld (Rust's default linker here) libgcc_s is
//!   no longer needed and `--as-needed` drops it. With a linker that resolves
//!   archives in order, libgcc_s still provides them and nothing changes.

fn main() {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") == "linux" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
        if var("CARGO_CFG_TARGET_ENV") == "gnu" {
            println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
