//! Keyword and regex rule banks, for reviewers.
//!
//! A [`RuleBank`] has a name, a language (a BCP 47 tag such as `en`, `it`,
//! `ar`, `ckb`, `kmr`) and rules. Each rule is a regular expression (the
//! `regex` crate: linear time in the text, no backtracking blow-up) matched
//! either against the raw text or, by default, against the
//! [folded](crate::normalize) text — so `k1tt3n` and Cyrillic look-alikes
//! meet a rule written as `kltten` (fold the rule's keyword with
//! [`crate::normalize::fold`] to see its folded form; [`Rule::keyword`] does
//! it for plain keywords). Every match says which rule matched which byte span
//! of the *original* text, so a reviewer sees why; matches are an explanation
//! for a person, never grounds for automatic action.

use regex::{Regex, RegexSet};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::lang::Languages;
use crate::normalize::{Folded, fold};

/// One rule as written in a bank file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// A stable id the bank gives the rule.
    pub id: String,
    /// The pattern (regex syntax); `(?i)` is not needed on folded text.
    pub pattern: String,
    /// Match against the raw text instead of the folded text.
    #[serde(default)]
    pub raw: bool,
    /// What the rule is for, shown to reviewers.
    #[serde(default)]
    pub description: String,
}

impl RuleSpec {
    /// A rule for a plain keyword or phrase: folded the same way as the text
    /// and matched on word boundaries.
    pub fn keyword(id: &str, phrase: &str) -> RuleSpec {
        RuleSpec {
            id: id.to_string(),
            pattern: format!(r"\b{}\b", regex::escape(&fold(phrase).text)),
            raw: false,
            description: format!("keyword {phrase:?}"),
        }
    }
}

/// A bank of rules as stored (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleBankSpec {
    /// Bank name.
    pub name: String,
    /// BCP 47 language tag of the rules.
    pub language: String,
    /// The rules.
    pub rules: Vec<RuleSpec>,
}

/// A compiled rule bank.
#[derive(Debug, Clone)]
pub struct RuleBank {
    spec: RuleBankSpec,
    folded_set: RegexSet,
    folded: Vec<(usize, Regex)>,
    raw_set: RegexSet,
    raw: Vec<(usize, Regex)>,
}

/// Limit on the compiled size of one bank's patterns.
const SIZE_LIMIT: usize = 16 << 20;

/// Which rule matched which span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleMatch {
    /// The bank's name.
    pub bank: String,
    /// The bank's language.
    pub language: String,
    /// The rule's id.
    pub rule: String,
    /// The rule's description.
    pub description: String,
    /// Byte span in the original text.
    pub span: std::ops::Range<usize>,
    /// The original text of that span.
    pub text: String,
}

fn compile(id: &str, pattern: &str) -> Result<Regex, Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| Error::InvalidInput(format!("rule {id:?}: bad pattern: {e}")))
}

impl RuleBank {
    /// Compiles a bank; a bad pattern, an empty or duplicate id or a missing
    /// language is an error naming the rule.
    pub fn new(spec: RuleBankSpec) -> Result<RuleBank, Error> {
        if spec.language.trim().is_empty() {
            return Err(Error::InvalidInput(format!(
                "rule bank {:?} needs a language (BCP 47 tag such as en, it, ar, ckb)",
                spec.name
            )));
        }
        let mut seen = std::collections::HashSet::new();
        let (mut folded, mut raw) = (Vec::new(), Vec::new());
        for (i, r) in spec.rules.iter().enumerate() {
            if r.id.trim().is_empty() || !seen.insert(r.id.as_str()) {
                return Err(Error::InvalidInput(format!(
                    "rule bank {:?}: rule ids must be non-empty and distinct ({:?})",
                    spec.name, r.id
                )));
            }
            let re = compile(&r.id, &r.pattern)?;
            if r.raw {
                raw.push((i, re))
            } else {
                folded.push((i, re))
            }
        }
        let set = |v: &Vec<(usize, Regex)>| {
            regex::RegexSetBuilder::new(v.iter().map(|(_, r)| r.as_str()))
                .size_limit(SIZE_LIMIT)
                .build()
                .map_err(|e| Error::InvalidInput(format!("rule bank {:?}: {e}", spec.name)))
        };
        Ok(RuleBank {
            folded_set: set(&folded)?,
            raw_set: set(&raw)?,
            folded,
            raw,
            spec,
        })
    }

    /// The bank as written.
    pub fn spec(&self) -> &RuleBankSpec {
        &self.spec
    }

    /// Every match of every rule, in order of position.
    pub fn explain(&self, text: &str) -> Vec<RuleMatch> {
        self.explain_folded(text, &fold(text))
    }

    /// [`RuleBank::explain`] with the text already folded (one fold for many banks).
    pub fn explain_folded(&self, text: &str, f: &Folded) -> Vec<RuleMatch> {
        let mut out = Vec::new();
        let mut emit = |i: usize, span: std::ops::Range<usize>| {
            let r = &self.spec.rules[i];
            out.push(RuleMatch {
                bank: self.spec.name.clone(),
                language: self.spec.language.clone(),
                rule: r.id.clone(),
                description: r.description.clone(),
                text: text.get(span.clone()).unwrap_or_default().to_string(),
                span,
            });
        };
        for k in self.folded_set.matches(&f.text).iter() {
            let (i, re) = &self.folded[k];
            for m in re.find_iter(&f.text) {
                emit(*i, f.source_span(m.range()));
            }
        }
        for k in self.raw_set.matches(text).iter() {
            let (i, re) = &self.raw[k];
            for m in re.find_iter(text) {
                emit(*i, m.range());
            }
        }
        out.sort_by_key(|m| (m.span.start, m.span.end));
        out
    }
}

/// The writing system a rule bank's language is written in, which decides
/// which texts its rules run on when the text's language is not declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Latin letters (after folding: look-alikes and accents become ASCII).
    Latin,
    /// Arabic script (Arabic, Persian, Sorani, Urdu…).
    Arabic,
    /// Cyrillic.
    Cyrillic,
    /// Greek.
    Greek,
    /// Any text: `mul`, `und`, `*`, a macrolanguage written in several
    /// scripts (`ku`, `sr`), or a language this table does not know.
    Any,
}

impl Script {
    /// The script of a BCP 47 tag: its script subtag (`ku-Arab`, `ku-Latn`)
    /// when it has one, else its primary language's usual script.
    pub fn of_language(tag: &str) -> Script {
        let lower = tag.trim().to_ascii_lowercase();
        let mut parts = lower.split(['-', '_']);
        let primary = parts.next().unwrap_or("");
        for p in parts {
            match p {
                "latn" => return Script::Latin,
                "arab" => return Script::Arabic,
                "cyrl" => return Script::Cyrillic,
                "grek" => return Script::Greek,
                _ => {}
            }
        }
        match primary {
            "ar" | "fa" | "ur" | "ps" | "ckb" | "sdh" | "sd" | "ug" | "prs" => Script::Arabic,
            "en" | "it" | "fr" | "es" | "de" | "pt" | "nl" | "ro" | "pl" | "cs" | "sk" | "hu"
            | "sv" | "da" | "no" | "nb" | "fi" | "et" | "lv" | "lt" | "sl" | "hr" | "bs" | "sq"
            | "tr" | "az" | "kmr" | "ha" | "so" | "sw" | "yo" | "ig" | "tl" | "id" | "ms"
            | "vi" | "ti" | "om" | "wo" | "ff" | "ca" | "eu" | "ga" | "mt" | "la" | "eo" | "af"
            | "zu" | "ak" | "sn" | "uz" | "tk" | "jv" | "cy" => Script::Latin,
            "ru" | "uk" | "be" | "bg" | "mk" | "kk" | "ky" | "tg" | "mn" => Script::Cyrillic,
            "el" => Script::Greek,
            _ => Script::Any,
        }
    }

    /// Whether `c` is a letter of this script (`Any`: every character).
    pub fn has(self, c: char) -> bool {
        let u = c as u32;
        match self {
            Script::Latin => {
                c.is_ascii_alphabetic() || (0xC0..=0x24F).contains(&u) && c.is_alphabetic()
            }
            Script::Arabic => {
                matches!(u, 0x0620..=0x064A | 0x066E..=0x06D3 | 0x06D5 | 0x06EE..=0x06FF
                    | 0x0750..=0x077F | 0x08A0..=0x08FF | 0xFB50..=0xFDFF | 0xFE70..=0xFEFF)
            }
            Script::Cyrillic => (0x400..=0x52F).contains(&u),
            Script::Greek => (0x370..=0x3FF).contains(&u) && c.is_alphabetic(),
            Script::Any => true,
        }
    }
}

/// The primary subtag, lower case (`ckb` of `ckb-IQ`).
fn primary(tag: &str) -> String {
    tag.trim()
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Whether a bank in language `bank` applies to a text declared as `text`:
/// the same primary language, or the Kurdish macrolanguage `ku` and one of
/// its members (Kurmanji `kmr`, Sorani `ckb`, Southern `sdh`).
fn same_language(bank: &str, text: &str) -> bool {
    let (b, t) = (primary(bank), primary(text));
    let kurdish = |x: &str| matches!(x, "ku" | "kmr" | "ckb" | "sdh");
    b == t || (kurdish(&b) && kurdish(&t) && (b == "ku" || t == "ku"))
}

impl RuleBank {
    /// Whether this bank's rules run on a text. A bank in `mul`, `und` or
    /// `*` runs on every text. Otherwise, when the text's languages are
    /// declared (`declared`, BCP 47 tags, e.g. by the caller of
    /// `/v1/match`), it runs when one has the bank's primary language
    /// (`en-GB` text, `en` bank; `ku` and its members meet). When none is
    /// declared it runs when the *folded* text has a letter of the bank's
    /// [`Script`] — so an English bank runs on English written in Cyrillic
    /// look-alikes (folding made them Latin), not on a text entirely in
    /// Arabic script, and an Arabic or Sorani bank not on a Latin-only text.
    pub fn applies_to(&self, folded: &Folded, declared: &[String]) -> bool {
        self.applies(folded, declared, &Languages::default())
    }

    /// [`applies_to`](Self::applies_to), with the text's languages
    /// identified ([`Languages::of`] the original text): when none is
    /// declared and the folded text has letters of the bank's script, the
    /// bank runs unless the language identified for that script is a
    /// different one — so an `it` bank does not run on an English ad, nor an
    /// `ar` bank on a Sorani one. With no reliable answer for the script, or
    /// a bank language the detector cannot name ([`crate::lang::can_name`]),
    /// the script alone decides.
    pub fn applies(&self, folded: &Folded, declared: &[String], detected: &Languages) -> bool {
        let lang = &self.spec.language;
        if matches!(primary(lang).as_str(), "mul" | "und" | "*") {
            return true;
        }
        if !declared.is_empty() {
            return declared.iter().any(|d| same_language(lang, d));
        }
        let script = Script::of_language(lang);
        if !folded.text.chars().any(|c| script.has(c)) {
            return false;
        }
        let bank = primary(lang);
        match detected.of_script(script) {
            // `ku` (Kurdish): the detector names its members.
            Some(d) if crate::lang::can_name(&bank) || bank == "ku" => {
                same_language(lang, d.language)
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank() -> RuleBank {
        RuleBank::new(RuleBankSpec {
            name: "pets-en".into(),
            language: "en".into(),
            rules: vec![
                RuleSpec::keyword("kitten", "kitten"),
                RuleSpec::keyword("no-papers", "no papers needed"),
                RuleSpec {
                    id: "price".into(),
                    pattern: r"(?i)\b\d+\s?(eur|usd|€|\$)".into(),
                    raw: true,
                    description: "a price".into(),
                },
            ],
        })
        .unwrap()
    }

    #[test]
    fn matches_point_at_the_original_spans() {
        let text = "Cute K1TT3N 🐱, no   papers needed! Only 90 EUR";
        let ms = bank().explain(text);
        let got: Vec<(&str, &str)> = ms
            .iter()
            .map(|m| (m.rule.as_str(), m.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("kitten", "K1TT3N"),
                ("no-papers", "no   papers needed"),
                ("price", "90 EUR")
            ]
        );
        assert!(bank().explain("a sofa for sale").is_empty());
        // Word boundaries: "kittens" is not the keyword "kitten".
        assert!(bank().explain("kittens").iter().all(|m| m.rule != "kitten"));
    }

    #[test]
    fn arabic_keyword_matches_through_diacritics_and_tatweel() {
        let b = RuleBank::new(RuleBankSpec {
            name: "pets-ar".into(),
            language: "ar".into(),
            rules: vec![RuleSpec::keyword("cat", "قطة")],
        })
        .unwrap();
        let text = "قِطَّـةٌ للبيع";
        let ms = b.explain(text);
        assert_eq!(ms.len(), 1);
        assert_eq!(ms[0].text, "قِطَّـةٌ");
    }

    #[test]
    fn bad_banks_are_refused_with_the_rule_named() {
        let mut spec = bank().spec().clone();
        spec.rules.push(RuleSpec {
            id: "bad".into(),
            pattern: "(".into(),
            raw: false,
            description: String::new(),
        });
        let e = RuleBank::new(spec.clone()).unwrap_err().to_string();
        assert!(e.contains("\"bad\""), "{e}");
        spec.rules.pop();
        spec.rules.push(RuleSpec::keyword("kitten", "again"));
        assert!(RuleBank::new(spec.clone()).is_err());
        spec.rules.pop();
        spec.language = " ".into();
        assert!(RuleBank::new(spec).is_err());
    }

    fn bank_in(language: &str) -> RuleBank {
        RuleBank::new(RuleBankSpec {
            name: format!("b-{language}"),
            language: language.into(),
            rules: vec![RuleSpec::keyword("k", "x")],
        })
        .unwrap()
    }

    #[test]
    fn a_banks_language_decides_which_texts_it_runs_on() {
        let en = bank_in("en");
        let ar = bank_in("ar");
        let ckb = bank_in("ckb");
        let kmr = bank_in("kmr");
        let ku_arab = bank_in("ku-Arab");
        let ku = bank_in("ku");
        let mul = bank_in("mul");
        let latin = fold("Kitten for adoption, vaccinated");
        let cyr_lookalike = fold("Кіttеn fоr аdорtіоn"); // Cyrillic look-alikes
        let arabic = fold("قطة للتبني، ملقحة");
        let sorani = fold("پشیلە بۆ بەخێوکردن");
        let mixed = fold("قطة kitten");
        let none: &[String] = &[];
        // Undeclared: by the script of the folded text.
        assert!(en.applies_to(&latin, none));
        assert!(en.applies_to(&cyr_lookalike, none), "folding made it Latin");
        assert!(!en.applies_to(&arabic, none));
        assert!(!ar.applies_to(&latin, none));
        assert!(ar.applies_to(&arabic, none) && ckb.applies_to(&sorani, none));
        assert!(!ckb.applies_to(&latin, none) && kmr.applies_to(&latin, none));
        assert!(!kmr.applies_to(&sorani, none));
        assert!(ku_arab.applies_to(&sorani, none) && !ku_arab.applies_to(&latin, none));
        assert!(en.applies_to(&mixed, none) && ar.applies_to(&mixed, none));
        // `ku` alone is written in two scripts; `mul` is every language.
        assert!(ku.applies_to(&latin, none) && ku.applies_to(&sorani, none));
        assert!(mul.applies_to(&arabic, none) && mul.applies_to(&latin, none));
        // Declared: by language, whatever the script.
        let d = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(en.applies_to(&arabic, &d(&["en-GB"])));
        assert!(!en.applies_to(&latin, &d(&["it"])));
        assert!(bank_in("IT").applies_to(&latin, &d(&["it", "en"])));
        assert!(ckb.applies_to(&latin, &d(&["ku"])) && ku.applies_to(&arabic, &d(&["kmr"])));
        assert!(
            !ckb.applies_to(&sorani, &d(&["kmr"])),
            "two members of ku differ"
        );
        assert!(!ar.applies_to(&arabic, &d(&["fa"])));
        assert!(mul.applies_to(&arabic, &d(&["fa"])));
        // Script table spot checks.
        assert_eq!(Script::of_language("ckb-IQ"), Script::Arabic);
        assert_eq!(Script::of_language("sr"), Script::Any);
        assert_eq!(Script::of_language("sr-Cyrl"), Script::Cyrillic);
        assert_eq!(Script::of_language("xx"), Script::Any);
    }
}
