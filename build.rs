//! Links the `dmgr` executable as a non-PIE binary. A position-independent executable
//! has its `.data.rel.ro` (vtables, string tables) patched by the dynamic loader at
//! every start, which makes those pages private to each process; every keeper would
//! carry its own copy. Linked at a fixed address they stay clean and shared between all
//! keepers. Only the binaries are affected: tests and the library link as usual.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
