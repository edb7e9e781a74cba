//! The only code that opens, locks, reads or removes a pidfile.
