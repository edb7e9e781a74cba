//! The keeper's state record.
