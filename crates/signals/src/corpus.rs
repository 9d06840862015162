//! A synthetic, clearly fictitious classified-ads corpus for evaluation.
//!
//! Benign ads only — pets, cars, rentals, furniture — in English, Italian,
//! Arabic, Sorani Kurdish (Arabic script) and Kurmanji Kurdish (Latin), built
//! from small phrase pools with a seeded ChaCha generator, so the same seed
//! gives the same corpus on every machine. Contact details are fictional by
//! construction:
//!
//! - phone numbers only from ranges reserved for fiction: NANP `555-0100`–
//!   `555-0199` (any area code) and Ofcom's London drama range
//!   `020 7946 0000`–`0999`;
//! - Telegram names `fictional_seller_NNNN`; URLs under `example.com`,
//!   `example.org`, `example.net` (RFC 2606);
//! - wallet addresses from random 20-byte payloads (valid checksums, nobody's
//!   keys).
//!
//! [`repost`] applies the edits re-posters make: price or phone changed, lines
//! reordered, a line added or removed, emoji, spacing, leetspeak, look-alike
//! letters, Arabic tatweel/diacritics/letter variants/Arabic-Indic digits, and
//! contact details re-formatted.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha3::{Digest, Keccak256};

use crate::entities::{EntityKind, eip55};

/// A language of the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// English.
    En,
    /// Italian.
    It,
    /// Arabic.
    Ar,
    /// Sorani Kurdish, Arabic script.
    Ckb,
    /// Kurmanji Kurdish, Latin script.
    Kmr,
}

impl Lang {
    /// Every language.
    pub const ALL: [Lang; 5] = [Lang::En, Lang::It, Lang::Ar, Lang::Ckb, Lang::Kmr];

    /// BCP 47 tag.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::It => "it",
            Lang::Ar => "ar",
            Lang::Ckb => "ckb",
            Lang::Kmr => "kmr",
        }
    }

    fn arabic_script(self) -> bool {
        matches!(self, Lang::Ar | Lang::Ckb)
    }

    /// Whether the language is written in Arabic script (else Latin).
    pub fn is_arabic_script_lang(self) -> bool {
        self.arabic_script()
    }
}

/// One contact detail planted in an ad, as canonical value and as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Entity kind.
    pub kind: EntityKind,
    /// Canonical value the extractor should return.
    pub canonical: String,
    /// How this ad writes it.
    pub written: String,
}

/// A generated ad.
#[derive(Debug, Clone)]
pub struct Ad {
    /// Index of the original ad this is (or is a re-post of).
    pub id: usize,
    /// Language.
    pub lang: Lang,
    /// Category (pets, cars, rentals, furniture).
    pub category: &'static str,
    /// Lines of text, without contact lines.
    pub body: Vec<String>,
    /// Price line number.
    pub price: u32,
    /// Contact details.
    pub contacts: Vec<Contact>,
}

impl Ad {
    /// The full text.
    pub fn text(&self) -> String {
        let mut lines = self.body.clone();
        lines.push(price_line(self.lang, self.price));
        for c in &self.contacts {
            lines.push(format!("{} {}", contact_word(self.lang), c.written));
        }
        lines.join("\n")
    }
}

const CATEGORIES: [&str; 4] = ["pets", "cars", "rentals", "furniture"];

struct Pool {
    titles: &'static [&'static str],
    lines: &'static [&'static str],
    words: &'static [&'static str],
}

// `{n}` is replaced by a small number, `{w}` by a word of `words`.
fn pool(lang: Lang, category: &str) -> Pool {
    match (lang, category) {
        (Lang::En, "pets") => Pool {
            titles: &[
                "Kittens for sale",
                "Puppy looking for a home",
                "Young rabbit for sale",
                "Parrot with cage",
                "Tabby cat for adoption",
            ],
            lines: &[
                "{n} months old",
                "Vaccinated and microchipped",
                "Litter trained",
                "Very playful and gentle with children",
                "Colour {w}",
                "Comes with toys and a bed",
                "Mother can be seen",
                "Eats dry and wet food",
                "Healthy, vet checked last week",
                "Used to other pets",
                "Sleeps indoors",
                "Collection only, {w} area",
            ],
            words: &[
                "grey",
                "black",
                "white",
                "ginger",
                "brown",
                "cream",
                "northside",
                "riverside",
                "old town",
                "hillview",
            ],
        },
        (Lang::En, "cars") => Pool {
            titles: &[
                "Family car for sale",
                "Hatchback, one owner",
                "Estate car in great shape",
                "Small city car for sale",
                "Diesel saloon for sale",
            ],
            lines: &[
                "Year {n}",
                "{n}000 km on the clock",
                "New tyres and brakes",
                "Full service history",
                "Air conditioning works",
                "No accidents",
                "Colour {w}",
                "Two sets of keys",
                "Test drive welcome",
                "Minor scratch on the rear door",
                "Manual gearbox",
                "Viewing in {w}",
            ],
            words: &[
                "blue",
                "silver",
                "red",
                "white",
                "black",
                "green",
                "northside",
                "riverside",
                "old town",
                "hillview",
            ],
        },
        (Lang::En, "rentals") => Pool {
            titles: &[
                "Flat to rent",
                "Room available now",
                "Two bedroom apartment to let",
                "Studio near the station",
                "House for rent",
            ],
            lines: &[
                "{n} bedrooms",
                "Floor {n}, with lift",
                "Furnished",
                "Bills included",
                "Close to the market and buses",
                "New kitchen",
                "Quiet street in {w}",
                "No pets please",
                "Deposit one month",
                "Available from next month",
                "Balcony with a view",
                "Parking space included",
            ],
            words: &[
                "northside",
                "riverside",
                "old town",
                "hillview",
                "the centre",
                "the park",
                "east end",
                "west end",
            ],
        },
        (Lang::En, _) => Pool {
            titles: &[
                "Sofa for sale",
                "Wooden dining table",
                "Wardrobe, good condition",
                "Bookshelf for sale",
                "Desk and chair",
            ],
            lines: &[
                "Good condition",
                "Solid wood",
                "{n} years old",
                "Colour {w}",
                "Pick up only",
                "Smoke free home",
                "Must go this week",
                "Some marks from use",
                "Easy to take apart",
                "Seats {n}",
                "Bought new, moving house",
                "Collection from {w}",
            ],
            words: &[
                "oak",
                "pine",
                "grey",
                "white",
                "black",
                "walnut",
                "northside",
                "riverside",
                "old town",
            ],
        },
        (Lang::It, "pets") => Pool {
            titles: &[
                "Gattini in vendita",
                "Cucciolo cerca casa",
                "Coniglio nano in vendita",
                "Pappagallo con gabbia",
                "Gatto tigrato in adozione",
            ],
            lines: &[
                "Età {n} mesi",
                "Vaccinato e sverminato",
                "Abituato alla lettiera",
                "Molto giocherellone e buono con i bambini",
                "Colore {w}",
                "Con giochi e cuccia",
                "Si può vedere la mamma",
                "Mangia crocchette e umido",
                "Visitato dal veterinario",
                "Abituato ad altri animali",
                "Dorme in casa",
                "Ritiro in zona {w}",
            ],
            words: &[
                "grigio", "nero", "bianco", "rosso", "marrone", "crema", "centro", "stazione",
                "porto", "collina",
            ],
        },
        (Lang::It, "cars") => Pool {
            titles: &[
                "Auto usata in vendita",
                "Utilitaria unico proprietario",
                "Station wagon in ottimo stato",
                "Vendo citycar",
                "Berlina diesel in vendita",
            ],
            lines: &[
                "Anno {n}",
                "{n}000 km",
                "Gomme e freni nuovi",
                "Tagliandi regolari",
                "Aria condizionata funzionante",
                "Mai incidentata",
                "Colore {w}",
                "Doppie chiavi",
                "Prova su strada possibile",
                "Piccolo graffio sulla portiera",
                "Cambio manuale",
                "Visibile in zona {w}",
            ],
            words: &[
                "blu", "argento", "rosso", "bianco", "nero", "verde", "centro", "stazione",
                "porto", "collina",
            ],
        },
        (Lang::It, "rentals") => Pool {
            titles: &[
                "Affittasi bilocale",
                "Stanza singola libera",
                "Appartamento in affitto",
                "Monolocale vicino alla stazione",
                "Casa indipendente in affitto",
            ],
            lines: &[
                "{n} camere da letto",
                "Piano {n} con ascensore",
                "Arredato",
                "Spese incluse",
                "Vicino al mercato e ai bus",
                "Cucina nuova",
                "Via tranquilla in zona {w}",
                "No animali",
                "Caparra un mese",
                "Libero dal mese prossimo",
                "Balcone con vista",
                "Posto auto incluso",
            ],
            words: &[
                "centro",
                "stazione",
                "porto",
                "collina",
                "parco",
                "università",
                "mare",
            ],
        },
        (Lang::It, _) => Pool {
            titles: &[
                "Vendo divano",
                "Tavolo da pranzo in legno",
                "Armadio in buone condizioni",
                "Libreria in vendita",
                "Scrivania con sedia",
            ],
            lines: &[
                "Ottime condizioni",
                "Legno massello",
                "{n} anni di vita",
                "Colore {w}",
                "Ritiro a mano",
                "Casa non fumatori",
                "Da liberare entro la settimana",
                "Qualche segno di usura",
                "Facile da smontare",
                "{n} posti",
                "Comprato nuovo, trasloco",
                "Ritiro in zona {w}",
            ],
            words: &[
                "rovere", "pino", "grigio", "bianco", "nero", "noce", "centro", "stazione", "porto",
            ],
        },
        (Lang::Ar, "pets") => Pool {
            titles: &[
                "قطة للبيع",
                "جرو يبحث عن بيت",
                "أرنب صغير للبيع",
                "ببغاء مع القفص",
                "قطط صغيرة للتبني",
            ],
            lines: &[
                "عمرها {n} أشهر",
                "ملقحة وبصحة جيدة",
                "لطيفة جدا وتحب الأطفال",
                "اللون {w}",
                "مع الألعاب والسرير",
                "تأكل الطعام الجاف",
                "فحصها الطبيب البيطري",
                "تعيش مع حيوانات أخرى",
                "تنام داخل البيت",
                "الاستلام من منطقة {w}",
                "هادئة ونظيفة",
                "مدربة على الرمل",
            ],
            words: &[
                "أبيض",
                "أسود",
                "رمادي",
                "بني",
                "ذهبي",
                "المركز",
                "السوق",
                "الجامعة",
                "الحديقة",
            ],
        },
        (Lang::Ar, "cars") => Pool {
            titles: &[
                "سيارة للبيع",
                "سيارة عائلية مالك واحد",
                "سيارة صغيرة بحالة ممتازة",
                "سيارة ديزل للبيع",
                "سيارة مستعملة للبيع",
            ],
            lines: &[
                "موديل {n}",
                "ماشية {n} ألف كم",
                "إطارات جديدة",
                "المكيف يعمل",
                "بدون حوادث",
                "اللون {w}",
                "مفتاحين",
                "صيانة كاملة",
                "خدش صغير في الباب",
                "جير عادي",
                "التجربة مرحب بها",
                "المعاينة في {w}",
            ],
            words: &[
                "أبيض",
                "أسود",
                "فضي",
                "أحمر",
                "أزرق",
                "المركز",
                "السوق",
                "الجامعة",
                "الحديقة",
            ],
        },
        (Lang::Ar, "rentals") => Pool {
            titles: &[
                "شقة للإيجار",
                "غرفة للإيجار",
                "بيت للإيجار",
                "شقة صغيرة قرب المحطة",
                "شقة مفروشة للإيجار",
            ],
            lines: &[
                "{n} غرف نوم",
                "الطابق {n} مع مصعد",
                "مفروشة",
                "الفواتير مشمولة",
                "قريبة من السوق",
                "مطبخ جديد",
                "شارع هادئ في {w}",
                "ممنوع الحيوانات",
                "تأمين شهر واحد",
                "متاحة من الشهر القادم",
                "بلكونة واسعة",
                "موقف سيارة",
            ],
            words: &["المركز", "السوق", "الجامعة", "الحديقة", "المحطة", "النهر"],
        },
        (Lang::Ar, _) => Pool {
            titles: &[
                "كنبة للبيع",
                "طاولة خشب للبيع",
                "خزانة بحالة جيدة",
                "مكتبة للبيع",
                "مكتب مع كرسي",
            ],
            lines: &[
                "حالة جيدة",
                "خشب طبيعي",
                "عمرها {n} سنوات",
                "اللون {w}",
                "الاستلام من البيت",
                "بيت بدون تدخين",
                "البيع هذا الأسبوع",
                "بعض الخدوش",
                "سهلة الفك",
                "تتسع {n} أشخاص",
                "بسبب السفر",
                "الاستلام من {w}",
            ],
            words: &["بني", "أبيض", "رمادي", "أسود", "المركز", "السوق", "الجامعة"],
        },
        (Lang::Ckb, "pets") => Pool {
            titles: &[
                "پشیلە بۆ فرۆشتن",
                "سەگی بچووک بۆ فرۆشتن",
                "کەروێشک بۆ فرۆشتن",
                "تووتی لەگەڵ قەفەس",
                "بێچووە پشیلە",
            ],
            lines: &[
                "تەمەنی {n} مانگە",
                "کوتراوە و تەندروستە",
                "زۆر جوانە و منداڵی خۆش دەوێت",
                "ڕەنگی {w}",
                "لەگەڵ یاری و جێگا",
                "خواردنی وشک دەخوات",
                "دکتۆری ئاژەڵ بینیویەتی",
                "لە ماڵەوە دەخەوێت",
                "وەرگرتن لە {w}",
                "ئارام و پاکە",
                "لەگەڵ ئاژەڵی تر دەژی",
                "زۆر یاریزانە",
            ],
            words: &[
                "سپی",
                "ڕەش",
                "خۆڵەمێشی",
                "قاوەیی",
                "ناوەند",
                "بازاڕ",
                "زانکۆ",
                "پارک",
            ],
        },
        (Lang::Ckb, "cars") => Pool {
            titles: &[
                "ئۆتۆمبێل بۆ فرۆشتن",
                "ئۆتۆمبێلی خێزانی",
                "ئۆتۆمبێلی بچووک بۆ فرۆشتن",
                "ئۆتۆمبێلی دیزڵ",
                "ئۆتۆمبێلی بەکارهاتوو",
            ],
            lines: &[
                "مۆدێلی {n}",
                "{n} هەزار کیلۆمەتر",
                "تایەی نوێ",
                "سپلیت کار دەکات",
                "بێ ڕووداو",
                "ڕەنگی {w}",
                "دوو کلیل",
                "چاککردنەوەی تەواو",
                "خەتێکی بچووک لە دەرگا",
                "گێڕی ئاسایی",
                "تاقیکردنەوە بەخێربێت",
                "بینین لە {w}",
            ],
            words: &[
                "سپی",
                "ڕەش",
                "زیوی",
                "سوور",
                "شین",
                "ناوەند",
                "بازاڕ",
                "زانکۆ",
            ],
        },
        (Lang::Ckb, "rentals") => Pool {
            titles: &[
                "شوقە بۆ کرێ",
                "ژوور بۆ کرێ",
                "خانوو بۆ کرێ",
                "شوقەی بچووک",
                "شوقەی ڕازاوە بۆ کرێ",
            ],
            lines: &[
                "{n} ژووری نووستن",
                "نهۆمی {n} لەگەڵ بەرزکەرەوە",
                "ڕازاوەیە",
                "پسوولەکان لەگەڵ کرێیە",
                "نزیکی بازاڕە",
                "چێشتخانەی نوێ",
                "شەقامێکی ئارام لە {w}",
                "ئاژەڵ قەدەغەیە",
                "بارمتەی یەک مانگ",
                "لە مانگی داهاتوو",
                "بالکۆنی گەورە",
                "شوێنی ئۆتۆمبێل",
            ],
            words: &["ناوەند", "بازاڕ", "زانکۆ", "پارک", "وێستگە", "ڕووبار"],
        },
        (Lang::Ckb, _) => Pool {
            titles: &[
                "قەنەفە بۆ فرۆشتن",
                "مێزی دار",
                "دۆڵاب بە حاڵەتی باش",
                "ڕەفەی کتێب",
                "مێزی نووسین لەگەڵ کورسی",
            ],
            lines: &[
                "حاڵەتی باشە",
                "داری سروشتی",
                "تەمەنی {n} ساڵە",
                "ڕەنگی {w}",
                "وەرگرتن لە ماڵەوە",
                "ماڵی بێ جگەرە",
                "ئەم هەفتەیە دەفرۆشرێت",
                "هەندێک خەتی هەیە",
                "ئاسان دەکرێتەوە",
                "{n} کەس جێی دەبێتەوە",
                "بەهۆی گواستنەوە",
                "وەرگرتن لە {w}",
            ],
            words: &[
                "قاوەیی",
                "سپی",
                "خۆڵەمێشی",
                "ڕەش",
                "ناوەند",
                "بازاڕ",
                "زانکۆ",
            ],
        },
        (Lang::Kmr, "pets") => Pool {
            titles: &[
                "Pisîk ji bo firotinê",
                "Kûçikê biçûk ji bo firotinê",
                "Kêvroşk ji bo firotinê",
                "Tûtî bi qefesê re",
                "Pisîkên biçûk",
            ],
            lines: &[
                "Temenê wê {n} meh e",
                "Derzî lê hatiye kirin",
                "Gelek xweşik e û zarokan hez dike",
                "Rengê wê {w} e",
                "Bi lîstok û nivînan re",
                "Xwarina hişk dixwe",
                "Bijîşkê heywanan dît",
                "Li malê radizê",
                "Wergirtin ji {w}",
                "Aram û paqij e",
                "Bi heywanên din re dijî",
                "Gelek dilîze",
            ],
            words: &[
                "spî",
                "reş",
                "gewr",
                "qehweyî",
                "navend",
                "bazar",
                "zanîngeh",
                "park",
            ],
        },
        (Lang::Kmr, "cars") => Pool {
            titles: &[
                "Erebe ji bo firotinê",
                "Erebeya malbatê",
                "Erebeya biçûk ji bo firotinê",
                "Erebeya dîzel",
                "Erebeya bikaranî",
            ],
            lines: &[
                "Model {n}",
                "{n} hezar kîlometre",
                "Tekerên nû",
                "Klîma dixebite",
                "Bê qeza",
                "Rengê wê {w} e",
                "Du mifte",
                "Lênêrîna temam",
                "Xêzeke biçûk li derî",
                "Vîtesa manual",
                "Ceribandin bi xêr hatî",
                "Dîtin li {w}",
            ],
            words: &[
                "spî",
                "reş",
                "zîvîn",
                "sor",
                "şîn",
                "navend",
                "bazar",
                "zanîngeh",
            ],
        },
        (Lang::Kmr, "rentals") => Pool {
            titles: &[
                "Xanî ji bo kirê",
                "Ode ji bo kirê",
                "Apartman ji bo kirê",
                "Apartmana biçûk",
                "Xaniyê bi mobîlya",
            ],
            lines: &[
                "{n} odeyên razanê",
                "Qata {n} bi asansorê",
                "Bi mobîlya ye",
                "Fatûre di nav de ne",
                "Nêzî bazarê ye",
                "Mitbaxa nû",
                "Kolaneke aram li {w}",
                "Heywan qedexe ne",
                "Depozîto yek meh",
                "Ji meha bê ve",
                "Balkona mezin",
                "Cihê erebeyê",
            ],
            words: &["navend", "bazar", "zanîngeh", "park", "îstgeh", "çem"],
        },
        (Lang::Kmr, _) => Pool {
            titles: &[
                "Qenepe ji bo firotinê",
                "Maseya darîn",
                "Dolab di rewşa baş de",
                "Refika pirtûkan",
                "Maseya nivîsandinê bi kursî",
            ],
            lines: &[
                "Rewşa wê baş e",
                "Dara xwezayî",
                "Temenê wê {n} sal e",
                "Rengê wê {w} e",
                "Wergirtin ji malê",
                "Mala bê cixare",
                "Vê hefteyê tê firotin",
                "Hin xêz hene",
                "Bi hêsanî tê vekirin",
                "Ji bo {n} kesan",
                "Ji ber barkirinê",
                "Wergirtin ji {w}",
            ],
            words: &[
                "qehweyî",
                "spî",
                "gewr",
                "reş",
                "navend",
                "bazar",
                "zanîngeh",
            ],
        },
    }
}

fn price_line(lang: Lang, price: u32) -> String {
    match lang {
        Lang::En => format!("Price {price} USD"),
        Lang::It => format!("Prezzo {price} euro"),
        Lang::Ar => format!("السعر {price} دولار"),
        Lang::Ckb => format!("نرخ {price} دۆلار"),
        Lang::Kmr => format!("Biha {price} dolar"),
    }
}

fn contact_word(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Contact:",
        Lang::It => "Contatti:",
        Lang::Ar => "للتواصل:",
        Lang::Ckb => "پەیوەندی:",
        Lang::Kmr => "Têkilî:",
    }
}

fn fill(rng: &mut ChaCha8Rng, template: &str, words: &[&str]) -> String {
    let mut s = template.to_string();
    if s.contains("{n}") {
        s = s.replace("{n}", &rng.gen_range(2..40).to_string());
    }
    if s.contains("{w}") {
        s = s.replace("{w}", words.choose(rng).copied().unwrap_or(""));
    }
    s
}

/// A fictional phone number: NANP 555-01xx or London 020 7946 0xxx, as
/// (E.164, its digits after the country code split into groups).
fn fictional_phone(rng: &mut ChaCha8Rng) -> (String, Vec<String>) {
    if rng.gen_bool(0.5) {
        let npa = *[201u32, 312, 415, 646, 718, 305]
            .choose(rng)
            .unwrap_or(&201);
        let line = rng.gen_range(100..200);
        (
            format!("+1{npa}5550{line}"),
            vec![
                "1".into(),
                npa.to_string(),
                "555".into(),
                format!("0{line}"),
            ],
        )
    } else {
        let n = rng.gen_range(0..1000);
        (
            format!("+44207946{n:04}"),
            vec!["44".into(), "20".into(), "7946".into(), format!("{n:04}")],
        )
    }
}

fn write_phone(rng: &mut ChaCha8Rng, groups: &[String], arabic_digits: bool) -> String {
    let (cc, rest) = groups
        .split_first()
        .map(|(a, b)| (a.clone(), b.to_vec()))
        .unwrap_or_default();
    let s = match rng.gen_range(0..5) {
        0 => format!("+{cc} {}", rest.join(" ")),
        1 => format!("+{cc}{}", rest.join("")),
        2 => format!("00{cc} {}", rest.join(" ")),
        3 => format!("+{cc} ({}) {}", rest[0], rest[1..].join("-")),
        _ => format!("+{cc}.{}", rest.join(".")),
    };
    if arabic_digits {
        to_arabic_digits(&s)
    } else {
        s
    }
}

fn to_arabic_digits(s: &str) -> String {
    s.chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_u32(0x0660 + d).unwrap_or(c),
            None => c,
        })
        .collect()
}

fn random_contact(rng: &mut ChaCha8Rng, id: usize) -> Contact {
    match rng.gen_range(0..6) {
        0 | 1 => {
            let (e164, groups) = fictional_phone(rng);
            let written = write_phone(rng, &groups, false);
            Contact {
                kind: EntityKind::Phone,
                canonical: e164,
                written,
            }
        }
        2 => {
            let name = format!("fictional_seller_{:04}", rng.gen_range(0..10000));
            Contact {
                kind: EntityKind::TelegramUser,
                canonical: name.clone(),
                written: format!("t.me/{name}"),
            }
        }
        3 => {
            let (e164, _) = fictional_phone(rng);
            Contact {
                kind: EntityKind::Phone,
                written: format!("wa.me/{}", &e164[1..]),
                canonical: e164,
            }
        }
        4 => {
            let host = *["example.com", "example.org", "example.net"]
                .choose(rng)
                .unwrap_or(&"example.com");
            let url = format!("https://{host}/ads/{id}");
            Contact {
                kind: EntityKind::Url,
                canonical: url.clone(),
                written: url,
            }
        }
        _ => {
            let mut payload = [0u8; 20];
            rng.fill(&mut payload);
            if rng.gen_bool(0.5) {
                let mut v = vec![0u8];
                v.extend(payload);
                let a = bs58::encode(v).with_check().into_string();
                Contact {
                    kind: EntityKind::BtcAddress,
                    canonical: a.clone(),
                    written: a,
                }
            } else {
                let lower = hex::encode(Keccak256::digest(payload))[..40].to_string();
                Contact {
                    kind: EntityKind::EthAddress,
                    canonical: format!("0x{lower}"),
                    written: format!("0x{}", eip55(&lower)),
                }
            }
        }
    }
}

/// Generates `n` original ads, spread over every language and category.
pub fn generate(seed: u64, n: usize) -> Vec<Ad> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|id| {
            let lang = Lang::ALL[id % Lang::ALL.len()];
            let category = CATEGORIES[(id / Lang::ALL.len()) % CATEGORIES.len()];
            let p = pool(lang, category);
            let mut body = vec![p.titles.choose(&mut rng).copied().unwrap_or("").to_string()];
            let k = rng.gen_range(3..=6);
            for t in p.lines.choose_multiple(&mut rng, k) {
                body.push(fill(&mut rng, t, p.words));
            }
            let contacts = (0..rng.gen_range(1..=2))
                .map(|_| random_contact(&mut rng, id))
                .collect();
            Ad {
                id,
                lang,
                category,
                body,
                price: rng.gen_range(5..400) * 10,
                contacts,
            }
        })
        .collect()
}

/// A re-post edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edit {
    /// A new price.
    Price,
    /// A new phone number (and other contacts replaced).
    NewContact,
    /// Lines shuffled.
    Reorder,
    /// A line added ("still available").
    AddLine,
    /// A description line removed.
    RemoveLine,
    /// Emoji sprinkled between words.
    Emoji,
    /// Extra spaces, a word spaced out letter by letter.
    Spacing,
    /// Leetspeak digits in Latin words.
    Leet,
    /// Cyrillic/Greek look-alikes for Latin letters.
    Confusables,
    /// Arabic script: tatweel, diacritics, yeh/kaf/heh variants, Arabic-Indic digits.
    ArabicVariants,
    /// The same contacts, written differently.
    ReformatContacts,
    /// Price, reorder, add line, emoji and re-formatted contacts at once.
    Combined,
}

impl Edit {
    /// Every edit.
    pub const ALL: [Edit; 12] = [
        Edit::Price,
        Edit::NewContact,
        Edit::Reorder,
        Edit::AddLine,
        Edit::RemoveLine,
        Edit::Emoji,
        Edit::Spacing,
        Edit::Leet,
        Edit::Confusables,
        Edit::ArabicVariants,
        Edit::ReformatContacts,
        Edit::Combined,
    ];

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Edit::Price => "price",
            Edit::NewContact => "new-contact",
            Edit::Reorder => "reorder",
            Edit::AddLine => "add-line",
            Edit::RemoveLine => "remove-line",
            Edit::Emoji => "emoji",
            Edit::Spacing => "spacing",
            Edit::Leet => "leetspeak",
            Edit::Confusables => "confusables",
            Edit::ArabicVariants => "arabic-variants",
            Edit::ReformatContacts => "reformat-contacts",
            Edit::Combined => "combined",
        }
    }
}

const EMOJI: [&str; 8] = ["🐱", "🚗", "🏠", "✨", "🔥", "👍", "💯", "📞"];

fn added_line(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Still available, serious buyers only",
        Lang::It => "Ancora disponibile, no perditempo",
        Lang::Ar => "ما زال متوفرا للجادين فقط",
        Lang::Ckb => "هێشتا بەردەستە تەنها بۆ کڕیاری جددی",
        Lang::Kmr => "Hê jî heye, tenê ji bo kiriyarên cidî",
    }
}

fn map_words(
    line: &str,
    rng: &mut ChaCha8Rng,
    p: f64,
    f: impl Fn(&str, &mut ChaCha8Rng) -> String,
) -> String {
    line.split(' ')
        .map(|w| {
            if rng.gen_bool(p) {
                f(w, rng)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Applies one edit to an ad (a re-post of it).
pub fn repost(ad: &Ad, edit: Edit, rng: &mut ChaCha8Rng) -> Ad {
    let mut a = ad.clone();
    let n = a.body.len();
    match edit {
        Edit::Price => a.price = (a.price * rng.gen_range(6..10) / 10).max(10),
        Edit::NewContact => {
            a.contacts = (0..a.contacts.len())
                .map(|_| random_contact(rng, ad.id + 1_000_000))
                .collect();
        }
        Edit::Reorder => a.body[1..].shuffle(rng),
        Edit::AddLine => {
            let at = rng.gen_range(1..=n);
            a.body.insert(at, added_line(a.lang).to_string());
        }
        Edit::RemoveLine => {
            if n > 2 {
                let at = rng.gen_range(1..n);
                a.body.remove(at);
            }
        }
        Edit::Emoji => {
            for l in a.body.iter_mut() {
                *l = map_words(l, rng, 0.25, |w, r| {
                    format!("{w} {}", EMOJI.choose(r).unwrap_or(&"✨"))
                });
            }
        }
        Edit::Spacing => {
            for l in a.body.iter_mut() {
                *l = map_words(l, rng, 0.2, |w, r| {
                    if w.chars().count() >= 4 && r.gen_bool(0.5) {
                        w.chars().map(String::from).collect::<Vec<_>>().join(" ")
                    } else {
                        format!("  {w}  ")
                    }
                });
            }
        }
        Edit::Leet => {
            for l in a.body.iter_mut() {
                *l = map_words(l, rng, 0.4, |w, _| {
                    w.chars()
                        .map(|c| match c {
                            'a' => '4',
                            'e' => '3',
                            'i' => '1',
                            'o' => '0',
                            's' => '5',
                            't' => '7',
                            c => c,
                        })
                        .collect()
                });
            }
        }
        Edit::Confusables => {
            for l in a.body.iter_mut() {
                *l = map_words(l, rng, 0.4, |w, _| {
                    w.chars()
                        .map(|c| match c {
                            'a' => 'а', // Cyrillic
                            'e' => 'е',
                            'o' => 'ο', // Greek omicron
                            'p' => 'р',
                            'c' => 'с',
                            'x' => 'х',
                            'y' => 'у',
                            c => c,
                        })
                        .collect()
                });
            }
        }
        Edit::ArabicVariants => {
            for l in a.body.iter_mut() {
                *l = l
                    .chars()
                    .flat_map(|c| {
                        let r: Vec<char> = match c {
                            'ي' => vec!['ی'],
                            'ی' => vec!['ي'],
                            'ک' => vec!['ك'],
                            'ك' => vec!['ک'],
                            'ة' => vec!['ه'],
                            'ە' => vec!['ه'],
                            'ا' => vec!['أ'],
                            'ب' | 'ت' | 'س' | 'م' | 'ن' => vec![c, 'ـ'],
                            'ل' => vec![c, '\u{064E}'],
                            _ => vec![c],
                        };
                        r
                    })
                    .collect();
                *l = to_arabic_digits(l);
            }
        }
        Edit::ReformatContacts => reformat(&mut a, rng),
        Edit::Combined => {
            a = repost(&a, Edit::Price, rng);
            a = repost(&a, Edit::Reorder, rng);
            a = repost(&a, Edit::AddLine, rng);
            a = repost(&a, Edit::Emoji, rng);
            a = repost(
                &a,
                if a.lang.arabic_script() {
                    Edit::ArabicVariants
                } else {
                    Edit::Leet
                },
                rng,
            );
            reformat(&mut a, rng);
        }
    }
    a
}

fn reformat(a: &mut Ad, rng: &mut ChaCha8Rng) {
    let arabic = a.lang.arabic_script();
    for c in a.contacts.iter_mut() {
        c.written = match c.kind {
            EntityKind::Phone => {
                let e = &c.canonical;
                let groups: Vec<String> = if let Some(r) = e.strip_prefix("+1") {
                    vec!["1".into(), r[..3].into(), r[3..6].into(), r[6..].into()]
                } else {
                    let r = &e[3..];
                    vec!["44".into(), r[..2].into(), r[2..6].into(), r[6..].into()]
                };
                if rng.gen_bool(0.3) {
                    format!("https://api.whatsapp.com/send?phone={}", &e[1..])
                } else {
                    let digits = arabic && rng.gen_bool(0.5);
                    write_phone(rng, &groups, digits)
                }
            }
            EntityKind::TelegramUser => match rng.gen_range(0..3) {
                0 => format!("https://t.me/{}", c.canonical.to_uppercase()),
                1 => format!("telegram.me/{}", c.canonical),
                _ => format!("t.me/s/{}", c.canonical),
            },
            EntityKind::Url => format!(
                "{}?utm_source=repost#top",
                c.canonical
                    .replacen("https://example", "HTTPS://EXAMPLE", 1)
            ),
            EntityKind::EthAddress => c.canonical.clone(),
            _ => c.written.clone(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::{ExtractOptions, extract};

    #[test]
    fn the_same_seed_gives_the_same_corpus() {
        let a: Vec<String> = generate(7, 30).iter().map(Ad::text).collect();
        let b: Vec<String> = generate(7, 30).iter().map(Ad::text).collect();
        assert_eq!(a, b);
        assert_ne!(a, generate(8, 30).iter().map(Ad::text).collect::<Vec<_>>());
    }

    #[test]
    fn planted_contacts_are_fictional_and_extractable() {
        for ad in generate(1, 100) {
            let found = extract(&ad.text(), &ExtractOptions::default());
            for c in &ad.contacts {
                if c.kind == EntityKind::Phone {
                    assert!(
                        c.canonical.starts_with("+1") && c.canonical[5..].starts_with("5550")
                            || c.canonical.starts_with("+44207946"),
                        "{}",
                        c.canonical
                    );
                }
                assert!(
                    found
                        .iter()
                        .any(|e| e.kind == c.kind && e.value == c.canonical),
                    "{:?} not found in {:?}",
                    c,
                    ad.text()
                );
            }
        }
    }
}
