//! The daemon file as written: TOML keys with their byte spans.
