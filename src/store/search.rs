//! What `searchMessages` matches, defined once for both stores: the words
//! of a text, read the same way from a message and from a query, and the
//! check that a message matches a query.
//!
//! A text is read in NFKC and lower case, so that case, full-width letters
//! (`Ｈｅｌｌｏ`) and half-width kana do not matter. It splits into tokens:
//! a *word* is a run of letters and digits of a script written with spaces
//! between words; a *run* is a run of characters of a script written
//! without them (Han, Hiragana, Katakana, Hangul), in which any substring
//! may be what someone looks for. Everything else separates tokens.
//!
//! A query matches a message when each of its words begins a word of the
//! message and each of its runs is a substring of a run of the message
//! (API.md, "Search"). The stores index these tokens in their own way
//! (SQLite: FTS5, one token per character of a run; MongoDB: an array of
//! terms) and answer exactly [`matches`].

use unicode_normalization::UnicodeNormalization;

/// One token of a text, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Letters and digits of a spaced script; a query's word matches its beginning.
    Word(String),
    /// Characters of a script written without spaces; a query's run
    /// matches any part of it.
    Run(String),
}

/// One thing a query looks for: a query's own tokens, without repeats.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Term {
    /// Must begin a word of the message.
    Prefix(String),
    /// Must be a substring of a run of the message.
    Chars(String),
}

/// Whether `c` is a letter or digit of a script written without spaces
/// between words: Han (with the ideographic iteration and closing marks),
/// Hiragana, Katakana and Hangul. In such text a word cannot be told from
/// its neighbours, so search matches by characters. Their punctuation
/// (`・`, `゠`) separates, as any other does.
pub fn is_unspaced(c: char) -> bool {
    c.is_alphanumeric()
        && matches!(c,
            '\u{3005}'..='\u{3007}'          // 々 〆 〇
            | '\u{3040}'..='\u{309F}'        // Hiragana
            | '\u{30A0}'..='\u{30FF}'        // Katakana
            | '\u{31F0}'..='\u{31FF}'        // Katakana phonetic extensions
            | '\u{3400}'..='\u{4DBF}'        // CJK extension A
            | '\u{4E00}'..='\u{9FFF}'        // CJK unified ideographs
            | '\u{F900}'..='\u{FAFF}'        // CJK compatibility ideographs
            | '\u{1100}'..='\u{11FF}'        // Hangul jamo
            | '\u{3130}'..='\u{318F}'        // Hangul compatibility jamo
            | '\u{A960}'..='\u{A97F}'        // Hangul jamo extended A
            | '\u{AC00}'..='\u{D7FF}'        // Hangul syllables, jamo extended B
            | '\u{20000}'..='\u{323AF}'      // CJK extensions B to H
        )
}

/// The tokens of `text`, in order, repeats kept.
pub fn tokens(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut run = String::new();
    for c in text.nfkc().flat_map(char::to_lowercase) {
        if is_unspaced(c) {
            take(&mut word, &mut tokens, Token::Word);
            run.push(c);
        } else if c.is_alphanumeric() {
            take(&mut run, &mut tokens, Token::Run);
            word.push(c);
        } else {
            take(&mut word, &mut tokens, Token::Word);
            take(&mut run, &mut tokens, Token::Run);
        }
    }
    take(&mut word, &mut tokens, Token::Word);
    take(&mut run, &mut tokens, Token::Run);
    tokens
}

/// Ends the token being gathered in `pending`, if any.
fn take(pending: &mut String, tokens: &mut Vec<Token>, kind: fn(String) -> Token) {
    if !pending.is_empty() {
        tokens.push(kind(std::mem::take(pending)));
    }
}

/// What a query looks for: its tokens as terms, each once, in order.
pub fn terms(query: &str) -> Vec<Term> {
    let mut terms: Vec<Term> = Vec::new();
    for token in tokens(query) {
        let term = match token {
            Token::Word(word) => Term::Prefix(word),
            Token::Run(run) => Term::Chars(run),
        };
        if !terms.contains(&term) {
            terms.push(term);
        }
    }
    terms
}

/// Whether `content` holds every term: each prefix begins one of its
/// words, each run of characters is inside one of its runs.
pub fn matches(content: &str, terms: &[Term]) -> bool {
    let tokens = tokens(content);
    terms.iter().all(|term| {
        tokens.iter().any(|token| match (term, token) {
            (Term::Prefix(prefix), Token::Word(word)) => word.starts_with(prefix.as_str()),
            (Term::Chars(chars), Token::Run(run)) => run.contains(chars.as_str()),
            _ => false,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str) -> Token {
        Token::Word(text.into())
    }

    fn run(text: &str) -> Token {
        Token::Run(text.into())
    }

    #[test]
    fn spaced_words_and_unspaced_runs_are_told_apart() {
        assert_eq!(
            tokens("Hello, 世界! 我们说中文吧 (it's OK) 東京タワーへ行こう 안녕 하세요"),
            [
                word("hello"),
                run("世界"),
                run("我们说中文吧"),
                word("it"),
                word("s"),
                word("ok"),
                run("東京タワーへ行こう"),
                run("안녕"),
                run("하세요"),
            ]
        );
        assert_eq!(
            tokens("abc中文def"),
            [word("abc"), run("中文"), word("def")]
        );
        assert_eq!(tokens("2024年"), [word("2024"), run("年")]);
    }

    #[test]
    fn case_and_width_are_ignored() {
        assert_eq!(
            tokens("ＨＥＬＬＯ Straße ÉCOLE"),
            [word("hello"), word("straße"), word("école")]
        );
        assert_eq!(tokens("ｶﾀｶﾅ"), [run("カタカナ")]);
    }

    #[test]
    fn a_query_is_its_terms_once_each() {
        assert_eq!(
            terms("Hel hel 中文 world 中文"),
            [
                Term::Prefix("hel".into()),
                Term::Chars("中文".into()),
                Term::Prefix("world".into())
            ]
        );
        assert!(terms("?! -- 。、").is_empty());
    }

    #[test]
    fn words_match_at_their_beginning_and_runs_anywhere() {
        let content = "Hello world, 我们说中文吧";
        assert!(matches(content, &terms("hel")));
        assert!(matches(content, &terms("WORLD hello")));
        assert!(!matches(content, &terms("ello")));
        assert!(!matches(content, &terms("hello there")));
        assert!(matches(content, &terms("中文")));
        assert!(matches(content, &terms("说中")));
        assert!(!matches(content, &terms("中文字")));
        assert!(
            !matches("中 文", &terms("中文")),
            "a run does not span a space"
        );
    }
}
