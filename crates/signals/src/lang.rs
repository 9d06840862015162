//! Which language a text is in, per script, for choosing the rule banks
//! that run on it when the caller does not declare the language.
//!
//! A script alone cannot tell Arabic from Sorani Kurdish (both in Arabic
//! script) or English from Italian (both Latin). Per script present in the
//! text, its letters are identified separately (so an English ad with an
//! Arabic line has a Latin answer and an Arabic answer):
//!
//! - **Arabic script**: Sorani Kurdish (`ckb`) when the letters Sorani adds to
//!   the Arabic alphabet — `ڕ` U+0695, `ڵ` U+06B5, `ۆ` U+06C6, `ێ` U+06CE,
//!   `ە` U+06D5 — make up at least [`SORANI_SHARE`] of the letters (Arabic,
//!   Persian and Urdu use none of them); otherwise `whatlang` restricted to
//!   Arabic, Persian and Urdu.
//! - **Latin script**: Kurmanji Kurdish (`kmr`) when `ê`, `î`, `û`, `ç`, `ş`
//!   make up at least [`KURMANJI_SHARE`] of the letters and `ê` is among
//!   them (whatlang has no Kurdish; Turkish has `ç` and `ş` but not `ê`);
//!   otherwise `whatlang` (trigram profiles; the Latin-script languages
//!   it knows).
//!
//! Words with digits or `/ @ _ . : #` (links, handles, numbers), tatweel and
//! combining marks are left out. An answer counts only when whatlang's
//! confidence is at least [`MIN_CONFIDENCE`] (or a Kurdish rule fired) and
//! the text has at least [`MIN_LETTERS`] letters of the script;
//! otherwise the script alone decides, as before. Accuracy per language on
//! the synthetic corpus: docs/SIGNALS.md (`eval::language_report`).

use crate::rules::Script;

/// Letters of a script below which no language is named.
pub const MIN_LETTERS: usize = 12;
/// Share of Sorani-only letters among Arabic-script letters that makes a
/// text Sorani.
pub const SORANI_SHARE: f64 = 0.02;
/// Share of `ê î û ç ş` among Latin letters that makes a text Kurmanji.
pub const KURMANJI_SHARE: f64 = 0.02;
/// Lowest whatlang confidence taken as an answer (whatlang's own
/// "reliable" is 0.9; chosen by measurement on the corpus, docs/SIGNALS.md).
pub const MIN_CONFIDENCE: f64 = 0.5;

/// A language identified for one script of a text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detected {
    /// BCP 47 primary language subtag (`en`, `it`, `ar`, `ckb`, `kmr`, …).
    pub language: &'static str,
    /// whatlang's confidence (0–1), or the Kurdish letters' share.
    pub confidence: f64,
}

/// The languages of a text, per script (`None`: too few letters, or no
/// reliable answer).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Languages {
    /// Of its Latin letters.
    pub latin: Option<Detected>,
    /// Of its Arabic-script letters.
    pub arabic: Option<Detected>,
}

impl Languages {
    /// Identifies the languages of `text` (the original text: folding
    /// removes the accents and letters the Kurdish rules read).
    pub fn of(text: &str) -> Languages {
        Languages {
            latin: detect(text, Script::Latin),
            arabic: detect(text, Script::Arabic),
        }
    }

    /// The answer for a script (`None` for scripts not identified).
    pub fn of_script(&self, script: Script) -> Option<Detected> {
        match script {
            Script::Latin => self.latin,
            Script::Arabic => self.arabic,
            _ => None,
        }
    }
}

/// whatlang's ISO 639-3 codes of the languages it can name, with their
/// BCP 47 primary subtag, in Latin or Arabic script.
const LATIN: &[(whatlang::Lang, &str)] = {
    use whatlang::Lang::*;
    &[
        (Eng, "en"),
        (Ita, "it"),
        (Fra, "fr"),
        (Spa, "es"),
        (Por, "pt"),
        (Deu, "de"),
        (Nld, "nl"),
        (Ron, "ro"),
        (Pol, "pl"),
        (Ces, "cs"),
        (Slk, "sk"),
        (Hun, "hu"),
        (Swe, "sv"),
        (Dan, "da"),
        (Nob, "nb"),
        (Fin, "fi"),
        (Est, "et"),
        (Lav, "lv"),
        (Lit, "lt"),
        (Slv, "sl"),
        (Hrv, "hr"),
        (Tur, "tr"),
        (Aze, "az"),
        (Ind, "id"),
        (Vie, "vi"),
        (Tgl, "tl"),
        (Cat, "ca"),
        (Lat, "la"),
        (Epo, "eo"),
        (Afr, "af"),
        (Zul, "zu"),
        (Aka, "ak"),
        (Sna, "sn"),
        (Uzb, "uz"),
        (Tuk, "tk"),
        (Jav, "jv"),
        (Cym, "cy"),
    ]
};

const ARABIC: &[(whatlang::Lang, &str)] = {
    use whatlang::Lang::*;
    &[(Ara, "ar"), (Pes, "fa"), (Urd, "ur")]
};

/// Whether the detector can name this language (BCP 47 primary subtag):
/// a bank in another language is chosen by its script alone.
pub fn can_name(primary: &str) -> bool {
    primary == "ckb" || primary == "kmr" || LATIN.iter().chain(ARABIC).any(|(_, t)| *t == primary)
}

fn is_sorani_letter(c: char) -> bool {
    matches!(
        c,
        '\u{0695}' | '\u{06B5}' | '\u{06C6}' | '\u{06CE}' | '\u{06D5}'
    )
}

/// The language of the letters of `script` in `text`.
pub fn detect(text: &str, script: Script) -> Option<Detected> {
    let table = match script {
        Script::Latin => LATIN,
        Script::Arabic => ARABIC,
        _ => return None,
    };
    // The words with letters of the script, other letters dropped, joined
    // by single spaces (whatlang reads trigrams, spaces included).
    let mut letters = 0usize;
    let mut marked = 0usize;
    let mut has_e_circumflex = false;
    let mut part = String::new();
    for word in text.split_whitespace() {
        // Links, handles, addresses and numbers say nothing of the language.
        let inner = word.trim_matches(|c: char| !c.is_alphanumeric());
        if inner
            .contains(|c: char| c.is_numeric() || matches!(c, '/' | '@' | '_' | '.' | ':' | '#'))
        {
            continue;
        }
        // Tatweel and combining marks (harakat) dropped: they vary between
        // re-posts of one ad and are not in whatlang's profiles.
        let kept: String = word
            .chars()
            .filter(|&c| c != '\u{0640}' && !unicode_normalization::char::is_combining_mark(c))
            .filter(|&c| script.has(c) || !c.is_alphanumeric())
            .collect();
        if !kept.chars().any(|c| script.has(c)) {
            continue;
        }
        for c in kept.chars().filter(|&c| script.has(c)) {
            letters += 1;
            match script {
                Script::Arabic if is_sorani_letter(c) => marked += 1,
                Script::Latin => {
                    let l = c.to_lowercase().next().unwrap_or(c);
                    if matches!(l, 'ê' | 'î' | 'û' | 'ç' | 'ş') {
                        marked += 1;
                    }
                    has_e_circumflex |= l == 'ê';
                }
                _ => {}
            }
        }
        if !part.is_empty() {
            part.push(' ');
        }
        part.push_str(&kept);
    }
    if letters < MIN_LETTERS {
        return None;
    }
    let share = marked as f64 / letters as f64;
    match script {
        Script::Arabic if share >= SORANI_SHARE => {
            return Some(Detected {
                language: "ckb",
                confidence: share,
            });
        }
        Script::Latin if share >= KURMANJI_SHARE && has_e_circumflex => {
            return Some(Detected {
                language: "kmr",
                confidence: share,
            });
        }
        _ => {}
    }
    let detector =
        whatlang::Detector::with_allowlist(table.iter().map(|(l, _)| *l).collect::<Vec<_>>());
    let info = detector.detect(&part)?;
    if info.confidence() < MIN_CONFIDENCE {
        return None;
    }
    table
        .iter()
        .find(|(l, _)| *l == info.lang())
        .map(|(_, tag)| Detected {
            language: tag,
            confidence: info.confidence(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_languages_that_share_a_script() {
        let en = "Kittens for adoption, three months old, vaccinated and litter trained";
        let it = "Gattini in adozione, tre mesi, vaccinati e abituati alla lettiera";
        let ar = "قطط صغيرة للتبني، عمرها ثلاثة أشهر، ملقحة ومدربة على استخدام الرمل، تعيش في المنزل مع الأطفال";
        let ckb = "بێچووە پشیلە بۆ فرۆشتن، تەمەنی سێ مانگە، کوتراوە و تەندروستە";
        let kmr = "Pisîkên biçûk ji bo firotinê, sê mehî ne, derzî lê hatine xistin";
        assert_eq!(detect(en, Script::Latin).map(|d| d.language), Some("en"));
        assert_eq!(detect(it, Script::Latin).map(|d| d.language), Some("it"));
        assert_eq!(detect(ar, Script::Arabic).map(|d| d.language), Some("ar"));
        assert_eq!(detect(ckb, Script::Arabic).map(|d| d.language), Some("ckb"));
        assert_eq!(detect(kmr, Script::Latin).map(|d| d.language), Some("kmr"));
        // Per script: an English ad with an Arabic line.
        let mixed = format!("{en}. {ar}");
        let l = Languages::of(&mixed);
        assert_eq!(l.latin.map(|d| d.language), Some("en"));
        assert_eq!(l.arabic.map(|d| d.language), Some("ar"));
        // Too short to say.
        assert_eq!(detect("hi there", Script::Latin), None);
        assert_eq!(detect(en, Script::Arabic), None);
    }

    #[test]
    fn every_named_language_is_known_to_the_script_table() {
        for (_, tag) in LATIN {
            assert_eq!(Script::of_language(tag), Script::Latin, "{tag}");
        }
        for (_, tag) in ARABIC {
            assert_eq!(Script::of_language(tag), Script::Arabic, "{tag}");
        }
        assert!(can_name("ckb") && can_name("kmr") && can_name("en") && !can_name("sw"));
    }
}
