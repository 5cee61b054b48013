//! Parts of the docs written from the code (the configuration reference from clap, the
//! metrics reference from the registries): a unit test renders a part and compares it with
//! the page, so the page cannot drift from the code. With `UPDATE_REFERENCE=1` in the
//! environment the test writes the part into the page instead.

use std::path::Path;

/// The command that rewrites every generated part, for the messages that ask for it.
pub const UPDATE: &str = "UPDATE_REFERENCE=1 cargo test --workspace --lib --bins reference";

/// Checks that the part of the page at `page` between `<!-- begin NAME -->` and
/// `<!-- end NAME -->` is `generated` (with `UPDATE_REFERENCE` set: writes it there).
pub fn check(page: &Path, name: &str, generated: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(page).map_err(|e| format!("{}: {e}", page.display()))?;
    let (begin, end) = (
        format!("<!-- begin {name} -->\n"),
        format!("<!-- end {name} -->"),
    );
    let (Some(start), Some(stop)) = (text.find(&begin), text.find(&end)) else {
        return Err(format!(
            "{} has no `{}` ... `{end}` part",
            page.display(),
            begin.trim()
        ));
    };
    let from = start + begin.len();
    if text[from..stop] == *generated {
        return Ok(());
    }
    if std::env::var_os("UPDATE_REFERENCE").is_some() {
        let updated = format!("{}{generated}{}", &text[..from], &text[stop..]);
        return std::fs::write(page, updated).map_err(|e| format!("{}: {e}", page.display()));
    }
    Err(format!(
        "{}'s `{name}` part differs from what the code defines: run `{UPDATE}`, review the \
         diff and commit it.\nexpected:\n{generated}\nfound:\n{}",
        page.display(),
        &text[from..stop]
    ))
}

/// The page `relative` to the repository root, from a crate two levels below it.
pub fn page(crate_dir: &str, relative: &str) -> std::path::PathBuf {
    Path::new(crate_dir).join("../..").join(relative)
}
