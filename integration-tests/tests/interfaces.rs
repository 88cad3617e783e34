//! The servers' interfaces as documented: docs/servers.md states, per server, each request's
//! label and whether it changes state and is idempotent. The servers declare that once, in
//! their `*-api` crates' request tables (which the image carries to the VMM); this holds the
//! document to the tables, row by row.

use abi::requests::RequestTable;

const DOC: &str = include_str!("../../docs/servers.md");

/// The request rows of the table under `## {server}`: (name, label, changes state, idempotent).
fn documented(server: &str) -> Vec<(String, u64, bool, bool)> {
    let section = DOC
        .split("\n## ")
        .find(|s| s.starts_with(server) && s[server.len()..].starts_with([' ', '\n']))
        .unwrap_or_else(|| panic!("no section for {server} in docs/servers.md"));
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
    let tables: [&RequestTable; 5] = [
        &names_api::REQUESTS,
        &kv_api::REQUESTS,
        &fs_api::REQUESTS,
        &bank_api::REQUESTS,
        &crasher_api::REQUESTS,
    ];
    for table in tables {
        assert_eq!(table.check(), Ok(()));
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
