//! `sesto tree`: every name below a folder, drawn as a tree.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use sesto::format::node::Kind;

use super::Global;

/// Show every folder and secret below a folder as a tree
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder to start from (default: the root)
    #[arg(default_value = "", hide_default_value = true)]
    path: String,
    /// Print JSON: nested {"name", "kind", "children"}
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
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&to_json(&tree))?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let title = sesto::SPath::parse(&args.path)?;
    writeln!(
        out,
        "{}",
        if title.is_root() {
            ".".to_string()
        } else {
            format!("{title}/")
        }
    )?;
    draw(&tree, "", out)?;
    Ok(ExitCode::SUCCESS)
}

fn draw(tree: &sesto::Tree, prefix: &str, out: &mut dyn Write) -> Result<()> {
    for (i, c) in tree.children.iter().enumerate() {
        let last = i + 1 == tree.children.len();
        let slash = if c.kind == Kind::Folder { "/" } else { "" };
        writeln!(
            out,
            "{prefix}{}{}{slash}",
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
    v
}
