//! The `spool` binary: parse the command line, then run it.

fn main() -> std::process::ExitCode {
    spool::cli::main()
}
