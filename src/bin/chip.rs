//! The `chip` command line.
fn main() {
    eprintln!("chip: not yet implemented");
    std::process::exit(2);
}
