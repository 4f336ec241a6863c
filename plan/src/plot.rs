//! The picture of a placement: how full each node is after it, per resource, with the memory the
//! system keeps marked and the deployments left unplaced counted in the title.
//!
//! A small farm (up to [`PER_NODE_LIMIT`] nodes) gets one group of bars per node. A larger one gets
//! distributions that stay readable at any size: each resource's utilization sorted over the nodes
//! (the share of nodes at or above a level), and a histogram of nodes per 10% of utilization.
//! `.png` paths get a PNG (white background), anything else an SVG; text uses an embedded font, so
//! the picture is the same on a machine with no fonts installed.

use anyhow::{Context, anyhow};
use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;
use std::sync::OnceLock;
use zos_planner::placement::{NodeReport, PlaceReport};

/// Farms up to this many nodes are drawn node by node.
pub const PER_NODE_LIMIT: usize = 40;

/// The font every text of the picture uses (DejaVu Sans, Latin-1: `plan/assets/README.md`).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans-Latin1.ttf");
const FAMILY: &str = "sans-serif";

const CPU: RGBColor = RGBColor(0x4e, 0x79, 0xa7);
const MEMORY: RGBColor = RGBColor(0xf2, 0x8e, 0x2b);
const RESERVED: RGBColor = RGBColor(0x9d, 0x9d, 0x9d);
const SSD: RGBColor = RGBColor(0x59, 0xa1, 0x4f);
const HDD: RGBColor = RGBColor(0xaf, 0x7a, 0xa1);

/// One resource as the picture draws it.
struct Series {
    label: &'static str,
    color: RGBColor,
    value: fn(&NodeReport) -> f64,
}

const RESOURCES: [Series; 4] = [
    Series { label: "cpu", color: CPU, value: |n| n.utilization.cru },
    Series { label: "memory (grey: the reserved part)", color: MEMORY, value: |n| n.utilization.mru },
    Series { label: "ssd", color: SSD, value: |n| n.utilization.sru },
    Series { label: "hdd", color: HDD, value: |n| n.utilization.hru },
];

const RESERVED_LABEL: &str = "memory reserved for the system";

/// Which picture a path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.png`.
    Png,
    /// Anything else.
    Svg,
}

impl Format {
    /// PNG for a `.png` path (any case), SVG otherwise.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|ext| ext.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("png") => Format::Png,
            _ => Format::Svg,
        }
    }
}

/// The picture's bytes in `format`.
pub fn render(report: &PlaceReport, format: Format) -> anyhow::Result<Vec<u8>> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if !*REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok()) {
        return Err(anyhow!("the embedded font could not be read"));
    }
    let size = size(report);
    match format {
        Format::Svg => {
            let mut svg = String::new();
            draw(SVGBackend::with_string(&mut svg, size).into_drawing_area(), report)?;
            Ok(svg.into_bytes())
        }
        Format::Png => {
            let len = usize::try_from(u64::from(size.0) * u64::from(size.1) * 3).context("picture size")?;
            let mut pixels = vec![0u8; len];
            draw(BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area(), report)?;
            let mut png = Vec::new();
            let mut encoder = png::Encoder::new(&mut png, size.0, size.1);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            encoder.set_compression(png::Compression::Best);
            encoder.write_header().and_then(|mut writer| writer.write_image_data(&pixels)).context("encoding PNG")?;
            Ok(png)
        }
    }
}

/// Width and height in pixels: wide enough for a bar group per node, bounded for large farms.
fn size(report: &PlaceReport) -> (u32, u32) {
    if report.nodes.len() <= PER_NODE_LIMIT {
        let groups = u32::try_from(report.nodes.len().max(1)).unwrap_or(1);
        ((180 + 70 * groups).max(760) + LEGEND_WIDTH, 560)
    } else {
        (1000 + LEGEND_WIDTH, 900)
    }
}

/// The legend's column, right of the chart.
const LEGEND_WIDTH: u32 = 280;

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, report: &PlaceReport) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let failed = |err: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing the plot: {err}");
    root.fill(&WHITE).map_err(failed)?;
    let placed = report.assignments.iter().filter(|a| a.node.is_some()).count();
    let unplaced = report.assignments.len().saturating_sub(placed);
    let title = format!(
        "Placement ({}): {placed} of {} deployments placed on {} of {} nodes, {unplaced} not placed",
        report.objective,
        report.assignments.len(),
        report.nodes_used,
        report.nodes.len()
    );
    let root = root.titled(&title, (FAMILY, 20)).map_err(failed)?;
    let (width, _) = root.dim_in_pixel();
    let (chart, legend) = root.split_horizontally(width.saturating_sub(LEGEND_WIDTH));
    let mut entries: Vec<(&str, RGBColor)> = RESOURCES.iter().map(|s| (s.label, s.color)).collect();
    entries.push((RESERVED_LABEL, RESERVED));
    draw_legend(&legend, &entries, unplaced).map_err(failed)?;
    if report.nodes.len() <= PER_NODE_LIMIT {
        per_node(&chart, &report.nodes).map_err(failed)
    } else {
        let (top, bottom) = chart.split_vertically(chart.dim_in_pixel().1 / 2);
        sorted(&top, &report.nodes).map_err(failed)?;
        histogram(&bottom, &report.nodes).map_err(failed)
    }
}

/// An axis label: a whole number.
fn whole(value: &f64) -> String {
    format!("{value:.0}")
}

/// The axes of every chart: titles, whole-number labels, faint minor lines.
fn axes<DB: DrawingBackend>(
    mesh: &mut MeshStyle<'_, '_, RangedCoordf64, RangedCoordf64, DB>,
    x: &str,
    y: &str,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    mesh.x_desc(x)
        .y_desc(y)
        .axis_desc_style((FAMILY, 15))
        .label_style((FAMILY, 13))
        .light_line_style(RGBColor(0xf2, 0xf2, 0xf2))
        .x_label_formatter(&whole)
        .y_label_formatter(&whole)
        .draw()
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(&str, RGBColor)],
    unplaced: usize,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let text = (FAMILY, 14).into_font();
    for (i, (label, color)) in entries.iter().enumerate() {
        let y = 40 + 24 * i32::try_from(i).unwrap_or(0);
        area.draw(&Rectangle::new([(10, y), (24, y + 14)], color.filled()))?;
        area.draw(&Text::new(label.to_string(), (32, y), text.clone()))?;
    }
    let y = 40 + 24 * i32::try_from(entries.len()).unwrap_or(0) + 16;
    area.draw(&Text::new(format!("not placed: {unplaced}"), (10, y), text.clone()))?;
    area.draw(&Text::new("an empty node shows its grey".to_string(), (10, y + 22), text.clone()))?;
    area.draw(&Text::new("memory reservation".to_string(), (10, y + 40), text))?;
    Ok(())
}

/// One group of bars per node: cpu, memory (its reserved part grey), ssd, hdd.
fn per_node<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    nodes: &[NodeReport],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let count = nodes.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..count, 0.0..100.0)?;
    axes(chart.configure_mesh().disable_x_mesh().disable_x_axis(), "node", "utilization (%)")?;
    let bar = 0.8 / RESOURCES.len() as f64;
    for (i, node) in nodes.iter().enumerate() {
        let left = i as f64 + 0.1;
        for (j, series) in RESOURCES.iter().enumerate() {
            let x0 = left + bar * j as f64;
            let value = ((series.value)(node) * 100.0).clamp(0.0, 100.0);
            chart
                .draw_series(std::iter::once(Rectangle::new([(x0, 0.0), (x0 + bar, value)], series.color.filled())))?;
            if j == 1 {
                let reserved = (node.utilization.mru_reserved * 100.0).clamp(0.0, value);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0, 0.0), (x0 + bar, reserved)],
                    RESERVED.filled(),
                )))?;
            }
        }
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        let name: String = node.name.chars().take(12).collect();
        let style = (FAMILY, 13).into_font().into_text_style(area).pos(Pos::new(HPos::Center, VPos::Top));
        area.draw(&Text::new(name, (x - area.get_base_pixel().0, y + 6 - area.get_base_pixel().1), style))?;
    }
    Ok(())
}

/// Each resource's utilization over the nodes, highest first: the x axis is the share of nodes.
fn sorted<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    nodes: &[NodeReport],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .caption("Utilization per resource, nodes sorted from fullest to emptiest", (FAMILY, 15))
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..100.0, 0.0..100.0)?;
    axes(&mut chart.configure_mesh(), "share of nodes (%)", "utilization (%)")?;
    let n = nodes.len().max(1) as f64;
    let curve = |value: fn(&NodeReport) -> f64| {
        let mut values: Vec<f64> = nodes.iter().map(|node| (value(node) * 100.0).clamp(0.0, 100.0)).collect();
        values.sort_by(|a, b| b.total_cmp(a));
        values.into_iter().enumerate().map(move |(rank, v)| (rank as f64 * 100.0 / n, v))
    };
    for series in &RESOURCES {
        chart.draw_series(LineSeries::new(curve(series.value), series.color.stroke_width(2)))?;
    }
    chart.draw_series(LineSeries::new(curve(|node| node.utilization.mru_reserved), RESERVED.stroke_width(2)))?;
    Ok(())
}

/// How many nodes sit in each 10% band of utilization, per resource.
fn histogram<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    nodes: &[NodeReport],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let band = |value: f64| ((value * 10.0).floor().clamp(0.0, 9.0)) as usize;
    let counts: Vec<[usize; 10]> = RESOURCES
        .iter()
        .map(|series| {
            let mut counts = [0usize; 10];
            for node in nodes {
                counts[band((series.value)(node))] += 1;
            }
            counts
        })
        .collect();
    let highest = counts.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .caption("Nodes per 10% band of utilization", (FAMILY, 15))
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..100.0, 0.0..highest * 1.05)?;
    axes(chart.configure_mesh().disable_x_mesh(), "utilization (%)", "nodes")?;
    let bar = 8.0 / RESOURCES.len() as f64;
    for (j, (series, counts)) in RESOURCES.iter().zip(&counts).enumerate() {
        chart.draw_series(counts.iter().enumerate().map(|(b, &count)| {
            let x0 = b as f64 * 10.0 + 1.0 + bar * j as f64;
            Rectangle::new([(x0, 0.0), (x0 + bar, count as f64)], series.color.filled())
        }))?;
    }
    Ok(())
}
