//! VM configuration: command-line flags over an optional TOML file, validated once.
//!
//! ```toml
//! # vm.toml: every key is optional; flags given on the command line win.
//! [vm]
//! image = "guest.elf"      # relative to this file's directory
//! memory_mib = 256
//! timeout_secs = 30
//! cmdline = "ops=1000 seed=7"
//! strict_io = false
//! ```

use abi::layout::{CMDLINE_MAX, DEFAULT_MEMORY_MIB, MAX_MEMORY_MIB, MIN_MEMORY_MIB};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest config file read, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Longest accepted `--timeout`, in seconds (about 115 days).
pub const MAX_TIMEOUT_SECS: f64 = 1e7;

/// Where the guest image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    /// The demo guest bundled into the `vmm` binary.
    Bundled,
    /// An ELF file.
    File(PathBuf),
}

/// A validated VM configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct VmConfig {
    /// The image to boot.
    pub image: ImageSource,
    /// Guest RAM in MiB (validated against the documented bounds).
    pub memory_mib: u64,
    /// Stop the VM after this long.
    pub timeout: Option<Duration>,
    /// The guest command line (no NUL, shorter than the command-line page).
    pub cmdline: String,
    /// Plain images: stop on unknown port or MMIO accesses instead of ignoring them.
    pub strict_io: bool,
    /// The config file's `[recovery]` table (the defaults without one).
    pub recovery: policies::RecoveryConfig,
}

/// What the command line asked for, before validation.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// IMAGE argument.
    pub image: Option<PathBuf>,
    /// `--memory`.
    pub memory_mib: Option<u64>,
    /// `--timeout`.
    pub timeout_secs: Option<f64>,
    /// Arguments after `--`.
    pub guest_args: Vec<String>,
    /// `--strict-io`.
    pub strict_io: bool,
}

/// The `[vm]` table of a config file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VmSection {
    /// Image path, relative to the config file's directory.
    pub image: Option<PathBuf>,
    /// Guest RAM in MiB.
    pub memory_mib: Option<u64>,
    /// Timeout in seconds.
    pub timeout_secs: Option<f64>,
    /// Guest command line.
    pub cmdline: Option<String>,
    /// See [`VmConfig::strict_io`].
    pub strict_io: Option<bool>,
}

/// A whole config file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The `[vm]` table.
    #[serde(default)]
    pub vm: VmSection,
    /// The `[recovery]` table: per-server recovery policies (docs/policies.md), checked
    /// against the image's servers when the VM is built.
    #[serde(default)]
    pub recovery: policies::RecoveryConfig,
    /// Where it was read from (for errors).
    #[serde(skip)]
    pub path: PathBuf,
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path}, line {line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// The parser's message, on one line.
        message: String,
    },
    /// Memory size out of bounds.
    #[error(
        "invalid memory size {0} MiB: must be between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB} MiB"
    )]
    Memory(u64),
    /// Timeout not a positive finite number of seconds.
    #[error(
        "invalid timeout {0} s: must be a number of seconds above 0 and at most {MAX_TIMEOUT_SECS}"
    )]
    Timeout(f64),
    /// Command line does not fit its page.
    #[error("guest command line is {0} bytes: at most {max} fit", max = CMDLINE_MAX - 1)]
    CmdlineTooLong(usize),
    /// Command line contains a NUL byte.
    #[error("guest command line contains a NUL byte")]
    CmdlineNul,
    /// An image path that names nothing.
    #[error("an empty path names no image")]
    EmptyImage,
    /// A bad value that came from a config file: the file and the key, then why.
    #[error("{}: [vm] {key}: {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// The key in `[vm]`.
        key: &'static str,
        /// What is wrong with its value.
        source: Box<ConfigError>,
    },
}

impl ConfigFile {
    /// Parses config text; `path` is for error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut file: Self = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            });
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                message: one_line(e.message()),
            }
        })?;
        file.path = path.to_owned();
        Ok(file)
    }

    /// Reads and parses a config file.
    ///
    /// Only a regular file of at most [`MAX_CONFIG_BYTES`] is read.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        use std::io::Read;
        let read_err = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        // Opened without blocking: a FIFO is refused at once, not waited on.
        let file = crate::files::open_nonblocking(path).map_err(read_err)?;
        if !file.metadata().map_err(read_err)?.is_file() {
            return Err(read_err(std::io::Error::other("not a regular file")));
        }
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(read_err(std::io::Error::other(format!(
                "larger than {MAX_CONFIG_BYTES} bytes"
            ))));
        }
        Self::parse(&text, path)
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl VmConfig {
    /// Merges flags over the file (flags win) and validates the result.
    ///
    /// `file_dir` is the config file's directory: a relative `image` in the file is resolved
    /// against it, so a config works from any working directory.
    pub fn resolve(
        overrides: Overrides,
        file: Option<(&ConfigFile, &Path)>,
    ) -> Result<Self, ConfigError> {
        let (section, file_dir) = match file {
            Some((f, dir)) => (f.vm.clone(), Some(dir)),
            None => (VmSection::default(), None),
        };
        // A bad value from the file names the file and the key.
        let in_file = |from_file: bool, key: &'static str, e: ConfigError| match file {
            Some((f, _)) if from_file => ConfigError::Key {
                path: f.path.clone(),
                key,
                source: Box::new(e),
            },
            _ => e,
        };
        let image = match (overrides.image, section.image) {
            (Some(p), _) if p.as_os_str().is_empty() => return Err(ConfigError::EmptyImage),
            (Some(p), _) => ImageSource::File(p),
            (None, Some(p)) if p.as_os_str().is_empty() => {
                return Err(in_file(true, "image", ConfigError::EmptyImage));
            }
            (None, Some(p)) => ImageSource::File(file_dir.map_or(p.clone(), |d| d.join(&p))),
            (None, None) => ImageSource::Bundled,
        };
        let memory_from_file = overrides.memory_mib.is_none() && section.memory_mib.is_some();
        let memory_mib = overrides
            .memory_mib
            .or(section.memory_mib)
            .unwrap_or(DEFAULT_MEMORY_MIB);
        if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&memory_mib) {
            return Err(in_file(
                memory_from_file,
                "memory_mib",
                ConfigError::Memory(memory_mib),
            ));
        }
        let timeout_from_file = overrides.timeout_secs.is_none() && section.timeout_secs.is_some();
        let timeout = match overrides.timeout_secs.or(section.timeout_secs) {
            None => None,
            Some(s) if s.is_finite() && s > 0.0 && s <= MAX_TIMEOUT_SECS => {
                // A timerfd armed with zero is disarmed: never round a tiny timeout down to it.
                Some(Duration::from_secs_f64(s).max(Duration::from_micros(1)))
            }
            Some(s) => {
                return Err(in_file(
                    timeout_from_file,
                    "timeout_secs",
                    ConfigError::Timeout(s),
                ));
            }
        };
        let cmdline_from_file = overrides.guest_args.is_empty() && section.cmdline.is_some();
        let cmdline = if overrides.guest_args.is_empty() {
            section.cmdline.unwrap_or_default()
        } else {
            overrides.guest_args.join(" ")
        };
        if cmdline.len() as u64 >= CMDLINE_MAX {
            return Err(in_file(
                cmdline_from_file,
                "cmdline",
                ConfigError::CmdlineTooLong(cmdline.len()),
            ));
        }
        if cmdline.contains('\0') {
            return Err(in_file(
                cmdline_from_file,
                "cmdline",
                ConfigError::CmdlineNul,
            ));
        }
        let strict_io = overrides.strict_io || section.strict_io.unwrap_or(false);
        Ok(Self {
            image,
            memory_mib,
            timeout,
            cmdline,
            strict_io,
            recovery: file.map(|(f, _)| f.recovery.clone()).unwrap_or_default(),
        })
    }

    /// Guest RAM in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mib << 20
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(o: Overrides) -> Result<VmConfig, ConfigError> {
        VmConfig::resolve(o, None)
    }

    #[test]
    fn defaults_boot_the_bundled_guest() {
        let c = resolve(Overrides::default()).expect("defaults are valid");
        assert_eq!(c.image, ImageSource::Bundled);
        assert_eq!(c.memory_mib, DEFAULT_MEMORY_MIB);
        assert_eq!(c.timeout, None);
        assert_eq!(c.cmdline, "");
        assert!(!c.strict_io);
    }

    /// A bad `[vm]` value names the file and the key; the same value from a flag does not.
    #[test]
    fn values_from_the_file_name_the_file_and_the_key() {
        let path = Path::new("/etc/vm.toml");
        let from_file = |text: &str| {
            let f = ConfigFile::parse(text, path).expect("parses");
            VmConfig::resolve(Overrides::default(), Some((&f, Path::new("/etc"))))
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            from_file("[vm]\nmemory_mib = 5000\n"),
            "/etc/vm.toml: [vm] memory_mib: invalid memory size 5000 MiB: must be between 1 and 3072 MiB"
        );
        assert!(
            from_file("[vm]\ntimeout_secs = -1.0\n")
                .starts_with("/etc/vm.toml: [vm] timeout_secs: ")
        );
        assert_eq!(
            from_file("[vm]\nimage = \"\"\n"),
            "/etc/vm.toml: [vm] image: an empty path names no image"
        );
        let flag = Overrides {
            memory_mib: Some(0),
            ..Overrides::default()
        };
        let f = ConfigFile::parse("[vm]\nmemory_mib = 64\n", path).expect("parses");
        let e = VmConfig::resolve(flag, Some((&f, Path::new("/etc")))).expect_err("the flag's");
        assert!(e.to_string().starts_with("invalid memory size 0"), "{e}");
    }

    #[test]
    fn memory_bounds_are_enforced() {
        for bad in [0, MAX_MEMORY_MIB + 1, u64::MAX] {
            let e = resolve(Overrides {
                memory_mib: Some(bad),
                ..Default::default()
            })
            .unwrap_err();
            assert!(matches!(e, ConfigError::Memory(m) if m == bad));
            assert!(e.to_string().contains("between 1 and 3072 MiB"), "{e}");
        }
        for good in [1, MAX_MEMORY_MIB] {
            assert!(
                resolve(Overrides {
                    memory_mib: Some(good),
                    ..Default::default()
                })
                .is_ok()
            );
        }
    }

    #[test]
    fn timeout_must_be_positive_and_finite() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
            let r = resolve(Overrides {
                timeout_secs: Some(bad),
                ..Default::default()
            });
            assert!(matches!(r, Err(ConfigError::Timeout(_))), "{bad} accepted");
        }
        let tiny = resolve(Overrides {
            timeout_secs: Some(1e-10),
            ..Default::default()
        });
        assert_eq!(tiny.expect("valid").timeout, Some(Duration::from_micros(1)));
        let c = resolve(Overrides {
            timeout_secs: Some(0.25),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(c.timeout, Some(Duration::from_millis(250)));
    }

    #[test]
    fn guest_args_become_the_command_line() {
        let o = Overrides {
            guest_args: vec!["ops=5".into(), "seed=7".into()],
            ..Default::default()
        };
        assert_eq!(resolve(o).expect("valid").cmdline, "ops=5 seed=7");
        let long = Overrides {
            guest_args: vec!["x".repeat(CMDLINE_MAX as usize)],
            ..Default::default()
        };
        assert!(matches!(resolve(long), Err(ConfigError::CmdlineTooLong(_))));
        let nul = Overrides {
            guest_args: vec!["a\0b".into()],
            ..Default::default()
        };
        assert!(matches!(resolve(nul), Err(ConfigError::CmdlineNul)));
    }

    #[test]
    fn file_values_apply_and_flags_win() {
        let path = Path::new("/cfg/vm.toml");
        let file = ConfigFile::parse(
            "[vm]\nimage = \"g.elf\"\nmemory_mib = 64\ntimeout_secs = 5\ncmdline = \"a=1\"\nstrict_io = true\n",
            path,
        )
        .expect("valid file");
        let c = VmConfig::resolve(Overrides::default(), Some((&file, Path::new("/cfg"))))
            .expect("valid");
        assert_eq!(c.image, ImageSource::File(PathBuf::from("/cfg/g.elf")));
        assert_eq!(c.memory_mib, 64);
        assert_eq!(c.timeout, Some(Duration::from_secs(5)));
        assert_eq!(c.cmdline, "a=1");
        assert!(c.strict_io);
        let o = Overrides {
            image: Some("other.elf".into()),
            memory_mib: Some(32),
            guest_args: vec!["b=2".into()],
            ..Default::default()
        };
        let c = VmConfig::resolve(o, Some((&file, Path::new("/cfg")))).expect("valid");
        assert_eq!(c.image, ImageSource::File(PathBuf::from("other.elf")));
        assert_eq!((c.memory_mib, c.cmdline.as_str()), (32, "b=2"));
    }

    #[test]
    fn bad_files_give_one_line_errors_with_the_line_number() {
        let path = Path::new("vm.toml");
        let e = ConfigFile::parse("[vm]\nmemroy_mib = 5\n", path).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("config file vm.toml, line 2: "), "{msg}");
        assert!(msg.contains("memroy_mib"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        let e = ConfigFile::parse("[vm]\nmemory_mib = \"lots\"\n", path).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = ConfigFile::parse("[vm\n", path).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { line: 1, .. }), "{e}");
        let e = ConfigFile::parse("[nope]\n", path).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn only_bounded_regular_files_are_read() {
        let e = ConfigFile::load(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut f, &vec![b'#'; MAX_CONFIG_BYTES as usize + 1])
            .expect("write");
        let e = ConfigFile::load(f.path()).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = ConfigFile::load(Path::new("/nonexistent/vm.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read config file /nonexistent/vm.toml: "),
            "{e}"
        );
    }
}
