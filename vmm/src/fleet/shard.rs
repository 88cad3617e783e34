//! Which cases a process runs: all, `--shard I/N` (the cases with index mod N = I), or
//! `--shard auto`, where an engine that starts many copies says which copy this is: a
//! Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`, and the completions count, which the
//! manifest passes in `JOB_COMPLETIONS`) or a Slurm array (index = (`SLURM_ARRAY_TASK_ID` -
//! `SLURM_ARRAY_TASK_MIN`) / `SLURM_ARRAY_TASK_STEP`, count = `SLURM_ARRAY_TASK_COUNT`).

use std::fmt;

/// A shard: the cases whose index mod `count` is `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard (0-based).
    pub index: u64,
    /// Shards in all.
    pub count: u64,
}

impl Shard {
    /// Every case.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// True when case `case` is this shard's.
    pub fn holds(&self, case: u64) -> bool {
        case % self.count == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Parses `--shard`: `I/N` (0 <= I < N), or `auto` read from `env` (a variable's value by name).
pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
    if text == "auto" {
        return auto(env);
    }
    let bad = || format!("--shard {text:?}: expected I/N with 0 <= I < N, or auto");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let number = |s: &str| {
        s.parse::<u64>()
            .ok()
            .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
    };
    let (index, count) = (number(i).ok_or_else(bad)?, number(n).ok_or_else(bad)?);
    if count == 0 || index >= count {
        return Err(bad());
    }
    Ok(Shard { index, count })
}

fn auto(env: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
    let number = |name: &str| -> Result<Option<u64>, String> {
        match env(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("--shard auto: {name}={v:?} is not a number")),
        }
    };
    let shard = |index: u64, count: u64, from: &str| {
        if count == 0 || index >= count {
            Err(format!(
                "--shard auto: {from} gives shard {index} of {count}"
            ))
        } else {
            Ok(Shard { index, count })
        }
    };
    if let Some(index) = number("JOB_COMPLETION_INDEX")? {
        let count = number("JOB_COMPLETIONS")?.ok_or(
            "--shard auto: JOB_COMPLETION_INDEX is set but JOB_COMPLETIONS is not (the Job's \
             manifest passes its completions count in it: deploy/kubernetes/)",
        )?;
        return shard(
            index,
            count,
            "Kubernetes (JOB_COMPLETION_INDEX/JOB_COMPLETIONS)",
        );
    }
    if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
        let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let count = number("SLURM_ARRAY_TASK_COUNT")?
            .ok_or("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")?;
        if id < min {
            return Err(format!(
                "--shard auto: SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"
            ));
        }
        return shard((id - min) / step, count, "Slurm (SLURM_ARRAY_TASK_*)");
    }
    Err(
        "--shard auto: neither a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) nor a Slurm \
         array (SLURM_ARRAY_TASK_ID) started this process: give --shard I/N"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn shards_by_hand_and_from_the_engines() {
        let none = env(&[]);
        assert_eq!(parse("1/4", &none), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1/0", "x/2", "1", "-1/3", "+1/3", "1/2/3", ""] {
            assert!(parse(bad, &none).is_err(), "{bad}");
        }
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3"), ("JOB_COMPLETIONS", "8")]);
        assert_eq!(parse("auto", &k8s), Ok(Shard { index: 3, count: 8 }));
        let k8s_no_count = env(&[("JOB_COMPLETION_INDEX", "3")]);
        assert!(
            parse("auto", &k8s_no_count)
                .unwrap_err()
                .contains("JOB_COMPLETIONS")
        );
        // sbatch --array=10-16:2 makes tasks 10, 12, 14, 16: shards 0 to 3 of 4.
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "14"),
            ("SLURM_ARRAY_TASK_MIN", "10"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(parse("auto", &slurm), Ok(Shard { index: 2, count: 4 }));
        let slurm_plain = env(&[
            ("SLURM_ARRAY_TASK_ID", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            parse("auto", &slurm_plain),
            Ok(Shard { index: 0, count: 4 })
        );
        let e = parse("auto", &none).unwrap_err();
        assert!(e.contains("neither") && !e.contains('\n'), "{e}");
        let junk = env(&[("JOB_COMPLETION_INDEX", "x")]);
        assert!(
            parse("auto", &junk)
                .unwrap_err()
                .contains("is not a number")
        );
        let past = env(&[
            ("SLURM_ARRAY_TASK_ID", "9"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert!(parse("auto", &past).is_err());
    }

    #[test]
    fn the_shards_split_the_cases_exactly() {
        let shards: Vec<Shard> = (0..4).map(|index| Shard { index, count: 4 }).collect();
        for case in 0..1000 {
            assert_eq!(shards.iter().filter(|s| s.holds(case)).count(), 1);
        }
        assert!((0..10).all(|c| Shard::ALL.holds(c)));
    }
}
