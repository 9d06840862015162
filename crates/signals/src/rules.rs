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
}
