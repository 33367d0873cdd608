// A job in which one rank fails, for failure.sh: the other rank must exit with a clear
// error instead of waiting forever.
//   failure ok     both ranks all-reduce and exit 0
//   failure stall  rank 1 sleeps instead of calling all_reduce: rank 0 times out (2 s)
//   failure die    rank 1 exits with status 3 before the all_reduce
#include <distributed/distributed.hpp>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

namespace cr = chainrule;
namespace dist = cr::distributed;

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "ok";
  dist::Session session(argc, argv, {.timeout = std::chrono::seconds(2)});
  try {
    if (dist::rank() == 1 && mode == "stall") std::this_thread::sleep_for(std::chrono::seconds(60));
    if (dist::rank() == 1 && mode == "die") std::_Exit(3);
    cr::Tensor t = cr::ones({1000});
    dist::all_reduce({t});
    fmt::print("rank {}: all_reduce gave {}\n", dist::rank(), t.to_vector<float>()[0]);
    return 0;
  } catch (const dist::DistributedError& e) {
    fmt::print(stderr, "rank {}: {}\n", dist::rank(), e.what());
    return 1;  // the Session's destructor aborts the job
  }
}
