//! Evaluation of the text and entity signals on the synthetic corpus
//! ([`crate::corpus`]): recall of each re-post edit and false matches between
//! distinct ads, per scheme and threshold; entity recall and false
//! extractions per kind. `bulwark signals eval` prints [`Report::markdown`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::corpus::{Ad, Edit, generate, repost};
use crate::entities::{EntityKind, ExtractOptions, extract};
use crate::normalize::fold;
use crate::texthash::{MinHash, Shingles, TextHash, shingle_hashes, shingle_words, simhash, tlsh};

/// A text near-duplicate scheme under test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scheme {
    /// 1-bit MinHash, 256 bits, Hamming distance (the bank signal when Chars(5)).
    MinHash1(Shingles),
    /// Full MinHash (256 × 61-bit slots), 256 − equal slots.
    MinHashFull(Shingles),
    /// SimHash 256 bits over the shingles, Hamming distance.
    SimHash(Shingles),
    /// TLSH (128 buckets) of the folded words, TLSH distance.
    Tlsh,
    /// 1-bit MinHash over raw lower-cased whitespace words, no folding: the baseline.
    Unfolded(Shingles),
}

impl Scheme {
    fn name(&self) -> String {
        let sh = |s: &Shingles| match s {
            Shingles::Chars(n) => format!("char {n}-grams"),
            Shingles::Words(n) => format!("word {n}-grams"),
        };
        match self {
            Scheme::MinHash1(s) => format!("1-bit MinHash-256, {}", sh(s)),
            Scheme::MinHashFull(s) => format!("MinHash-256 (full slots), {}", sh(s)),
            Scheme::SimHash(s) => format!("SimHash-256, {}", sh(s)),
            Scheme::Tlsh => "TLSH-128 of folded text".into(),
            Scheme::Unfolded(s) => format!("1-bit MinHash-256, {}, NO folding", sh(s)),
        }
    }

    fn thresholds(&self) -> Vec<i64> {
        match self {
            Scheme::Tlsh => vec![30, 50, 70, 100, 150],
            Scheme::MinHashFull(_) => vec![64, 96, 128, 160, 192],
            _ => vec![30, 50, 60, 70, 80, 90],
        }
    }
}

enum Code {
    Bits(TextHash),
    Full(MinHash),
    Tlsh(Box<tlsh2::TlshDefault>),
    None,
}

fn code(scheme: &Scheme, text: &str) -> Code {
    match scheme {
        Scheme::MinHash1(s) => MinHash::of(&shingle_hashes(&fold(text), *s))
            .map(|m| Code::Bits(m.one_bit()))
            .unwrap_or(Code::None),
        Scheme::MinHashFull(s) => MinHash::of(&shingle_hashes(&fold(text), *s))
            .map(Code::Full)
            .unwrap_or(Code::None),
        Scheme::SimHash(s) => simhash(&shingle_hashes(&fold(text), *s))
            .map(Code::Bits)
            .unwrap_or(Code::None),
        Scheme::Tlsh => tlsh(&fold(text))
            .map(|t| Code::Tlsh(Box::new(t)))
            .unwrap_or(Code::None),
        Scheme::Unfolded(s) => {
            let lower = text.to_lowercase();
            let words: Vec<&str> = lower.split_whitespace().collect();
            MinHash::of(&shingle_words(&words, *s))
                .map(|m| Code::Bits(m.one_bit()))
                .unwrap_or(Code::None)
        }
    }
}

fn distance(a: &Code, b: &Code) -> Option<i64> {
    Some(match (a, b) {
        (Code::Bits(x), Code::Bits(y)) => x.distance(y) as i64,
        (Code::Full(x), Code::Full(y)) => {
            x.0.iter().zip(&y.0).filter(|(p, q)| p != q).count() as i64
        }
        (Code::Tlsh(x), Code::Tlsh(y)) => x.diff(y, true) as i64,
        _ => return None,
    })
}

/// Results for one scheme.
#[derive(Debug, Clone)]
pub struct SchemeResult {
    /// Scheme name.
    pub name: String,
    /// Per threshold: (threshold, recall over all re-posts, false-match rate
    /// over all pairs of distinct ads, false-match rate over same language and
    /// category pairs, false pairs).
    pub sweep: Vec<(i64, f64, f64, f64, usize)>,
    /// Per edit: recall at each threshold.
    pub per_edit: BTreeMap<&'static str, Vec<f64>>,
    /// Texts the scheme could not hash (TLSH's 50-byte minimum…).
    pub unhashable: usize,
    /// Microseconds per text to fold and hash (shared machine; indicative).
    pub micros_per_text: f64,
}

/// Entity extraction results per kind.
#[derive(Debug, Clone, Default)]
pub struct EntityResult {
    /// Planted (kind → (found, planted)) in originals.
    pub originals: BTreeMap<&'static str, (usize, usize)>,
    /// Same, in re-posts with re-formatted contacts (and the combined edit).
    pub reformatted: BTreeMap<&'static str, (usize, usize)>,
    /// Extracted values that were not planted, per kind, over every text.
    pub false_extractions: BTreeMap<&'static str, usize>,
    /// Texts scanned.
    pub texts: usize,
    /// Microseconds per text to extract (indicative).
    pub micros_per_text: f64,
}

/// The whole evaluation.
#[derive(Debug, Clone)]
pub struct Report {
    /// Seed.
    pub seed: u64,
    /// Original ads.
    pub ads: usize,
    /// Re-posts (one per ad and edit).
    pub reposts: usize,
    /// Distinct-ad pairs compared.
    pub pairs: usize,
    /// Same language + category pairs among them.
    pub hard_pairs: usize,
    /// Per scheme.
    pub schemes: Vec<SchemeResult>,
    /// Entities.
    pub entities: EntityResult,
}

/// The schemes compared by default.
pub fn default_schemes() -> Vec<Scheme> {
    vec![
        Scheme::MinHash1(Shingles::Chars(5)),
        Scheme::MinHash1(Shingles::Chars(4)),
        Scheme::MinHash1(Shingles::Words(2)),
        Scheme::MinHashFull(Shingles::Chars(5)),
        Scheme::SimHash(Shingles::Chars(5)),
        Scheme::Tlsh,
        Scheme::Unfolded(Shingles::Chars(5)),
    ]
}

/// Runs the evaluation on `n` original ads from `seed`.
pub fn run(seed: u64, n: usize, schemes: &[Scheme]) -> Report {
    let ads = generate(seed, n);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let reposts: Vec<(usize, Edit, Ad)> = ads
        .iter()
        .flat_map(|ad| Edit::ALL.map(|e| (ad.id, e, ad.clone())))
        .map(|(id, e, ad)| (id, e, repost(&ad, e, &mut rng)))
        .collect();
    let orig_text: Vec<String> = ads.iter().map(Ad::text).collect();
    let repost_text: Vec<String> = reposts.iter().map(|r| r.2.text()).collect();
    let same =
        |i: usize, j: usize| ads[i].lang == ads[j].lang && ads[i].category == ads[j].category;
    let pairs = n * n.saturating_sub(1) / 2;
    let hard_pairs = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .filter(|&(i, j)| same(i, j))
        .count();

    let mut results = Vec::new();
    for s in schemes {
        let t0 = Instant::now();
        let oc: Vec<Code> = orig_text.iter().map(|t| code(s, t)).collect();
        let micros = t0.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
        let rc: Vec<Code> = repost_text.iter().map(|t| code(s, t)).collect();
        let unhashable = oc
            .iter()
            .chain(&rc)
            .filter(|c| matches!(c, Code::None))
            .count();
        let th = s.thresholds();
        let mut hit = vec![0usize; th.len()];
        let mut per_edit: BTreeMap<&'static str, (Vec<usize>, usize)> = BTreeMap::new();
        for (k, (id, e, _)) in reposts.iter().enumerate() {
            let d = distance(&oc[*id], &rc[k]);
            let entry = per_edit.entry(e.name()).or_insert((vec![0; th.len()], 0));
            entry.1 += 1;
            for (ti, t) in th.iter().enumerate() {
                if d.is_some_and(|d| d <= *t) {
                    hit[ti] += 1;
                    entry.0[ti] += 1;
                }
            }
        }
        let mut fp = vec![0usize; th.len()];
        let mut fp_hard = vec![0usize; th.len()];
        for i in 0..n {
            for j in i + 1..n {
                if let Some(d) = distance(&oc[i], &oc[j]) {
                    for (ti, t) in th.iter().enumerate() {
                        if d <= *t {
                            fp[ti] += 1;
                            if same(i, j) {
                                fp_hard[ti] += 1;
                            }
                        }
                    }
                }
            }
        }
        let r = reposts.len().max(1) as f64;
        results.push(SchemeResult {
            name: s.name(),
            sweep: th
                .iter()
                .enumerate()
                .map(|(ti, t)| {
                    (
                        *t,
                        hit[ti] as f64 / r,
                        fp[ti] as f64 / pairs.max(1) as f64,
                        fp_hard[ti] as f64 / hard_pairs.max(1) as f64,
                        fp[ti],
                    )
                })
                .collect(),
            per_edit: per_edit
                .into_iter()
                .map(|(k, (h, c))| (k, h.iter().map(|x| *x as f64 / c.max(1) as f64).collect()))
                .collect(),
            unhashable,
            micros_per_text: micros,
        });
    }

    // Entities.
    let opts = ExtractOptions::default();
    let mut er = EntityResult::default();
    let t0 = Instant::now();
    let score = |ad: &Ad,
                 text: &str,
                 bucket: &mut BTreeMap<&'static str, (usize, usize)>,
                 fx: &mut BTreeMap<&'static str, usize>| {
        let found = extract(text, &opts);
        for c in &ad.contacts {
            let e = bucket.entry(c.kind.name()).or_default();
            e.1 += 1;
            if found
                .iter()
                .any(|f| f.kind == c.kind && f.value == c.canonical)
            {
                e.0 += 1;
            }
        }
        for f in &found {
            let planted = ad
                .contacts
                .iter()
                .any(|c| c.kind == f.kind && c.canonical == f.value)
                || (f.kind == EntityKind::Domain
                    && ad.contacts.iter().any(|c| c.kind == EntityKind::Url));
            if !planted {
                *fx.entry(f.kind.name()).or_default() += 1;
            }
        }
    };
    let mut fx = BTreeMap::new();
    for (ad, t) in ads.iter().zip(&orig_text) {
        score(ad, t, &mut er.originals, &mut fx);
    }
    let mut scanned = n;
    for ((_, e, ad), t) in reposts.iter().zip(&repost_text) {
        let mut sink = BTreeMap::new();
        let bucket = if matches!(e, Edit::ReformatContacts | Edit::Combined) {
            &mut er.reformatted
        } else {
            &mut sink
        };
        score(ad, t, bucket, &mut fx);
        scanned += 1;
    }
    er.micros_per_text = t0.elapsed().as_secs_f64() * 1e6 / scanned.max(1) as f64;
    er.false_extractions = fx;
    er.texts = scanned;

    Report {
        seed,
        ads: n,
        reposts: reposts.len(),
        pairs,
        hard_pairs,
        schemes: results,
        entities: er,
    }
}

impl Report {
    /// The report as Markdown tables.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Corpus: seed {}, {} original ads (en, it, ar, ckb, kmr × pets, cars, rentals, furniture), {} re-posts ({} edits each), {} distinct-ad pairs ({} of the same language and category).\n",
            self.seed,
            self.ads,
            self.reposts,
            crate::corpus::Edit::ALL.len(),
            self.pairs,
            self.hard_pairs
        );
        let _ = writeln!(s, "### Text near-duplicate schemes: threshold sweep\n");
        let _ = writeln!(
            s,
            "| scheme | threshold | recall (all re-posts) | false-match rate (all pairs) | same lang+category | false pairs | unhashable texts | µs/text |"
        );
        let _ = writeln!(
            s,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for r in &self.schemes {
            for (t, rec, fmr, hard, fp) in &r.sweep {
                let _ = writeln!(
                    s,
                    "| {} | {t} | {:.3} | {:.2e} | {:.2e} | {fp} | {} | {:.0} |",
                    r.name, rec, fmr, hard, r.unhashable, r.micros_per_text
                );
            }
        }
        let _ = writeln!(s, "\n### Recall per edit\n");
        for r in &self.schemes {
            let th: Vec<String> = r.sweep.iter().map(|x| format!("≤{}", x.0)).collect();
            let _ = writeln!(s, "**{}**\n\n| edit | {} |", r.name, th.join(" | "));
            let _ = writeln!(s, "| --- |{}", " ---: |".repeat(th.len()));
            for (e, v) in &r.per_edit {
                let cells: Vec<String> = v.iter().map(|x| format!("{x:.3}")).collect();
                let _ = writeln!(s, "| {e} | {} |", cells.join(" | "));
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s, "### Entities\n");
        let _ = writeln!(
            s,
            "| kind | recall, originals | recall, re-formatted re-posts | false extractions ({} texts) |",
            self.entities.texts
        );
        let _ = writeln!(s, "| --- | ---: | ---: | ---: |");
        let kinds: std::collections::BTreeSet<&str> = self
            .entities
            .originals
            .keys()
            .chain(self.entities.false_extractions.keys())
            .copied()
            .collect();
        for k in kinds {
            let f = |m: &BTreeMap<&str, (usize, usize)>| {
                m.get(k)
                    .map_or("–".to_string(), |(a, b)| format!("{a}/{b}"))
            };
            let _ = writeln!(
                s,
                "| {k} | {} | {} | {} |",
                f(&self.entities.originals),
                f(&self.entities.reformatted),
                self.entities.false_extractions.get(k).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            s,
            "\nExtraction: {:.0} µs per text (indicative, shared machine).",
            self.entities.micros_per_text
        );
        s
    }
}

/// Language identification on the corpus, for one language: how its texts
/// (originals and every re-post) were identified, and which rule banks of
/// the corpus's five languages would run on them.
#[derive(Debug, Clone, PartialEq)]
pub struct LanguageRow {
    /// BCP 47 tag of the texts.
    pub language: &'static str,
    /// Texts (originals and re-posts).
    pub texts: usize,
    /// Identified as their own language.
    pub correct: usize,
    /// Identified as another language, by which.
    pub wrong: BTreeMap<&'static str, usize>,
    /// Not identified (too few letters or no reliable answer).
    pub unidentified: usize,
    /// Per edit: (texts, correct).
    pub per_edit: BTreeMap<&'static str, (usize, usize)>,
    /// Banks of *other* corpus languages that run on a text, summed over
    /// texts: by script alone, and with identification.
    pub wrong_banks: (usize, usize),
    /// Texts on which the bank of their own language runs: by script
    /// alone, and with identification.
    pub own_bank: (usize, usize),
}

/// Identifies the language of `n` original ads from `seed` and of their
/// re-posts under every edit ([`crate::lang`]), and counts which rule banks
/// (one per corpus language, no declared language) run on each text.
pub fn language_report(seed: u64, n: usize) -> Vec<LanguageRow> {
    use crate::corpus::Lang;
    use crate::lang::Languages;
    use crate::rules::{RuleBank, RuleBankSpec};
    let ads = generate(seed, n);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1a9);
    let banks: Vec<(Lang, RuleBank)> = Lang::ALL
        .iter()
        .filter_map(|l| {
            RuleBank::new(RuleBankSpec {
                name: l.tag().into(),
                language: l.tag().into(),
                rules: Vec::new(),
            })
            .ok()
            .map(|b| (*l, b))
        })
        .collect();
    let mut rows: BTreeMap<&'static str, LanguageRow> = BTreeMap::new();
    for ad in &ads {
        let texts = std::iter::once(("original", ad.clone()))
            .chain(Edit::ALL.map(|e| (e.name(), repost(ad, e, &mut rng))));
        for (edit, a) in texts {
            let text = a.text();
            let script = if ad.lang.is_arabic_script_lang() {
                crate::rules::Script::Arabic
            } else {
                crate::rules::Script::Latin
            };
            let langs = Languages::of(&text);
            let row = rows.entry(ad.lang.tag()).or_insert_with(|| LanguageRow {
                language: ad.lang.tag(),
                texts: 0,
                correct: 0,
                wrong: BTreeMap::new(),
                unidentified: 0,
                per_edit: BTreeMap::new(),
                wrong_banks: (0, 0),
                own_bank: (0, 0),
            });
            row.texts += 1;
            let e = row.per_edit.entry(edit).or_insert((0, 0));
            e.0 += 1;
            match langs.of_script(script) {
                Some(d) if d.language == ad.lang.tag() => {
                    row.correct += 1;
                    e.1 += 1;
                }
                Some(d) => *row.wrong.entry(d.language).or_default() += 1,
                None => row.unidentified += 1,
            }
            let folded = fold(&text);
            for (l, b) in &banks {
                let by_script = b.applies_to(&folded, &[]);
                let with_id = b.applies(&folded, &[], &langs);
                if *l == ad.lang {
                    row.own_bank.0 += usize::from(by_script);
                    row.own_bank.1 += usize::from(with_id);
                } else {
                    row.wrong_banks.0 += usize::from(by_script);
                    row.wrong_banks.1 += usize::from(with_id);
                }
            }
        }
    }
    Lang::ALL
        .iter()
        .filter_map(|l| rows.remove(l.tag()))
        .collect()
}

/// [`language_report`] as Markdown tables.
pub fn language_markdown(rows: &[LanguageRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| language | texts | identified correctly | as another language | unidentified | other languages' banks run, per text: script only → identified | own bank runs: script only → identified |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | --- | ---: | ---: | ---: |");
    for r in rows {
        let wrong = if r.wrong.is_empty() {
            "—".to_string()
        } else {
            r.wrong
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let t = r.texts.max(1) as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {} ({:.3}) | {} | {} | {:.2} → {:.3} | {:.3} → {:.3} |",
            r.language,
            r.texts,
            r.correct,
            r.correct as f64 / t,
            wrong,
            r.unidentified,
            r.wrong_banks.0 as f64 / t,
            r.wrong_banks.1 as f64 / t,
            r.own_bank.0 as f64 / t,
            r.own_bank.1 as f64 / t,
        );
    }
    let _ = writeln!(out);
    let edits: Vec<&str> = rows
        .first()
        .map(|r| r.per_edit.keys().copied().collect())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "| identified correctly, per edit | {} |",
        rows.iter()
            .map(|r| r.language)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(out, "| --- |{}", " ---: |".repeat(rows.len()));
    for e in edits {
        let cells: Vec<String> = rows
            .iter()
            .map(|r| {
                let (n, c) = r.per_edit.get(e).copied().unwrap_or((0, 0));
                format!("{c}/{n}")
            })
            .collect();
        let _ = writeln!(out, "| {e} | {} |", cells.join(" | "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Language identification on the corpus: most texts of each language
    /// are named correctly, with identification fewer banks of other
    /// languages run on a text than by script alone (none of Italian's or
    /// Kurmanji's Latin neighbours on them), while a text's own bank still
    /// runs on nearly all. (Figures at 500 ads in docs/SIGNALS.md;
    /// `cargo run -p bulwark-signals --example language_eval`.)
    #[test]
    fn languages_are_told_apart_within_a_script() {
        let rows = language_report(5, 100);
        assert_eq!(rows.len(), 5);
        for r in &rows {
            let t = r.texts as f64;
            assert!(r.correct as f64 / t >= 0.65, "{r:?}");
            assert!(r.own_bank.1 as f64 / t >= 0.98, "{r:?}");
            assert!(r.wrong_banks.1 < r.wrong_banks.0, "{r:?}");
            if matches!(r.language, "it" | "kmr") {
                assert!(r.wrong_banks.1 * 10 < r.wrong_banks.0, "{r:?}");
            }
        }
    }

    #[test]
    fn the_bank_scheme_finds_reposts_and_separates_distinct_ads() {
        let r = run(3, 60, &[Scheme::MinHash1(Shingles::Chars(5))]);
        let at = r.schemes[0]
            .sweep
            .iter()
            .find(|x| x.0 == crate::TEXT_HASH_RADIUS as i64)
            .expect("the default radius is in the sweep");
        assert!(at.1 > 0.9, "recall {}", at.1);
        assert!(at.2 < 0.01, "false-match rate {}", at.2);
        let (found, planted) = r.entities.originals["phone"];
        assert_eq!(found, planted);
    }
}
