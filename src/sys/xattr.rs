//! Extended attributes, read only: systemd marks a cgroup it delegates with
//! `user.delegate` (and `trusted.delegate`) = `1` (systemd 251 and later), which is
//! how dmgr tells a subtree that is its own from one that is not.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The value of the extended attribute `name` of `path` (at most 256 bytes), or
/// `None` when it has none or cannot be read.
pub(crate) fn get(path: &Path, name: &str) -> Option<Vec<u8>> {
    let path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = CString::new(name).ok()?;
    let mut value = vec![0_u8; 256];
    // SAFETY: `path` and `name` are NUL-terminated strings that live across the call;
    // `value` is a writable buffer of `value.len()` bytes, and getxattr(2) writes at
    // most that many (failing with ERANGE on a longer value).
    let read = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    let read = usize::try_from(read).ok()?;
    value.truncate(read);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_the_attribute_has_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(get(dir.path(), "user.delegate"), None);
        assert_eq!(get(&dir.path().join("missing"), "user.delegate"), None);
    }
}
