//! OpenMetrics text of a running VM's recoveries (the control API's `GET /metrics`), built with
//! the prometheus-client crate from the recovery summary the vCPU publishes after every fault:
//! crashes and restores per server and cause, peer rollbacks, pages restored, generations, boundary
//! snapshots, and the recovery-latency histogram; and from the figures the guest publishes
//! while it runs: messages and requests per server, with their retries, losses, errors and
//! mismatches.

use crate::progress::ServerFigures;
use crate::recovery::report::Summary;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn server(name: &str) -> Labels {
    vec![("server".to_owned(), name.to_owned())]
}

/// The metrics of `summary` (none yet: every server at zero) and of each server's published
/// figures `servers`.
pub fn text(summary: Option<&Summary>, servers: &[ServerFigures]) -> String {
    let mut registry = Registry::with_prefix("vmm");
    let crashes = Family::<Labels, Counter>::default();
    let restores = Family::<Labels, Counter>::default();
    let peer_rollbacks = Family::<Labels, Counter>::default();
    let pages = Family::<Labels, Counter>::default();
    let generation = Family::<Labels, Gauge>::default();
    let snapshots = Counter::<u64>::default();
    let latency = Histogram::new(exponential_buckets(50e-6, 2.0, 16));
    let messages = Family::<Labels, Counter>::default();
    let requests = Family::<Labels, Counter>::default();
    let outcomes = Family::<Labels, Counter>::default();
    for f in servers {
        let name = &f.name;
        messages.get_or_create(&server(name)).inc_by(f.messages);
        requests.get_or_create(&server(name)).inc_by(f.requests.ops);
        let r = &f.requests;
        for (outcome, n) in [
            ("error", r.errors),
            ("retry", r.retries),
            ("lost", r.lost),
            ("mismatch", r.mismatches),
        ] {
            let mut labels = server(name);
            labels.push(("outcome".to_owned(), outcome.to_owned()));
            outcomes.get_or_create(&labels).inc_by(n);
        }
        // Every server appears, at zero until it crashes (crashes and restores, by cause, once
        // it has).
        let s = summary.and_then(|s| s.servers.iter().find(|x| &x.name == name));
        peer_rollbacks
            .get_or_create(&server(name))
            .inc_by(s.map_or(0, |s| s.peer_rollbacks));
        generation
            .get_or_create(&server(name))
            .set(i64::from(s.map_or(0, |s| s.generation)));
        pages.get_or_create(&server(name)).inc_by(0);
    }
    if let Some(summary) = summary {
        snapshots.inc_by(summary.snapshots.boundaries);
        for r in &summary.recoveries {
            let mut labels = server(&r.server);
            labels.push(("cause".to_owned(), r.cause.clone()));
            crashes.get_or_create(&labels).inc();
            // Every recovery restores its server but one that stopped the VM.
            if r.action != "fail-stop" {
                restores.get_or_create(&labels).inc();
            }
            pages
                .get_or_create(&server(&r.server))
                .inc_by(r.pages_restored);
            if let Some(us) = r.latency_us {
                latency.observe(us / 1e6);
            }
        }
    }
    registry.register("crashes", "Server crashes, by server and cause", crashes);
    registry.register(
        "restores",
        "Servers restored and restarted, by server and the cause of their crash",
        restores,
    );
    registry.register(
        "peer_rollbacks",
        "Servers rolled back with a crashed server that depended on them",
        peer_rollbacks,
    );
    registry.register(
        "pages_restored",
        "Guest pages written back by recoveries",
        pages,
    );
    registry.register(
        "generation",
        "Each server's generation (restarts so far)",
        generation,
    );
    registry.register(
        "boundary_snapshots",
        "Message boundaries snapshotted",
        snapshots,
    );
    registry.register(
        "messages",
        "Messages each server received (published by the guest kernel every 10 ms)",
        messages,
    );
    registry.register(
        "requests",
        "Requests the clients made of each server (published by the clients as they go)",
        requests,
    );
    registry.register(
        "request_outcomes",
        "Requests by how they went wrong: error, retry, lost, mismatch",
        outcomes,
    );
    registry.register(
        "recovery_latency_seconds",
        "From a crash to the restored server's first instruction",
        latency,
    );
    let mut out = String::new();
    // Encoding into a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_appears_and_the_text_ends_with_eof() {
        let figures = |name: &str, ops| ServerFigures {
            name: name.to_owned(),
            messages: ops + 2,
            requests: crate::report::WorkloadFigures {
                ops,
                retries: 1,
                ..Default::default()
            },
        };
        let text = text(None, &[figures("kv", 40), figures("fs", 0)]);
        assert!(
            text.contains("vmm_requests_total{server=\"kv\"} 40"),
            "{text}"
        );
        assert!(
            text.contains("vmm_messages_total{server=\"kv\"} 42"),
            "{text}"
        );
        assert!(
            text.contains("vmm_request_outcomes_total{server=\"fs\",outcome=\"retry\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("vmm_peer_rollbacks_total{server=\"kv\"} 0"),
            "{text}"
        );
        assert!(text.contains("vmm_generation{server=\"fs\"} 0"), "{text}");
        assert!(
            text.contains("# TYPE vmm_recovery_latency_seconds histogram"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
