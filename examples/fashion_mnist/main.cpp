// Fashion-MNIST end to end: an MLP trained with a chainrule optimizer, a progress bar per
// epoch, test loss and accuracy after each, an atomic checkpoint that --resume continues
// from, and at the end the confusion matrix and an SVG of the curves. With --distributed
// (under mpirun) it trains data-parallel: every rank a shard of each batch, gradients
// averaged, the same steps as one process with the whole batch.
#include "../common/cli.hpp"
#include "../common/plot.hpp"
#include "../common/progress.hpp"

#include <chainrule.hpp>
#if CHAINRULE_HAVE_DISTRIBUTED
#include <distributed/distributed.hpp>
#endif

#include <cmath>
#include <filesystem>
#include <optional>
#include <thread>

#include <sched.h>

namespace cr = chainrule;
namespace D = cr::nn::data;
namespace F = cr::nn::functional;

namespace {

const char* kUsage =
    "usage: fashion_mnist [options]\n"
    "  --epochs N          epochs to train (default 15)\n"
    "  --batch-size N      mini-batch size (default 128)\n"
    "  --lr X              learning rate (default 0.05 for sgd, 0.001 for adam)\n"
    "  --optimizer NAME    sgd (momentum 0.9, nesterov) or adam (default sgd)\n"
    "  --hidden LIST       hidden layer sizes, comma-separated (default 256,128)\n"
    "  --schedule NAME     cosine (anneal the lr to 0 over the epochs) or none (default cosine)\n"
    "  --threads N         BLAS threads per process (default: the cores, shared among the ranks on this machine)\n"
    "  --data DIR          folder with the four *-ubyte.gz files (default /usr/share/datasets/fashion-mnist)\n"
    "  --out DIR           checkpoint and plots (default fashion-mnist-out)\n"
    "  --limit N           use only the first N training images (and up to N test images), for tests\n"
    "  --resume            continue from the checkpoint in --out\n"
    "  --stop-after N      stop after epoch N as if interrupted (to try --resume)\n"
    "  --skip-if-missing   exit 77 (a skip) with a message when the data set is not installed\n"
    "  --distributed       data-parallel over MPI: run under mpirun -np N; --batch-size is the global batch\n"
    "                      (each rank takes batch/N); rank 0 prints and writes the files\n"
    "  --timeout S         seconds a rank waits in a collective before the job fails (default 300)\n"
    "  --help              this text\n";

struct Options {
  int64_t epochs = 15, batch_size = 128, limit = 0, stop_after = 0;
  double lr = -1;
  std::string optimizer = "sgd", schedule = "cosine", data = D::kFashionMnistDir, out = "fashion-mnist-out";
  std::vector<int64_t> hidden = {256, 128};
  int threads = 0;  // 0: the cores, shared among the local ranks
  double timeout = 300;
  bool resume = false, skip_if_missing = false, distributed = false;
};

Options parse(int argc, char** argv) {
  Options o;
  cli::Parser p("fashion_mnist", kUsage);
  p.option("--epochs", [&](const std::string& v) { o.epochs = p.integer(v, "--epochs", 1, 1000); });
  p.option("--batch-size", [&](const std::string& v) { o.batch_size = p.integer(v, "--batch-size", 1, 60000); });
  p.option("--lr", [&](const std::string& v) { o.lr = p.number(v, "--lr", 0, 10); });
  p.option("--optimizer", [&](const std::string& v) {
    if (v != "sgd" && v != "adam") p.fail("--optimizer is sgd or adam, got '" + v + "'");
    o.optimizer = v;
  });
  p.option("--schedule", [&](const std::string& v) {
    if (v != "cosine" && v != "none") p.fail("--schedule is cosine or none, got '" + v + "'");
    o.schedule = v;
  });
  p.option("--hidden", [&](const std::string& v) {
    o.hidden.clear();
    for (double h : p.numbers(v, "--hidden", 1, 100000)) o.hidden.push_back(static_cast<int64_t>(h));
  });
  p.option("--threads", [&](const std::string& v) { o.threads = static_cast<int>(p.integer(v, "--threads", 1, 256)); });
  p.option("--data", [&](const std::string& v) { o.data = v; });
  p.option("--out", [&](const std::string& v) { o.out = v; });
  p.option("--limit", [&](const std::string& v) { o.limit = p.integer(v, "--limit", 1, 60000); });
  p.flag("--resume", [&] { o.resume = true; });
  p.option("--stop-after", [&](const std::string& v) { o.stop_after = p.integer(v, "--stop-after", 1, 1000); });
  p.flag("--skip-if-missing", [&] { o.skip_if_missing = true; });
  p.flag("--distributed", [&] { o.distributed = true; });
  p.option("--timeout", [&](const std::string& v) { o.timeout = p.number(v, "--timeout", 0.001, 1e6); });
  p.parse(argc, argv);
  if (o.lr < 0) o.lr = o.optimizer == "sgd" ? 0.05 : 1e-3;
  return o;
}

struct History {
  std::vector<double> train_loss, test_loss, test_accuracy;
};

// This process's place among the ranks (rank 0 of 1 without --distributed).
struct World {
  int rank = 0, size = 1;
  bool lead() const { return rank == 0; }
};

// Sums over all ranks, in place (nothing to do in a world of one).
void sum_over_ranks([[maybe_unused]] const std::vector<cr::Tensor>& tensors, const World& world) {
  if (world.size == 1) return;
#if CHAINRULE_HAVE_DISTRIBUTED
  cr::distributed::all_reduce(tensors, cr::distributed::ReduceOp::sum);
#endif
}

// Loss and accuracy over a whole set, without recording a graph; fills the confusion matrix.
// Each rank evaluates its slice of the set; the sums are combined over the ranks.
std::pair<double, double> evaluate(cr::nn::Module& model, const cr::Tensor& images, const cr::Tensor& labels,
                                   const World& world, std::vector<std::vector<int64_t>>* confusion = nullptr) {
  cr::NoGradGuard no_grad;
  double loss = 0;
  int64_t correct = 0;
  std::vector<double> counts(100, 0.0);
  const int64_t n = images.size(0), chunk = 1000;
  const int64_t first = n * world.rank / world.size, last = n * (world.rank + 1) / world.size;
  for (int64_t start = first; start < last; start += chunk) {
    const int64_t len = std::min(chunk, last - start);
    const cr::Tensor logits = model(images.narrow(0, start, len));
    const cr::Tensor y = labels.narrow(0, start, len);
    loss += F::cross_entropy(logits, y, F::Reduction::sum).item<double>();
    const auto pred = cr::argmax(logits, 1).to_vector<int64_t>(), truth = y.to_vector<int64_t>();
    for (int64_t i = 0; i < len; ++i) {
      correct += pred[i] == truth[i];
      ++counts[static_cast<size_t>(truth[i] * 10 + pred[i])];
    }
  }
  const cr::Tensor sums = cr::tensor({loss, static_cast<double>(correct)}, cr::float64);
  const cr::Tensor matrix = cr::tensor(counts, {100}, cr::int64);
  sum_over_ranks({sums, matrix}, world);
  if (confusion) {
    const auto c = matrix.to_vector<int64_t>();
    for (size_t k = 0; k < c.size(); ++k) (*confusion)[k / 10][k % 10] = c[k];
  }
  const auto total = sums.to_vector<double>();  // loss, correct
  return {total[0] / static_cast<double>(n), total[1] / static_cast<double>(n)};
}

// One file holds model, optimizer and progress, so the three can never disagree.
void save_checkpoint(const std::string& path, const cr::nn::Module& model, const cr::optim::Optimizer& opt,
                     int64_t epoch, const History& h) {
  cr::NamedTensors all;
  for (auto& [name, t] : model.state_dict()) all.emplace_back("model." + name, t);  // parameters and buffers
  for (auto& [name, t] : opt.state_dict()) all.emplace_back("optim." + name, t);
  all.emplace_back("meta.epoch", cr::tensor(static_cast<double>(epoch), cr::int64));
  auto series = [&](const char* name, const std::vector<double>& v) {
    all.emplace_back(name, cr::tensor(v, {static_cast<int64_t>(v.size())}, cr::float64));
  };
  series("meta.train_loss", h.train_loss);
  series("meta.test_loss", h.test_loss);
  series("meta.test_accuracy", h.test_accuracy);
  cr::save_tensors(all, path);
}

int64_t load_checkpoint(const std::string& path, cr::nn::Module& model, cr::optim::Optimizer& opt, History& h) {
  const cr::NamedTensors all = cr::load_tensors(path);
  cr::NamedTensors m, o;
  int64_t epoch = -1;
  for (const auto& [name, t] : all) {
    if (name.rfind("model.", 0) == 0) m.emplace_back(name.substr(6), t);
    else if (name.rfind("optim.", 0) == 0) o.emplace_back(name.substr(6), t);
    else if (name == "meta.epoch") epoch = t.item<int64_t>();
    else if (name == "meta.train_loss") h.train_loss = t.to_vector<double>();
    else if (name == "meta.test_loss") h.test_loss = t.to_vector<double>();
    else if (name == "meta.test_accuracy") h.test_accuracy = t.to_vector<double>();
  }
  if (epoch < 0) throw cr::CheckpointError(fmt::format("checkpoint '{}' has no meta.epoch", path));
  cr::assign_tensors(model.state_dict(), m, "the model");
  opt.load_state_dict(o);
  return epoch;
}

}  // namespace

int run_example(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  if (opt.skip_if_missing && !std::filesystem::exists(std::filesystem::path(opt.data) / "train-images-idx3-ubyte.gz")) {
    fmt::print("SKIP: Fashion-MNIST is not installed in {} (apt-get install dataset-fashion-mnist)\n", opt.data);
    return 77;
  }
  World world;
#if CHAINRULE_HAVE_DISTRIBUTED
  std::optional<cr::distributed::Session> session;
  if (opt.distributed) {
    session.emplace(argc, argv, cr::distributed::Options{.timeout = std::chrono::milliseconds(
                                                              static_cast<int64_t>(opt.timeout * 1000))});
    world = {session->rank(), session->world_size()};
  }
#else
  if (opt.distributed) {
    fmt::print(stderr, "fashion_mnist: --distributed needs chainrule built with MPI (apt-get install libopenmpi-dev, "
                       "then reconfigure)\n");
    return 2;
  }
#endif
  if (opt.batch_size % world.size != 0) {
    fmt::print(stderr, "fashion_mnist: --batch-size {} does not split evenly over {} ranks\n", opt.batch_size, world.size);
    return 2;
  }
  int threads = opt.threads;
  if (threads == 0) {  // the cores this process may run on, shared among the ranks on this machine
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    cpu_set_t mask;
    const int allowed = sched_getaffinity(0, sizeof mask, &mask) == 0 ? CPU_COUNT(&mask) : cores;
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    const int ranks_here = opt.distributed && local ? std::max(1, std::atoi(local)) : 1;
    // mpirun binds each rank to its own core(s) by default: then use exactly those.
    threads = allowed < cores ? std::max(1, allowed) : std::max(1, cores / ranks_here);
  }
  cr::set_num_threads(threads);
  std::filesystem::create_directories(opt.out);
  const std::string ckpt = opt.out + "/checkpoint.bin";

  D::FashionMnist data = D::load_fashion_mnist(opt.data);
  if (opt.limit > 0) {
    data.train_images = data.train_images.narrow(0, 0, opt.limit);
    data.train_labels = data.train_labels.narrow(0, 0, opt.limit);
    const int64_t nt = std::min<int64_t>(opt.limit, data.test_images.size(0));
    data.test_images = data.test_images.narrow(0, 0, nt);
    data.test_labels = data.test_labels.narrow(0, 0, nt);
  }

  std::vector<int64_t> sizes = {784};
  sizes.insert(sizes.end(), opt.hidden.begin(), opt.hidden.end());
  sizes.push_back(10);
  cr::Generator init(0);
  cr::nn::MLP model(sizes, {.activation = std::string("relu"), .generator = &init});
  std::unique_ptr<cr::optim::Optimizer> optimizer;
  if (opt.optimizer == "sgd")
    optimizer = std::make_unique<cr::optim::SGD>(model.parameters(),
                                                 cr::optim::SGDOptions{.lr = opt.lr, .momentum = 0.9, .nesterov = true});
  else
    optimizer = std::make_unique<cr::optim::Adam>(model.parameters(), cr::optim::AdamOptions{.lr = opt.lr});

  History history;
  int64_t first_epoch = 0;
  if (opt.resume) {
    first_epoch = load_checkpoint(ckpt, model, *optimizer, history) + 1;
    if (world.lead()) fmt::print("resumed from {} after epoch {}\n", ckpt, first_epoch);
  }
  // The schedule is a closed form of the epoch, so a resumed run recomputes it exactly.
  auto lr_at = [&](int64_t epoch) {
    return opt.schedule == "cosine" ? opt.lr * (1 + std::cos(M_PI * static_cast<double>(epoch) / static_cast<double>(opt.epochs))) / 2
                                    : opt.lr;
  };
  if (world.lead())
    fmt::print("{}\n{} training / {} test images, {} {} lr {:g} ({} schedule), batch {}{}, {} BLAS thread{} per rank\n",
               model, data.train_images.size(0), data.test_images.size(0), opt.optimizer,
               opt.optimizer == "sgd" ? "(momentum 0.9, nesterov)" : "", opt.lr, opt.schedule, opt.batch_size,
               opt.distributed ? fmt::format(" over {} ranks ({} each)", world.size, opt.batch_size / world.size) : "",
               threads, threads == 1 ? "" : "s");

  auto train_set = std::make_shared<D::TensorDataset>(data.train_images, data.train_labels);
  // One rank: the whole batch, shuffled. N ranks: each its shard of the same shuffle
  // (DistributedSampler), batch/N examples per step, gradients averaged: the same steps.
  D::DataLoaderOptions loader_options{.batch_size = opt.batch_size, .shuffle = true, .seed = 1234};
#if CHAINRULE_HAVE_DISTRIBUTED
  std::optional<cr::distributed::DataParallel> ddp;
  if (opt.distributed) {
    ddp.emplace(model.parameters());
    loader_options = {.batch_size = opt.batch_size / world.size, .sampler = cr::distributed::make_sampler(1234)};
  }
#endif
  const D::DataLoader loader(train_set, loader_options);
  for (int64_t epoch = first_epoch; epoch < opt.epochs; ++epoch) {
    model.train();
    optimizer->set_lr(lr_at(epoch));
    progress::Bar bar(fmt::format("epoch {:>2}/{}", epoch + 1, opt.epochs), loader.batches_per_epoch(), 25);
    double loss_sum = 0;
    int64_t seen = 0, batch_index = 0;
    for (const D::Batch& b : loader.epoch(epoch)) {
      optimizer->zero_grad();
      const cr::Tensor loss = F::cross_entropy(model(b.inputs), b.targets);
      loss.backward();
#if CHAINRULE_HAVE_DISTRIBUTED
      if (ddp) ddp->average_gradients();
#endif
      optimizer->step();
      const int64_t n = b.inputs.size(0);
      loss_sum += loss.item<double>() * static_cast<double>(n);
      seen += n;
      ++batch_index;
      if (world.lead())  // rank 0's running loss; samples/s of the whole job
        bar.update(batch_index, fmt::format("loss {:.4f} {:>6.0f} samples/s", loss_sum / static_cast<double>(seen),
                                            static_cast<double>(seen * world.size) / bar.seconds()));
    }
    const double train_seconds = bar.seconds();
    const cr::Tensor train_sums = cr::tensor({loss_sum, static_cast<double>(seen)}, cr::float64);
    sum_over_ranks({train_sums}, world);
    model.eval();
    const auto [test_loss, test_acc] = evaluate(model, data.test_images, data.test_labels, world);
    history.train_loss.push_back(train_sums.to_vector<double>()[0] / train_sums.to_vector<double>()[1]);
    history.test_loss.push_back(test_loss);
    history.test_accuracy.push_back(test_acc);
    if (world.lead()) {
      fmt::print("epoch {:>2}: train loss {:.4f}  test loss {:.4f}  test accuracy {:.2f}%  ({:.1f} s, {:.0f} samples/s)\n",
                 epoch + 1, history.train_loss.back(), test_loss, 100 * test_acc, train_seconds,
                 train_sums.to_vector<double>()[1] / train_seconds);
      save_checkpoint(ckpt, model, *optimizer, epoch, history);  // --resume: every rank reads it (a shared folder)
    }
    if (opt.stop_after > 0 && epoch + 1 == opt.stop_after) {
      if (world.lead()) fmt::print("stopped after epoch {} (--stop-after); continue with --resume\n", epoch + 1);
      return 0;
    }
  }

  std::vector<std::vector<int64_t>> confusion(10, std::vector<int64_t>(10, 0));
  const auto [final_loss, final_acc] = evaluate(model, data.test_images, data.test_labels, world, &confusion);
  if (!world.lead()) return 0;
  fmt::print("\nconfusion matrix (rows: true class, columns: predicted)\n{:>12}", "");
  for (int c = 0; c < 10; ++c) fmt::print("{:>6}", c);
  fmt::print("\n");
  for (int r = 0; r < 10; ++r) {
    fmt::print("{:>12}", D::kFashionMnistClasses[r]);
    for (int c = 0; c < 10; ++c) fmt::print("{:>6}", confusion[r][c]);
    fmt::print("\n");
  }
  fmt::print("final test accuracy {:.2f}% (loss {:.4f})\n", 100 * final_acc, final_loss);

  std::vector<double> epochs;
  for (size_t i = 0; i < history.test_accuracy.size(); ++i) epochs.push_back(static_cast<double>(i + 1));
  std::vector<double> acc_pct;
  for (double a : history.test_accuracy) acc_pct.push_back(100 * a);
  plot::write_file(opt.out + "/loss.svg",
                   plot::svg(plot::LineChart{.title = "Fashion-MNIST: cross-entropy", .x_label = "epoch",
                                             .y_label = "loss", .log_y = true,
                                             .series = {{"train", epochs, history.train_loss},
                                                        {"test", epochs, history.test_loss}}}));
  plot::write_file(opt.out + "/accuracy.svg",
                   plot::svg(plot::LineChart{.title = "Fashion-MNIST: test accuracy", .x_label = "epoch",
                                             .y_label = "accuracy (%)", .log_y = false,
                                             .series = {{"test", epochs, acc_pct}}}));
  fmt::print("wrote {0}/loss.svg, {0}/accuracy.svg and the checkpoint {0}/checkpoint.bin\n", opt.out);
  return 0;
}

int main(int argc, char** argv) {
  return cli::run("fashion_mnist", [&] { return run_example(argc, argv); });
}
