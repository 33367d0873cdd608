// A small SVG plotting module shared by the examples: line charts (optionally log-scaled y)
// with a legend, heatmap grids with a colour bar, and scatter plots over a shaded field.
// The files open in any browser. Writes are atomic (temporary file, then rename).
#pragma once

#include <string>
#include <vector>

namespace plot {

struct Series {
  std::string name;
  std::vector<double> x, y;
};

struct LineChart {
  std::string title, x_label, y_label;
  bool log_y = false;
  std::vector<Series> series;
};
std::string svg(const LineChart& chart, int width = 800, int height = 480);

struct Heatmap {
  std::string title;
  std::vector<std::string> row_labels, col_labels;
  std::vector<std::vector<double>> values;  // [row][col], in [lo, hi]
  std::string row_title, col_title;
};
// Several heatmaps side by side sharing one colour scale [lo, hi] and colour bar.
std::string svg(const std::vector<Heatmap>& maps, double lo, double hi, const std::string& title, int columns = 2);

struct ScatterField {
  std::string title;
  double x0, x1, y0, y1;                  // plane extent
  std::vector<std::vector<int>> field;    // [row (y, top first)][col (x)] predicted class
  std::vector<double> px, py;             // points
  std::vector<int> label;                 // their classes
};
std::string svg(const ScatterField& plot, int size = 520);

// Writes a Graphviz DOT graph to `stem`.dot and, when Graphviz's `dot` is installed, renders it
// to `stem`.svg. Returns a line saying what happened (and how to get Graphviz when missing).
std::string write_graph(const std::string& stem, const std::string& dot);

// Writes `content` to `path` atomically.
void write_file(const std::string& path, const std::string& content);

}  // namespace plot
