//! `--help` for every command: snapshot-tested, and each with runnable
//! examples.

use crate::util::run;

const COMMANDS: [&[&str]; 14] = [
    &[],
    &["keys"],
    &["keys", "generate"],
    &["keys", "add"],
    &["keys", "rotate"],
    &["keys", "list"],
    &["keys", "retire"],
    &["encode"],
    &["decode"],
    &["check-references"],
    &["decode-history"],
    &["inspect"],
    &["probe"],
    &["probe-kek"],
];

#[test]
fn help_snapshots() {
    for command in COMMANDS {
        let mut args = command.to_vec();
        args.push("--help");
        let out = run(&args).expect_code(0);
        let name = if command.is_empty() {
            "payloadctl".to_owned()
        } else {
            format!("payloadctl-{}", command.join("-"))
        };
        insta::assert_snapshot!(name, out.stdout);
    }
}

#[test]
fn every_command_has_examples() {
    for command in COMMANDS {
        let mut args = command.to_vec();
        args.push("--help");
        let out = run(&args).expect_code(0);
        let examples = out
            .stdout
            .split("Examples:")
            .nth(1)
            .unwrap_or_else(|| panic!("{command:?} has no examples"));
        let count = examples
            .lines()
            .filter(|l| l.contains("payloadctl "))
            .count();
        assert!(count >= 2, "{command:?} has {count} examples");
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&["no-such-command"]).expect_code(2);
    assert!(
        out.stderr.contains("unrecognized subcommand"),
        "{}",
        out.stderr
    );
    run(&["decode-history"]).expect_code(2);
    run(&["--version"]).expect_code(0);
}
