//! `list [--format table|json] [--quiet]`.

use crate::cli::{ListArgs, ListFormat};
use crate::error::Error;

use super::Context;
use super::state::StateView;

/// Prints the containers under `--root`.
pub fn run(ctx: &Context, args: &ListArgs) -> Result<(), Error> {
    let mut views = Vec::new();
    for id in ctx.root.list_ids()? {
        // A directory being created or removed concurrently is skipped, not an error.
        if let Ok(st) = ctx.root.load(&id) {
            views.push(StateView::new(&ctx.root, &st));
        }
    }
    if args.quiet {
        for v in &views {
            println!("{}", v.id);
        }
        return Ok(());
    }
    match args.format {
        ListFormat::Json => {
            println!(
                "{}",
                serde_json::to_string(&views).expect("state views serialise")
            );
        }
        ListFormat::Table => print!("{}", table(&views)),
    }
    Ok(())
}

fn table(views: &[StateView]) -> String {
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
    for v in views {
        rows.push([
            v.id.clone(),
            v.pid.to_string(),
            v.status.to_string(),
            v.bundle.display().to_string(),
            v.created.clone(),
            v.owner.clone(),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[i] + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
