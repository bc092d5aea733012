//! Parses check strings into `Expr` trees with oslo.policy's precedence:
//! `not` binds tighter than `and`, which binds tighter than `or`.
//!
//! Grammar, over the tokens of `lexer`:
//!
//! ```text
//! or_expr  := and_expr ("or" and_expr)*
//! and_expr := not_expr ("and" not_expr)*
//! not_expr := "not" not_expr | atom
//! atom     := "(" or_expr ")" | CHECK
//! ```
//!
//! Unlike oslo.policy, which logs a malformed rule and treats it as `!`,
//! this parser returns an error so that the rule set fails to load.

use super::check::{parse_check, Expr};
use super::error::ParseError;
use super::lexer::{tokenize, Token, TokenKind};

/// Maximum nesting of parentheses and `not`. The limit keeps the recursive
/// parser and evaluator far from the stack limit with hostile policy files.
/// It is a generous guess, because OpenStack's default rules nest a few levels.
pub(crate) const MAX_NESTING: usize = 32;

/// Parses a check string. An empty or blank string always passes, as in
/// oslo.policy.
pub(crate) fn parse(input: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(input);
    if tokens.is_empty() {
        return Ok(Expr::Always);
    }

    let mut parser = Parser {
        tokens,
        position: 0,
        depth: 0,
        end_column: input.chars().count() + 1,
    };
    let expr = parser.parse_or()?;
    match parser.advance() {
        Some(extra) => Err(unexpected(&extra)),
        None => Ok(expr),
    }
}

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    position: usize,
    depth: usize,
    end_column: usize,
}

impl<'a> Parser<'a> {
    fn parse_or(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.parse_and()?];
        while self.advance_if(TokenKind::Or) {
            items.push(self.parse_and()?);
        }
        Ok(combine(items, Expr::Or))
    }

    fn parse_and(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.parse_not()?];
        while self.advance_if(TokenKind::And) {
            items.push(self.parse_not()?);
        }
        Ok(combine(items, Expr::And))
    }

    fn parse_not(&mut self) -> Result<Expr, ParseError> {
        let Some(token) = self.peek() else {
            return self.parse_atom();
        };
        if token.kind != TokenKind::Not {
            return self.parse_atom();
        }

        let column = token.column;
        self.position += 1;
        self.enter(column)?;
        let inner = self.parse_not()?;
        self.depth -= 1;
        Ok(Expr::Not(Box::new(inner)))
    }

    fn parse_atom(&mut self) -> Result<Expr, ParseError> {
        let Some(token) = self.advance() else {
            return Err(ParseError::UnexpectedEnd {
                column: self.end_column,
            });
        };

        match token.kind {
            TokenKind::Check => parse_check(&token),
            TokenKind::OpenParen => self.parse_group(token.column),
            TokenKind::CloseParen | TokenKind::And | TokenKind::Or | TokenKind::Not => {
                Err(unexpected(&token))
            }
        }
    }

    /// Parses the inside of a parenthesis opened at `open_column`, and the
    /// closing parenthesis.
    fn parse_group(&mut self, open_column: usize) -> Result<Expr, ParseError> {
        self.enter(open_column)?;
        let inner = self.parse_or()?;
        self.depth -= 1;

        match self.advance() {
            Some(token) if token.kind == TokenKind::CloseParen => Ok(inner),
            Some(token) => Err(unexpected(&token)),
            None => Err(ParseError::UnclosedParenthesis {
                column: open_column,
            }),
        }
    }

    fn enter(&mut self, column: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(ParseError::TooDeep {
                column,
                max: MAX_NESTING,
            });
        }
        Ok(())
    }

    fn peek(&self) -> Option<&Token<'a>> {
        self.tokens.get(self.position)
    }

    fn advance(&mut self) -> Option<Token<'a>> {
        let token = self.tokens.get(self.position).cloned()?;
        self.position += 1;
        Some(token)
    }

    fn advance_if(&mut self, kind: TokenKind) -> bool {
        let matches = self.peek().is_some_and(|token| token.kind == kind);
        if matches {
            self.position += 1;
        }
        matches
    }
}

/// Wraps two or more operands in `make` and returns a single operand unchanged.
fn combine(mut items: Vec<Expr>, make: fn(Vec<Expr>) -> Expr) -> Expr {
    if items.len() == 1 {
        items.remove(0)
    } else {
        make(items)
    }
}

fn unexpected(token: &Token<'_>) -> ParseError {
    ParseError::UnexpectedToken {
        token: token.text.to_owned(),
        column: token.column,
    }
}

#[cfg(test)]
mod tests {
    use super::super::check::RuleRef;
    use super::super::template::Template;
    use super::*;

    fn role(name: &str) -> Expr {
        Expr::Role(Template::Literal(name.into()))
    }

    fn rule(name: &str) -> Expr {
        Expr::Rule(RuleRef {
            name: name.into(),
            slot: None,
        })
    }

    fn not(inner: Expr) -> Expr {
        Expr::Not(Box::new(inner))
    }

    #[test]
    fn empty_and_special_strings_parse() {
        assert_eq!(parse(""), Ok(Expr::Always));
        assert_eq!(parse("   "), Ok(Expr::Always));
        assert_eq!(parse("@"), Ok(Expr::Always));
        assert_eq!(parse("!"), Ok(Expr::Never));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let expected = Expr::Or(vec![
            role("a"),
            Expr::And(vec![role("b"), role("c")]),
            role("d"),
        ]);
        assert_eq!(parse("role:a or role:b and role:c or role:d"), Ok(expected));
    }

    #[test]
    fn not_binds_tighter_than_and() {
        let expected = Expr::Or(vec![
            Expr::And(vec![not(role("a")), role("b")]),
            not(not(rule("c"))),
        ]);
        assert_eq!(
            parse("not role:a and role:b or not not rule:c"),
            Ok(expected)
        );
    }

    #[test]
    fn parentheses_override_precedence() {
        let expected = Expr::And(vec![
            Expr::Or(vec![role("a"), role("b")]),
            not(Expr::Or(vec![role("c"), role("d")])),
        ]);
        assert_eq!(
            parse("(role:a or role:b) and not (role:c or role:d)"),
            Ok(expected)
        );
        assert_eq!(parse("((role:a))"), Ok(role("a")));
    }

    #[test]
    fn trailing_tokens_are_rejected() {
        let error = parse("role:a role:b").unwrap_err();
        let expected = ParseError::UnexpectedToken {
            token: "role:b".into(),
            column: 8,
        };
        assert_eq!(error, expected);
    }

    #[test]
    fn misplaced_operators_are_rejected() {
        let cases = [
            ("and role:a", "and", 1),
            ("role:a or or role:b", "or", 11),
            ("role:a)", ")", 7),
            ("()", ")", 2),
            ("(role:a role:b)", "role:b", 9),
        ];
        for (input, token, column) in cases {
            let expected = ParseError::UnexpectedToken {
                token: token.into(),
                column,
            };
            assert_eq!(parse(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn early_end_is_rejected() {
        assert_eq!(
            parse("role:a and"),
            Err(ParseError::UnexpectedEnd { column: 11 })
        );
        assert_eq!(parse("not"), Err(ParseError::UnexpectedEnd { column: 4 }));
    }

    #[test]
    fn unclosed_parenthesis_is_rejected() {
        assert_eq!(
            parse("role:a or (role:b and role:c"),
            Err(ParseError::UnclosedParenthesis { column: 11 })
        );
    }

    #[test]
    fn excessive_nesting_is_rejected() {
        let nested = format!("{}role:a{}", "(".repeat(40), ")".repeat(40));
        assert!(matches!(
            parse(&nested),
            Err(ParseError::TooDeep { column: 33, .. })
        ));

        let negated = format!("{}role:a", "not ".repeat(40));
        assert!(matches!(parse(&negated), Err(ParseError::TooDeep { .. })));

        let allowed = format!(
            "{}role:a{}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert_eq!(parse(&allowed), Ok(role("a")));
    }

    /// Exhaustive stand-in for a property test: every sequence of up to five
    /// words either parses or returns an error pointing inside the input.
    #[test]
    fn every_short_word_sequence_parses_or_errs() {
        const WORDS: [&str; 8] = ["(", ")", "and", "or", "not", "role:a", "@", "x"];
        let mut sequences: Vec<Vec<&str>> = vec![Vec::new()];
        let mut frontier = sequences.clone();
        for _ in 0..5 {
            frontier = frontier
                .iter()
                .flat_map(|sequence| {
                    WORDS.iter().map(move |word| {
                        let mut extended = sequence.clone();
                        extended.push(*word);
                        extended
                    })
                })
                .collect();
            sequences.extend(frontier.iter().cloned());
        }

        for sequence in &sequences {
            let input = sequence.join(" ");
            if let Err(error) = parse(&input) {
                let end = input.chars().count() + 1;
                assert!(
                    (1..=end).contains(&error.column()),
                    "{input:?}: column {} outside 1..={end}",
                    error.column()
                );
            }
        }
        assert_eq!(
            sequences.len(),
            (0..=5).map(|n| 8usize.pow(n)).sum::<usize>()
        );
    }

    #[test]
    fn invalid_check_inside_expression_is_reported() {
        let error = parse("role:a or admin").unwrap_err();
        assert!(matches!(
            error,
            ParseError::InvalidCheck { ref token, column: 11, .. } if token == "admin"
        ));
    }
}
