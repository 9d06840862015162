//! Text folding: the one normal form that the ad hash and the keyword rules see.
//!
//! Ad posters dodge exact matching with cheap edits: look-alike letters from
//! other scripts (Cyrillic `а` for Latin `a`), leetspeak (`k1tt3n`), letters
//! spaced out (`k i t t e n`), zero-width characters, emoji, fullwidth forms,
//! Arabic tatweel and diacritics, and the several Unicode spellings of the
//! same Arabic-script letter that Arabic, Persian and Kurdish keyboards type.
//! [`fold`] undoes all of these, in this order, for each source character:
//!
//! 1. compatibility decomposition (NFKD, so fullwidth `ｋ`, ligatures and
//!    Arabic presentation forms become their base letters), then every
//!    combining mark is dropped (accents, harakat, hamza above/below: `è`→`e`,
//!    `أ`→`ا`);
//! 2. default-ignorable characters (zero-width space/joiners, bidi controls,
//!    soft hyphen, variation selectors) are removed, not turned into spaces;
//! 3. lower case;
//! 4. Arabic-script folding: tatweel removed; Arabic-Indic and extended
//!    (Persian/Kurdish) digits → ASCII; alef wasla → alef; alef maksura and
//!    Farsi/Kurdish yeh → yeh; keheh → kaf; teh marbuta, heh goal, heh
//!    doachashmee and Kurdish ae (`ە`) → heh;
//! 5. tokens are maximal runs of letters, digits and the leetspeak symbols
//!    `@ $ ! |`; everything else (punctuation, emoji, spaces) separates tokens.
//!    A token that has a letter is *folded*: leetspeak digits and symbols become
//!    letters (`0`→o, `1`→l, `3`→e, `4`/`@`→a, `5`/`$`→s, `7`→t, `8`→b, `9`→g,
//!    `!`/`|`→l) and each non-Arabic letter is replaced by its UTS #39
//!    confusables *skeleton* (from the `unicode-security` crate), lower-cased,
//!    with `i` folded into `l` (the skeleton maps `1`, `I` and `l` together).
//!    A token of digits only (a price, a phone number) keeps its digits;
//!    symbol-only runs are separators;
//! 6. three or more one-letter tokens in a row are joined (`k i t t e n`).
//!
//! The output keeps, for every output character, the byte range of the source
//! text it came from, so a rule that matches the folded text can point at the
//! span of the original message ([`Folded::source_span`]).

use std::ops::Range;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Text after [`fold`], with a map back to the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    /// Folded tokens joined by single spaces.
    pub text: String,
    /// For each character of `text`: its byte offset in `text` and the byte
    /// range of the source text it came from (a separator space maps to the
    /// empty range between its neighbours).
    map: Vec<(usize, Range<usize>)>,
}

impl Folded {
    /// The tokens (space-separated words) of the folded text.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.text.split(' ').filter(|t| !t.is_empty())
    }

    /// The tokens that carry words: tokens made only of digits (prices, phone
    /// numbers, years) are left out, since re-posts change them.
    pub fn word_tokens(&self) -> impl Iterator<Item = &str> {
        self.tokens()
            .filter(|t| !t.bytes().all(|b| b.is_ascii_digit()))
    }

    /// Maps a byte range of [`Folded::text`] (e.g. a regex match) back to the
    /// byte range of the source text it was folded from.
    pub fn source_span(&self, folded: Range<usize>) -> Range<usize> {
        if self.map.is_empty() || folded.start >= folded.end {
            return 0..0;
        }
        let first = match self.map.binary_search_by_key(&folded.start, |m| m.0) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let last = match self.map.binary_search_by_key(&(folded.end - 1), |m| m.0) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.map[first].1.start;
        let end = self.map[last].1.end;
        start..end.max(start)
    }
}

/// A character after steps 1–4, with the source bytes it came from.
#[derive(Clone)]
struct Base {
    c: char,
    src: Range<usize>,
}

fn is_default_ignorable(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{E0000}'..='\u{E0FFF}')
}

/// True for characters of the Arabic script blocks (Arabic, Arabic
/// Supplement, Arabic Extended-A/B, presentation forms).
pub fn is_arabic_script(c: char) -> bool {
    matches!(c,
        '\u{0600}'..='\u{06FF}' | '\u{0750}'..='\u{077F}' | '\u{0870}'..='\u{08FF}'
        | '\u{FB50}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
}

/// Step 4: the Arabic-script folding of one (lower-cased) character. `None`
/// drops it.
pub fn fold_arabic(c: char) -> Option<char> {
    Some(match c {
        '\u{0640}' => return None,                                       // tatweel
        '\u{0660}'..='\u{0669}' => digit(c as u32 - 0x0660),             // Arabic-Indic
        '\u{06F0}'..='\u{06F9}' => digit(c as u32 - 0x06F0), // extended (Persian, Kurdish)
        '\u{0671}' | '\u{0672}' | '\u{0673}' | '\u{0675}' => '\u{0627}', // alef variants → alef
        '\u{0649}' | '\u{06CC}' | '\u{06D0}' | '\u{06CD}' => '\u{064A}', // maksura, Farsi yeh → yeh
        '\u{06A9}' | '\u{06AA}' => '\u{0643}',               // keheh → kaf
        '\u{0629}' | '\u{06C1}' | '\u{06BE}' | '\u{06D5}' => '\u{0647}', // teh marbuta, heh variants, ae → heh
        _ => c,
    })
}

fn digit(d: u32) -> char {
    char::from_digit(d, 10).unwrap_or('0')
}

/// Converts any decimal digit this module knows (ASCII, Arabic-Indic,
/// extended Arabic-Indic, fullwidth, Devanagari) to its value.
pub fn digit_value(c: char) -> Option<u32> {
    match c {
        '0'..='9' => Some(c as u32 - '0' as u32),
        '\u{0660}'..='\u{0669}' => Some(c as u32 - 0x0660),
        '\u{06F0}'..='\u{06F9}' => Some(c as u32 - 0x06F0),
        '\u{FF10}'..='\u{FF19}' => Some(c as u32 - 0xFF10),
        '\u{0966}'..='\u{096F}' => Some(c as u32 - 0x0966),
        _ => None,
    }
}

fn leet(c: char) -> Option<char> {
    Some(match c {
        '0' => 'o',
        '1' | '!' | '|' => 'l',
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' => 't',
        '8' => 'b',
        '9' => 'g',
        _ => return None,
    })
}

fn is_token_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '@' | '$' | '!' | '|')
}

fn base_chars(text: &str) -> Vec<Base> {
    let mut out = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let src = i..i + c.len_utf8();
        let before = out.len();
        for d in std::iter::once(c).nfkd() {
            if is_combining_mark(d) || is_default_ignorable(d) {
                continue;
            }
            for l in d.to_lowercase() {
                if let Some(a) = fold_arabic(l) {
                    out.push(Base {
                        c: a,
                        src: src.clone(),
                    });
                }
            }
        }
        // A dropped character (a mark, tatweel, a zero-width character)
        // belongs to the character before it, so spans cover it.
        if out.len() == before
            && let Some(last) = out.last_mut()
        {
            last.src.end = src.end;
        }
    }
    out
}

/// The UTS #39 skeleton of one lower-case letter, lower-cased. Lower-case
/// look-alikes often have a non-ASCII prototype (Cyrillic `к` → `ĸ`) while
/// their capitals map to ASCII (`К` → `K`): the capital's skeleton is used
/// then.
fn skeleton_lower(c: char) -> Vec<char> {
    let mut buf = [0u8; 4];
    let s: String = unicode_security::skeleton(c.encode_utf8(&mut buf)).collect();
    if s.is_ascii() {
        return s.to_lowercase().chars().collect();
    }
    let upper: String = c.to_uppercase().collect();
    let su: String = unicode_security::skeleton(&upper).collect();
    if su.is_ascii() {
        su.to_lowercase().chars().collect()
    } else {
        s.to_lowercase().chars().collect()
    }
}

/// Folds `text` (see the module documentation).
pub fn fold(text: &str) -> Folded {
    let base = base_chars(text);
    // Tokenise.
    let mut tokens: Vec<Vec<Base>> = Vec::new();
    let mut cur: Vec<Base> = Vec::new();
    for b in base {
        if is_token_char(b.c) {
            cur.push(b);
        } else if !cur.is_empty() {
            tokens.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    // Fold each token; symbol-only runs vanish.
    let mut folded: Vec<Vec<Base>> = Vec::with_capacity(tokens.len());
    for t in tokens {
        let has_letter = t.iter().any(|b| b.c.is_alphabetic());
        let has_digit = t.iter().any(|b| b.c.is_numeric());
        if !has_letter {
            if has_digit {
                let digits: Vec<Base> = t
                    .into_iter()
                    .filter_map(|b| {
                        digit_value(b.c).map(|d| Base {
                            c: digit(d),
                            src: b.src,
                        })
                    })
                    .collect();
                if !digits.is_empty() {
                    folded.push(digits);
                }
            }
            continue;
        }
        // Leetspeak symbols at the ends of a word are punctuation (`sale!`).
        let mut t = t;
        while t
            .last()
            .is_some_and(|b| matches!(b.c, '!' | '|' | '@' | '$'))
        {
            t.pop();
        }
        while t.first().is_some_and(|b| matches!(b.c, '!' | '|')) {
            t.remove(0);
        }
        let mut out = Vec::with_capacity(t.len());
        for b in t {
            let c = digit_value(b.c).map(digit).unwrap_or(b.c);
            if let Some(l) = leet(c) {
                out.push(Base { c: l, src: b.src });
            } else if is_arabic_script(c) || !c.is_alphabetic() {
                out.push(Base { c, src: b.src });
            } else {
                for l in skeleton_lower(c) {
                    if is_combining_mark(l) {
                        continue;
                    }
                    let l = if l == 'i' { 'l' } else { l };
                    out.push(Base {
                        c: l,
                        src: b.src.clone(),
                    });
                }
            }
        }
        if !out.is_empty() {
            folded.push(out);
        }
    }
    // Join runs of three or more one-letter tokens.
    let mut joined: Vec<Vec<Base>> = Vec::with_capacity(folded.len());
    let mut i = 0;
    while i < folded.len() {
        let single = |t: &Vec<Base>| t.len() == 1 && t[0].c.is_alphabetic();
        let mut j = i;
        while j < folded.len() && single(&folded[j]) {
            j += 1;
        }
        if j - i >= 3 {
            joined.push(folded[i..j].iter().flatten().cloned().collect());
            i = j;
        } else {
            joined.push(folded[i].clone());
            i += 1;
        }
    }
    // Render.
    let mut text_out = String::new();
    let mut map = Vec::new();
    for (k, t) in joined.iter().enumerate() {
        if k > 0 {
            let at = t[0].src.start;
            map.push((text_out.len(), at..at));
            text_out.push(' ');
        }
        for b in t {
            map.push((text_out.len(), b.src.clone()));
            text_out.push(b.c);
        }
    }
    Folded {
        text: text_out,
        map,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> String {
        fold(s).text
    }

    #[test]
    fn look_alikes_leetspeak_spacing_and_emoji_fold_together() {
        let plain = f("Kitten for sale");
        assert_eq!(f("K1TT3N for sale 🐱🐱"), plain);
        // Cyrillic к, і, е; fullwidth ｓ; zero-width space inside a word.
        assert_eq!(f("\u{043a}\u{0456}tt\u{0435}n f\u{200b}or ｓale"), plain);
        assert_eq!(f("k i t t e n   for sale!!"), plain);
        assert_eq!(f("kitten, for... sale"), plain);
        assert_ne!(f("puppy for sale"), plain);
    }

    #[test]
    fn numbers_are_kept_as_digits_and_left_out_of_word_tokens() {
        let x = fold("Price 150 € — call ٠٧٧٠٠ 900123");
        assert_eq!(x.text, "prlce 150 call 07700 900123");
        assert_eq!(x.word_tokens().collect::<Vec<_>>(), vec!["prlce", "call"]);
    }

    #[test]
    fn accents_fold_in_italian_and_kurmanji() {
        assert_eq!(f("Città, perché"), f("citta perche"));
        assert_eq!(f("Pisîk ji bo firotinê"), f("pisik ji bo firotine"));
    }

    #[test]
    fn arabic_script_variants_fold() {
        // Tatweel, harakat, hamza forms, alef maksura, teh marbuta.
        assert_eq!(f("قـطـة للبيع"), f("قطه للبيع"));
        assert_eq!(f("قِطَّةٌ"), f("قطه"));
        assert_eq!(f("أحمد إلى"), f("احمد الي"));
        // Sorani: Farsi yeh, keheh, ae and heh doachashmee vs Arabic forms.
        assert_eq!(f("پشیلە بۆ فرۆشتن"), f("پشيله بۆ فرۆشتن"));
        assert_eq!(f("کەڵ"), f("كهڵ"));
        // Arabic presentation forms (NFKC/NFKD compatibility).
        assert_eq!(f("\u{FEE3}\u{FEE4}"), f("\u{0645}\u{0645}"));
    }

    #[test]
    fn spans_map_back_to_the_source() {
        let src = "Nice K1TT3N 🐱 here";
        let x = fold(src);
        let at = x.text.find("kltten").expect("folded token");
        let span = x.source_span(at..at + "kltten".len());
        assert_eq!(&src[span], "K1TT3N");
        let at = x.text.find("here").expect("token");
        assert_eq!(&src[x.source_span(at..at + 4)], "here");
    }
}
