//! The servers' interfaces as documented: docs/servers.md states, per server, each request's
//! label and whether it changes state and is idempotent. The servers declare that once, in
//! their `*-api` crates' request tables, which the image carries to the VMM; this holds the
//! document to the tables the bundled image carries, row by row, for every server in it (a
//! new server needs its section: docs/writing-a-server.md).

use vmm::cli::BUNDLED_GUEST;
use vmm::image::Image;

const DOC: &str = include_str!("../../docs/servers.md");

/// The request rows of the table under `## {server}`: (name, label, changes state, idempotent).
fn documented(server: &str) -> Vec<(String, u64, bool, bool)> {
    let section = DOC
        .split("\n## ")
        .find(|s| s.starts_with(server) && s[server.len()..].starts_with([' ', '\n']))
        .unwrap_or_else(|| {
            panic!(
                "docs/servers.md has no `## {server}` section: add one with its request table \
                 (docs/writing-a-server.md)"
            )
        });
    let yes = |cell: &str| match cell.trim() {
        "yes" => true,
        "no" => false,
        other => panic!("{server}: not yes or no: {other:?}"),
    };
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | OP | label | request | reply | changes state | idempotent |
            let label = cells.get(2)?.parse::<u64>().ok()?;
            let name = cells.get(1)?.to_string();
            Some((name, label, yes(cells[5]), yes(cells[6])))
        })
        .collect()
}

#[test]
fn docs_servers_md_says_what_the_request_tables_declare() {
    let image = Image::from_bytes("bundled".into(), BUNDLED_GUEST.to_vec()).expect("bundled image");
    let servers: Vec<&str> = sysmap::SERVERS.iter().map(|s| s.name).collect();
    let tables: Vec<&str> = image
        .requests
        .iter()
        .map(|t| t.server_str().expect("a valid name"))
        .collect();
    assert_eq!(
        tables, servers,
        "every server in the map declares its requests"
    );
    for table in &image.requests {
        let server = table.server_str().expect("a valid name");
        let declared: Vec<(String, u64, bool, bool)> = table
            .declared()
            .iter()
            .map(|r| {
                let name = r.name_str().expect("a valid name").to_owned();
                (name, u64::from(r.label), r.changes_state(), r.idempotent())
            })
            .collect();
        assert_eq!(documented(server), declared, "{server}");
    }
}

/// docs/exit-status.md is the contract's one table: a row for every row of
/// `abi::status::TABLE` (the source of `vmm --help`), with the same codes and name.
#[test]
fn docs_exit_status_md_has_every_row_of_the_contract() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/exit-status.md"),
    )
    .expect("docs/exit-status.md");
    for row in abi::status::TABLE {
        let codes = if row.first == row.last {
            row.first.to_string()
        } else if row.name == "signal" {
            "128+N".to_owned()
        } else {
            format!("{}-{}", row.first, row.last)
        };
        let start = format!("| {codes} | {} |", row.name);
        assert!(
            doc.lines().any(|l| l.starts_with(&start)),
            "docs/exit-status.md has no row starting {start:?}"
        );
    }
}
