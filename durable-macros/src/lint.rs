//! The compile-time determinism lint: calls in an orchestrator body that would differ on replay.
//!
//! It is a syntactic check on paths, so it is a safety net, not a proof (see the blind spots
//! in the `#[orchestrator]` docs).

use std::collections::HashMap;

use proc_macro2::TokenStream;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Block, Expr, ExprPath, Ident, Macro, Token, UseTree};

use crate::diag::Errors;

/// One family of non-deterministic calls, silenced together with `allow(<id>)`.
pub(crate) struct Rule {
    pub(crate) id: &'static str,
    /// Why the matched call breaks replay.
    why: &'static str,
    /// What to write instead.
    fix: &'static str,
    patterns: &'static [Pattern],
}

/// How a path is matched. Paths are compared segment by segment, after replacing a first
/// segment that a `use` inside the body imports by the path it imports.
enum Pattern {
    /// The path ends with these segments and has at least two segments: a bare `now()` may
    /// be the user's own function.
    Suffix(&'static [&'static str]),
    /// The path starts with this crate name and goes on (`rand::random`).
    Crate(&'static str),
    /// A segment other than the last is this module or type (`std::fs::read`, `TcpStream::connect`).
    Through(&'static str),
}

pub(crate) const RULES: &[Rule] = &[
    Rule {
        id: "clock",
        why: "it reads the wall clock, which gives a different time on every replay",
        fix: "use `ctx.now()`, the time of the current turn recorded in the history",
        patterns: &[
            Pattern::Suffix(&["SystemTime", "now"]),
            Pattern::Suffix(&["Instant", "now"]),
            Pattern::Suffix(&["Utc", "now"]),
            Pattern::Suffix(&["Local", "now"]),
            Pattern::Suffix(&["OffsetDateTime", "now_utc"]),
        ],
    },
    Rule {
        id: "sleep",
        why: "it waits on a timer the history does not record, so a restarted instance waits again from the start",
        fix: "use `ctx.sleep(duration).await`, a durable timer, or `.timeout(duration)` on the call or event you wait for",
        patterns: &[
            Pattern::Suffix(&["thread", "sleep"]),
            Pattern::Suffix(&["time", "sleep"]),
            Pattern::Suffix(&["time", "sleep_until"]),
            Pattern::Suffix(&["time", "timeout"]),
            Pattern::Suffix(&["time", "interval"]),
            Pattern::Suffix(&["time", "interval_at"]),
        ],
    },
    Rule {
        id: "spawn",
        why: "it starts work outside the replay, whose effects and ordering the history does not record",
        fix: "fan out with one `ctx.call(activity, input)` per task and join the futures (for example with `futures::future::join_all`)",
        patterns: &[
            Pattern::Suffix(&["tokio", "spawn"]),
            Pattern::Suffix(&["task", "spawn"]),
            Pattern::Suffix(&["task", "spawn_local"]),
            Pattern::Suffix(&["spawn_blocking"]),
            Pattern::Suffix(&["thread", "spawn"]),
        ],
    },
    Rule {
        id: "random",
        why: "it draws random numbers that differ on every replay",
        fix: "use `ctx.random()`, seeded from the history",
        patterns: &[
            Pattern::Crate("rand"),
            Pattern::Crate("fastrand"),
            Pattern::Suffix(&["thread_rng"]),
        ],
    },
    Rule {
        id: "uuid",
        why: "it makes a new id on every replay",
        fix: "use `ctx.new_uuid()`, the same on every replay",
        patterns: &[
            Pattern::Suffix(&["Uuid", "new_v4"]),
            Pattern::Suffix(&["Uuid", "new_v7"]),
            Pattern::Suffix(&["Uuid", "now_v7"]),
            Pattern::Suffix(&["Uuid", "now_v6"]),
            Pattern::Suffix(&["Uuid", "now_v1"]),
        ],
    },
    Rule {
        id: "env",
        why: "it reads the process environment, which may differ on the worker that replays the instance",
        fix: "pass the value in the orchestration's input, or read it in an activity",
        patterns: &[
            Pattern::Suffix(&["env", "var"]),
            Pattern::Suffix(&["env", "var_os"]),
            Pattern::Suffix(&["env", "vars"]),
            Pattern::Suffix(&["env", "vars_os"]),
        ],
    },
    Rule {
        id: "io",
        why: "it does I/O, whose result the history does not record and which runs again on every replay",
        fix: "do the I/O in an `#[activity]` and call it with `ctx.call(activity, input).await`",
        patterns: &[
            Pattern::Through("fs"),
            Pattern::Suffix(&["File", "open"]),
            Pattern::Suffix(&["File", "create"]),
            Pattern::Through("TcpStream"),
            Pattern::Through("TcpListener"),
            Pattern::Through("UdpSocket"),
            Pattern::Crate("reqwest"),
            Pattern::Crate("hyper"),
            Pattern::Crate("ureq"),
        ],
    },
    Rule {
        id: "select",
        why: "it polls its branches in random order, so a replay may take a different branch than the recorded run",
        fix: "add `biased;` as its first line, so the first ready branch in source order wins on every replay",
        // Matched on macro invocations, see `Lint::visit_macro`.
        patterns: &[],
    },
];

/// The rule with this id.
pub(crate) fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|rule| rule.id == id)
}

/// The rule ids, for messages: "`clock`, `sleep`, …".
pub(crate) fn rule_ids() -> String {
    RULES
        .iter()
        .map(|rule| format!("`{}`", rule.id))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Pattern {
    fn matches(&self, path: &[String]) -> bool {
        match self {
            Pattern::Suffix(suffix) => {
                path.len() >= 2 && path.len() >= suffix.len() && path.ends_with_strs(suffix)
            }
            Pattern::Crate(name) => path.len() >= 2 && path[0] == *name,
            Pattern::Through(name) => path[..path.len().saturating_sub(1)]
                .iter()
                .any(|s| s == name),
        }
    }
}

trait EndsWith {
    fn ends_with_strs(&self, suffix: &[&str]) -> bool;
}

impl EndsWith for [String] {
    fn ends_with_strs(&self, suffix: &[&str]) -> bool {
        self[self.len() - suffix.len()..]
            .iter()
            .zip(suffix)
            .all(|(segment, expected)| segment == expected)
    }
}

/// Checks an orchestrator's body, reporting every match of a rule not in `allowed`.
pub(crate) fn check(body: &Block, allowed: &[Ident], errors: &mut Errors) {
    let mut imports = Imports::default();
    imports.visit_block(body);
    let mut lint = Lint {
        imports: imports.0,
        allowed: allowed.iter().map(ToString::to_string).collect(),
        errors,
    };
    lint.visit_block(body);
}

/// The names a `use` inside the body brings in, with the path each stands for. Module-level
/// imports are not visible to an attribute macro.
#[derive(Default)]
struct Imports(HashMap<String, Vec<String>>);

impl Imports {
    fn add(&mut self, prefix: &mut Vec<String>, tree: &UseTree) {
        match tree {
            UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.add(prefix, &path.tree);
                prefix.pop();
            }
            UseTree::Name(name) if name.ident == "self" => {
                if let Some(last) = prefix.last() {
                    self.0.insert(last.clone(), prefix.clone());
                }
            }
            UseTree::Name(name) => {
                let mut full = prefix.clone();
                full.push(name.ident.to_string());
                self.0.insert(name.ident.to_string(), full);
            }
            UseTree::Rename(rename) => {
                let mut full = prefix.clone();
                if rename.ident != "self" {
                    full.push(rename.ident.to_string());
                }
                self.0.insert(rename.rename.to_string(), full);
            }
            UseTree::Group(group) => {
                for tree in &group.items {
                    self.add(prefix, tree);
                }
            }
            // A glob import names nothing we could resolve.
            UseTree::Glob(_) => {}
        }
    }
}

impl Visit<'_> for Imports {
    fn visit_item_use(&mut self, item: &syn::ItemUse) {
        self.add(&mut Vec::new(), &item.tree);
    }
}

struct Lint<'e> {
    imports: HashMap<String, Vec<String>>,
    allowed: Vec<String>,
    errors: &'e mut Errors,
}

impl Lint<'_> {
    fn report(&mut self, rule: &Rule, tokens: impl quote::ToTokens, what: &str) {
        if self.allowed.iter().any(|id| id == rule.id) {
            return;
        }
        self.errors.spanned(
            tokens,
            format_args!(
                "{what} cannot be used in an orchestrator, whose code is replayed: {}; {} \
                 (determinism rule `{}`; if this use is deliberate, write `#[orchestrator(allow({}))]`)",
                rule.why, rule.fix, rule.id, rule.id
            ),
        );
    }

    /// The path's segments with an imported first segment replaced by what it imports.
    fn resolve(&self, segments: Vec<String>) -> Vec<String> {
        match segments.first().and_then(|first| self.imports.get(first)) {
            Some(full) => full
                .iter()
                .cloned()
                .chain(segments.into_iter().skip(1))
                .collect(),
            None => segments,
        }
    }

    fn check_macro_body(&mut self, tokens: TokenStream) {
        // Only bodies shaped like `format!`, `vec!` or `assert!` arguments are looked into:
        // other macros have their own grammar, which we cannot know.
        let parser = Punctuated::<Expr, Token![,]>::parse_terminated;
        if let Ok(exprs) = parser.parse2(tokens) {
            for expr in &exprs {
                self.visit_expr(expr);
            }
        }
    }

    fn check_select(&mut self, mac: &Macro, futures: bool) {
        let mut tokens = mac.tokens.clone().into_iter();
        let biased = matches!(tokens.next(), Some(proc_macro2::TokenTree::Ident(ident)) if ident == "biased")
            && matches!(tokens.next(), Some(proc_macro2::TokenTree::Punct(punct)) if punct.as_char() == ';');
        // Pointing at `tokio::select!`, not at the whole body.
        let (path, bang) = (&mac.path, &mac.bang_token);
        let invocation = quote::quote!(#path #bang);
        if futures {
            let rule = rule("select").expect("the select rule exists");
            if !self.allowed.iter().any(|id| id == rule.id) {
                self.errors.spanned(
                    &invocation,
                    "`futures::select!` cannot be used in an orchestrator, whose code is replayed: \
                     it polls its branches in random order, so a replay may take a different branch than the recorded run; \
                     use `futures::select_biased!`, where the first ready branch in source order wins \
                     (determinism rule `select`; if this use is deliberate, write `#[orchestrator(allow(select))]`)",
                );
            }
        } else if !biased {
            self.report(
                rule("select").expect("the select rule exists"),
                &invocation,
                "`select!` without `biased;`",
            );
        }
        if let Ok(branches) = parse_select.parse2(mac.tokens.clone()) {
            for expr in &branches {
                self.visit_expr(expr);
            }
        }
    }
}

/// The expressions of a `tokio::select!` body:
/// `[biased;] <pat> = <future> [, if <cond>] => <handler> [,] … [else => <handler>]`.
fn parse_select(input: ParseStream) -> syn::Result<Vec<Expr>> {
    let mut exprs = Vec::new();
    if input.peek(Ident) && input.peek2(Token![;]) {
        input.parse::<Ident>()?;
        input.parse::<Token![;]>()?;
    }
    while !input.is_empty() {
        if input.peek(Token![else]) {
            input.parse::<Token![else]>()?;
        } else {
            syn::Pat::parse_single(input)?;
            input.parse::<Token![=]>()?;
            exprs.push(input.parse()?);
            if input.peek(Token![,]) && input.peek2(Token![if]) {
                input.parse::<Token![,]>()?;
                input.parse::<Token![if]>()?;
                exprs.push(input.parse()?);
            }
        }
        input.parse::<Token![=>]>()?;
        exprs.push(input.parse()?);
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
        }
    }
    Ok(exprs)
}

impl Visit<'_> for Lint<'_> {
    fn visit_expr_path(&mut self, expr: &ExprPath) {
        if expr.qself.is_none() {
            let written: Vec<String> = expr
                .path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect();
            let resolved = self.resolve(written.clone());
            if let Some(rule) = RULES
                .iter()
                .find(|rule| rule.patterns.iter().any(|p| p.matches(&resolved)))
            {
                let mut what = format!("`{}`", written.join("::"));
                if resolved != written {
                    what.push_str(&format!(" (`{}`)", resolved.join("::")));
                }
                self.report(rule, &expr.path, &what);
            }
        }
        visit::visit_expr_path(self, expr);
    }

    fn visit_macro(&mut self, mac: &Macro) {
        let segments: Vec<String> = mac
            .path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect();
        let resolved = self.resolve(segments);
        match resolved
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["select"] | [.., "tokio", "select"] => self.check_select(mac, false),
            [.., "futures", "select"] => self.check_select(mac, true),
            _ => self.check_macro_body(mac.tokens.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    /// How many findings the lint reports on `body` with `allowed` rules switched off.
    fn findings(body: Block, allowed: &[&str]) -> usize {
        let allowed: Vec<Ident> = allowed
            .iter()
            .map(|id| Ident::new(id, proc_macro2::Span::call_site()))
            .collect();
        let mut errors = Errors::default();
        check(&body, &allowed, &mut errors);
        errors.count()
    }

    #[test]
    fn bare_names_are_the_users_own() {
        assert_eq!(
            findings(
                parse_quote!({
                    let t = now();
                    sleep(d).await;
                    spawn(x);
                }),
                &[]
            ),
            0
        );
    }

    #[test]
    fn paths_match_by_suffix_whatever_their_prefix() {
        assert_eq!(findings(parse_quote!({ SystemTime::now() }), &[]), 1);
        assert_eq!(
            findings(parse_quote!({ ::std::time::SystemTime::now() }), &[]),
            1
        );
        assert_eq!(findings(parse_quote!({ time::sleep(d) }), &[]), 1);
        assert_eq!(findings(parse_quote!({ SystemTime::UNIX_EPOCH }), &[]), 0);
    }

    #[test]
    fn a_use_inside_the_body_is_followed() {
        let body = parse_quote!({
            use tokio::time::{sleep, Instant as Clock};
            sleep(d).await;
            Clock::now();
        });
        assert_eq!(findings(body, &[]), 2);
    }

    #[test]
    fn every_finding_is_reported_and_allow_silences_one_rule() {
        let body: Block = parse_quote!({
            rand::random();
            Uuid::new_v4();
            std::env::var("X");
        });
        assert_eq!(findings(body.clone(), &[]), 3);
        assert_eq!(findings(body, &["uuid"]), 2);
    }

    #[test]
    fn select_needs_biased_first() {
        let unbiased = parse_quote!({
            tokio::select! { v = a => v, _ = b => 0 }
        });
        assert_eq!(findings(unbiased, &[]), 1);
        let biased = parse_quote!({
            tokio::select! { biased; v = a => v, _ = b => 0 }
        });
        assert_eq!(findings(biased, &[]), 0);
        // The branches are linted too.
        let inside = parse_quote!({
            select! { biased; v = a => SystemTime::now(), else => 0 }
        });
        assert_eq!(findings(inside, &[]), 1);
        assert_eq!(
            findings(
                parse_quote!({
                    futures::select! { v = a => v }
                }),
                &[]
            ),
            1
        );
    }

    #[test]
    fn macro_arguments_are_linted_when_they_are_expressions() {
        assert_eq!(
            findings(parse_quote!({ format!("{:?}", Instant::now()) }), &[]),
            1
        );
        // Not comma-separated expressions: skipped rather than guessed at.
        assert_eq!(
            findings(parse_quote!({ my_dsl!(when Instant::now() => go) }), &[]),
            0
        );
    }
}
