//! An SVG chart of per-node utilization after placement: one group of four bars per node
//! (CPU, memory, SSD, HDD), 0 to 100%.

use zos_planner::placement::PlaceReport;

const COLORS: [(&str, &str); 4] = [("cpu", "#4e79a7"), ("memory", "#f28e2b"), ("ssd", "#59a14f"), ("hdd", "#af7aa1")];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Renders the chart.
pub fn utilization_svg(report: &PlaceReport) -> String {
    let bar = 8.0;
    let group = bar * 4.0 + 10.0;
    let (left, top, height) = (50.0, 40.0, 300.0);
    let width = left + group * report.nodes.len().max(1) as f64 + 20.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{:.0}\" viewBox=\"0 0 {width:.0} {:.0}\">\n",
        top + height + 60.0,
        top + height + 60.0
    );
    svg.push_str(&format!(
        "<title>Per-node utilization ({} nodes used, objective {})</title>\n",
        report.nodes_used, report.objective
    ));
    for pct in [0, 25, 50, 75, 100] {
        let y = top + height * (1.0 - f64::from(pct) / 100.0);
        svg.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{width:.0}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.0}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{pct}%</text>\n",
            left - 4.0,
            y + 3.0
        ));
    }
    for (i, node) in report.nodes.iter().enumerate() {
        let x0 = left + group * i as f64 + 5.0;
        let values = [node.utilization.cru, node.utilization.mru, node.utilization.sru, node.utilization.hru];
        for (j, (value, (label, color))) in values.iter().zip(COLORS).enumerate() {
            let h = height * value.clamp(0.0, 1.0);
            svg.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar}\" height=\"{h:.1}\" fill=\"{color}\"><title>{} {label} {:.1}%</title></rect>\n",
                x0 + bar * j as f64,
                top + height - h,
                escape(&node.name),
                value * 100.0
            ));
        }
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\">{}</text>\n",
            x0 + bar * 2.0,
            top + height + 12.0,
            escape(&node.name)
        ));
    }
    for (j, (label, color)) in COLORS.iter().enumerate() {
        let x = left + 80.0 * j as f64;
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"10\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"19\" font-size=\"11\">{label}</text>\n",
            x + 14.0
        ));
    }
    svg.push_str("</svg>\n");
    svg
}
