//! Unit tests of `env_file`: the syntax, reading and digests.

use super::*;

fn vars(text: &str) -> Vec<(String, String)> {
    parse(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn comments_blank_lines_and_export_are_read_as_systemd_reads_them() {
    let text = "# a comment\n\n  ; another\nA=1\nexport B=two\n  C = spaced out  \nD=\n";
    assert_eq!(
        vars(text),
        pairs(&[("A", "1"), ("B", "two"), ("C", "spaced out"), ("D", "")])
    );
    // No comment after a value, as in systemd.
    assert_eq!(vars("A=b # c"), pairs(&[("A", "b # c")]));
    assert_eq!(exported_names(text), ["B"]);
    assert!(exported_names("A=\"export B=1\"\n").is_empty());
    // `export` alone is a name, and `exported=1` is not an export.
    assert_eq!(
        vars("export=1\nexported=2"),
        pairs(&[("export", "1"), ("exported", "2")])
    );
}

#[test]
fn quotes_follow_systemd_rules() {
    assert_eq!(vars(r#"A='$x \n "q"'"#), pairs(&[("A", r#"$x \n "q""#)]));
    assert_eq!(
        vars(r#"A="a \"b\" \\ \$x \` \n""#),
        pairs(&[("A", r#"a "b" \ $x ` \n"#)])
    );
    assert_eq!(vars(r#"A="x"'y'z"#), pairs(&[("A", "xyz")]));
    assert_eq!(vars("A=\"  kept  \"  \n"), pairs(&[("A", "  kept  ")]));
    // A quote inside an unquoted value is literal.
    assert_eq!(vars(r#"A=it's"#), pairs(&[("A", "it's")]));
    // Multi-line quoted values keep their line ends.
    assert_eq!(vars("A=\"one\ntwo\""), pairs(&[("A", "one\ntwo")]));
}

#[test]
fn backslashes_escape_and_continue_lines() {
    assert_eq!(
        vars("A=one\\\ntwo\nB=x"),
        pairs(&[("A", "onetwo"), ("B", "x")])
    );
    assert_eq!(vars("A=\"one \\\ntwo\""), pairs(&[("A", "one two")]));
    assert_eq!(vars(r"A=a\ b\\c"), pairs(&[("A", r"a b\c")]));
    assert_eq!(vars("A=trailing\\ \n"), pairs(&[("A", "trailing ")]));
}

#[test]
fn later_assignments_come_later_and_crlf_is_a_line_end() {
    assert_eq!(vars("A=1\r\nA=2\r\n"), pairs(&[("A", "1"), ("A", "2")]));
}

#[test]
fn syntax_errors_are_located() {
    let errors = parse("A=1\nnot an assignment\nexport 9X=1\nB='open").unwrap_err();
    let offsets: Vec<usize> = errors.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, [4, 29, 36], "{errors:?}");
    assert!(errors[0].message.contains("has no `=`"), "{errors:?}");
    assert!(errors[1]
        .message
        .contains("`9X` is not a valid variable name"));
    assert!(errors[2].message.contains("single quote is not closed"));
    assert!(parse("A=\0").is_err());
}

#[test]
fn load_reads_in_order_skips_missing_optional_files_and_names_missing_required_ones() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.env");
    std::fs::write(&a, "A=1\nB=from-a\n").unwrap();
    let b = dir.path().join("b.env");
    std::fs::write(&b, "B=from-b\n").unwrap();
    let missing = dir.path().join("missing.env");
    let entry = |path: &Path, optional| EnvFile {
        path: path.to_path_buf(),
        optional,
    };
    let files = [entry(&a, false), entry(&missing, true), entry(&b, false)];
    let loaded = load(&files).unwrap();
    assert_eq!(
        loaded.vars,
        pairs(&[("A", "1"), ("B", "from-a"), ("B", "from-b")])
    );
    let err = load(&[entry(&missing, false)]).unwrap_err();
    assert!(
        err.contains("missing.env") && err.contains("No such file"),
        "{err}"
    );
    // The digest follows the content and the optional file's presence.
    let before = loaded.digest;
    std::fs::write(&b, "B=changed\n").unwrap();
    assert_ne!(digest(&files), Some(before));
    std::fs::write(&b, "B=from-b\n").unwrap();
    assert_eq!(digest(&files), Some(before));
    std::fs::write(&missing, "").unwrap();
    assert_ne!(digest(&files), Some(before));
    // A syntax error names the file, line and column.
    std::fs::write(&a, "A=1\n  oops\n").unwrap();
    let err = load(&files).unwrap_err();
    assert!(err.ends_with("a.env:2:3: this line has no `=`: write KEY=VALUE, or start the line with # to make it a comment"), "{err}");
    assert!(!err.contains("oops"), "the line is quoted: {err}");
    let errors: Vec<Diagnostic> = check(&files)
        .into_iter()
        .filter(Diagnostic::is_error)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].location, (2, 3));
}
