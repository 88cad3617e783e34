//! Links the `__NAME__load` task at its place in the system map.

fn main() {
    guest_builder::tasks::link_task("__NAME__load");
}
