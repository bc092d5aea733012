//! Splits a check string into tokens the way oslo.policy does: words are
//! separated by whitespace, and parentheses count as tokens only at the start
//! or end of a word, so that `%(target.id)s` inside a check stays intact.

/// One token and the 1-based character column where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    pub kind: TokenKind,
    pub text: &'a str,
    pub column: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    OpenParen,
    CloseParen,
    And,
    Or,
    Not,
    /// A word that is neither an operator nor a parenthesis, such as
    /// `role:admin`. The parser decides whether it is a valid check.
    Check,
}

/// Tokenizes `input`. Operators match case-insensitively, as in oslo.policy.
pub(crate) fn tokenize(input: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    for (column, word) in split_words(input) {
        push_word_tokens(&mut tokens, word, column);
    }
    tokens
}

fn push_word_tokens<'a>(tokens: &mut Vec<Token<'a>>, word: &'a str, column: usize) {
    let body = word.trim_start_matches('(');
    let leading = word.len() - body.len();
    for offset in 0..leading {
        tokens.push(Token {
            kind: TokenKind::OpenParen,
            text: "(",
            column: column + offset,
        });
    }

    let body_column = column + leading;
    let check = body.trim_end_matches(')');
    if !check.is_empty() {
        tokens.push(Token {
            kind: classify(check),
            text: check,
            column: body_column,
        });
    }

    // Parentheses are ASCII, so byte lengths equal character counts here.
    let close_column = body_column + check.chars().count();
    for offset in 0..(body.len() - check.len()) {
        tokens.push(Token {
            kind: TokenKind::CloseParen,
            text: ")",
            column: close_column + offset,
        });
    }
}

fn classify(word: &str) -> TokenKind {
    if word.eq_ignore_ascii_case("and") {
        TokenKind::And
    } else if word.eq_ignore_ascii_case("or") {
        TokenKind::Or
    } else if word.eq_ignore_ascii_case("not") {
        TokenKind::Not
    } else {
        TokenKind::Check
    }
}

/// Splits `input` at whitespace and returns each word with the 1-based
/// character column where it starts.
fn split_words(input: &str) -> Vec<(usize, &str)> {
    let mut words = Vec::new();
    let mut word_start: Option<(usize, usize)> = None;
    for (column, (byte_offset, ch)) in (1..).zip(input.char_indices()) {
        match (ch.is_whitespace(), word_start) {
            (true, Some((start_byte, start_column))) => {
                words.push((start_column, &input[start_byte..byte_offset]));
                word_start = None;
            }
            (false, None) => word_start = Some((byte_offset, column)),
            _ => {}
        }
    }
    if let Some((start_byte, start_column)) = word_start {
        words.push((start_column, &input[start_byte..]));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds_and_texts(input: &str) -> Vec<(TokenKind, &str)> {
        tokenize(input)
            .into_iter()
            .map(|token| (token.kind, token.text))
            .collect()
    }

    #[test]
    fn tokenize_splits_parentheses_from_words() {
        use TokenKind::*;
        assert_eq!(
            kinds_and_texts("((role:a or role:b)) and not rule:c"),
            vec![
                (OpenParen, "("),
                (OpenParen, "("),
                (Check, "role:a"),
                (Or, "or"),
                (Check, "role:b"),
                (CloseParen, ")"),
                (CloseParen, ")"),
                (And, "and"),
                (Not, "not"),
                (Check, "rule:c"),
            ]
        );
    }

    #[test]
    fn tokenize_keeps_substitution_parentheses() {
        use TokenKind::*;
        assert_eq!(
            kinds_and_texts("(project_id:%(target.project.id)s)"),
            vec![
                (OpenParen, "("),
                (Check, "project_id:%(target.project.id)s"),
                (CloseParen, ")"),
            ]
        );
    }

    #[test]
    fn tokenize_matches_operators_case_insensitively() {
        use TokenKind::*;
        assert_eq!(
            kinds_and_texts("NOT a:b AND c:d Or e:f"),
            vec![
                (Not, "NOT"),
                (Check, "a:b"),
                (And, "AND"),
                (Check, "c:d"),
                (Or, "Or"),
                (Check, "e:f"),
            ]
        );
    }

    #[test]
    fn tokenize_reports_character_columns() {
        let tokens = tokenize("  (é:x  or\trole:b)");
        let columns: Vec<(&str, usize)> = tokens.iter().map(|t| (t.text, t.column)).collect();
        assert_eq!(
            columns,
            vec![("(", 3), ("é:x", 4), ("or", 9), ("role:b", 12), (")", 18)]
        );
    }

    #[test]
    fn tokenize_of_blank_input_is_empty() {
        assert!(tokenize("").is_empty());
        assert!(tokenize(" \t\n ").is_empty());
    }
}
