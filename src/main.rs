//! The `kvsim` binary: all logic lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    kvsim::cli::run()
}
