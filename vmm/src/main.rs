//! The `vmm` command: see `vmm --help`.

fn main() {
    std::process::exit(vmm::cli::main());
}
