//! The command line's usage errors and help texts: clap's error as one line, the help to
//! point at, the commands there are, and the exit-status table `--help` ends with.

use std::ffi::OsString;

/// The exit-status table, as `--help` ends with it.
pub(super) fn exit_status_help() -> String {
    let mut s = String::from("Exit status:\n");
    for row in abi::status::TABLE {
        let codes = if row.first == row.last {
            row.first.to_string()
        } else if row.name == "signal" {
            "128+N".to_owned()
        } else {
            format!("{}-{}", row.first, row.last)
        };
        s.push_str(&format!("  {codes:<7} {}\n", row.meaning));
    }
    s
}

/// clap's error as one line: its first line without the `error: ` prefix, the lines after it
/// up to the usage joined on (the missing arguments, a tip).
pub(super) fn usage_error_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("invalid command line");
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    let mut listed = Vec::new();
    let mut tipped = false;
    for more in lines
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
    {
        // The first tip only: the next (how to pass it as a value) is rarely the point.
        match more.strip_prefix("tip: ") {
            Some(tip) if !tipped => {
                tipped = true;
                line.push_str(&format!(" (tip: {tip})"));
            }
            Some(_) => {}
            None => listed.push(more),
        }
    }
    if !listed.is_empty() {
        line = format!("{} {}", line.trim_end(), listed.join(", "));
    }
    line
}

/// The subcommands of the (sub)command `args` name (those of `vmm` itself for plain `vmm`).
pub(super) fn commands_of(mut command: clap::Command, args: &[OsString]) -> Vec<String> {
    for arg in args.iter().skip(1) {
        let Some(sub) = arg
            .to_str()
            .and_then(|a| command.find_subcommand(a))
            .cloned()
        else {
            break;
        };
        command = sub;
    }
    command
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .filter(|n| n != "help")
        .collect()
}

/// The help to see for a command line clap refused: `vmm SUBCOMMAND... --help` for the
/// subcommands it names.
pub(super) fn help_for(mut command: clap::Command, args: &[OsString]) -> String {
    let mut words = vec!["vmm".to_owned()];
    for arg in args.iter().skip(1) {
        let Some(sub) = arg
            .to_str()
            .and_then(|a| command.find_subcommand(a))
            .cloned()
        else {
            break;
        };
        words.push(sub.get_name().to_owned());
        command = sub;
    }
    words.push("--help".to_owned());
    words.join(" ")
}
