//! The `auditwatch` command line. Exit codes: 0 ran (alerts or not), 1 runtime failure,
//! 2 bad usage, config or rules, 3 `--fail-on` threshold reached.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "auditwatch",
    version,
    about = "Streaming anomaly detector for HashiCorp Vault and OpenBao audit logs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Jsonl,
    Text,
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
    /// Validate a config file; every problem is listed as file:line:col
    Check { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging();
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
            ConfigCommand::Check { file } => cli::config_check(&file),
        },
    };
    ExitCode::from(code)
}
