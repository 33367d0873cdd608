#include "plot.hpp"

#include <chainrule.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace plot {

namespace {

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

std::string header(int w, int h) {
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{}\" height=\"{}\" fill=\"white\"/>\n",
      w, h, w, h, w, h);
}

// Viridis-like ramp from t in [0, 1].
std::string ramp(double t) {
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0);
  const double stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  const double p = t * 4;
  const int i = std::min(3, static_cast<int>(p));
  const double f = p - i;
  int c[3];
  for (int k = 0; k < 3; ++k) c[k] = static_cast<int>(std::lround(stops[i][k] + f * (stops[i + 1][k] - stops[i][k])));
  return fmt::format("#{:02x}{:02x}{:02x}", c[0], c[1], c[2]);
}

// A round tick step (1, 2 or 5 times a power of ten) giving about `target` ticks over `range`.
double nice_step(double range, int target) {
  const double raw = range / target, mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

}  // namespace

std::string svg(const LineChart& chart, int width, int height) {
  const double left = 70, right = 170, top = 40, bottom = 50;
  const double pw = width - left - right, ph = height - top - bottom;
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  auto ty = [&](double v) { return chart.log_y ? std::log10(std::max(v, 1e-300)) : v; };
  for (const auto& s : chart.series)
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (chart.log_y && s.y[i] <= 0)) continue;
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, ty(s.y[i]));
      ymax = std::max(ymax, ty(s.y[i]));
    }
  if (!std::isfinite(xmin)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  if (chart.log_y) ymin = std::floor(ymin), ymax = std::ceil(ymax);
  if (xmax == xmin) xmax = xmin + 1;
  if (ymax == ymin) ymax = ymin + 1;
  auto X = [&](double v) { return left + (v - xmin) / (xmax - xmin) * pw; };
  auto Y = [&](double v) { return top + ph - (ty(v) - ymin) / (ymax - ymin) * ph; };
  std::string out = header(width, height);
  out += fmt::format("<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n", left + pw / 2,
                     escape(chart.title));
  out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n", left, top,
                     pw, ph);
  // y ticks: decades on a log axis, 5 steps otherwise
  const int ny = chart.log_y ? static_cast<int>(ymax - ymin) : 5;
  for (int i = 0; i <= ny; ++i) {
    const double v = ymin + (ymax - ymin) * i / ny;
    const double py = top + ph - (v - ymin) / (ymax - ymin) * ph;
    const std::string label = chart.log_y ? fmt::format("1e{}", static_cast<int>(v)) : fmt::format("{:.3g}", v);
    out += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>"
                       "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
                       left, py, left + pw, py, left - 6, py + 4, label);
  }
  const double xstep = nice_step(xmax - xmin, 5);
  for (double v = std::ceil(xmin / xstep) * xstep; v <= xmax + 1e-9 * xstep; v += xstep)
    out += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.6g}</text>\n", X(v), top + ph + 18, v);
  out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", left + pw / 2, height - 10,
                     escape(chart.x_label));
  out += fmt::format("<text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">{}</text>\n",
                     top + ph / 2, top + ph / 2, escape(chart.y_label));
  for (size_t k = 0; k < chart.series.size(); ++k) {
    const auto& s = chart.series[k];
    std::string points;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (chart.log_y && s.y[i] <= 0)) continue;
      points += fmt::format("{:.1f},{:.1f} ", X(s.x[i]), Y(s.y[i]));
    }
    const char* color = kColors[k % 8];
    out += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\" points=\"{}\"/>\n", color, points);
    out += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"3\"/>"
                       "<text x=\"{}\" y=\"{}\">{}</text>\n",
                       left + pw + 12, top + 12 + 20 * k, left + pw + 32, top + 12 + 20 * k, color, left + pw + 38,
                       top + 16 + 20 * k, escape(s.name));
  }
  return out + "</svg>\n";
}

std::string svg(const std::vector<Heatmap>& maps, double lo, double hi, const std::string& title, int columns) {
  const int cell = 44, label_w = 60, gap = 40;
  const size_t rows_n = maps.empty() ? 0 : maps[0].values.size();
  const size_t cols_n = rows_n ? maps[0].values[0].size() : 0;
  const int panel_w = label_w + static_cast<int>(cols_n) * cell + gap, panel_h = 50 + static_cast<int>(rows_n) * cell + 40;
  const int grid_rows = (static_cast<int>(maps.size()) + columns - 1) / columns;
  const int width = columns * panel_w + 90, height = 40 + grid_rows * panel_h;
  std::string out = header(width, height);
  out += fmt::format("<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n", width / 2,
                     escape(title));
  for (size_t m = 0; m < maps.size(); ++m) {
    const auto& map = maps[m];
    const int ox = static_cast<int>(m % columns) * panel_w, oy = 40 + static_cast<int>(m / columns) * panel_h;
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">{}</text>\n",
                       ox + label_w + static_cast<int>(cols_n) * cell / 2, oy + 16, escape(map.title));
    for (size_t r = 0; r < map.values.size(); ++r) {
      out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", ox + label_w - 6,
                         oy + 30 + static_cast<int>(r) * cell + cell / 2 + 4, escape(map.row_labels.at(r)));
      for (size_t c = 0; c < map.values[r].size(); ++c) {
        const double v = map.values[r][c];
        const double t = (v - lo) / (hi - lo);
        const int x = ox + label_w + static_cast<int>(c) * cell, y = oy + 30 + static_cast<int>(r) * cell;
        out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"white\"/>"
                           "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{}\" font-size=\"11\">{:.0f}</text>\n",
                           x, y, cell, cell, ramp(t), x + cell / 2, y + cell / 2 + 4, t > 0.6 ? "black" : "white",
                           100 * v);
      }
    }
    for (size_t c = 0; c < cols_n; ++c)
      out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                         ox + label_w + static_cast<int>(c) * cell + cell / 2,
                         oy + 30 + static_cast<int>(rows_n) * cell + 16, escape(map.col_labels.at(c)));
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                       ox + label_w + static_cast<int>(cols_n) * cell / 2,
                       oy + 30 + static_cast<int>(rows_n) * cell + 32, escape(map.col_title));
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 {} {})\">{}</text>\n",
                       ox + 12, oy + 30 + static_cast<int>(rows_n) * cell / 2, ox + 12,
                       oy + 30 + static_cast<int>(rows_n) * cell / 2, escape(map.row_title));
  }
  // colour bar
  const int bx = width - 60, by = 60, bh = std::max(120, height - 120);
  for (int i = 0; i < 50; ++i)
    out += fmt::format("<rect x=\"{}\" y=\"{:.1f}\" width=\"18\" height=\"{:.1f}\" fill=\"{}\"/>\n", bx,
                       by + bh - (i + 1) * bh / 50.0, bh / 50.0 + 0.5, ramp(i / 49.0));
  out += fmt::format("<text x=\"{}\" y=\"{}\">{:.0f}%</text><text x=\"{}\" y=\"{}\">{:.0f}%</text>\n", bx + 22, by + 8,
                     100 * hi, bx + 22, by + bh, 100 * lo);
  return out + "</svg>\n";
}

std::string svg(const ScatterField& p, int size) {
  const int margin = 40;
  const double plot = size - 2 * margin;
  const char* fills[] = {"#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5"};
  const char* dots[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"};
  std::string out = header(size, size + 20);
  out += fmt::format("<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n", size / 2,
                     escape(p.title));
  const size_t rows = p.field.size(), cols = rows ? p.field[0].size() : 0;
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c)
      out += fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"{}\"/>\n",
                         margin + c * plot / cols, margin + r * plot / rows, plot / cols + 0.3, plot / rows + 0.3,
                         fills[p.field[r][c] % 5]);
  for (size_t i = 0; i < p.px.size(); ++i)
    out += fmt::format("<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"3\" fill=\"{}\" stroke=\"black\" stroke-width=\"0.5\"/>\n",
                       margin + (p.px[i] - p.x0) / (p.x1 - p.x0) * plot,
                       margin + (p.y1 - p.py[i]) / (p.y1 - p.y0) * plot, dots[p.label[i] % 5]);
  out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n", margin,
                     margin, plot, plot);
  return out + "</svg>\n";
}

std::string write_graph(const std::string& stem, const std::string& dot) {
  write_file(stem + ".dot", dot);
  if (std::system("command -v dot > /dev/null 2>&1") != 0)
    return fmt::format("wrote {}.dot; to draw it, install Graphviz (apt-get install graphviz) and run "
                       "dot -Tsvg {}.dot -o {}.svg",
                       stem, stem, stem);
  const std::string cmd = fmt::format("dot -Tsvg '{}.dot' -o '{}.svg'", stem, stem);
  return std::system(cmd.c_str()) == 0 ? fmt::format("wrote {0}.dot and {0}.svg", stem)
                                       : fmt::format("wrote {}.dot; dot failed to render it", stem);
}

void write_file(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw chainrule::Error(fmt::format("plot: cannot write '{}'", tmp));
    out << content;
    if (!out.flush()) throw chainrule::Error(fmt::format("plot: cannot write '{}'", tmp));
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace plot
