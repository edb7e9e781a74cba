//! The JSON shapes printed by `list --json` and `status --json`. Keys are stable: add
//! keys, never rename or remove them.
