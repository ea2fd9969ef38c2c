//! The `auditwatch` command line. Exit codes: 0 ran (alerts or not), 1 runtime failure,
//! 2 bad usage, config or rules, 3 `--fail-on` threshold reached.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

/// `--version`: the release, the commit it was built from and the build date (see build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("AUDITWATCH_GIT_REVISION"),
    ", built ",
    env!("AUDITWATCH_BUILD_DATE"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "auditwatch",
    version = VERSION,
    about = "Streaming anomaly detector for HashiCorp Vault and OpenBao audit logs",
    after_help = "Logs go to stderr: AUDITWATCH_LOG (or RUST_LOG) sets the filter (default: warn,auditwatch=info); NO_COLOR turns colour off."
)]
struct Cli {
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: cli::log::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// The alert record, one JSON object per line
    Jsonl,
    /// One line per alert for people
    Text,
    /// The record mapped to Elastic Common Schema, one JSON object per line
    Ecs,
}

#[derive(Subcommand)]
enum Command {
    /// Replay audit files (plain, .gz, directories of rotated sets, - for stdin) and print alerts
    Replay(cli::replay::ReplayArgs),
    /// Generate realistic multi-tenant audit traffic, optionally with planted findings
    Simulate(cli::simulate::SimulateArgs),
    /// Check or test rule files
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Run the daemon: read Vault's audit stream live (socket, file tail, CloudWatch Logs) and raise alerts
    Run(cli::run::RunArgs),
    /// Print or check a config file
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print a shell completion script (e.g. `auditwatch completions bash > /usr/share/bash-completion/completions/auditwatch`)
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page as roff (e.g. `auditwatch man > auditwatch.1; man ./auditwatch.1`)
    Man,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate rule files; every problem is listed as file:line:col
    Check {
        /// A rules directory or file (default: the embedded rules)
        dir: Option<PathBuf>,
        /// Config file the rules are checked against
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the examples embedded in each rule
    Test {
        /// A rules directory or file (default: the embedded rules)
        dir: Option<PathBuf>,
        /// Config file the examples run with
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print every example, not only failures
        #[arg(long, short)]
        verbose: bool,
    },
    /// List the rules
    List { dir: Option<PathBuf> },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the built-in default config (a starting file)
    Default,
    /// Validate a config file; every problem is listed as file:line:col (default: the
    /// file `run` would use: $AUDITWATCH_CONFIG, else /etc/auditwatch/auditwatch.yaml)
    Check { file: Option<PathBuf> },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::log::init(cli.log_format);
    let code = match cli.command {
        Command::Replay(args) => cli::replay::run(args),
        Command::Run(args) => cli::run::run(args),
        Command::Simulate(args) => cli::simulate::run(args),
        Command::Rules { command } => match command {
            RulesCommand::Check { dir, config } => cli::rules::check(dir, config),
            RulesCommand::Test {
                dir,
                config,
                verbose,
            } => cli::rules::test(dir, config, verbose),
            RulesCommand::List { dir } => cli::rules::list(dir),
        },
        Command::Config { command } => match command {
            ConfigCommand::Default => {
                cli::out::out!("{}", auditwatch::config::DEFAULT_YAML);
                0
            }
            ConfigCommand::Check { file } => cli::config_check(file),
        },
        Command::Completions { shell } => {
            let mut out = cli::out::stdout();
            clap_complete::generate(shell, &mut Cli::command(), "auditwatch", &mut out);
            0
        }
        Command::Man => cli::print_man(Cli::command()),
    };
    ExitCode::from(code)
}
