//! The names of the units dmgr writes for a config directory, shared by `export
//! systemd` and `boot install`: `dmgr.service` and `dmgr-NAME.service` for the default
//! directory, `dmgr.ESCAPED-PATH...` for any other, so that two directories' units
//! never collide and each can name the other's.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config;
use crate::Error;

/// `${XDG_CONFIG_HOME:-~/.config}`.
pub(crate) fn user_config_home() -> Result<PathBuf, Error> {
    let nonempty = |key: &str| {
        std::env::var_os(key)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    nonempty("XDG_CONFIG_HOME")
        .or_else(|| nonempty("HOME").map(|h| h.join(".config")))
        .ok_or_else(|| Error::Usage("neither HOME nor XDG_CONFIG_HOME is set: cannot find the user unit directory; pass --unit-dir DIR".into()))
}

/// The config directory that gets the plain name `dmgr.service`: the one dmgr uses
/// by default for root (`/etc/dmgr/daemons.d`) or for a user.
pub fn default_config_dir(user: bool) -> Option<PathBuf> {
    if !user {
        return Some(PathBuf::from(config::SYSTEM_CONFIG_DIR));
    }
    user_config_home()
        .ok()
        .map(|base| base.join("dmgr/daemons.d"))
}

/// The unit name for `config_dir`: `dmgr.service` for the default directory,
/// `dmgr.ESCAPED-PATH.service` (the path escaped as `systemd-escape --path` does) for
/// any other, so that each directory gets a unit of its own.
pub fn unit_name(config_dir: &Path, user: bool) -> String {
    format!("{}.service", unit_prefix(config_dir, user))
}

/// The first part of every unit name dmgr gives `config_dir`'s units: `dmgr` for the
/// default directory, else `dmgr.ESCAPED-PATH`. The boot unit is `PREFIX.service`;
/// `export systemd` writes `PREFIX.target` and `PREFIX-NAME.service`, so the units of
/// two config directories never collide, and each can name the other's
/// (`Conflicts=`). A path too long for a unit name (255 bytes, with room for a
/// daemon's name of 64) is replaced by a hash of it.
pub fn unit_prefix(config_dir: &Path, user: bool) -> String {
    if default_config_dir(user).as_deref() == Some(config_dir) {
        return "dmgr".into();
    }
    let prefix = format!("dmgr.{}", escape_path(config_dir));
    // `PREFIX-NAME.service` with the longest name still fits.
    if prefix.len() + 1 + 64 + ".service".len() <= 255 {
        return prefix;
    }
    // systemd's limit on unit names; a hash keeps very long paths apart.
    let hash = config_dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("dmgr.{hash:016x}")
}

/// A path escaped as `systemd-escape --path` does: `/` between components becomes
/// `-`, and every byte but ASCII letters, digits, `:`, `_` and a `.` that does not
/// start the name becomes `\xNN`.
pub fn escape_path(path: &Path) -> String {
    let parts: Vec<&[u8]> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(part) => Some(part.as_encoded_bytes()),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        return "-".into();
    }
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        for (j, &byte) in part.iter().enumerate() {
            let keep = byte.is_ascii_alphanumeric()
                || byte == b':'
                || byte == b'_'
                || (byte == b'.' && !(i == 0 && j == 0));
            if keep {
                out.push(byte as char);
            } else {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out
}
