//! `env_file` as a Nomad `template` with `env = true`: the variables the files hold
//! now, written into the job. Nomad's template sandbox keeps a template from reading a
//! file outside the allocation (`source` or the `file` function on `/etc/...`), so the
//! values go into `data`; and a template's variables win over the task's `env` in
//! Nomad (`client/taskenv/env.go`, `Builder.buildEnv`), where in dmgr `env` wins: a
//! name set in both is written again at the end with `env`'s value.
//!
//! Each line is `NAME="VALUE"` with VALUE a JSON string, which hashicorp/go-envparse
//! (what Nomad reads env templates with) decodes exactly, newlines included; `{{`
//! is escaped for Go's template engine.

use super::super::Lost;
use super::Template;
use crate::config::Daemon;

/// Where the variables are rendered: the task's `secrets/` directory, which only the
/// task can read.
pub(crate) const DESTINATION: &str = "secrets/env_file.env";

/// The template for `d`'s `env_file` as the files read now (none when no file has a
/// variable), and the notes on what differs.
pub(crate) fn env_file(d: &Daemon) -> (Option<Template>, Vec<Lost>) {
    let written: Vec<String> = d.process.env_file.iter().map(|f| f.as_written()).collect();
    let key = match written.as_slice() {
        [one] => format!("env_file = {one:?}"),
        all => format!("env_file = {all:?}"),
    };
    let loaded = match crate::config::env_file::load(&d.process.env_file) {
        Ok(loaded) => loaded,
        Err(why) => {
            let lost = Lost::new(
                key,
                format!("cannot be read now, so the job has none of its variables: {why}"),
            );
            return (None, vec![lost]);
        }
    };
    let mut data = String::new();
    for (name, value) in &loaded.vars {
        data.push_str(&line(name, value));
    }
    // `env` wins in dmgr; a template's variables win in Nomad.
    for (name, value) in &d.process.env {
        if loaded.vars.iter().any(|(n, _)| n == name) {
            data.push_str(&line(name, value));
        }
    }
    let lost = Lost::new(
        key,
        format!(
            "its variables as they read now are in the template to {DESTINATION} (Nomad's template sandbox cannot read the file itself): export again after changing it"
        ),
    );
    if data.is_empty() {
        return (None, vec![lost]);
    }
    let template = Template {
        data,
        destination: DESTINATION.to_string(),
        env: true,
    };
    (Some(template), vec![lost])
}

/// One `NAME="VALUE"` line: the value a JSON string, `{{` escaped for Go templates.
fn line(name: &str, value: &str) -> String {
    let json = serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into());
    format!("{name}={}\n", json.replace("{{", "{{\"{{\"}}"))
}

#[cfg(test)]
mod tests {
    use super::super::super::tests_support::Files;
    use super::*;

    #[test]
    fn variables_are_json_strings_and_env_wins_as_in_dmgr() {
        let files = Files::new();
        let env_path = files.tmp.path().join("web.env");
        std::fs::write(
            &env_path,
            "export EXPORTED=value1\nQUOTED=\"two words\"\nSINGLE='a $b'\nFROM_ENV=file-loses\nBRACES={{x}}\n",
        )
        .unwrap();
        let d = files.daemon(
            "web",
            &format!(
                "command = \"/bin/true\"\nenv_file = {:?}\nenv = {{ FROM_ENV = \"env-wins\", ONLY_ENV = \"x\" }}\n",
                env_path.display().to_string()
            ),
        );
        let (template, lost) = env_file(&d);
        let template = template.unwrap();
        assert_eq!(
            template.data,
            "EXPORTED=\"value1\"\nQUOTED=\"two words\"\nSINGLE=\"a $b\"\nFROM_ENV=\"file-loses\"\nBRACES=\"{{\"{{\"}}x}}\"\nFROM_ENV=\"env-wins\"\n"
        );
        assert_eq!(template.destination, DESTINATION);
        assert!(template.env);
        assert!(lost[0].what.contains("export again"), "{lost:?}");
    }

    #[test]
    fn an_optional_missing_file_gives_no_template_and_an_unreadable_one_says_why() {
        let files = Files::new();
        let d = files.daemon(
            "web",
            "command = \"/bin/true\"\nenv_file = \"-/nonexistent/web.env\"\n",
        );
        assert!(env_file(&d).0.is_none());
        let d = files.daemon(
            "web",
            "command = \"/bin/true\"\nenv_file = \"/nonexistent/web.env\"\n",
        );
        let (template, lost) = env_file(&d);
        assert!(template.is_none());
        assert!(lost[0].what.contains("cannot be read now"), "{lost:?}");
    }
}
