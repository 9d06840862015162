//! Writes an [`Evaluation`] as `report.md`, CSV and JSON figures and SVG plots.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::{Error, Evaluation, Matching, cumulative, median};

/// Thresholds shown in the tables.
pub const TABLE_THRESHOLDS: [usize; 6] = [8, 16, 24, 31, 40, 48];

/// Writes every output into `dir`; returns the report's path.
pub fn write(ev: &Evaluation, dir: &Path) -> Result<std::path::PathBuf, Error> {
    std::fs::create_dir_all(dir)?;
    write_csvs(ev, dir)?;
    write_json(ev, dir)?;
    plot_recall_overview(ev, &dir.join("recall_overview.svg"))?;
    let families = families(ev);
    for f in &families {
        plot_family(ev, f, &dir.join(format!("recall_{f}.svg")))?;
    }
    plot_fmr(ev, &dir.join("false_match_rate.svg"))?;
    plot_histograms(ev, &dir.join("distance_histograms.svg"))?;
    let md = markdown(ev, &families);
    let p = dir.join("report.md");
    std::fs::write(&p, md)?;
    Ok(p)
}

/// The folder all the originals share.
fn common_root(ev: &Evaluation) -> Option<std::path::PathBuf> {
    let mut root: Option<&Path> = ev.originals.first().and_then(|o| o.path.parent());
    while let Some(r) = root {
        if ev.originals.iter().all(|o| o.path.starts_with(r)) {
            return Some(r.to_path_buf());
        }
        root = r.parent();
    }
    None
}

/// A path relative to the folder all the originals share.
fn rel(root: &Option<std::path::PathBuf>, p: &Path) -> String {
    root.as_ref()
        .and_then(|r| p.strip_prefix(r).ok())
        .unwrap_or(p)
        .display()
        .to_string()
}

fn families(ev: &Evaluation) -> Vec<&'static str> {
    let mut f: Vec<&'static str> = Vec::new();
    for t in &ev.transforms {
        if !f.contains(&t.family) {
            f.push(t.family);
        }
    }
    f
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn markdown(ev: &Evaluation, families: &[&str]) -> String {
    let root = common_root(ev);
    let mut s = String::new();
    let q = ev.config.min_quality;
    let _ = writeln!(s, "# PDQ detection quality\n");
    let _ = writeln!(
        s,
        "{} originals ({} files could not be used), {} edited copies, {} distinct pairs of originals; \
         originals scaled to a long side of at most {} px first; seed {}.\n",
        ev.originals.len(),
        ev.failed.len(),
        ev.copies.len(),
        ev.pairs(),
        ev.config.max_side,
        ev.config.seed
    );
    let _ = writeln!(
        s,
        "## Recall: share of edited copies within the threshold\n"
    );
    let _ = writeln!(
        s,
        "`plain`: original hash against copy hash. `dihedral`: best of the original's eight \
         rotations/mirrors. `q≥{q}`: only pairs where both hashes have quality ≥ {q}.\n"
    );
    let mut head = "| edit | parameters | n | median | p90 |".to_string();
    let mut rule = "| --- | --- | ---: | ---: | ---: |".to_string();
    for t in TABLE_THRESHOLDS {
        let _ = write!(head, " ≤{t} |");
        rule.push_str(" ---: |");
    }
    let _ = write!(head, " ≤31 dihedral | ≤31 q≥{q} |");
    rule.push_str(" ---: | ---: |");
    let _ = writeln!(s, "{head}\n{rule}");
    for (ti, t) in ev.transforms.iter().enumerate() {
        let h = ev.copy_hist(Matching::Plain, false, |c| c.transform == ti);
        let n: u64 = h.iter().sum();
        let p90 = {
            let c = cumulative(&h, 256);
            c.iter().position(|&x| x >= 0.9).unwrap_or(256)
        };
        let r = ev.recall(ti, Matching::Plain, false);
        let rd = ev.recall(ti, Matching::Dihedral, false);
        let rq = ev.recall(ti, Matching::Plain, true);
        let mut row = format!(
            "| {} | {} | {n} | {} | {p90} |",
            t.name,
            t.params,
            median(&h).map_or("-".into(), |m| m.to_string())
        );
        for th in TABLE_THRESHOLDS {
            let _ = write!(row, " {} |", pct(r[th]));
        }
        let _ = write!(row, " {} | {} |", pct(rd[31]), pct(rq[31]));
        let _ = writeln!(s, "{row}");
    }
    let _ = write!(s, "\nPlots: [overview](recall_overview.svg)");
    for f in families {
        let _ = write!(s, ", [{f}](recall_{f}.svg)");
    }
    let _ = writeln!(s, ", [distance histograms](distance_histograms.svg).\n");
    let _ = writeln!(
        s,
        "## False matches: distinct images within the threshold\n"
    );
    let fmr = ev.false_match_rate(Matching::Plain, false);
    let fmrd = ev.false_match_rate(Matching::Dihedral, false);
    let fmrq = ev.false_match_rate(Matching::Plain, true);
    let qpairs: u64 = ev.pair_hist_quality.iter().sum();
    let _ = writeln!(
        s,
        "Over {} pairs of distinct originals ({} pairs with both qualities ≥ {q}). \
         [Plot, log scale](false_match_rate.svg).\n",
        ev.pairs(),
        qpairs
    );
    let _ = writeln!(
        s,
        "| threshold | false matches | rate | rate, dihedral | rate, q≥{q} |\n| ---: | ---: | ---: | ---: | ---: |"
    );
    let hist_at = |t: usize| ev.pair_hist[..=t].iter().sum::<u64>();
    for t in [8usize, 16, 24, 31, 40, 48, 56, 64, 72, 80] {
        let _ = writeln!(
            s,
            "| {t} | {} | {:.2e} | {:.2e} | {:.2e} |",
            hist_at(t),
            fmr[t],
            fmrd[t],
            fmrq[t]
        );
    }
    let _ = writeln!(
        s,
        "\nSmallest distance between two distinct originals: {}.\n",
        ev.pair_hist
            .iter()
            .position(|&c| c > 0)
            .map_or("-".into(), |d| d.to_string())
    );
    let _ = writeln!(s, "## Excluded pairs\n");
    let _ = writeln!(
        s,
        "{} pairs were left out of the false-match rate as duplicates or near-duplicates \
         (thumbnail correlation ≥ {}):\n",
        ev.excluded_pairs.len(),
        ev.config.near_duplicate_ncc
    );
    for (i, j, why) in ev.excluded_pairs.iter().take(50) {
        let _ = writeln!(
            s,
            "- {} ~ {}: {why}, PDQ distance {}",
            rel(&root, &ev.originals[*i].path),
            rel(&root, &ev.originals[*j].path),
            ev.originals[*i].hash.distance(&ev.originals[*j].hash)
        );
    }
    if ev.excluded_pairs.len() > 50 {
        let _ = writeln!(
            s,
            "- … and {} more (see figures.json)",
            ev.excluded_pairs.len() - 50
        );
    }
    if !ev.failed.is_empty() {
        let _ = writeln!(s, "\n## Files not used\n");
        for (p, e) in &ev.failed {
            let _ = writeln!(s, "- {}: {e}", rel(&root, p));
        }
    }
    s
}

fn write_csvs(ev: &Evaluation, dir: &Path) -> Result<(), Error> {
    let root = common_root(ev);
    let mut d = String::from(
        "original,transform,distance,dihedral_distance,quality_original,quality_copy\n",
    );
    for c in &ev.copies {
        let _ = writeln!(
            d,
            "{},{},{},{},{},{}",
            rel(&root, &ev.originals[c.original].path),
            ev.transforms[c.transform].name,
            c.distance,
            c.dihedral_distance,
            ev.originals[c.original].quality,
            c.quality
        );
    }
    std::fs::write(dir.join("distances.csv"), d)?;
    let mut r =
        String::from("transform,threshold,recall,recall_dihedral,recall_quality_filtered\n");
    for (ti, t) in ev.transforms.iter().enumerate() {
        let (a, b, c) = (
            ev.recall(ti, Matching::Plain, false),
            ev.recall(ti, Matching::Dihedral, false),
            ev.recall(ti, Matching::Plain, true),
        );
        for th in 0..=128 {
            let _ = writeln!(r, "{},{th},{:.6},{:.6},{:.6}", t.name, a[th], b[th], c[th]);
        }
    }
    std::fs::write(dir.join("recall.csv"), r)?;
    let mut f =
        String::from("threshold,pairs,false_matches,rate,rate_dihedral,rate_quality_filtered\n");
    let (a, b, c) = (
        ev.false_match_rate(Matching::Plain, false),
        ev.false_match_rate(Matching::Dihedral, false),
        ev.false_match_rate(Matching::Plain, true),
    );
    for th in 0..=128 {
        let fm: u64 = ev.pair_hist[..=th].iter().sum();
        let _ = writeln!(
            f,
            "{th},{},{fm},{:.3e},{:.3e},{:.3e}",
            ev.pairs(),
            a[th],
            b[th],
            c[th]
        );
    }
    std::fs::write(dir.join("false_matches.csv"), f)?;
    Ok(())
}

fn write_json(ev: &Evaluation, dir: &Path) -> Result<(), Error> {
    let root = common_root(ev);
    let transforms: Vec<serde_json::Value> = ev
        .transforms
        .iter()
        .enumerate()
        .map(|(ti, t)| {
            let h = ev.copy_hist(Matching::Plain, false, |c| c.transform == ti);
            serde_json::json!({
                "name": t.name, "family": t.family, "params": t.params,
                "copies": h.iter().sum::<u64>(), "median_distance": median(&h),
                "recall": ev.recall(ti, Matching::Plain, false),
                "recall_dihedral": ev.recall(ti, Matching::Dihedral, false),
                "recall_quality_filtered": ev.recall(ti, Matching::Plain, true),
            })
        })
        .collect();
    let v = serde_json::json!({
        "originals": ev.originals.len(), "failed": ev.failed.len(), "copies": ev.copies.len(),
        "distinct_pairs": ev.pairs(), "seed": ev.config.seed, "max_side": ev.config.max_side,
        "min_quality": ev.config.min_quality,
        "excluded_pairs": ev.excluded_pairs.iter().map(|(i, j, w)| serde_json::json!({
            "a": rel(&root, &ev.originals[*i].path), "b": rel(&root, &ev.originals[*j].path),
            "why": w})).collect::<Vec<_>>(),
        "false_match_rate": ev.false_match_rate(Matching::Plain, false),
        "false_match_rate_dihedral": ev.false_match_rate(Matching::Dihedral, false),
        "false_match_rate_quality_filtered": ev.false_match_rate(Matching::Plain, true),
        "transforms": transforms,
    });
    std::fs::write(
        dir.join("figures.json"),
        serde_json::to_string_pretty(&v).unwrap_or_default(),
    )?;
    Ok(())
}

fn plot_err<E: std::fmt::Display>(e: E) -> Error {
    Error::Plot(e.to_string())
}

/// Draws the series legend in one style for every chart.
fn legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
) -> Result<(), Error>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(plot_err)
}

fn line_chart(path: &Path, title: &str, series: &[(String, Vec<f64>)]) -> Result<(), Error> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..128f64, 0f64..1.0f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("distance threshold")
        .y_desc("recall")
        .draw()
        .map_err(plot_err)?;
    for (i, (name, ys)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                ys.iter().enumerate().map(|(x, &y)| (x as f64, y)),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .draw_series(LineSeries::new(
            vec![(31.0, 0.0), (31.0, 1.0)],
            BLACK.mix(0.3),
        ))
        .map_err(plot_err)?;
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(plot_err)
}

fn plot_recall_overview(ev: &Evaluation, path: &Path) -> Result<(), Error> {
    let keys = [
        "jpeg-q30",
        "resize-0.40",
        "crop-05pct",
        "caption-10pct",
        "logo-10pct",
        "rotate-5deg",
        "blur-sigma3",
        "noise-sigma20",
        "screenshot",
        "mirror",
    ];
    let series: Vec<(String, Vec<f64>)> = ev
        .transforms
        .iter()
        .enumerate()
        .filter(|(_, t)| keys.contains(&t.name.as_str()))
        .map(|(ti, t)| (t.name.clone(), ev.recall(ti, Matching::Plain, false)))
        .collect();
    line_chart(
        path,
        "Recall against threshold (plain matching; line at 31)",
        &series,
    )
}

fn plot_family(ev: &Evaluation, family: &str, path: &Path) -> Result<(), Error> {
    let mut series = Vec::new();
    for (ti, t) in ev
        .transforms
        .iter()
        .enumerate()
        .filter(|(_, t)| t.family == family)
    {
        series.push((t.name.clone(), ev.recall(ti, Matching::Plain, false)));
        series.push((
            format!("{} (dihedral)", t.name),
            ev.recall(ti, Matching::Dihedral, false),
        ));
    }
    line_chart(path, &format!("Recall: {family}"), &series)
}

fn plot_fmr(ev: &Evaluation, path: &Path) -> Result<(), Error> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let floor = 0.1 / ev.pairs().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "False-match rate over distinct pairs (log scale)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..128f64, (floor..1.0f64).log_scale())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("distance threshold")
        .y_desc("false-match rate")
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .draw()
        .map_err(plot_err)?;
    for (i, (name, m, q)) in [
        ("plain", Matching::Plain, false),
        ("dihedral", Matching::Dihedral, false),
        ("plain, quality-filtered", Matching::Plain, true),
    ]
    .into_iter()
    .enumerate()
    {
        let color = Palette99::pick(i).to_rgba();
        let ys = ev.false_match_rate(m, q);
        chart
            .draw_series(LineSeries::new(
                ys.iter()
                    .enumerate()
                    .filter(|(_, y)| **y > 0.0)
                    .map(|(x, &y)| (x as f64, y)),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(plot_err)
}

fn plot_histograms(ev: &Evaluation, path: &Path) -> Result<(), Error> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let density = |h: &[u64]| -> Vec<f64> {
        let t: u64 = h.iter().sum();
        h.iter()
            .map(|&c| if t == 0 { 0.0 } else { c as f64 / t as f64 })
            .collect()
    };
    let mut series: Vec<(String, Vec<f64>)> =
        vec![("distinct images".into(), density(&ev.pair_hist))];
    for key in ["jpeg-q30", "resize-0.40", "caption-10pct", "crop-05pct"] {
        if let Some(ti) = ev.transforms.iter().position(|t| t.name == key) {
            series.push((
                key.to_string(),
                density(&ev.copy_hist(Matching::Plain, false, |c| c.transform == ti)),
            ));
        }
    }
    let ymax = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1e-3);
    let mut chart = ChartBuilder::on(&root)
        .caption("Distance distributions", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..160f64, 0f64..ymax * 1.05)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("Hamming distance")
        .y_desc("share of pairs")
        .draw()
        .map_err(plot_err)?;
    for (i, (name, ys)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                ys.iter().enumerate().take(161).map(|(x, &y)| (x as f64, y)),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present().map_err(plot_err)
}
