//! The `handover` command line.
fn main() {}
