//! The fault plan the monitor page carries to the kernel: each `--fault` checked against the
//! image's tasks (a server that exists; the kernel only if the image is ours) and given its
//! task index. The kernel keeps the plan outside every state arena, so a rollback cannot re-arm
//! a fault: each fires once (or once per period).

use super::spec::{FaultSpec, FaultSpecError, Target};
use abi::fault::AFTER_SEND;
use abi::monitor::{FaultPlan, KERNEL_TARGET, MAX_PLANNED_FAULTS};

/// Most faults planned for one server (the kernel keeps one more slot per task, for the end of
/// an injected fault's message).
pub const MAX_PER_TARGET: usize = 4;

/// Most faults planned for the kernel itself.
pub const MAX_KERNEL: usize = 1;

/// The monitor page's fault plan for `specs` on an image whose tasks are `tasks` (task index =
/// position; `None` for an app, which has no server loop to take a fault in).
pub fn plan(
    specs: &[FaultSpec],
    tasks: &[Option<String>],
) -> Result<[FaultPlan; MAX_PLANNED_FAULTS], FaultSpecError> {
    let mut plan = [FaultPlan::default(); MAX_PLANNED_FAULTS];
    let mut per_task = vec![0usize; tasks.len()];
    let mut kernel = 0;
    for (i, spec) in specs.iter().enumerate() {
        let text = spec.to_string();
        if tasks.iter().all(Option::is_none) {
            return Err(FaultSpecError::NoServers(text));
        }
        let too_many = || FaultSpecError::TooMany {
            spec: text.clone(),
            most: MAX_PLANNED_FAULTS,
            per_target: MAX_PER_TARGET,
            kernel: MAX_KERNEL,
        };
        let task = match &spec.target {
            Target::Kernel => {
                kernel += 1;
                if kernel > MAX_KERNEL {
                    return Err(too_many());
                }
                KERNEL_TARGET
            }
            Target::Server(name) => {
                let index = tasks
                    .iter()
                    .position(|s| s.as_ref() == Some(name))
                    .ok_or_else(|| FaultSpecError::Server {
                        spec: text.clone(),
                        server: name.clone(),
                        known: tasks.iter().flatten().cloned().collect(),
                    })?;
                per_task[index] += 1;
                if per_task[index] > MAX_PER_TARGET {
                    return Err(too_many());
                }
                index as u32
            }
        };
        if let Some((other, message)) = collision(&specs[..i], spec) {
            return Err(FaultSpecError::Collide {
                spec: text,
                other: other.to_string(),
                target: spec.target.to_string(),
                message,
            });
        }
        let slot = plan.get_mut(i).ok_or_else(too_many)?;
        *slot = FaultPlan {
            task,
            kind: spec.kind as u32 | if spec.after_send { AFTER_SEND } else { 0 },
            message: spec.message,
            period: spec.period,
        };
    }
    Ok(plan)
}

/// An earlier spec that strikes the same target at the same message as `spec` (a target takes
/// one fault a message: the kernel hands over the first due), and the first such message.
/// After-send faults only arm at their message, so they never collide.
fn collision<'a>(earlier: &'a [FaultSpec], spec: &FaultSpec) -> Option<(&'a FaultSpec, u64)> {
    if spec.after_send {
        return None;
    }
    earlier
        .iter()
        .filter(|e| e.target == spec.target && !e.after_send)
        .find_map(|e| first_common(e.message, e.period, spec.message, spec.period).map(|m| (e, m)))
}

/// The first message both `a` (then every `p`, if not 0) and `b` (every `q`) strike.
fn first_common(a: u64, p: u64, b: u64, q: u64) -> Option<u64> {
    let strikes = |m: u64, start: u64, period: u64| {
        m == start || (period != 0 && m > start && (m - start).is_multiple_of(period))
    };
    match (p, q) {
        (0, 0) => (a == b).then_some(a),
        (0, _) => strikes(a, b, q).then_some(a),
        (_, 0) => strikes(b, a, p).then_some(b),
        _ => {
            // x = a (mod p), x = b (mod q): solvable when gcd(p, q) divides b - a.
            let (p, q, a, b) = (i128::from(p), i128::from(q), i128::from(a), i128::from(b));
            let (g, inv, _) = extended_gcd(p, q);
            if (b - a) % g != 0 {
                return None;
            }
            let lcm = p / g * q;
            // inv * p = g (mod q), so a + p * inv * (b - a) / g solves both.
            let step = ((b - a) / g).rem_euclid(q / g) * inv.rem_euclid(q / g) % (q / g);
            let x = a + p * step;
            let floor = a.max(b);
            let x = if x < floor {
                x + (floor - x + lcm - 1) / lcm * lcm
            } else {
                x
            };
            u64::try_from(x).ok()
        }
    }
}

/// (gcd(a, b), x, y) with a*x + b*y = gcd(a, b).
fn extended_gcd(a: i128, b: i128) -> (i128, i128, i128) {
    if b == 0 {
        (a, 1, 0)
    } else {
        let (g, x, y) = extended_gcd(b, a % b);
        (g, y, x - (a / b) * y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::fault::FaultKind;

    fn servers() -> Vec<Option<String>> {
        vec![
            Some("names".into()),
            Some("kv".into()),
            Some("fs".into()),
            None,
        ]
    }

    fn spec(s: &str) -> FaultSpec {
        FaultSpec::parse(s).expect("valid")
    }

    #[test]
    fn plans_name_tasks_by_index_and_refuse_strangers_and_excess() {
        let specs = [
            spec("fs:hang@9"),
            spec("kv:panic@2"),
            spec("fs:panic@3+2:after-send"),
            spec("kernel:state-flip@40+10"),
        ];
        let plan = plan(&specs, &servers()).expect("fits");
        assert_eq!((plan[0].task, plan[0].kind, plan[0].message), (2, 5, 9));
        assert_eq!((plan[1].task, plan[1].message), (1, 2));
        assert_eq!(
            (plan[2].kind, plan[2].message, plan[2].period),
            (FaultKind::Panic as u32 | AFTER_SEND, 3, 2)
        );
        assert_eq!(
            (plan[3].task, plan[3].kind, plan[3].message, plan[3].period),
            (KERNEL_TARGET, FaultKind::StateFlip as u32, 40, 10)
        );
        assert_eq!(plan[4].message, 0, "unused");
        let e = super::plan(&[spec("kvv:panic@2")], &servers()).expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "--fault \"kvv:panic@2\": unknown server \"kvv\" (this image declares \"names\", \"kv\", \"fs\")"
        );
        assert!(
            super::plan(&[spec("names:panic@2")], &[None]).is_err(),
            "apps cannot be faulted on purpose"
        );
        let five: Vec<FaultSpec> = (1..=5).map(|m| spec(&format!("kv:panic@{m}"))).collect();
        assert!(matches!(
            super::plan(&five, &servers()),
            Err(FaultSpecError::TooMany { .. })
        ));
        let two_kernel = [spec("kernel:text-flip@2"), spec("kernel:state-flip@9")];
        assert!(matches!(
            super::plan(&two_kernel, &servers()),
            Err(FaultSpecError::TooMany { .. })
        ));
        assert!(matches!(
            super::plan(&five[..1], &[]),
            Err(FaultSpecError::NoServers(_))
        ));
        let seventeen: Vec<FaultSpec> = (0..17)
            .map(|i| spec(&format!("{}:panic@{}", ["names", "kv", "fs"][i % 3], i + 1)))
            .collect();
        assert!(super::plan(&seventeen, &servers()).is_err());
    }

    #[test]
    fn two_faults_on_one_message_of_one_target_are_refused() {
        let refused = |a: &str, b: &str| super::plan(&[spec(a), spec(b)], &servers()).err();
        let e = refused("kv:panic@10+10", "kv:state-flip@40").expect("collide");
        assert_eq!(
            e.to_string(),
            "--fault \"kv:state-flip@40\": kv would take it and \"kv:panic@10+10\" at its message 40; a target takes one fault a message"
        );
        assert!(refused("kv:panic@7", "kv:nop@7").is_some());
        assert!(refused("kv:panic@6+4", "kv:nop@3+3").is_some(), "18");
        assert!(refused("kv:panic@7", "fs:nop@7").is_none(), "other server");
        assert!(refused("kv:panic@7", "kv:panic@7:after-send").is_none());
        assert!(
            refused("kv:panic@8+2", "kv:nop@3+2").is_none(),
            "odd and even"
        );
        assert!(refused("kv:panic@8", "kv:nop@3+2").is_none());
        assert!(
            refused("kv:panic@2", "kv:nop@4+2").is_none(),
            "before it starts"
        );
    }

    proptest::proptest! {
        /// The first common message agrees with walking both sequences.
        #[test]
        fn first_common_matches_a_walk(a in 1u64..60, p in 0u64..12, b in 1u64..60, q in 0u64..12) {
            let seq = |s: u64, per: u64| -> Vec<u64> {
                if per == 0 { vec![s] } else { (0..400).map(|k| s + k * per).collect() }
            };
            let (x, y) = (seq(a, p), seq(b, q));
            let walked = x.iter().copied().filter(|m| y.contains(m)).min();
            proptest::prop_assert_eq!(first_common(a, p, b, q), walked);
        }
    }
}
