//! Load-time checks of the graph that `rule:` references form: no cycles,
//! and no chain deeper than the evaluator should recurse.

use super::check::Expr;
use super::error::PolicyLoadError;

/// Maximum length of a chain of `rule:` references, which bounds evaluation
/// recursion for operator-written files. It is a generous guess, because
/// OpenStack's default rules chain only a few references.
pub(crate) const MAX_RULE_CHAIN: usize = 32;

#[derive(Clone, Copy)]
enum Visit {
    Unvisited,
    OnStack,
    /// Finished, with the length of the longest reference chain below it.
    Done(usize),
}

/// One rule on the depth-first search stack.
struct Frame {
    slot: usize,
    next_child: usize,
    depth: usize,
}

/// Rejects reference cycles and over-deep chains among `rules`, whose slots
/// in `rule:` references must already be linked. `names[slot]` names the
/// rule at `slot`.
///
/// The search is iterative so that a long chain in a policy file cannot
/// overflow the stack before the depth limit rejects it.
pub(crate) fn check_rule_graph(names: &[String], rules: &[Expr]) -> Result<(), PolicyLoadError> {
    let children: Vec<Vec<usize>> = rules.iter().map(referenced_slots).collect();
    let mut visits = vec![Visit::Unvisited; rules.len()];

    for root in 0..rules.len() {
        if !matches!(visits[root], Visit::Unvisited) {
            continue;
        }
        visits[root] = Visit::OnStack;
        let mut stack = vec![Frame {
            slot: root,
            next_child: 0,
            depth: 0,
        }];

        while let Some(frame) = stack.last_mut() {
            if let Some(&child) = children[frame.slot].get(frame.next_child) {
                frame.next_child += 1;
                match visits[child] {
                    Visit::OnStack => return Err(cycle_error(names, &stack, child)),
                    Visit::Done(depth) => frame.depth = frame.depth.max(depth + 1),
                    Visit::Unvisited => {
                        visits[child] = Visit::OnStack;
                        stack.push(Frame {
                            slot: child,
                            next_child: 0,
                            depth: 0,
                        });
                    }
                }
                continue;
            }

            let finished = stack.pop().expect("the stack is not empty inside the loop");
            if finished.depth > MAX_RULE_CHAIN {
                return Err(PolicyLoadError::RuleChainTooDeep {
                    rule: names[finished.slot].clone(),
                    max: MAX_RULE_CHAIN,
                });
            }
            visits[finished.slot] = Visit::Done(finished.depth);
            if let Some(parent) = stack.last_mut() {
                parent.depth = parent.depth.max(finished.depth + 1);
            }
        }
    }
    Ok(())
}

fn referenced_slots(rule: &Expr) -> Vec<usize> {
    let mut slots = Vec::new();
    rule.for_each_rule_ref(&mut |reference| slots.extend(reference.slot));
    slots.sort_unstable();
    slots.dedup();
    slots
}

/// Builds the error for a reference from the top of `stack` back to
/// `repeated`, which is further down the stack.
fn cycle_error(names: &[String], stack: &[Frame], repeated: usize) -> PolicyLoadError {
    let start = stack
        .iter()
        .position(|frame| frame.slot == repeated)
        .expect("a rule marked on-stack is on the stack");
    let mut cycle: Vec<String> = stack[start..]
        .iter()
        .map(|frame| names[frame.slot].clone())
        .collect();
    cycle.push(names[repeated].clone());
    PolicyLoadError::RuleCycle { cycle }
}
