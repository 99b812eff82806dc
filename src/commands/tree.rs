//! `sesto tree`: every name below a folder, drawn as a tree.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use sesto::format::node::Kind;

use super::Global;

/// Show every folder and secret below a folder as a tree
///
/// A folder whose file cannot be read (missing, or refused) is shown as
/// `(unreadable)` and named on stderr, and the exit status is 1; the rest of
/// the tree is shown all the same.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder to start from (default: the root)
    #[arg(default_value = "", hide_default_value = true)]
    path: String,
    /// Print JSON: nested {"name", "kind", "children"}, and "unreadable"
    /// (why) on a folder that could not be read
    #[arg(long)]
    json: bool,
}

impl Args {
    /// The whole store, drawn (what `sesto` alone shows).
    pub fn whole_store() -> Args {
        Args {
            path: String::new(),
            json: false,
        }
    }
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let tree = store.tree(&args.path)?;
    let status = |unreadable: bool| {
        if unreadable {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    };
    let title = sesto::SPath::parse(&args.path)?;
    // Named from the store's top, as `sesto ls` takes them: `tree prod`
    // reports `prod/db/`, not `db/`.
    let unreadable: Vec<_> = tree
        .unreadable()
        .into_iter()
        .map(|(p, why)| {
            (
                p.names().iter().fold(title.clone(), |at, n| at.join(n)),
                why,
            )
        })
        .collect();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&to_json(&tree))?)?;
        return Ok(status(report_unreadable(&unreadable)));
    }
    writeln!(
        out,
        "{}",
        if title.is_root() {
            ".".to_string()
        } else {
            format!("{title}/")
        }
    )?;
    // Standard output flushes every line; a tree of 100,000 is that many writes.
    let mut lines = std::io::BufWriter::new(out);
    draw(&tree, "", &mut lines)?;
    lines.flush()?;
    Ok(status(report_unreadable(&unreadable)))
}

/// Names each folder that could not be read on stderr, with why and what
/// to run; returns whether there was one.
pub(super) fn report_unreadable(unreadable: &[(sesto::SPath, String)]) -> bool {
    for (path, why) in unreadable {
        eprintln!("error: {path}/: not shown: {why}");
    }
    if !unreadable.is_empty() {
        eprintln!(
            "hint: `sesto fsck` checks the whole store; `git log -- .sesto` shows who changed it"
        );
    }
    !unreadable.is_empty()
}

fn draw(tree: &sesto::Tree, prefix: &str, out: &mut dyn Write) -> Result<()> {
    for (i, c) in tree.children.iter().enumerate() {
        let last = i + 1 == tree.children.len();
        let slash = if c.kind == Kind::Folder { "/" } else { "" };
        let unreadable = if c.unreadable.is_some() {
            " (unreadable)"
        } else {
            ""
        };
        writeln!(
            out,
            "{prefix}{}{}{slash}{unreadable}",
            if last { "└── " } else { "├── " },
            c.name
        )?;
        if c.kind == Kind::Folder {
            draw(
                c,
                &format!("{prefix}{}", if last { "    " } else { "│   " }),
                out,
            )?;
        }
    }
    Ok(())
}

fn to_json(t: &sesto::Tree) -> serde_json::Value {
    let mut v = serde_json::json!({"name": t.name, "kind": t.kind.to_string()});
    if t.kind == Kind::Folder {
        v["children"] = t.children.iter().map(to_json).collect();
    }
    if let Some(why) = &t.unreadable {
        v["unreadable"] = why.as_str().into();
    }
    v
}
