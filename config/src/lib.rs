//! Settings in three layers, each overriding the one before: a TOML file (`--config FILE`),
//! `SIGHTLINE_*` environment variables, and command-line flags.
//!
//! Each binary has one settings type that is the schema of all three. It derives clap's
//! `Args` (the flags, the variable each one reads, the built-in defaults) and serde's
//! `Serialize` and `Deserialize` with `rename_all = "kebab-case"`, so a file key is the flag's
//! name without `--`. Clap reads the flags and the environment and knows which values came
//! from neither; the file may set exactly those. The merged settings are read back through
//! serde, so a value from the file is type-checked like any other, and with
//! `deny_unknown_fields` a misspelt key is an error that lists the known ones.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};

pub use toml::Table;

/// The command line, parsed, and the config file it names, read.
pub struct Layers {
    matches: ArgMatches,
    /// Every argument id of the command: clap panics (in debug builds) on a lookup of another.
    ids: Vec<String>,
    file: Option<(PathBuf, Table)>,
}

impl Layers {
    /// Parse this process's command line as `T` (on bad flags, print clap's message and exit,
    /// as `T::parse()` does) and read the TOML file that `config_file` finds in it, if any.
    pub fn parse<T: CommandFactory + FromArgMatches>(
        config_file: impl FnOnce(&T) -> Option<PathBuf>,
    ) -> anyhow::Result<(T, Layers)> {
        Self::parse_from(std::env::args_os(), config_file)
    }

    /// [`Layers::parse`] for a given command line (the first item is the program's name).
    pub fn parse_from<T: CommandFactory + FromArgMatches>(
        argv: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
        config_file: impl FnOnce(&T) -> Option<PathBuf>,
    ) -> anyhow::Result<(T, Layers)> {
        let command = T::command();
        let ids = command
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect();
        let matches = command.get_matches_from(argv);
        let args = T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let file = match config_file(&args) {
            Some(path) => {
                let table = read_table(&path)?;
                Some((path, table))
            }
            None => None,
        };
        Ok((args, Layers { matches, ids, file }))
    }

    /// The config file's path, if one was named.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_ref().map(|(path, _)| path.as_path())
    }

    /// Whether a setting (by its file key) was given as a flag or an environment variable,
    /// which the file cannot override.
    pub fn from_flag_or_env(&self, key: &str) -> bool {
        let id = key.replace('-', "_");
        self.ids.contains(&id)
            && matches!(
                self.matches.value_source(&id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
    }

    /// The settings `S` in force: a flag, else its environment variable, else the last of
    /// `overlays` that has the key (e.g. one camera's table in a file listing several), else
    /// the file, else the built-in default.
    pub fn resolve<S>(&self, overlays: &[&Table]) -> anyhow::Result<S>
    where
        S: FromArgMatches + Serialize + DeserializeOwned,
    {
        let given = S::from_arg_matches(&self.matches)?;
        let mut table = match toml::Value::try_from(&given).context("settings as TOML")? {
            toml::Value::Table(table) => table,
            other => anyhow::bail!("settings are not a table: {other}"),
        };
        let files = self.file.iter().map(|(_, table)| table);
        for layer in files.chain(overlays.iter().copied()) {
            for (key, value) in layer {
                if !self.from_flag_or_env(key) {
                    table.insert(key.clone(), value.clone());
                }
            }
        }
        // Through text, so an error points at the line holding the bad key.
        let text = toml::to_string(&table).context("settings as TOML")?;
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|span| format!("`{}`: ", line_at(&text, span.start)))
                .unwrap_or_default();
            match self.file() {
                Some(path) => anyhow!("config file {}: {line}{}", path.display(), e.message()),
                None => anyhow!("settings: {line}{}", e.message()),
            }
        })
    }
}

/// The line of `text` that holds byte `at`.
fn line_at(text: &str, at: usize) -> &str {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    text[start..end].trim()
}

fn read_table(path: &Path) -> anyhow::Result<Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    text.parse::<Table>()
        .map_err(|e| anyhow!("config file {}: {e}", path.display()))
}

/// Settings as a TOML document (for `--print-config`; a file `--config` reads back).
pub fn to_toml<S: Serialize>(settings: &S) -> anyhow::Result<String> {
    toml::to_string_pretty(settings).context("settings as TOML")
}

/// The settings of `S` that break the naming rule its users rely on: each reads the variable
/// `SIGHTLINE_` + its file key in upper case with `_` for `-` (the key is its field's name in
/// kebab-case, which is also its clap id with `-` for `_`). For a test of each binary.
pub fn misnamed_settings<S: clap::Args>() -> Vec<String> {
    let command = S::augment_args(clap::Command::new("settings"));
    command
        .get_arguments()
        .filter(|arg| {
            let expected = format!("SIGHTLINE_{}", arg.get_id().as_str().to_uppercase());
            arg.get_env() != Some(std::ffi::OsStr::new(&expected))
        })
        .map(|arg| arg.get_id().to_string())
        .collect()
}

/// Deserialize a value the file may write as text or as a bare number (`"2M"` or `2000000`,
/// `"1h"` or `3600`) with the parser its flag uses, for `deserialize_with`.
pub fn text_or_number<'de, D, T>(
    d: D,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let text = match toml::Value::deserialize(d)? {
        toml::Value::String(text) => text,
        toml::Value::Integer(n) => n.to_string(),
        other => {
            return Err(D::Error::custom(format!(
                "expected text or a whole number, found {}",
                other.type_str()
            )))
        }
    };
    parse(&text).map_err(D::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Args, Serialize, Deserialize, PartialEq)]
    #[serde(rename_all = "kebab-case", deny_unknown_fields)]
    struct Settings {
        #[arg(long, env = "SIGHTLINE_CONFIG_TEST_PORT", default_value_t = 80)]
        port: u16,
        #[arg(long, env = "SIGHTLINE_CONFIG_TEST_NAME")]
        name: Option<String>,
        #[arg(long, default_value = "2M", value_parser = parse_rate)]
        #[serde(deserialize_with = "rate")]
        rate: u32,
        #[arg(long = "url", value_delimiter = ',')]
        urls: Vec<String>,
        #[arg(long)]
        quiet: bool,
        /// Named by the rule (the others are not, so tests can set their variables alone).
        #[arg(long, env = "SIGHTLINE_CONFIG_TEST_LEVEL")]
        config_test_level: Option<u8>,
    }

    fn parse_rate(s: &str) -> Result<u32, String> {
        match s.strip_suffix('M') {
            Some(m) => m.parse::<u32>().map(|m| m * 1_000_000),
            None => s.parse(),
        }
        .map_err(|_| format!("`{s}` is not a rate"))
    }

    fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        text_or_number(d, parse_rate)
    }

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        settings: Settings,
        #[arg(long)]
        config: Option<PathBuf>,
    }

    /// A TOML file, removed when dropped.
    struct TempFile(PathBuf);

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn file(text: &str) -> TempFile {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("sightline-config-{}-{n}.toml", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    /// Held while a test reads the environment, or sets it.
    static ENVIRONMENT: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn resolve(argv: &[&str]) -> anyhow::Result<Settings> {
        let _env = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
        resolve_in_this_environment(argv)
    }

    fn resolve_in_this_environment(argv: &[&str]) -> anyhow::Result<Settings> {
        let argv = std::iter::once("test").chain(argv.iter().copied());
        let (_, layers) = Layers::parse_from::<Args>(argv, |a| a.config.clone())?;
        layers.resolve(&[])
    }

    #[test]
    fn defaults_then_file_then_flags() {
        let none = resolve(&[]).unwrap();
        assert_eq!((none.port, none.rate, none.quiet), (80, 2_000_000, false));
        let f = file("port = 8000\nrate = \"3M\"\nurl = 1\nurls = [\"a\", \"b\"]\nquiet = true\n");
        let path = f.0.to_str().unwrap();
        // `url` is the flag's name, not a key: the file's keys are the settings' names.
        let err = resolve(&["--config", path]).unwrap_err().to_string();
        assert!(err.contains("unknown field `url`"), "{err}");
        let f = file("port = 8000\nrate = 5000000\nurls = [\"a\", \"b\"]\nquiet = true\n");
        let path = f.0.to_str().unwrap();
        let from_file = resolve(&["--config", path]).unwrap();
        assert_eq!(from_file.port, 8000);
        assert_eq!(from_file.rate, 5_000_000);
        assert_eq!(from_file.urls, ["a", "b"]);
        assert!(from_file.quiet);
        let flags = resolve(&[
            "--config", path, "--port", "9000", "--url", "c", "--rate", "1M",
        ]);
        let flags = flags.unwrap();
        assert_eq!((flags.port, flags.rate), (9000, 1_000_000));
        assert_eq!(flags.urls, ["c"]);
    }

    #[test]
    fn the_environment_beats_the_file_and_flags_beat_both() {
        let f = file("port = 8000\nname = \"from-file\"\n");
        let path = f.0.to_str().unwrap();
        let (env, flag) = {
            let _env = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
            std::env::set_var("SIGHTLINE_CONFIG_TEST_PORT", "8500");
            std::env::set_var("SIGHTLINE_CONFIG_TEST_NAME", "from-env");
            let env = resolve_in_this_environment(&["--config", path]);
            let flag = resolve_in_this_environment(&["--config", path, "--name", "from-flag"]);
            std::env::remove_var("SIGHTLINE_CONFIG_TEST_PORT");
            std::env::remove_var("SIGHTLINE_CONFIG_TEST_NAME");
            (env.unwrap(), flag.unwrap())
        };
        assert_eq!((env.port, env.name.as_deref()), (8500, Some("from-env")));
        assert_eq!((flag.port, flag.name.as_deref()), (8500, Some("from-flag")));
    }

    #[test]
    fn overlays_beat_the_file_but_not_flags() {
        let f = file("port = 8000\nname = \"top\"\n");
        let path = f.0.to_str().unwrap();
        let overlay: Table = "name = \"porch\"\nport = 8100\n".parse().unwrap();
        let argv = ["test", "--config", path, "--port", "9000"];
        let _env = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
        let (_, layers) = Layers::parse_from::<Args>(argv, |a| a.config.clone()).unwrap();
        let s: Settings = layers.resolve(&[&overlay]).unwrap();
        assert_eq!((s.port, s.name.as_deref()), (9000, Some("porch")));
        assert!(layers.from_flag_or_env("port"));
        assert!(!layers.from_flag_or_env("name"));
        assert!(!layers.from_flag_or_env("no-such-setting"));
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let missing = resolve(&["--config", "/nonexistent/sightline.toml"]).unwrap_err();
        assert!(
            format!("{missing:#}").contains("reading config file /nonexistent/sightline.toml"),
            "{missing:#}"
        );
        for (text, expected) in [
            ("port = ", "config file"),
            (
                "port = \"eighty\"",
                "`port = \"eighty\"`: invalid type: string \"eighty\"",
            ),
            ("port = 70000", "`port = 70000`"),
            ("rate = \"fast\"", "`fast` is not a rate"),
            (
                "rate = true",
                "expected text or a whole number, found boolean",
            ),
            ("prot = 1", "unknown field `prot`, expected one of"),
            ("[port]\nx = 1", "`[port]`: invalid type: map"),
        ] {
            let f = file(text);
            let err = resolve(&["--config", f.0.to_str().unwrap()]).unwrap_err();
            let err = format!("{err:#}");
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(err.contains(f.0.to_str().unwrap()), "{text:?}: {err}");
        }
    }

    #[test]
    fn settings_without_their_variable_are_found() {
        let misnamed = misnamed_settings::<Settings>();
        assert_eq!(misnamed, ["port", "name", "rate", "urls", "quiet"]);
    }

    #[test]
    fn printed_settings_read_back_the_same() {
        let s = resolve(&["--name", "x", "--url", "a,b", "--quiet"]).unwrap();
        let f = file(&to_toml(&s).unwrap());
        assert_eq!(resolve(&["--config", f.0.to_str().unwrap()]).unwrap(), s);
    }
}
