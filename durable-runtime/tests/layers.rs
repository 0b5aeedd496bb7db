//! The module graphs of the workspace's crates have no cycle: each module uses only the modules
//! that ARCHITECTURE.md's map of its crate lists below it, and names an item through the module
//! that defines it, never through the crate root's re-exports.
//!
//! A crate's map is the code block's section headed by its source directory
//! (`durable-runtime/src/`, ...), read top-down: one entry per line indented by two spaces, its
//! file names (`retry.rs · clock.rs`, `store/file/`) before its description. Modules named on
//! one line are one layer: they may not use each other. Every `crate::…` path, and every
//! `super::…` path that reaches the crate root, is checked in `use` items, expressions, types
//! and macro bodies alike; comments, strings and the `$crate` of macro definitions are not
//! paths. `durable-postgres/src/` is not checked yet.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// A crate whose module graph is checked.
#[derive(Clone, Copy)]
struct Crate {
    /// Its source directory, as ARCHITECTURE.md's section heads it.
    section: &'static str,
    /// The crate root under it.
    root: &'static str,
    /// What the messages call its map.
    map: &'static str,
}

const RUNTIME: Crate = Crate {
    section: "durable-runtime/src/",
    root: "lib.rs",
    map: "runtime",
};

/// Checks `krate` against ARCHITECTURE.md at the workspace root.
fn check_workspace_crate(krate: Crate) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let architecture = std::fs::read_to_string(workspace.join("ARCHITECTURE.md"))
        .expect("read ARCHITECTURE.md at the workspace root");
    let tree = Tree::read(&workspace.join(krate.section));
    let problems = check_crate(krate, &architecture, &tree);
    assert!(
        problems.is_empty(),
        "the module graph of {} breaks ARCHITECTURE.md's layer order ({} problems):\n\n{}\n",
        krate.section,
        problems.len(),
        problems.join("\n\n")
    );
}

#[test]
fn every_module_uses_only_what_architecture_md_lists_below_it() {
    check_workspace_crate(RUNTIME);
}

#[test]
fn every_macros_module_uses_only_what_architecture_md_lists_below_it() {
    check_workspace_crate(Crate {
        section: "durable-macros/src/",
        root: "lib.rs",
        map: "durable-macros",
    });
}

#[test]
fn every_simulator_module_uses_only_what_architecture_md_lists_below_it() {
    check_workspace_crate(Crate {
        section: "durable-sim/src/",
        root: "lib.rs",
        map: "durable-sim",
    });
}

#[test]
fn every_http_module_uses_only_what_architecture_md_lists_below_it() {
    check_workspace_crate(Crate {
        section: "durable-http/src/",
        root: "lib.rs",
        map: "durable-http",
    });
}

#[test]
fn every_postgres_module_uses_only_what_architecture_md_lists_below_it() {
    check_workspace_crate(Crate {
        section: "durable-postgres/src/",
        root: "lib.rs",
        map: "durable-postgres",
    });
}

#[test]
fn every_demo_module_uses_only_what_architecture_md_lists_below_it() {
    check_workspace_crate(Crate {
        section: "demo/src/",
        root: "main.rs",
        map: "demo",
    });
}

/// The sources of `src/`, by path relative to it (`/`-separated).
#[derive(Default)]
struct Tree {
    files: BTreeMap<String, String>,
    dirs: BTreeSet<String>,
}

impl Tree {
    fn read(src: &Path) -> Tree {
        let mut tree = Tree::default();
        let mut pending = vec![src.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("list a source directory") {
                let path = entry.expect("a directory entry").path();
                let relative = path
                    .strip_prefix(src)
                    .expect("under src")
                    .to_string_lossy()
                    .replace('\\', "/");
                if path.is_dir() {
                    tree.dirs.insert(relative);
                    pending.push(path);
                } else if relative.ends_with(".rs") {
                    let source = std::fs::read_to_string(&path).expect("read a source file");
                    tree.files.insert(relative, source);
                }
            }
        }
        tree
    }
}

/// A crate's map in ARCHITECTURE.md: each top-level module's place.
type Layers = BTreeMap<String, Entry>;

/// A module's layer (0 at the top) and its line in ARCHITECTURE.md (1-based).
#[derive(Clone, Copy)]
struct Entry {
    layer: usize,
    line: usize,
}

fn parse_layers(
    krate: Crate,
    architecture: &str,
    tree: &Tree,
    problems: &mut Vec<String>,
) -> Layers {
    let mut modules = Layers::new();
    let mut in_block = false;
    let mut in_section = false;
    let mut found = false;
    let mut layer = 0;
    let mut previous: Option<String> = None;
    for (index, text) in architecture.lines().enumerate() {
        let line = index + 1;
        if text.trim_start().starts_with("```") {
            in_block = !in_block;
            in_section = false;
            continue;
        }
        if !in_block {
            continue;
        }
        if !text.starts_with(' ') && !text.is_empty() {
            in_section = text.split_whitespace().next() == Some(krate.section);
            found |= in_section;
            continue;
        }
        let is_entry = text.starts_with("  ") && !text[2..].starts_with(' ');
        if !in_section || !is_entry {
            continue;
        }
        let mut on_this_line = Vec::new();
        for name in entry_names(&text[2..]) {
            let exists = match name.strip_suffix('/') {
                Some(dir) => tree.dirs.contains(dir),
                None => tree.files.contains_key(name),
            };
            if !exists {
                problems.push(format!(
                    "ARCHITECTURE.md:{line}: the {} map lists `{name}`, which is not in \
                     {}: correct the map",
                    krate.map, krate.section
                ));
            }
            let module = module_of(name.trim_end_matches('/'));
            if !on_this_line.contains(&module) {
                on_this_line.push(module);
            }
        }
        for module in on_this_line.iter() {
            match modules.get(module) {
                None => {
                    modules.insert(module.clone(), Entry { layer, line });
                }
                // A module spread over consecutive lines (`store/mod.rs`, `store/file/`, ...)
                // keeps the layer of its first line.
                Some(_) if previous.as_ref() == Some(module) => {}
                Some(first) => problems.push(format!(
                    "ARCHITECTURE.md:{line}: `{module}` is listed again, apart from its first \
                     place on line {}: a module has one place in the layer order",
                    first.line
                )),
            }
        }
        if on_this_line.len() == 1 && previous.as_ref() == on_this_line.first() {
            continue;
        }
        previous = on_this_line.pop();
        layer += 1;
    }
    if !found {
        problems.push(format!(
            "ARCHITECTURE.md has no `{}` section in a code block: the layer order is read \
             from it",
            krate.section
        ));
    }
    modules
}

/// The file names an entry starts with: `retry.rs · clock.rs  retry policy…` → `retry.rs`,
/// `clock.rs`. A name ends in `.rs` or `/`; the description is whatever follows the last.
fn entry_names(entry: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut words = entry.split_whitespace();
    while let Some(word) = words.next() {
        if !(word.ends_with(".rs") || word.ends_with('/')) {
            break;
        }
        names.push(word);
        if words.next() != Some("·") {
            break;
        }
    }
    names
}

/// The top-level module a path under `src/` belongs to: `store/file/log.rs` → `store`,
/// `worker.rs` → `worker`, `lib.rs` → `lib`, `main.rs` → `main`.
fn module_of(path: &str) -> String {
    let first = path.split('/').next().unwrap_or(path);
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

/// How deep a file's top level is in the module tree: `worker.rs` and `store/mod.rs` are 1,
/// `store/memory.rs` 2, the crate root (`lib.rs`, `main.rs`) 0.
fn file_depth(path: &str, root: &str) -> usize {
    if path == root {
        return 0;
    }
    let components = path.split('/').count();
    if path.ends_with("/mod.rs") {
        components - 1
    } else {
        components
    }
}

/// A path in the sources that leaves its own top-level module.
#[derive(Debug, PartialEq)]
struct Use {
    line: usize,
    /// The first segment after the crate root: a module, a macro or an item of `lib.rs`.
    target: String,
    is_macro: bool,
    /// The path as written, for the message.
    text: String,
}

/// Every path of `source` that starts at the crate root: `crate::x…`, or `super::x…` with
/// as many `super`s as the file (or inline module) is deep.
fn root_paths(source: &str, depth: usize) -> Result<Vec<Use>, String> {
    let tokens: TokenStream = source.parse().map_err(|e| format!("does not lex: {e}"))?;
    let mut uses = Vec::new();
    walk(tokens, depth, &mut uses);
    Ok(uses)
}

fn walk(tokens: TokenStream, depth: usize, uses: &mut Vec<Use>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Group(group) => {
                // `mod name { .. }`: one level deeper for `super::`.
                let inline_module = group.delimiter() == Delimiter::Brace
                    && i >= 2
                    && is_ident(&tokens[i - 2], "mod")
                    && matches!(tokens[i - 1], TokenTree::Ident(_));
                walk(group.stream(), depth + usize::from(inline_module), uses);
            }
            TokenTree::Ident(ident) => {
                let after_dollar = i > 0 && is_punct(&tokens[i - 1], '$');
                let starts_path = i == 0 || !is_path_separator_before(&tokens, i);
                if ident == "crate" && !after_dollar && starts_path {
                    if let Some(rest) = separator_then(&tokens, i + 1) {
                        root_path(&tokens, rest, "crate::", uses);
                    }
                } else if ident == "super" && starts_path && depth > 0 {
                    let mut at = i;
                    let mut supers = 1;
                    while let Some(next) = separator_then(&tokens, at + 1) {
                        if is_ident(&tokens[next], "super") {
                            supers += 1;
                            at = next;
                        } else {
                            if supers == depth {
                                let written = "super::".repeat(supers);
                                root_path(&tokens, next, &written, uses);
                            }
                            break;
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Records the path whose first segment after the root is `tokens[at]`: an identifier, or a
/// `{ .. }` group of them (a grouped `use`).
fn root_path(tokens: &[TokenTree], at: usize, written: &str, uses: &mut Vec<Use>) {
    match &tokens[at] {
        TokenTree::Ident(first) => {
            let is_macro = tokens.get(at + 1).is_some_and(|t| is_punct(t, '!'));
            let mut text = format!("{written}{first}");
            let mut next = at + 1;
            while let Some(segment) = separator_then(tokens, next) {
                match &tokens[segment] {
                    TokenTree::Ident(ident) => {
                        let _ = write!(text, "::{ident}");
                        next = segment + 1;
                    }
                    _ => {
                        text.push_str("::{..}");
                        break;
                    }
                }
            }
            if first != "self" {
                uses.push(Use {
                    line: first.span().start().line,
                    target: first.to_string(),
                    is_macro,
                    text,
                });
            }
        }
        TokenTree::Group(group) if group.delimiter() == Delimiter::Brace => {
            let mut start = true;
            for item in group.stream() {
                if let (true, TokenTree::Ident(ident)) = (start, &item) {
                    if ident != "self" {
                        uses.push(Use {
                            line: ident.span().start().line,
                            target: ident.to_string(),
                            is_macro: false,
                            text: format!("{written}{ident}"),
                        });
                    }
                }
                start = is_punct(&item, ',');
            }
        }
        // A glob at the root takes everything lib.rs has.
        TokenTree::Punct(glob) if glob.as_char() == '*' => uses.push(Use {
            line: glob.span().start().line,
            target: "*".into(),
            is_macro: false,
            text: format!("{written}*"),
        }),
        _ => {}
    }
}

fn is_ident(token: &TokenTree, name: &str) -> bool {
    matches!(token, TokenTree::Ident(ident) if ident == name)
}

fn is_punct(token: &TokenTree, c: char) -> bool {
    matches!(token, TokenTree::Punct(p) if p.as_char() == c)
}

/// If `tokens[at..]` starts with `::`, the index after it.
fn separator_then(tokens: &[TokenTree], at: usize) -> Option<usize> {
    match (tokens.get(at), tokens.get(at + 1)) {
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':'
                && a.spacing() == Spacing::Joint
                && b.as_char() == ':'
                && at + 2 < tokens.len() =>
        {
            Some(at + 2)
        }
        _ => None,
    }
}

/// Whether `tokens[i]` follows a `::` (it is a later segment of a path, not its start).
fn is_path_separator_before(tokens: &[TokenTree], i: usize) -> bool {
    i >= 2 && is_punct(&tokens[i - 1], ':') && is_punct(&tokens[i - 2], ':')
}

/// The modules the crate root declares, and for each name it re-exports, the module it comes
/// from.
fn read_root(source: &str) -> (BTreeSet<String>, BTreeMap<String, String>) {
    let tokens: Vec<TokenTree> = match source.parse::<TokenStream>() {
        Ok(tokens) => tokens.into_iter().collect(),
        Err(_) => return Default::default(),
    };
    let mut modules = BTreeSet::new();
    let mut reexports = BTreeMap::new();
    for (i, token) in tokens.iter().enumerate() {
        if is_ident(token, "mod") {
            if let (Some(TokenTree::Ident(name)), Some(end)) =
                (tokens.get(i + 1), tokens.get(i + 2))
            {
                if is_punct(end, ';') {
                    modules.insert(name.to_string());
                }
            }
        }
        if is_ident(token, "use") && i > 0 && is_ident(&tokens[i - 1], "pub") {
            let Some(TokenTree::Ident(module)) = tokens.get(i + 1) else {
                continue;
            };
            let mut names = Vec::new();
            for token in &tokens[i + 2..] {
                if is_punct(token, ';') {
                    break;
                }
                collect_idents(token, &mut names);
            }
            for name in names {
                reexports.insert(name, module.to_string());
            }
        }
    }
    (modules, reexports)
}

fn collect_idents(token: &TokenTree, names: &mut Vec<String>) {
    match token {
        TokenTree::Ident(ident) => names.push(ident.to_string()),
        TokenTree::Group(group) => {
            for token in group.stream() {
                collect_idents(&token, names);
            }
        }
        _ => {}
    }
}

/// The `macro_rules!` macros each module defines (an exported one is named `crate::name!`).
fn macros_of(tree: &Tree) -> BTreeMap<String, String> {
    let mut macros = BTreeMap::new();
    for (path, source) in &tree.files {
        if let Ok(tokens) = source.parse::<TokenStream>() {
            let tokens: Vec<TokenTree> = tokens.into_iter().collect();
            for window in tokens.windows(3) {
                if is_ident(&window[0], "macro_rules") && is_punct(&window[1], '!') {
                    if let TokenTree::Ident(name) = &window[2] {
                        macros.insert(name.to_string(), module_of(path));
                    }
                }
            }
        }
    }
    macros
}

/// The runtime's problems (the checker's own tests are written against its map).
fn check(architecture: &str, tree: &Tree) -> Vec<String> {
    check_crate(RUNTIME, architecture, tree)
}

fn check_crate(krate: Crate, architecture: &str, tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let layers = parse_layers(krate, architecture, tree, &mut problems);
    let root = krate.root;
    let root_module = module_of(root);
    let (declared, reexports) = read_root(tree.files.get(root).map_or("", String::as_str));
    let macros = macros_of(tree);
    for module in &declared {
        if !layers.contains_key(module) {
            problems.push(format!(
                "{root} declares `mod {module}`, which ARCHITECTURE.md's {} map does not \
                 list: add it where it belongs in the layer order",
                krate.map
            ));
        }
    }
    for (path, source) in &tree.files {
        let module = module_of(path);
        if module == root_module {
            continue;
        }
        let uses = match root_paths(source, file_depth(path, root)) {
            Ok(uses) => uses,
            Err(error) => {
                problems.push(format!("src/{path} {error}"));
                continue;
            }
        };
        let Some(&own) = layers.get(&module) else {
            continue; // reported above, or not a module of lib.rs at all
        };
        for used in uses {
            let at = format!("src/{path}:{}: `{}`", used.line, used.text);
            let target = if used.is_macro {
                match macros.get(&used.target) {
                    Some(defined_in) => defined_in.clone(),
                    None => continue, // a macro from elsewhere; the compiler has the last word
                }
            } else if declared.contains(&used.target) {
                used.target.clone()
            } else {
                let from = match reexports.get(&used.target) {
                    Some(m) => format!(" (it is defined under `crate::{m}`)"),
                    None => String::new(),
                };
                problems.push(format!(
                    "{at} reaches `{}` through {root}'s re-exports{from}: import it from the \
                     module that defines it, so that the dependency shows and {root} stays \
                     the top of the graph",
                    used.target
                ));
                continue;
            };
            if target == module {
                continue;
            }
            let Some(&other) = layers.get(&target) else {
                continue; // an unlisted module, reported above
            };
            if other.layer > own.layer {
                continue;
            }
            let relation = if other.layer == own.layer {
                format!(
                    "`{target}` shares its line (ARCHITECTURE.md:{}), and modules of one \
                     line may not use each other",
                    other.line
                )
            } else {
                format!(
                    "`{target}` is listed above it (ARCHITECTURE.md:{})",
                    other.line
                )
            };
            problems.push(format!(
                "{at}: `{module}` (ARCHITECTURE.md:{}) may use only what the {} map \
                 lists below it, and {relation}. Move what both need into a module below both, \
                 or correct the order if the map is wrong",
                own.line, krate.map
            ));
        }
    }
    problems
}

/// The checker itself, on small maps and trees: each rule fails when broken.
mod checker {
    use super::*;

    const MAP: &str = "\
# Map

```
demo/src/        main.rs
durable-runtime/src/
  lib.rs         the public surface
  runtime.rs     the builder
  worker.rs      the loops
                 (a description on two lines)
  shared.rs · stats.rs
                 what they share; counters
  store/mod.rs   the store contract
  store/file/    the file store
  instance_id.rs ids
durable-macros/src/  lib.rs
```
";

    fn tree(files: &[(&str, &str)]) -> Tree {
        let mut tree = Tree::default();
        for (path, source) in files {
            tree.files.insert(path.to_string(), source.to_string());
            if let Some((dir, _)) = path.rsplit_once('/') {
                tree.dirs.insert(dir.to_string());
            }
        }
        tree
    }

    const LIB: &str = "mod runtime; mod worker; mod shared; mod stats; pub mod store; \
                       mod instance_id; pub use instance_id::{InstanceId}; \
                       pub use runtime::Runtime;";

    fn with(files: &[(&str, &str)]) -> Vec<String> {
        let mut all = vec![
            ("lib.rs", LIB),
            (
                "runtime.rs",
                "use crate::worker; use crate::shared::Shared;",
            ),
            ("worker.rs", "use crate::shared::Shared;"),
            ("shared.rs", "use crate::store::Store;"),
            ("stats.rs", ""),
            (
                "store/mod.rs",
                "use crate::instance_id::InstanceId; mod file;",
            ),
            (
                "store/file/mod.rs",
                "use super::super::instance_id::InstanceId;",
            ),
            ("instance_id.rs", ""),
        ];
        for (path, source) in files {
            all.retain(|(p, _)| p != path);
            all.push((path, source));
        }
        check(MAP, &tree(&all))
    }

    #[test]
    fn a_graph_that_follows_the_map_passes() {
        assert_eq!(with(&[]), Vec::<String>::new());
    }

    #[test]
    fn a_use_of_a_module_above_is_named_with_both_lines() {
        let problems = with(&[("shared.rs", "\n\nuse crate::runtime::Shared;")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "src/shared.rs:3: `crate::runtime::Shared`: `shared` (ARCHITECTURE.md:10) may \
                 use only what the runtime map lists below it, and `runtime` is listed above it \
                 (ARCHITECTURE.md:7)"
            ),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn modules_of_one_line_may_not_use_each_other() {
        let problems = with(&[("stats.rs", "fn f() { let _ = crate::shared::X; }")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("`shared` shares its line"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_path_through_lib_rs_is_refused_and_its_module_named() {
        let problems = with(&[("worker.rs", "use crate::InstanceId;")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "src/worker.rs:1: `crate::InstanceId` reaches `InstanceId` through lib.rs's \
                 re-exports (it is defined under `crate::instance_id`)"
            ),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn every_item_of_a_grouped_use_is_checked() {
        let problems = with(&[(
            "stats.rs",
            "use crate::{instance_id::InstanceId, worker::{self, Loop}, Runtime};",
        )]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("`crate::worker`"), "{problems:?}");
        assert!(
            problems[1].contains("`crate::Runtime` reaches"),
            "{problems:?}"
        );
    }

    #[test]
    fn paths_in_expressions_and_macro_bodies_count() {
        let problems = with(&[(
            "store/mod.rs",
            "fn f() { assert!(matches!(x, crate::runtime::Mode::A)); }",
        )]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("`crate::runtime::Mode::A`"),
            "{problems:?}"
        );
    }

    #[test]
    fn super_paths_that_reach_the_root_count() {
        let problems = with(&[
            ("store/file/mod.rs", "use super::super::worker::Loop;"),
            (
                "stats.rs",
                "mod tests { use super::super::runtime::X; use super::Y; }",
            ),
        ]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("src/stats.rs:1: `super::super::runtime::X`"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("src/store/file/mod.rs:1: `super::super::worker::Loop`"),
            "{problems:?}"
        );
    }

    #[test]
    fn comments_strings_docs_and_dollar_crate_are_not_paths() {
        let source = r####"
            //! See [`crate::runtime`].
            /// Uses `crate::worker::X`.
            // crate::runtime::Y
            /* crate::runtime::Z /* nested */ */
            const S: &str = "crate::runtime::W";
            const R: &str = r#"crate::runtime::V"#;
            macro_rules! m { () => { $crate::runtime::U } }
            pub(crate) fn f<'a>(_: &'a str) {}
        "####;
        assert_eq!(with(&[("stats.rs", source)]), Vec::<String>::new());
    }

    #[test]
    fn an_exported_macro_counts_as_a_use_of_its_module() {
        let problems = with(&[
            (
                "runtime.rs",
                "#[macro_export] macro_rules! spawn_loops { () => {} } use crate::worker;",
            ),
            ("shared.rs", "crate::spawn_loops!();"),
        ]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("`runtime` is listed above"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_map_must_list_every_module_and_only_existing_files() {
        let problems = check(
            MAP,
            &tree(&[
                ("lib.rs", "mod runtime; mod worker; mod cache;"),
                ("runtime.rs", ""),
                ("worker.rs", ""),
                ("cache.rs", ""),
            ]),
        );
        let text = problems.join("\n");
        assert!(
            text.contains(
                "lib.rs declares `mod cache`, which ARCHITECTURE.md's runtime map does not list"
            ),
            "{text}"
        );
        assert!(
            text.contains("ARCHITECTURE.md:10: the runtime map lists `shared.rs`, which is not in"),
            "{text}"
        );
        assert!(
            text.contains("the runtime map lists `store/file/`, which is not in"),
            "{text}"
        );
    }

    #[test]
    fn a_module_listed_twice_apart_is_refused() {
        let map = MAP.replace(
            "  instance_id.rs ids",
            "  instance_id.rs ids\n  worker.rs      again",
        );
        let problems = check(&map, &tree(&[("lib.rs", LIB)]));
        assert!(
            problems
                .iter()
                .any(|p| p
                    .contains("`worker` is listed again, apart from its first place on line 8")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_map_without_the_runtime_section_is_refused() {
        let problems = check("# Nothing here\n", &tree(&[("lib.rs", "")]));
        assert!(
            problems[0].contains("has no `durable-runtime/src/` section"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_binary_is_checked_from_its_main_rs() {
        let map = "```\ndemo/src/  the demo\n  main.rs  the CLI\n  http.rs  routes\n  \
                   workflows.rs  the workflows\n```\n";
        let demo = Crate {
            section: "demo/src/",
            root: "main.rs",
            map: "demo",
        };
        let files = |workflows: &'static str| {
            tree(&[
                (
                    "main.rs",
                    "mod http; mod workflows; use crate::http::serve;",
                ),
                ("http.rs", "use crate::workflows::order;"),
                ("workflows.rs", workflows),
            ])
        };
        assert_eq!(
            check_crate(demo, map, &files("pub fn order() {}")),
            Vec::<String>::new()
        );
        let problems = check_crate(demo, map, &files("use crate::http::serve;"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "src/workflows.rs:1: `crate::http::serve`: `workflows` (ARCHITECTURE.md:5) may \
                 use only what the demo map lists below it, and `http` is listed above it"
            ),
            "{}",
            problems[0]
        );
    }
}

/// Every public name of `durable_runtime` has one path (lib.rs, "Where names live"): no
/// `pub use` re-exports a name from a public module (it is already reachable there), and no
/// name is re-exported twice. `__private` (hidden, for generated code) is exempt.
#[test]
fn every_public_name_has_one_path() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = second_paths(&Tree::read(&src));
    assert!(
        problems.is_empty(),
        "names reachable by two public paths ({}):\n\n{}\n",
        problems.len(),
        problems.join("\n")
    );
}

/// The module path of a file under `src/`: `lib.rs` → ``, `store/mod.rs` → `store`,
/// `store/memory.rs` → `store::memory`.
fn module_path(file: &str) -> Vec<String> {
    let trimmed = file.trim_end_matches(".rs");
    let mut parts: Vec<String> = trimmed.split('/').map(str::to_string).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The modules a file declares at its top level, and whether each is `pub` (not `pub(..)`).
fn child_modules(tokens: &[TokenTree]) -> BTreeMap<String, bool> {
    let mut modules = BTreeMap::new();
    for (i, token) in tokens.iter().enumerate() {
        if let (true, Some(TokenTree::Ident(name))) = (is_ident(token, "mod"), tokens.get(i + 1)) {
            let public = i > 0 && is_ident(&tokens[i - 1], "pub");
            modules.insert(name.to_string(), public);
        }
    }
    modules
}

/// The paths a `use` tree names (`a::{b, c::d as e}` → `a::b`, `a::c::d`).
fn use_paths(tokens: &[TokenTree], prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Ident(ident) if ident == "as" => i += 1, // skip the alias
            TokenTree::Ident(ident) => path.push(ident.to_string()),
            TokenTree::Group(group) if group.delimiter() == Delimiter::Brace => {
                let inner: Vec<TokenTree> = group.stream().into_iter().collect();
                for item in inner.split(|t| is_punct(t, ',')) {
                    if !item.is_empty() {
                        use_paths(item, &path, out);
                    }
                }
                return;
            }
            TokenTree::Punct(p) if p.as_char() == '*' => path.push("*".into()),
            _ => {}
        }
        i += 1;
    }
    out.push(path);
}

fn second_paths(tree: &Tree) -> Vec<String> {
    // Which module paths are public: every step from the root declared `pub mod`.
    let mut children = BTreeMap::new();
    for (file, source) in &tree.files {
        let tokens: Vec<TokenTree> = match source.parse::<TokenStream>() {
            Ok(tokens) => tokens.into_iter().collect(),
            Err(_) => continue,
        };
        children.insert(module_path(file), child_modules(&tokens));
    }
    let is_public = |module: &[String]| {
        (0..module.len()).all(|depth| {
            children
                .get(&module[..depth])
                .and_then(|c| c.get(&module[depth]))
                .copied()
                .unwrap_or(false)
        })
    };
    let mut problems = Vec::new();
    let mut seen: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for (file, source) in &tree.files {
        if file == "__private.rs" {
            continue;
        }
        let here = module_path(file);
        let Ok(tokens) = source.parse::<TokenStream>() else {
            continue;
        };
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let own = children.get(&here).cloned().unwrap_or_default();
        for i in 1..tokens.len() {
            if !(is_ident(&tokens[i], "use") && is_ident(&tokens[i - 1], "pub")) {
                continue;
            }
            let end = tokens[i..]
                .iter()
                .position(|t| is_punct(t, ';'))
                .map_or(tokens.len(), |p| i + p);
            let mut paths = Vec::new();
            use_paths(&tokens[i + 1..end], &[], &mut paths);
            for path in paths {
                // Resolve to an absolute path; leave other crates alone.
                let absolute: Vec<String> = match path.first().map(String::as_str) {
                    Some("crate") => path[1..].to_vec(),
                    Some("self") => here.iter().chain(&path[1..]).cloned().collect(),
                    Some(first) if own.contains_key(first) => {
                        here.iter().chain(&path).cloned().collect()
                    }
                    _ => continue,
                };
                let (item, module) = absolute.split_last().expect("a path");
                let written = format!("src/{file}: `pub use {}`", path.join("::"));
                if is_public(module) {
                    problems.push(format!(
                        "{written}: `{item}` is already public as `{}::{item}`; keep one path",
                        module.join("::")
                    ));
                } else if let Some(first) = seen.insert(absolute.clone(), written.clone()) {
                    problems.push(format!(
                        "{written}: `{item}` is re-exported twice (also {first}); keep one path"
                    ));
                }
            }
        }
    }
    problems
}

/// The one-path check on small trees: each rule fails when broken.
mod one_path {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Tree {
        let mut tree = Tree::default();
        for (path, source) in files {
            tree.files.insert(path.to_string(), source.to_string());
        }
        tree
    }

    #[test]
    fn names_of_private_modules_re_exported_once_pass() {
        let problems = second_paths(&tree(&[
            (
                "lib.rs",
                "mod status; pub mod store; pub use status::{InstanceStatus as S};",
            ),
            (
                "store/mod.rs",
                "mod file; pub use file::FileStore; pub use self::file::Options;",
            ),
        ]));
        assert_eq!(problems, Vec::<String>::new());
    }

    #[test]
    fn a_re_export_from_a_public_module_is_refused() {
        let problems = second_paths(&tree(&[
            (
                "lib.rs",
                "pub mod store; pub mod limits; pub use store::{HistoryPage, file::FileStore};",
            ),
            ("store/mod.rs", "pub mod file; pub use file::FileStore;"),
            ("testing.rs", "pub use crate::limits::PayloadLimitError;"),
        ]));
        let text = problems.join("\n");
        assert_eq!(problems.len(), 4, "{text}");
        assert!(text.contains("src/lib.rs: `pub use store::HistoryPage`: `HistoryPage` is already public as `store::HistoryPage`"), "{text}");
        assert!(
            text.contains("`FileStore` is already public as `store::file::FileStore`"),
            "{text}"
        );
        assert!(
            text.contains("src/testing.rs: `pub use crate::limits::PayloadLimitError`"),
            "{text}"
        );
    }

    #[test]
    fn a_name_re_exported_twice_is_refused() {
        let problems = second_paths(&tree(&[
            (
                "lib.rs",
                "mod clock; pub mod testing; pub use clock::VirtualClock;",
            ),
            ("testing.rs", "pub use crate::clock::VirtualClock;"),
        ]));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("`VirtualClock` is re-exported twice"),
            "{problems:?}"
        );
    }
}
