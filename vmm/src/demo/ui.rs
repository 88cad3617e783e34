//! Draws the dashboard ([`Dashboard`]) with ratatui: a title line with the VM's state, the
//! servers' table (state, generation, requests/s with a sparkline, crashes, restores, last
//! recovery latency), the workload's verdict so far, the event log, the run's console, and a
//! line of keys.

use super::model::{Dashboard, EventKind};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};

/// Sparkline bars, lowest first.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// `samples` as a line of bars at most `width` wide (the newest), scaled to their maximum.
pub fn sparkline(samples: impl DoubleEndedIterator<Item = u64> + Clone, width: usize) -> String {
    let newest: Vec<u64> = samples.rev().take(width).collect();
    let max = newest.iter().copied().max().unwrap_or(0).max(1);
    newest
        .iter()
        .rev()
        .map(|&v| {
            if v == 0 {
                ' '
            } else {
                BARS[((v * 8).div_ceil(max) as usize).clamp(1, 8) - 1]
            }
        })
        .collect()
}

/// Draws the whole dashboard.
pub fn draw(frame: &mut Frame, d: &Dashboard) {
    let [title, top, middle, keys] = Layout::vertical([
        Constraint::Length(1),
        // The servers' rows and header, or the workload's six lines, in their borders.
        Constraint::Length((d.servers.len() as u16 + 3).max(8)),
        Constraint::Min(6),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    // A narrow terminal: the servers take the whole width (without sparklines below
    // NARROW), and the workload's figures go on the title line.
    let wide = frame.area().width >= WIDE;
    draw_title(frame, title, d, !wide);
    if wide {
        let [servers, workload] =
            Layout::horizontal([Constraint::Min(80), Constraint::Length(34)]).areas(top);
        draw_servers(frame, servers, d);
        draw_workload(frame, workload, d);
    } else {
        draw_servers(frame, top, d);
    }
    let [events, console] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(middle);
    draw_events(frame, events, d);
    draw_console(frame, console, d);
    let storm = if d.storm.is_some() { "  STORM ON" } else { "" };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" ↑/↓", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(if wide { " select  " } else { " " }),
            Span::styled("c", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(if wide {
                format!(" crash with {}  ", d.kind())
            } else {
                format!(" crash:{} ", d.kind())
            }),
            Span::styled("k", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(if wide { " next kind  " } else { " kind " }),
            Span::styled("s", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(if wide { " fault storm  " } else { " storm " }),
            Span::styled("p", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(if wide { " pause/resume  " } else { " pause " }),
            Span::styled("q", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(" quit"),
            Span::styled(
                storm,
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            ),
        ])),
        keys,
    );
}

/// Columns from which the workload has a panel of its own.
const WIDE: u16 = 120;
/// Columns below which the servers' sparklines go.
const NARROW: u16 = 100;

fn draw_title(frame: &mut Frame, area: Rect, d: &Dashboard, narrow: bool) {
    let state_style = match d.vm_state.as_str() {
        "Running" => Style::new().fg(Color::Green),
        "Paused" => Style::new().fg(Color::Yellow),
        _ => Style::new().fg(Color::Red),
    };
    let up = d.uptime_ms as f64 / 1e3;
    let rest = if narrow {
        let w = &d.workload;
        format!(
            " · {} · up {up:.1} s · ops {} mismatches {} ({}) · {}",
            d.backend,
            w.ops,
            w.mismatches,
            d.verdict(),
            d.socket
        )
    } else {
        format!(
            " · KVM backend {} · up {up:.1} s · vmm ctl {} ...",
            d.backend, d.socket
        )
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" vmm demo ", Style::new().add_modifier(Modifier::BOLD)),
            Span::styled(d.vm_state.clone(), state_style.add_modifier(Modifier::BOLD)),
            Span::raw(rest),
        ])),
        area,
    );
}

fn draw_servers(frame: &mut Frame, area: Rect, d: &Dashboard) {
    let spark = if area.width >= NARROW { 24 } else { 0 };
    let header = Row::new([
        "server",
        "state",
        "gen",
        "req/s",
        "",
        "requests",
        "crashes",
        "restores",
        "last recovery",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let rows = d.servers.iter().map(|s| {
        let state_style = match s.state.as_str() {
            "running" => Style::new().fg(Color::Green),
            "paused" => Style::new().fg(Color::Yellow),
            _ => Style::new().fg(Color::Red),
        };
        Row::new([
            Cell::from(s.name.clone()),
            Cell::from(s.state.clone()).style(state_style),
            Cell::from(s.generation.to_string()),
            Cell::from(s.rate.back().map_or("-".to_owned(), u64::to_string)),
            Cell::from(sparkline(s.rate.iter().copied(), usize::from(spark)))
                .style(Style::new().fg(Color::Cyan)),
            Cell::from(s.requests.ops.to_string()),
            Cell::from(s.crashes.to_string()),
            Cell::from(s.restores.to_string()),
            Cell::from(
                s.last_latency_us
                    .map_or("-".to_owned(), |l| format!("{l:.1} us")),
            ),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Length(8),
            Constraint::Length(4),
            Constraint::Length(7),
            Constraint::Length(spark),
            Constraint::Length(10),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Min(12),
        ],
    )
    .header(header)
    .block(Block::bordered().title(" servers "))
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(Some(d.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_workload(frame: &mut Frame, area: Rect, d: &Dashboard) {
    let w = &d.workload;
    let verdict_style = if w.mismatches > 0 {
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else {
        Style::new().fg(Color::Green).add_modifier(Modifier::BOLD)
    };
    let line = |k: &str, v: u64| Line::from(format!(" {k:<11}{v:>12}"));
    let text = vec![
        line("requests", w.ops),
        line("errors", w.errors),
        line("retries", w.retries),
        line("lost", w.lost),
        line("mismatches", w.mismatches),
        Line::from(vec![
            Span::raw(" verdict    "),
            Span::styled(d.verdict(), verdict_style),
        ]),
    ];
    frame.render_widget(
        Paragraph::new(text).block(Block::bordered().title(" workload so far ")),
        area,
    );
}

/// The newest lines that fit in `area` inside a border.
fn tail<T>(items: &std::collections::VecDeque<T>, area: Rect) -> impl Iterator<Item = &T> {
    let fit = area.height.saturating_sub(2) as usize;
    items.iter().skip(items.len().saturating_sub(fit))
}

/// The newest events that fit in `area` inside a border, each wrapped to its width (an
/// injection's replay spec is longer than the pane).
fn tail_wrapped(d: &Dashboard, area: Rect) -> impl Iterator<Item = &crate::demo::model::Event> {
    let width = usize::from(area.width.saturating_sub(2)).max(1);
    let mut room = usize::from(area.height.saturating_sub(2));
    let fit = d
        .events
        .iter()
        .rev()
        .take_while(|e| {
            let height = (EVENT_TIME_WIDTH + e.text.chars().count()).div_ceil(width);
            let fits = height <= room;
            room = room.saturating_sub(height);
            fits
        })
        .count();
    d.events.iter().skip(d.events.len() - fit)
}

/// Columns of an event line's time (`  123.4s `).
const EVENT_TIME_WIDTH: usize = 9;

fn draw_events(frame: &mut Frame, area: Rect, d: &Dashboard) {
    let lines: Vec<Line> = tail_wrapped(d, area)
        .map(|e| {
            let style = match e.kind {
                EventKind::Action => Style::new().fg(Color::Cyan),
                EventKind::Fault => Style::new().fg(Color::Yellow),
                EventKind::Recovered => Style::new().fg(Color::Green),
                EventKind::Problem => Style::new().fg(Color::Red),
            };
            Line::from(vec![
                Span::raw(format!("{:>7.1}s ", e.at)),
                Span::styled(e.text.clone(), style),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(Block::bordered().title(" events ")),
        area,
    );
}

fn draw_console(frame: &mut Frame, area: Rect, d: &Dashboard) {
    let lines: Vec<Line> = tail(&d.console, area)
        .map(|l| {
            if l.starts_with("vmm: ") {
                Line::styled(l.clone(), Style::new().fg(Color::DarkGray))
            } else {
                Line::raw(l.clone())
            }
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" console ")),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use serde_json::json;

    /// The dashboard drawn on a `width` x `height` terminal, a line a row.
    fn render(d: &Dashboard, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a terminal");
        terminal.draw(|f| draw(f, d)).expect("drawn");
        terminal
            .backend()
            .buffer()
            .content()
            .chunks(usize::from(width))
            .map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n")
            .collect()
    }

    #[test]
    fn sparklines_scale_to_their_maximum_and_keep_the_newest() {
        assert_eq!(sparkline([0u64, 1, 2, 4, 8].into_iter(), 10), " ▁▂▄█");
        assert_eq!(sparkline([8u64, 8, 1].into_iter(), 2), "█▁");
        assert_eq!(sparkline(std::iter::empty::<u64>(), 5), "");
    }

    /// The dashboard at 160x48 shows each part with its figures.
    #[test]
    fn every_part_is_drawn() {
        let mut d = Dashboard::new("/tmp/v.sock".into(), vec!["panic".into()]);
        d.apply_vm(
            &json!({"state": "Running", "backend": "pvm", "uptime_ms": 12345,
            "workload": {"ops": 4321, "errors": 0, "retries": 2, "lost": 0, "mismatches": 0}}),
        );
        let servers = json!([{"name": "kv", "state": "running", "generation": 1, "messages": 9,
            "requests": {"ops": 8, "errors": 0, "retries": 0, "lost": 0, "mismatches": 0},
            "crashes": 1, "restores": 1, "last_recovery": {"latency_us": 396.3}}]);
        d.apply_servers(&servers, 0.0);
        d.apply_event(
            &json!({"event": "recovery", "server": "kv", "cause": "panic", "action": "rollback",
                "pages_restored": 0, "latency_us": 396.3}),
            3.0,
        );
        d.console_line("workload: seed 1".into());
        let screen = render(&d, 160, 48);
        for want in [
            "vmm demo Running",
            "KVM backend pvm · up 12.3 s",
            "kv: panic recovered by rollback, 0 pages in 396.3 us",
            "396.3 us",
            "4321",
            "verdict    clean",
            "workload: seed 1",
            "c crash with panic",
        ] {
            assert!(screen.contains(want), "{want:?} not on screen:\n{screen}");
        }
    }

    /// A long event (an injection's replay spec) wraps in its pane, and the newest event is
    /// always shown whole, however many came before.
    #[test]
    fn long_events_wrap_and_the_newest_stays_in_view() {
        let mut d = Dashboard::new("/tmp/v.sock".into(), vec!["panic".into()]);
        for i in 0..60 {
            d.log(1.0, EventKind::Action, format!("event {i}"));
        }
        let spec = "kv:corrupt-src@13457:at=0x44015f:bit=3:reg=r11:transient";
        d.log(
            2.0,
            EventKind::Fault,
            format!("kv: corrupt-src injected at message 13457 by the VMM; replay {spec}"),
        );
        // Rows joined, borders and blanks out: a wrapped line reads on.
        let screen = render(&d, 160, 48).replace(['│', ' ', '\n'], "");
        assert!(screen.contains(&spec.replace(' ', "")), "{screen}");
        assert!(screen.contains("event59"), "{screen}");
    }

    /// At 80x24 every server's state is whole and the workload's verdict is on the title line.
    #[test]
    fn a_small_terminal_keeps_what_matters() {
        let mut d = Dashboard::new("/tmp/v.sock".into(), vec!["panic".into()]);
        d.apply_vm(
            &json!({"state": "Running", "backend": "pvm", "uptime_ms": 1000,
            "workload": {"ops": 77, "errors": 0, "retries": 0, "lost": 0, "mismatches": 0}}),
        );
        let servers = json!([{"name": "kv", "state": "running", "generation": 1, "messages": 9,
            "requests": {"ops": 8, "errors": 0, "retries": 0, "lost": 0, "mismatches": 0},
            "crashes": 1, "restores": 1, "last_recovery": {"latency_us": 396.3}}]);
        d.apply_servers(&servers, 0.0);
        let screen = render(&d, 80, 24);
        for want in ["running", "396.3 us", "ops 77", "(clean)"] {
            assert!(screen.contains(want), "{want:?} not on screen:\n{screen}");
        }
    }
}
